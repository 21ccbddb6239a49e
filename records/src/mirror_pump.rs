//! Two mirror nodes on their own PostgreSQL records, pumped in-process as the driver does
//! (for tests: the QUIC driver is another crate's): each round every node reloads its
//! state from its database (as on `NOTIFY konvert_mirror`, so rows the loader's commands
//! wrote are taken up), cuts, stores the cuts, sends; the other handles the bytes and
//! stores every event (applied rows through [`apply_rows`], receipts, refusals) before it
//! answers. Every byte that crosses is kept: the link, for a test to search.

use std::sync::Arc;

use konvert_mirror::{Endpoint, Event, Node, RefusalNotice, SendEvent};

use crate::mirror_rows::{apply_rows, row_check};
use crate::{PgMirror, PgRecords, Result};

/// A node of the pump: its records, its mirror state, and how to build its endpoint.
pub struct PumpNode {
    /// The node's records.
    pub records: Arc<PgRecords>,
    /// Its mirror state.
    pub store: PgMirror,
    make: Box<dyn Fn() -> Endpoint>,
    ep: Endpoint,
}

impl std::fmt::Debug for PumpNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PumpNode").field("node", &self.store.node()).finish()
    }
}

/// What a pump saw besides what it stored.
#[derive(Debug, Default)]
pub struct Pumped {
    /// Every message, in the order sent.
    pub link: Vec<Vec<u8>>,
    /// Batches refused by either node.
    pub refused: Vec<RefusalNotice>,
    /// Channels stalled at either node.
    pub stalled: Vec<SendEvent>,
}

impl PumpNode {
    /// Node `me` on `records` (claiming the database for it), its endpoint from `make`
    /// restored from what is stored, with the consent row check set.
    pub fn new(records: Arc<PgRecords>, me: Node, make: impl Fn() -> Endpoint + 'static) -> Result<PumpNode> {
        let store = PgMirror::open(records.clone(), me)?;
        let ep = make();
        let mut node = PumpNode {
            records,
            store,
            make: Box::new(make),
            ep,
        };
        node.reload()?;
        Ok(node)
    }

    /// Rebuilds the endpoint from the database, as the driver does when woken.
    pub fn reload(&mut self) -> Result<()> {
        let mut ep = (self.make)();
        let (send, receive) = self.store.load()?;
        ep.restore(send, receive)?;
        ep.receiver_mut()
            .set_row_check(row_check(self.records.clone(), self.store.node()));
        self.ep = ep;
        Ok(())
    }

    fn outgoing(&mut self, now: u64) -> Result<Vec<Vec<u8>>> {
        let cut = self.ep.cut()?;
        self.store.store_cut(&cut)?;
        Ok(std::iter::from_fn(|| self.ep.poll_transmit(now).map(|t| t.bytes)).collect())
    }

    fn take(&mut self, from: Node, bytes: &[u8], seen: &mut Pumped) -> Result<()> {
        self.ep.handle(from, bytes)?;
        let me = self.store.node();
        while let Some(e) = self.ep.poll_event() {
            match e {
                Event::Applied(a) => {
                    self.store.apply(&a, bytes, |tx, b| apply_rows(tx, me, b))?;
                }
                Event::Refused(n) => {
                    self.store.refused(&n)?;
                    seen.refused.push(n);
                }
                Event::Sent(SendEvent::Acked {
                    peer,
                    kind,
                    checkpoint,
                    receipt,
                }) => {
                    self.store.acked(peer, kind, &checkpoint, &receipt)?;
                }
                Event::Sent(stalled @ SendEvent::Stalled { .. }) => seen.stalled.push(stalled),
                Event::Replayed(_) => {}
            }
        }
        Ok(())
    }
}

/// Exchanges between `a` and `b` until neither has anything to send (at most `rounds`
/// rounds); returns every byte that crossed and what was refused.
pub fn pump(a: &mut PumpNode, b: &mut PumpNode, rounds: usize) -> Result<Pumped> {
    let mut seen = Pumped::default();
    a.reload()?;
    b.reload()?;
    for round in 0..rounds as u64 {
        let (na, nb) = (a.store.node(), b.store.node());
        let from_a = a.outgoing(round)?;
        let from_b = b.outgoing(round)?;
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        for m in from_a {
            b.take(na, &m, &mut seen)?;
            seen.link.push(m);
        }
        for m in from_b {
            a.take(nb, &m, &mut seen)?;
            seen.link.push(m);
        }
        // Receipts and refusals go back within the round.
        for m in std::iter::from_fn(|| b.ep.poll_transmit(round).map(|t| t.bytes)).collect::<Vec<_>>() {
            a.take(nb, &m, &mut seen)?;
            seen.link.push(m);
        }
        for m in std::iter::from_fn(|| a.ep.poll_transmit(round).map(|t| t.bytes)).collect::<Vec<_>>() {
            b.take(na, &m, &mut seen)?;
            seen.link.push(m);
        }
    }
    Ok(seen)
}
