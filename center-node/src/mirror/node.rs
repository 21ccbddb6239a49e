//! One node of the mirror (the federal node, or a region's mirror process): the sans-IO
//! [`Endpoint`] with its state in PostgreSQL ([`PgMirror`]), run as an async task whose
//! every step (bytes in, a tick, a connection, a wake) runs on a blocking thread, since the
//! PostgreSQL client blocks.
//!
//! Each step keeps the order `records/src/pg_mirror.rs` documents: bytes in (every
//! message queued on the links by then) → [`Endpoint::handle`] → every event stored (the
//! applied batches together, [`PgMirror::apply_many`]; [`PgMirror::refused`],
//! [`PgMirror::acked`]) → [`Endpoint::cut`] → [`PgMirror::store_cut`] → only then
//! [`Endpoint::poll_transmit`]. When any store call fails, the endpoint is dropped with
//! whatever it had queued (a receipt for a batch not stored must never go out) and
//! rebuilt from [`PgMirror::load`] at the next step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_crypto::{SigningKey, VerifyingKey};
use konvert_mirror::{
    AppliedBatch, Endpoint, Event, Node, RecordKind, Refusal, RowCheck, SendEvent, SenderLimits, Transmit,
};
use konvert_records::mirror_rows::feeds_row_check;
use konvert_records::{MirrorDirection, MirrorDriverLock, PgMirror, PgRecords};
use tokio::sync::{mpsc, watch};

use crate::Result;

/// The records' schema version the mirror's rows are written in, and the ones it reads:
/// the rows' format ([`konvert_records::mirror_rows::ROW_FORMAT`]).
pub const MIRROR_SCHEMA: u16 = konvert_records::mirror_rows::ROW_FORMAT as u16;

/// What a node does with the rows of a batch it applies, in the batch's transaction (the
/// records the rows feed): by default [`konvert_records::mirror_rows::apply_batches`].
pub type RowsInto =
    Arc<dyn Fn(&mut postgres::Transaction<'_>, Node, &[&AppliedBatch]) -> konvert_records::Result<()> + Send + Sync>;

/// Makes the receiver's row check (the consent allow-list, R18) each time the node's
/// endpoint is built; `None` for no check.
pub type RowChecks = Arc<dyn Fn(&PgMirror) -> Option<RowCheck> + Send + Sync>;

/// Rows decoded and written into the typed mirrored records, in the batch's transaction.
pub fn typed_rows() -> RowsInto {
    Arc::new(konvert_records::mirror_rows::apply_batches)
}

/// The consent allow-list checked again at the receiver: every row decodes as its kind
/// and names only participants its sender planned.
pub fn planned_only() -> RowChecks {
    Arc::new(|store: &PgMirror| {
        Some(konvert_records::mirror_rows::row_check(
            store.shared_records(),
            store.node(),
        ))
    })
}

/// Where the driver reports what the metrics count ([`crate::mirror::metrics`] plugs
/// `MirrorMetrics` in here). Every method has a no-op default.
pub trait MirrorHooks: Send + Sync {
    /// This node refused a peer's batch.
    fn refused(&self, _peer: Node, _kind: RecordKind, _reason: &Refusal) {}
    /// A peer refused our batch for good: the channel stopped.
    fn stalled(&self, _peer: Node, _kind: RecordKind, _reason: &Refusal) {}
    /// A peer's batch applied.
    fn applied(&self, _peer: Node, _kind: RecordKind, _rows: usize) {}
    /// A peer receipted our rows up to `through`.
    fn acked(&self, _peer: Node, _kind: RecordKind, _through: u64) {}
    /// An exchange with `peer` ended: a region's sync (`ok` when nothing was left), or a
    /// connection at the federal node.
    fn exchanged(&self, _peer: Node, _ok: bool) {}
    /// A connection was closed because the peer misbehaved (the reason in words).
    fn closed(&self, _peer: Node, _why: &str) {}
}

/// Hooks that count nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl MirrorHooks for NoHooks {}

/// Everything a node is built from.
#[derive(Clone)]
pub struct NodeSetup {
    /// This node.
    pub me: Node,
    /// Its mirror signing key.
    pub key: Arc<SigningKey>,
    /// Its peers and their public keys.
    pub peers: BTreeMap<Node, VerifyingKey>,
    /// Pacing.
    pub limits: SenderLimits,
    /// The records' database.
    pub records_url: String,
    /// Metrics hooks.
    pub hooks: Arc<dyn MirrorHooks>,
    /// What applied rows feed.
    pub rows_into: RowsInto,
    /// The receiver's row check.
    pub row_check: RowChecks,
}

impl std::fmt::Debug for NodeSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSetup")
            .field("me", &self.me)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl NodeSetup {
    /// A setup with no hooks, the rows written into the typed records and checked
    /// against the planning first.
    pub fn new(
        me: Node,
        key: SigningKey,
        peers: BTreeMap<Node, VerifyingKey>,
        limits: SenderLimits,
        records_url: &str,
    ) -> Self {
        NodeSetup {
            me,
            key: Arc::new(key),
            peers,
            limits,
            records_url: records_url.to_owned(),
            hooks: Arc::new(NoHooks),
            rows_into: typed_rows(),
            row_check: planned_only(),
        }
    }

    /// Opens the node's state in its database (blocking).
    pub fn open_store(&self) -> Result<PgMirror> {
        let records = Arc::new(PgRecords::connect(&self.records_url)?);
        Ok(PgMirror::open(records, self.me)?)
    }

    /// An endpoint rebuilt from the stored state (blocking).
    pub fn endpoint(&self, store: &PgMirror) -> Result<Endpoint> {
        let mut ep = Endpoint::new(
            self.me,
            &self.key,
            self.peers.clone(),
            MIRROR_SCHEMA,
            MIRROR_SCHEMA..=MIRROR_SCHEMA,
            self.limits.clone(),
        )
        .map_err(konvert_records::Error::from)?;
        if let Some(check) = (self.row_check)(store) {
            ep.receiver_mut().set_row_check(check);
        }
        let (send, receive) = store.load()?;
        ep.restore(send, receive).map_err(konvert_records::Error::from)?;
        Ok(ep)
    }
}

/// Writes outbox rows from outside the mirror's process (a test, an import, a close),
/// each push from the stored state as it is now, so it never disagrees with another writer.
#[derive(Debug)]
pub struct OutboxWriter {
    setup: NodeSetup,
    store: PgMirror,
}

impl OutboxWriter {
    /// Opens the node's store (blocking).
    pub fn open(setup: NodeSetup) -> Result<Self> {
        let store = setup.open_store()?;
        Ok(OutboxWriter { setup, store })
    }

    /// Writes rows of `kind` for `peer` in one transaction, then `NOTIFY konvert_mirror`
    /// (blocking). Returns the rows' numbers.
    pub fn push_many(&self, peer: Node, kind: RecordKind, payloads: Vec<Vec<u8>>) -> Result<(u64, u64)> {
        let mut ep = self.setup.endpoint(&self.store)?;
        let (seqs, ()) = self.store.push_many(&mut ep, peer, kind, payloads, |tx| {
            tx.batch_execute(&format!("NOTIFY {}", konvert_records::MIRROR_CHANNEL))
                .map_err(|e| konvert_records::Error::Connection {
                    target: self.store.records().target().to_owned(),
                    message: format!("NOTIFY {} failed: {e}", konvert_records::MIRROR_CHANNEL),
                })
        })?;
        Ok((*seqs.start(), *seqs.end()))
    }

    /// The node's store.
    pub fn store(&self) -> &PgMirror {
        &self.store
    }
}

/// A command for one connection's task.
#[derive(Debug)]
pub enum LinkCommand {
    /// Send these bytes as one message (one unidirectional stream).
    Send(Vec<u8>),
    /// Close the connection with this code and reason.
    Close(u32, String),
}

/// Close codes of mirror connections.
pub mod close {
    /// The exchange is over (the region hangs up).
    pub const DONE: u32 = 0;
    /// The peer sent what the protocol forbids (bytes the core refused, a message over the
    /// limit, a message claiming another node).
    pub const PROTOCOL: u32 = 1;
    /// A newer connection of the same peer took over.
    pub const SUPERSEDED: u32 = 2;
    /// The certificate names no enrolled region.
    pub const UNKNOWN_PEER: u32 = 3;
}

#[derive(Debug)]
pub(crate) enum Input {
    Connected {
        peer: Node,
        conn: u64,
        out: mpsc::UnboundedSender<LinkCommand>,
    },
    Disconnected {
        peer: Node,
        conn: u64,
    },
    Bytes {
        peer: Node,
        conn: u64,
        bytes: Vec<u8>,
    },
    Wake,
}

/// What the node's last step left, for a sync to know when it is done.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Everything written was receipted.
    pub idle: bool,
    /// When the last message came in.
    pub last_incoming: Option<Instant>,
    /// Channels a peer stopped, and why.
    pub stalled: Vec<(Node, RecordKind, String)>,
    /// The node could not load its state (PostgreSQL down, say): the error.
    pub error: Option<String>,
}

/// A running node: feed it connections and wakes; it runs until every handle is dropped.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Input>,
    progress: watch::Receiver<Progress>,
    me: Node,
    hooks: Arc<dyn MirrorHooks>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("me", &self.me).finish()
    }
}

impl NodeHandle {
    pub(crate) async fn send(&self, input: Input) -> bool {
        self.tx.send(input).await.is_ok()
    }

    /// Look at the outbox again (rows written by another process).
    pub async fn wake(&self) {
        let _ = self.tx.send(Input::Wake).await;
    }

    /// [`NodeHandle::wake`] from a plain thread; `false` once the node is gone.
    pub fn wake_blocking(&self) -> bool {
        self.tx.blocking_send(Input::Wake).is_ok()
    }

    /// Whether the node's task has ended.
    pub fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    /// A handle that wakes the node without keeping it running.
    pub fn waker(&self) -> NodeWaker {
        NodeWaker(self.tx.downgrade())
    }

    /// The progress after the last step.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// This node.
    pub fn node(&self) -> Node {
        self.me
    }

    pub(crate) fn hooks_closed(&self, peer: Node, why: &str) {
        self.hooks.closed(peer, why);
    }

    pub(crate) fn hooks_exchanged(&self, peer: Node, ok: bool) {
        self.hooks.exchanged(peer, ok);
    }
}

/// Wakes a node ([`NodeHandle::wake`]) while it runs; the node stops when its last
/// [`NodeHandle`] is dropped, whatever wakers are left.
#[derive(Debug, Clone)]
pub struct NodeWaker(mpsc::WeakSender<Input>);

impl NodeWaker {
    /// Wakes the node; `false` once it is gone.
    pub async fn wake(&self) -> bool {
        match self.0.upgrade() {
            Some(tx) => tx.send(Input::Wake).await.is_ok(),
            None => false,
        }
    }

    /// [`NodeWaker::wake`] from a plain thread.
    pub fn wake_blocking(&self) -> bool {
        match self.0.upgrade() {
            Some(tx) => tx.blocking_send(Input::Wake).is_ok(),
            None => false,
        }
    }

    /// Whether the node is gone.
    pub fn is_stopped(&self) -> bool {
        self.0.upgrade().is_none_or(|tx| tx.is_closed())
    }
}

/// How long to wait before trying a failed load again.
const RETRY: Duration = Duration::from_secs(1);
/// Messages queued from the connections before their readers wait.
const INPUT_QUEUE: usize = 64;
/// Most messages taken into one step (their batches applied in one transaction): the
/// queue's length, so a step holds at most that many messages' bytes.
const MAX_STEP_MESSAGES: usize = INPUT_QUEUE;

#[derive(Default)]
struct StepOut {
    sends: Vec<Transmit>,
    closes: Vec<(Node, String)>,
    next: Option<Instant>,
}

enum Step {
    /// Messages in, in the order they came: those queued while the last step ran.
    Bytes(Vec<(Node, Vec<u8>)>),
    Connected(Node),
    Wake,
    Tick,
}

/// The node's state, owned by one blocking step at a time.
struct Core {
    setup: NodeSetup,
    store: PgMirror,
    /// This process is the database's one mirror driver while the core lives.
    _driver: MirrorDriverLock,
    ep: Option<Endpoint>,
    start: Instant,
    last_incoming: Option<Instant>,
    stalled: BTreeMap<(Node, RecordKind), String>,
    error: Option<String>,
}

impl Core {
    /// Opens the node's store, claims the database, rebuilds the endpoint (blocking).
    fn open(setup: NodeSetup) -> Result<Core> {
        let store = setup.open_store()?;
        let driver = store.lock_driver()?;
        let ep = setup.endpoint(&store)?;
        Ok(Core {
            setup,
            store,
            _driver: driver,
            ep: Some(ep),
            start: Instant::now(),
            last_incoming: None,
            stalled: BTreeMap::new(),
            error: None,
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn step(&mut self, step: Step) -> StepOut {
        let mut out = StepOut::default();
        if self.ep.is_none() {
            match self.setup.endpoint(&self.store) {
                Ok(ep) => {
                    self.ep = Some(ep);
                    self.stalled.clear();
                    self.error = None;
                }
                Err(e) => {
                    tracing::error!(node = %self.setup.me, error = %e, "cannot load the mirror state; trying again");
                    self.error = Some(e.to_string());
                    out.next = Some(Instant::now() + RETRY);
                    return out;
                }
            }
        }
        if let Err(e) = self.try_step(step, &mut out) {
            tracing::warn!(node = %self.setup.me, error = %e, "mirror state not stored; the node is rebuilt from the stored state");
            self.ep = None;
            out.sends.clear();
            out.next = Some(Instant::now() + RETRY);
        }
        out
    }

    fn try_step(&mut self, step: Step, out: &mut StepOut) -> konvert_records::Result<()> {
        let me = self.setup.me;
        let Some(ep) = self.ep.as_mut() else {
            return Ok(());
        };
        match step {
            Step::Bytes(messages) => {
                self.last_incoming = Some(Instant::now());
                // Batches applied by the core are stored together, in one transaction,
                // before anything (their receipts) goes out; a planning batch is stored
                // before the next message is checked, since the row check reads it.
                let mut applied = Vec::new();
                for (peer, bytes) in messages {
                    // A peer that broke the protocol is cut off: what else it sent is not read.
                    if out.closes.iter().any(|(p, _)| *p == peer) {
                        continue;
                    }
                    if let Err(e) = ep.handle(peer, &bytes) {
                        tracing::warn!(%peer, error = %e, "mirror connection closed: the peer broke the protocol");
                        self.setup.hooks.closed(peer, &e.to_string());
                        out.closes.push((peer, e.to_string()));
                    }
                    while let Some(event) = ep.poll_event() {
                        match event {
                            Event::Applied(a) => applied.push(a),
                            Event::Replayed(_) => {}
                            Event::Refused(n) => {
                                self.store.refused(&n)?;
                                self.setup.hooks.refused(n.to, n.kind, &n.reason);
                            }
                            Event::Sent(SendEvent::Acked {
                                peer,
                                kind,
                                checkpoint,
                                receipt,
                            }) => {
                                self.store.acked(peer, kind, &checkpoint, &receipt)?;
                                self.setup.hooks.acked(peer, kind, checkpoint.acked_through);
                            }
                            Event::Sent(SendEvent::Stalled { peer, kind, reason }) => {
                                self.setup.hooks.stalled(peer, kind, &reason);
                                self.stalled.insert((peer, kind), reason.to_string());
                            }
                        }
                    }
                    if applied.last().is_some_and(|a| feeds_row_check(a.kind)) {
                        store_applied(&self.setup, &self.store, std::mem::take(&mut applied))?;
                    }
                }
                store_applied(&self.setup, &self.store, applied)?;
            }
            Step::Connected(peer) => {
                if outbox_grew(&self.store, ep)? {
                    self.ep = None;
                    self.ep = Some(self.setup.endpoint_records(&self.store)?);
                    self.stalled.clear();
                }
                // Batches "sent" while the peer was away went nowhere: due again at once.
                // A stalled channel stays stopped until someone looks (or a restart), except
                // one whose rows the peer's check refused: what it checks against (the
                // planning) may have arrived since, so each exchange tries once more.
                if let Some(ep) = self.ep.as_mut() {
                    for kind in RecordKind::owned_by(me.side()) {
                        if matches!(ep.sender().stalled(peer, kind), None | Some(Refusal::RowRefused { .. })) {
                            ep.sender_mut().resume(peer, kind);
                            self.stalled.remove(&(peer, kind));
                        }
                    }
                }
            }
            Step::Wake => {
                if outbox_grew(&self.store, ep)? {
                    tracing::debug!(node = %me, "new outbox rows; reloading the mirror state");
                    self.ep = None;
                    self.ep = Some(self.setup.endpoint_records(&self.store)?);
                    self.stalled.clear();
                }
            }
            Step::Tick => {}
        }
        let Some(mut ep) = self.ep.take() else {
            return Ok(());
        };
        let done = self.finish(&mut ep, out);
        self.ep = Some(ep);
        done
    }

    /// Cut, store the cut, then collect what is due.
    fn finish(&self, ep: &mut Endpoint, out: &mut StepOut) -> konvert_records::Result<()> {
        let cut = ep.cut()?;
        self.store.store_cut(&cut)?;
        let now = self.now_ms();
        while let Some(t) = ep.poll_transmit(now) {
            out.sends.push(t);
        }
        out.next = ep
            .poll_timeout()
            .map(|ms| self.start + Duration::from_millis(ms.max(now)));
        Ok(())
    }

    fn progress(&self) -> Progress {
        Progress {
            idle: self.ep.as_ref().is_some_and(|ep| ep.sender().is_idle()),
            last_incoming: self.last_incoming,
            stalled: self.stalled.iter().map(|(&(p, k), r)| (p, k, r.clone())).collect(),
            error: self.error.clone(),
        }
    }
}

impl NodeSetup {
    fn endpoint_records(&self, store: &PgMirror) -> konvert_records::Result<Endpoint> {
        self.endpoint(store).map_err(|e| match e {
            crate::Error::Records(r) => r,
            other => konvert_records::Error::Connection {
                target: store.records().target().to_owned(),
                message: other.to_string(),
            },
        })
    }
}

/// Stores batches the core applied, in one transaction.
fn store_applied(setup: &NodeSetup, store: &PgMirror, applied: Vec<AppliedBatch>) -> konvert_records::Result<()> {
    if applied.is_empty() {
        return Ok(());
    }
    let batches: Vec<_> = applied.iter().map(|a| (a, a.signed.as_slice())).collect();
    let (me, rows_into) = (setup.me, setup.rows_into.clone());
    let (fresh, ()) = store.apply_many(&batches, move |tx, b| rows_into(tx, me, b))?;
    for (a, _) in applied.iter().zip(fresh).filter(|(_, f)| *f) {
        setup.hooks.applied(a.from, a.kind, a.rows.len());
    }
    Ok(())
}

/// Whether another process wrote outbox rows this endpoint does not know.
fn outbox_grew(store: &PgMirror, ep: &Endpoint) -> konvert_records::Result<bool> {
    let sender = ep.sender();
    Ok(store.status()?.iter().any(|s| {
        s.direction == MirrorDirection::Outgoing
            && s.rows != sender.checkpoint(s.peer, s.kind).acked_through + sender.lag(s.peer, s.kind)
    }))
}

/// Starts a node: opens its store, and runs it as a task until every handle is dropped.
pub async fn start(setup: NodeSetup) -> Result<NodeHandle> {
    let (me, hooks) = (setup.me, setup.hooks.clone());
    let core = tokio::task::spawn_blocking(move || Core::open(setup))
        .await
        .map_err(|e| crate::Error::Control(format!("the mirror node did not start: {e}")))??;
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let (progress_tx, progress) = watch::channel(core.progress());
    tokio::spawn(run(Box::new(core), rx, progress_tx));
    Ok(NodeHandle {
        tx,
        progress,
        me,
        hooks,
    })
}

async fn run(mut core: Box<Core>, mut rx: mpsc::Receiver<Input>, progress: watch::Sender<Progress>) {
    let mut links: BTreeMap<Node, (u64, mpsc::UnboundedSender<LinkCommand>)> = BTreeMap::new();
    let mut next = Some(Instant::now());
    // An input taken from the queue while gathering messages, not a message itself.
    let mut held: Option<Input> = None;
    loop {
        let deadline = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let input = match held.take() {
            Some(i) => Some(i),
            None => tokio::select! {
                i = rx.recv() => match i {
                    Some(i) => Some(i),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline.into()) => None,
            },
        };
        let step = match input {
            None => Step::Tick,
            Some(Input::Wake) => Step::Wake,
            Some(Input::Connected { peer, conn, out }) => {
                if let Some((_, old)) = links.insert(peer, (conn, out)) {
                    let _ = old.send(LinkCommand::Close(
                        close::SUPERSEDED,
                        "a newer connection took over".into(),
                    ));
                }
                Step::Connected(peer)
            }
            Some(Input::Disconnected { peer, conn }) => {
                if links.get(&peer).is_some_and(|(c, _)| *c == conn) {
                    links.remove(&peer);
                }
                continue;
            }
            Some(first @ Input::Bytes { .. }) => {
                // Every message already queued goes into this step, up to the first input
                // that is not one.
                let mut messages = Vec::new();
                let mut next_input = Some(first);
                while let Some(input) = next_input.take() {
                    match input {
                        Input::Bytes { peer, conn, bytes } => {
                            // A connection already replaced: its peer talks on the new one.
                            if links.get(&peer).is_some_and(|(c, _)| *c == conn) {
                                messages.push((peer, bytes));
                            }
                        }
                        other => {
                            held = Some(other);
                            break;
                        }
                    }
                    if messages.len() < MAX_STEP_MESSAGES {
                        next_input = rx.try_recv().ok();
                    }
                }
                if messages.is_empty() {
                    continue;
                }
                Step::Bytes(messages)
            }
        };
        let joined = tokio::task::spawn_blocking(move || {
            let out = core.step(step);
            let p = core.progress();
            (core, out, p)
        })
        .await;
        let (c, out, p) = match joined {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "the mirror node's step panicked; the node stops");
                break;
            }
        };
        core = c;
        for (peer, why) in out.closes {
            if let Some((_, link)) = links.remove(&peer) {
                let _ = link.send(LinkCommand::Close(close::PROTOCOL, why));
            }
        }
        for t in out.sends {
            // A peer not connected now gets the batch again when it connects.
            if let Some((_, link)) = links.get(&t.to) {
                let _ = link.send(LinkCommand::Send(t.bytes));
            }
        }
        next = out.next;
        progress.send_replace(p);
    }
}

/// What is left to send, per channel, in words (empty when everything is receipted).
pub fn leftover(store: &PgMirror) -> Result<Vec<String>> {
    Ok(store
        .status()?
        .into_iter()
        .filter(|s| s.direction == MirrorDirection::Outgoing && s.lag.unwrap_or(0) > 0)
        .map(|s| {
            format!(
                "{} rows of {} for {} not receipted (rows {}..={})",
                s.lag.unwrap_or(0),
                s.kind,
                s.peer,
                s.through + 1,
                s.rows
            )
        })
        .collect())
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
