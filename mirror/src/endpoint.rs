//! A node of the mirror: its sender and its receiver behind one message entry point.

use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;

use konvert_crypto::{SigningKey, VerifyingKey};

use crate::{
    decode, encode, AppliedBatch, CutBatch, Message, Millis, Node, Outcome, ReceiveState, RecordKind, RefusalNotice,
    Result, SendEvent, SendState, Sender, SenderLimits, SignedReceipt, Transmit,
};

/// What happened at a node, for the driver to store, log and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer's batch applied: store rows, checkpoint and receipt in one transaction.
    Applied(AppliedBatch),
    /// A peer's batch seen before: the stored receipt went back, nothing applied.
    Replayed(SignedReceipt),
    /// A peer's batch refused (logged, counted, never merged).
    Refused(RefusalNotice),
    /// Our batch receipted, or our channel stalled.
    Sent(SendEvent),
}

/// A node: the owner of its kinds (a [`Sender`]) and the receiver of its peers' kinds
/// (a [`crate::Receiver`]). Fed bytes and time; asked for bytes, timeouts and events.
#[derive(Debug)]
pub struct Endpoint {
    sender: Sender,
    receiver: crate::Receiver,
    replies: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Endpoint {
    /// A node `me` with its signing key, its peers' keys, the schema version it writes
    /// and those it reads.
    pub fn new(
        me: Node,
        key: &SigningKey,
        peers: BTreeMap<Node, VerifyingKey>,
        schema: u16,
        schemas: RangeInclusive<u16>,
        limits: SenderLimits,
    ) -> Result<Self> {
        let seed = key.seed();
        let sender = Sender::new(me, SigningKey::from_seed(seed)?, peers.clone(), schema, limits)?;
        let receiver = crate::Receiver::new(me, SigningKey::from_seed(seed)?, peers, schemas)?;
        Ok(Endpoint {
            sender,
            receiver,
            replies: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The sending half.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// The sending half, to write outbox rows.
    pub fn sender_mut(&mut self) -> &mut Sender {
        &mut self.sender
    }

    /// The receiving half.
    pub fn receiver(&self) -> &crate::Receiver {
        &self.receiver
    }

    /// The receiving half, to set its row check.
    pub fn receiver_mut(&mut self) -> &mut crate::Receiver {
        &mut self.receiver
    }

    /// Handles bytes that came over the connection authenticated as `peer`. An error means
    /// the bytes or the connection are wrong (oversized, unknown format, a peer claiming
    /// to be another): the driver logs it and closes that connection.
    pub fn handle(&mut self, peer: Node, bytes: &[u8]) -> Result<()> {
        match decode(bytes)? {
            Message::Batch(batch) => {
                let (reply, event) = match self.receiver.handle(peer, &batch)? {
                    Outcome::Applied(mut a) => {
                        a.signed = bytes.to_vec();
                        (Message::Receipt(a.receipt.clone()), Event::Applied(a))
                    }
                    Outcome::Replayed(r) => (Message::Receipt(r.clone()), Event::Replayed(r)),
                    Outcome::Refused(n) => (Message::Refusal(n.clone()), Event::Refused(n)),
                };
                self.replies.push_back(Transmit {
                    to: peer,
                    bytes: encode(&reply)?,
                });
                self.events.push_back(event);
            }
            Message::Receipt(r) => {
                if let Some(e) = self.sender.handle_receipt(peer, &r)? {
                    self.events.push_back(Event::Sent(e));
                }
            }
            Message::Refusal(n) => {
                if let Some(e) = self.sender.handle_refusal(peer, &n)? {
                    self.events.push_back(Event::Sent(e));
                }
            }
        }
        Ok(())
    }

    /// Cuts batches from the outbox (see [`Sender::cut`]): the driver stores them before
    /// calling [`Endpoint::poll_transmit`].
    pub fn cut(&mut self) -> Result<Vec<CutBatch>> {
        self.sender.cut()
    }

    /// The next bytes to send: answers first (they are small and free the peer's window),
    /// then batches.
    pub fn poll_transmit(&mut self, now: Millis) -> Option<Transmit> {
        self.replies.pop_front().or_else(|| self.sender.poll_transmit(now))
    }

    /// What the driver stores to rebuild the node ([`Endpoint::restore`]).
    pub fn state(&self) -> (Vec<SendState>, Vec<ReceiveState>) {
        (self.sender.state(), self.receiver.state())
    }

    /// Rebuilds a node from its stored state; see [`Sender::restore`] and
    /// [`crate::Receiver::restore`] for what is checked. Unanswered batches are forgotten:
    /// their senders resend them.
    pub fn restore(&mut self, send: Vec<SendState>, receive: Vec<ReceiveState>) -> Result<()> {
        for s in send {
            self.sender.restore(s)?;
        }
        for r in receive {
            self.receiver.restore(r)?;
        }
        Ok(())
    }

    /// When to call [`Endpoint::poll_transmit`] next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if !self.replies.is_empty() {
            return Some(0);
        }
        self.sender.poll_timeout()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Writes an outbox row (see [`Sender::push`]).
    pub fn push(&mut self, peer: Node, kind: RecordKind, payload: Vec<u8>) -> Result<u64> {
        Ok(self.sender.push(peer, kind, payload)?.seq)
    }
}
