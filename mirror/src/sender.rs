//! The sending half: the owner's outbox, cut into signed hash-chained batches, sent
//! within a window and resent until receipted.

use std::collections::{BTreeMap, VecDeque};

use konvert_crypto::{Domain, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    decode, encode, BatchBody, Digest, Error, Message, Node, OutboxRow, RecordKind, Refusal, RefusalNotice, Result,
    SignedBatch, SignedReceipt, MAX_BATCH_BYTES, MAX_BATCH_ROWS,
};

/// Milliseconds on the driver's monotonic clock. The core never reads a clock.
pub type Millis = u64;

/// How a sender paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderLimits {
    /// Most batches cut and unreceipted per (peer, kind) channel.
    pub window: usize,
    /// How long to wait for a receipt before sending a batch again.
    pub resend_after: Millis,
    /// Most rows in one batch (at most [`MAX_BATCH_ROWS`]).
    pub batch_rows: usize,
    /// Most payload bytes in one batch (at most [`MAX_BATCH_BYTES`]).
    pub batch_bytes: usize,
}

impl Default for SenderLimits {
    fn default() -> Self {
        SenderLimits {
            window: 8,
            resend_after: 30_000,
            batch_rows: 1024,
            batch_bytes: MAX_BATCH_BYTES / 2,
        }
    }
}

/// How far a sender knows one (peer, kind) channel to be applied. It only moves forward.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SendCheckpoint {
    /// The last row the peer receipted (0 before the first receipt).
    pub acked_through: u64,
    /// The digest of the last receipted batch.
    pub last_acked: Digest,
}

/// A batch just cut, for the driver to store before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutBatch {
    /// The peer.
    pub peer: Node,
    /// The kind.
    pub kind: RecordKind,
    /// Its first row.
    pub first_seq: u64,
    /// Its last row.
    pub last_seq: u64,
    /// Its digest.
    pub digest: Digest,
    /// The encoded [`Message::Batch`], sent as is (and again, as is).
    pub bytes: Vec<u8>,
}

/// What a driver stores of one (peer, kind) channel of a sender, to rebuild it after a
/// restart ([`Sender::restore`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendState {
    /// The peer.
    pub peer: Node,
    /// The kind.
    pub kind: RecordKind,
    /// What the peer receipted.
    pub checkpoint: SendCheckpoint,
    /// The batches cut and not receipted, in order, as encoded messages.
    pub pending: Vec<serde_bytes::ByteBuf>,
    /// The outbox rows not yet in a batch, in order.
    pub unbatched: Vec<OutboxRow>,
}

/// Bytes to send to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer.
    pub to: Node,
    /// An encoded [`Message`].
    pub bytes: Vec<u8>,
}

/// What the sender learnt from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendEvent {
    /// Rows up to `through` are applied at the peer.
    Acked {
        /// The peer.
        peer: Node,
        /// The kind.
        kind: RecordKind,
        /// The new checkpoint.
        checkpoint: SendCheckpoint,
        /// The receipt, for the audit trail.
        receipt: SignedReceipt,
    },
    /// The peer refused a batch for a reason resending cannot fix; the channel stops
    /// until someone looks.
    Stalled {
        /// The peer.
        peer: Node,
        /// The kind.
        kind: RecordKind,
        /// Why.
        reason: Refusal,
    },
}

#[derive(Debug)]
struct Pending {
    first_seq: u64,
    last_seq: u64,
    digest: Digest,
    bytes: Vec<u8>,
    sent_at: Option<Millis>,
}

#[derive(Debug)]
struct Channel {
    next_seq: u64,
    unbatched: VecDeque<OutboxRow>,
    pending: VecDeque<Pending>,
    last_cut: Digest,
    checkpoint: SendCheckpoint,
    stalled: Option<Refusal>,
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            next_seq: 1,
            unbatched: VecDeque::new(),
            pending: VecDeque::new(),
            last_cut: Digest::ZERO,
            checkpoint: SendCheckpoint::default(),
            stalled: None,
        }
    }
}

/// The sending half of a node: the owner of its kinds.
#[derive(Debug)]
pub struct Sender {
    me: Node,
    key: SigningKey,
    peers: BTreeMap<Node, VerifyingKey>,
    schema: u16,
    limits: SenderLimits,
    channels: BTreeMap<(Node, RecordKind), Channel>,
}

impl Sender {
    /// A sender for node `me`, signing with `key`, writing rows in schema version
    /// `schema`, verifying receipts with the `peers`' configured keys.
    pub fn new(
        me: Node,
        key: SigningKey,
        peers: BTreeMap<Node, VerifyingKey>,
        schema: u16,
        mut limits: SenderLimits,
    ) -> Result<Self> {
        if let Some(&peer) = peers.keys().find(|p| !p.is_peer_of(me)) {
            return Err(Error::NotAPeer { node: me, peer });
        }
        limits.window = limits.window.max(1);
        limits.batch_rows = limits.batch_rows.clamp(1, MAX_BATCH_ROWS);
        limits.batch_bytes = limits.batch_bytes.clamp(1, MAX_BATCH_BYTES);
        Ok(Sender {
            me,
            key,
            peers,
            schema,
            limits,
            channels: BTreeMap::new(),
        })
    }

    /// This node.
    pub fn node(&self) -> Node {
        self.me
    }

    /// Appends a row of `kind` for `peer` to the outbox and returns its sequence number.
    /// Refuses a kind this node does not own and a peer it does not exchange with.
    pub fn push(&mut self, peer: Node, kind: RecordKind, payload: Vec<u8>) -> Result<OutboxRow> {
        if kind.owner() != self.me.side() {
            return Err(Error::NotOwner { node: self.me, kind });
        }
        if !self.peers.contains_key(&peer) {
            return Err(Error::NotAPeer { node: self.me, peer });
        }
        let channel = self.channels.entry((peer, kind)).or_default();
        let row = OutboxRow::new(self.me, peer, kind, channel.next_seq, payload)?;
        channel.next_seq += 1;
        channel.unbatched.push_back(row.clone());
        Ok(row)
    }

    /// The checkpoint of (peer, kind).
    pub fn checkpoint(&self, peer: Node, kind: RecordKind) -> SendCheckpoint {
        self.channels
            .get(&(peer, kind))
            .map(|c| c.checkpoint.clone())
            .unwrap_or_default()
    }

    /// Rows written and not yet receipted on (peer, kind).
    pub fn lag(&self, peer: Node, kind: RecordKind) -> u64 {
        self.channels
            .get(&(peer, kind))
            .map_or(0, |c| (c.next_seq - 1).saturating_sub(c.checkpoint.acked_through))
    }

    /// Batches cut and not receipted on (peer, kind): never more than the window.
    pub fn unreceipted(&self, peer: Node, kind: RecordKind) -> usize {
        self.channels.get(&(peer, kind)).map_or(0, |c| c.pending.len())
    }

    /// Batches sent and not receipted, over all channels.
    pub fn in_flight(&self) -> usize {
        self.channels
            .values()
            .map(|c| c.pending.iter().filter(|p| p.sent_at.is_some()).count())
            .sum()
    }

    /// The refusal that stopped (peer, kind), if any.
    pub fn stalled(&self, peer: Node, kind: RecordKind) -> Option<&Refusal> {
        self.channels.get(&(peer, kind)).and_then(|c| c.stalled.as_ref())
    }

    /// Starts a stalled channel again once someone fixed the cause (upgraded the peer's
    /// schema, say): its pending batches are due at once. A stall is not part of the stored
    /// state either, so a restart resumes too; a cause still there stalls it again.
    pub fn resume(&mut self, peer: Node, kind: RecordKind) {
        if let Some(c) = self.channels.get_mut(&(peer, kind)) {
            if let Some(reason) = c.stalled.take() {
                tracing::info!(%peer, %kind, %reason, "mirror channel resumed");
            }
            for p in c.pending.iter_mut() {
                p.sent_at = None;
            }
        }
    }

    /// Whether everything written was receipted.
    pub fn is_idle(&self) -> bool {
        self.channels
            .values()
            .all(|c| c.unbatched.is_empty() && c.pending.is_empty())
    }

    /// The state of every channel, for the driver to store.
    pub fn state(&self) -> Vec<SendState> {
        self.channels
            .iter()
            .map(|(&(peer, kind), c)| SendState {
                peer,
                kind,
                checkpoint: c.checkpoint.clone(),
                pending: c
                    .pending
                    .iter()
                    .map(|p| serde_bytes::ByteBuf::from(p.bytes.clone()))
                    .collect(),
                unbatched: c.unbatched.iter().cloned().collect(),
            })
            .collect()
    }

    /// Rebuilds a channel from what the driver stored. The pending batches must be ours,
    /// for this channel, contiguous and chained from the checkpoint, and the unbatched
    /// rows must follow them without a gap: a store that says otherwise is damaged, and
    /// sending from it would make the peer refuse the channel for good. Every pending
    /// batch is due at once (when it was last sent is not stored).
    pub fn restore(&mut self, state: SendState) -> Result<()> {
        let SendState {
            peer,
            kind,
            checkpoint,
            pending,
            unbatched,
        } = state;
        let damaged = |what: String| Error::Restore(format!("{peer} {kind}: {what}"));
        if kind.owner() != self.me.side() {
            return Err(Error::NotOwner { node: self.me, kind });
        }
        if !self.peers.contains_key(&peer) {
            return Err(Error::NotAPeer { node: self.me, peer });
        }
        let mut channel = Channel {
            next_seq: checkpoint.acked_through + 1,
            last_cut: checkpoint.last_acked,
            checkpoint,
            ..Channel::default()
        };
        for bytes in pending {
            let Message::Batch(b) = decode(&bytes)? else {
                return Err(damaged("a pending batch is not a batch".into()));
            };
            let body = &b.body;
            if body.from != self.me || body.to != peer || body.kind != kind {
                return Err(damaged(format!(
                    "pending batch {}.. is not ours for this channel",
                    body.first_seq
                )));
            }
            if body.first_seq != channel.next_seq || body.prev != channel.last_cut {
                return Err(damaged(format!(
                    "pending batch {}.. does not follow row {} and batch {:?}",
                    body.first_seq,
                    channel.next_seq - 1,
                    channel.last_cut
                )));
            }
            body.check_limits().map_err(|r| damaged(r.to_string()))?;
            let digest = body.digest()?;
            let (first_seq, last_seq) = (body.first_seq, body.last_seq());
            let bytes = if b.signer == self.key.key_id() {
                self.key
                    .verifying_key()
                    .verify(Domain::MirrorBatch, &digest.0, &b.signature)
                    .map_err(|_| damaged(format!("pending batch {first_seq}.. has a bad signature")))?;
                bytes.into_vec()
            } else {
                // Signed before this node's key was rotated. The signature is over the body's
                // digest only, so signing the same body again keeps the digest, the chain and
                // a replay's match at the receiver, which now knows the new key only.
                tracing::info!(%peer, %kind, first_seq, old_key = %b.signer, "pending mirror batch signed again with the new key");
                encode(&Message::Batch(SignedBatch::sign(b.body, &self.key)?))?
            };
            channel.pending.push_back(Pending {
                first_seq,
                last_seq,
                digest,
                bytes,
                sent_at: None,
            });
            channel.next_seq = last_seq + 1;
            channel.last_cut = digest;
        }
        for row in unbatched {
            let expect = OutboxRow::digest_of(self.me, peer, kind, row.seq, &row.payload);
            if row.peer != peer || row.kind != kind || row.seq != channel.next_seq || row.digest != expect {
                return Err(damaged(format!(
                    "outbox row {} is not the next row or its digest is wrong",
                    row.seq
                )));
            }
            channel.next_seq += 1;
            channel.unbatched.push_back(row);
        }
        self.channels.insert((peer, kind), channel);
        Ok(())
    }

    /// Cuts batches from the outbox while each channel's window has room, and returns
    /// them. The driver stores them (with the channel's state, [`Sender::state`]) before it
    /// sends anything: a batch is cut once, so a resend after a crash is the same bytes
    /// and the receiver sees a replay, not another history of the same rows.
    pub fn cut(&mut self) -> Result<Vec<CutBatch>> {
        let (me, schema) = (self.me, self.schema);
        let mut out = Vec::new();
        for (&(peer, kind), channel) in self.channels.iter_mut() {
            if channel.stalled.is_some() {
                continue;
            }
            while channel.pending.len() < self.limits.window && !channel.unbatched.is_empty() {
                let p = cut(channel, me, peer, kind, schema, &self.limits, &self.key)?;
                out.push(CutBatch {
                    peer,
                    kind,
                    first_seq: p.first_seq,
                    last_seq: p.last_seq,
                    digest: p.digest,
                    bytes: p.bytes.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The next batch to send at `now`: a cut one never sent, or one whose receipt is
    /// overdue. Call until `None`. Only batches [`Sender::cut`] returned are sent.
    pub fn poll_transmit(&mut self, now: Millis) -> Option<Transmit> {
        for (&(peer, kind), channel) in self.channels.iter_mut() {
            if channel.stalled.is_some() {
                continue;
            }
            for p in channel.pending.iter_mut() {
                let due = p
                    .sent_at
                    .is_none_or(|t| now >= t.saturating_add(self.limits.resend_after));
                if due {
                    if p.sent_at.is_some() {
                        tracing::debug!(%peer, %kind, first_seq = p.first_seq, "mirror batch resent");
                    }
                    p.sent_at = Some(now);
                    return Some(Transmit {
                        to: peer,
                        bytes: p.bytes.clone(),
                    });
                }
            }
        }
        None
    }

    /// When [`Sender::cut`] or [`Sender::poll_transmit`] will next have something: a
    /// resend deadline, or 0 if a batch waits to be cut or sent.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut next: Option<Millis> = None;
        for c in self.channels.values().filter(|c| c.stalled.is_none()) {
            let waiting = c.pending.iter().any(|p| p.sent_at.is_none())
                || (!c.unbatched.is_empty() && c.pending.len() < self.limits.window);
            if waiting {
                return Some(0);
            }
            for p in &c.pending {
                if let Some(t) = p.sent_at {
                    let due = t.saturating_add(self.limits.resend_after);
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        next
    }

    /// Takes a receipt that came over the connection authenticated as `peer`. A receipt
    /// for a batch already receipted changes nothing; one that does not verify or matches
    /// no batch of ours is an error to log.
    pub fn handle_receipt(&mut self, peer: Node, receipt: &SignedReceipt) -> Result<Option<SendEvent>> {
        let Some(key) = self.peers.get(&peer) else {
            return Err(Error::UnknownPeer(peer));
        };
        let b = &receipt.body;
        if b.from != peer {
            return Err(Error::Misaddressed { claimed: b.from, peer });
        }
        if b.to != self.me {
            return Err(Error::BadReceipt(format!("addressed to {}, this is {}", b.to, self.me)));
        }
        receipt.verify(key)?;
        let Some(channel) = self.channels.get_mut(&(peer, b.kind)) else {
            return Err(Error::BadReceipt(format!("no {} batch was sent to {peer}", b.kind)));
        };
        if b.last_seq <= channel.checkpoint.acked_through {
            return Ok(None);
        }
        let Some(i) = channel
            .pending
            .iter()
            .position(|p| p.digest == b.batch && p.first_seq == b.first_seq && p.last_seq == b.last_seq)
        else {
            return Err(Error::BadReceipt(format!(
                "{peer} receipted {} rows {}..={} that match no batch in flight",
                b.kind, b.first_seq, b.last_seq
            )));
        };
        // The receiver applies a channel's batches in chain order, so a receipt for one
        // batch means every earlier one is applied too.
        channel.pending.drain(..=i);
        channel.checkpoint = SendCheckpoint {
            acked_through: b.last_seq,
            last_acked: b.batch,
        };
        Ok(Some(SendEvent::Acked {
            peer,
            kind: b.kind,
            checkpoint: channel.checkpoint.clone(),
            receipt: receipt.clone(),
        }))
    }

    /// Takes a refusal that came over the connection authenticated as `peer`. A
    /// retryable one makes the batches up to the expected row due at once; any other
    /// stops the channel. A refusal of a batch no longer pending is stale and ignored.
    pub fn handle_refusal(&mut self, peer: Node, notice: &RefusalNotice) -> Result<Option<SendEvent>> {
        if !self.peers.contains_key(&peer) {
            return Err(Error::UnknownPeer(peer));
        }
        if notice.from != peer {
            return Err(Error::Misaddressed {
                claimed: notice.from,
                peer,
            });
        }
        let Some(channel) = self.channels.get_mut(&(peer, notice.kind)) else {
            return Ok(None);
        };
        if !channel.pending.iter().any(|p| p.digest == notice.batch) {
            return Ok(None);
        }
        match &notice.reason {
            Refusal::OutOfSequence { expected, .. } => {
                // Batches below `expected` were applied and their receipts lost; the one at
                // `expected` was lost. Sending them again gets receipts and fills the gap. A
                // refusal overtaken by receipts (expected at or below our checkpoint) is stale
                // and touches nothing here, since no pending batch starts that low.
                for p in channel.pending.iter_mut().filter(|p| p.first_seq <= *expected) {
                    p.sent_at = None;
                }
                Ok(None)
            }
            reason => {
                tracing::error!(%peer, kind = %notice.kind, first_seq = notice.first_seq, %reason, "mirror channel stalled");
                channel.stalled = Some(reason.clone());
                Ok(Some(SendEvent::Stalled {
                    peer,
                    kind: notice.kind,
                    reason: reason.clone(),
                }))
            }
        }
    }
}

/// Cuts the next batch of a channel from its unbatched rows and signs it.
fn cut<'a>(
    channel: &'a mut Channel,
    me: Node,
    peer: Node,
    kind: RecordKind,
    schema: u16,
    limits: &SenderLimits,
    key: &SigningKey,
) -> Result<&'a Pending> {
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut first_seq = None;
    while let Some(row) = channel.unbatched.front() {
        let over = rows.len() >= limits.batch_rows || bytes + row.payload.len() > limits.batch_bytes;
        if over && !rows.is_empty() {
            break;
        }
        // `front()` was `Some` a line above.
        let Some(row) = channel.unbatched.pop_front() else {
            break;
        };
        first_seq.get_or_insert(row.seq);
        bytes += row.payload.len();
        rows.push(serde_bytes::ByteBuf::from(row.payload));
    }
    let Some(first_seq) = first_seq else {
        return Err(Error::Malformed("cut called on an empty outbox".into()));
    };
    let body = BatchBody {
        schema,
        from: me,
        to: peer,
        kind,
        first_seq,
        prev: channel.last_cut,
        rows,
    };
    let digest = body.digest()?;
    let last_seq = body.last_seq();
    let bytes = encode(&Message::Batch(SignedBatch::sign(body, key)?))?;
    channel.last_cut = digest;
    channel.pending.push_back(Pending {
        first_seq,
        last_seq,
        digest,
        bytes,
        sent_at: None,
    });
    channel
        .pending
        .back()
        .ok_or_else(|| Error::Malformed("a batch just cut is missing".into()))
}
