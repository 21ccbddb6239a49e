//! The receiving half: checks a batch, applies it exactly once, answers with a receipt.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use konvert_crypto::{Domain, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Digest, Error, Node, ReceiptBody, RecordKind, Refusal, RefusalNotice, Result, SignedBatch, SignedReceipt};

/// How far a receiver has applied one (sender, kind) channel. It only moves forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The next row expected (1 before anything was applied).
    pub next_seq: u64,
    /// The digest of the last applied batch ([`Digest::ZERO`] before the first).
    pub last_batch: Digest,
    /// How many batches were applied.
    pub batches: u64,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint {
            next_seq: 1,
            last_batch: Digest::ZERO,
            batches: 0,
        }
    }
}

/// What a driver stores of one (sender, kind) channel of a receiver, to rebuild it after
/// a restart ([`Receiver::restore`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveState {
    /// The owner sending on the channel.
    pub from: Node,
    /// The kind.
    pub kind: RecordKind,
    /// How far it is applied.
    pub checkpoint: Checkpoint,
    /// The receipts of the applied batches (the audit trail; replays are answered from it).
    pub receipts: Vec<SignedReceipt>,
}

/// A batch that passed every check: the driver stores its rows, the new checkpoint and
/// the receipt in one transaction, then sends the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedBatch {
    /// The owner that sent it.
    pub from: Node,
    /// The kind of its rows.
    pub kind: RecordKind,
    /// The first row's sequence number; the others follow.
    pub first_seq: u64,
    /// The rows' payloads, exactly the bytes the owner signed.
    pub rows: Vec<Vec<u8>>,
    /// The batch's digest.
    pub digest: Digest,
    /// The channel's checkpoint after this batch.
    pub checkpoint: Checkpoint,
    /// The receipt to keep and send.
    pub receipt: SignedReceipt,
    /// The bytes the batch came in, as handed to [`crate::Endpoint::handle`], which checked
    /// them: the store keeps them (the owner's signature) without decoding them again.
    /// Empty from [`Receiver::handle`], which sees the batch decoded.
    pub signed: Vec<u8>,
}

/// What the receiver made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied now, for the first time.
    Applied(AppliedBatch),
    /// Applied before: the same receipt again, nothing applied.
    Replayed(SignedReceipt),
    /// Not applied; the notice goes back to the sender.
    Refused(RefusalNotice),
}

#[derive(Debug, Default)]
struct Channel {
    checkpoint: Checkpoint,
    /// Receipts by first row, to answer a replay with the very same receipt. The driver
    /// keeps them as the audit trail anyway.
    receipts: BTreeMap<u64, SignedReceipt>,
}

/// A check of each row's content before a batch is applied; `Err` names why a row must
/// not be merged. The core cannot read payloads; the driver can, and this is where the
/// receiver checks again what the owner's outbox filter should have kept out (the
/// consent allow-list, R18).
pub type RowCheck = Box<dyn Fn(Node, RecordKind, u64, &[u8]) -> std::result::Result<(), String> + Send>;

struct Check(RowCheck);

/// Most characters of a row check's reason sent back to the owner.
const MAX_REASON_CHARS: usize = 300;

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowCheck")
    }
}

/// The receiving half of a node.
#[derive(Debug)]
pub struct Receiver {
    me: Node,
    key: SigningKey,
    peers: BTreeMap<Node, VerifyingKey>,
    schemas: RangeInclusive<u16>,
    channels: BTreeMap<(Node, RecordKind), Channel>,
    row_check: Option<Check>,
}

impl Receiver {
    /// A receiver for node `me`, signing receipts with `key`, taking batches from `peers`
    /// (each with its configured key) in the records' schema versions `schemas`.
    pub fn new(
        me: Node,
        key: SigningKey,
        peers: BTreeMap<Node, VerifyingKey>,
        schemas: RangeInclusive<u16>,
    ) -> Result<Self> {
        if let Some(&peer) = peers.keys().find(|p| !p.is_peer_of(me)) {
            return Err(Error::NotAPeer { node: me, peer });
        }
        Ok(Receiver {
            me,
            key,
            peers,
            schemas,
            channels: BTreeMap::new(),
            row_check: None,
        })
    }

    /// The state of every channel, for the driver to store (with each applied batch's
    /// rows, in the same transaction).
    pub fn state(&self) -> Vec<ReceiveState> {
        self.channels
            .iter()
            .map(|(&(from, kind), c)| ReceiveState {
                from,
                kind,
                checkpoint: c.checkpoint.clone(),
                receipts: c.receipts.values().cloned().collect(),
            })
            .collect()
    }

    /// Rebuilds a channel from what the driver stored: its checkpoint and the receipts of
    /// the batches applied (for answering replays). Refuses receipts of another channel or
    /// beyond the checkpoint, since they would answer a batch never applied. Their
    /// signatures are not checked again: receipts made before this node's key was rotated
    /// are still the ones to answer replays with, and checking years of them would cost a
    /// verification each at every start.
    pub fn restore(&mut self, state: ReceiveState) -> Result<()> {
        let ReceiveState {
            from,
            kind,
            checkpoint,
            receipts,
        } = state;
        if !self.peers.contains_key(&from) {
            return Err(Error::UnknownPeer(from));
        }
        let mut map = BTreeMap::new();
        for r in receipts {
            let b = &r.body;
            if b.from != self.me || b.to != from || b.kind != kind || b.last_seq >= checkpoint.next_seq {
                return Err(Error::Restore(format!(
                    "receipt for {} {} rows {}..={} does not belong to this channel's checkpoint",
                    b.to, b.kind, b.first_seq, b.last_seq
                )));
            }
            map.insert(b.first_seq, r);
        }
        self.channels.insert(
            (from, kind),
            Channel {
                checkpoint,
                receipts: map,
            },
        );
        Ok(())
    }

    /// Sets the check every row of a batch passes before the batch is applied. One row
    /// that fails refuses the whole batch ([`Refusal::RowRefused`]): nothing is applied
    /// half, and the channel waits for someone to look.
    pub fn set_row_check(&mut self, check: RowCheck) {
        self.row_check = Some(Check(check));
    }

    /// This node.
    pub fn node(&self) -> Node {
        self.me
    }

    /// The checkpoint of (sender, kind).
    pub fn checkpoint(&self, from: Node, kind: RecordKind) -> Checkpoint {
        self.channels
            .get(&(from, kind))
            .map(|c| c.checkpoint.clone())
            .unwrap_or_default()
    }

    /// Handles a batch that came over the connection authenticated as `peer`. An error
    /// means the connection itself is wrong (an unknown peer, a batch claiming another
    /// sender): the driver logs it and closes that connection. Everything else is an
    /// [`Outcome`]; the state moves only for [`Outcome::Applied`].
    pub fn handle(&mut self, peer: Node, batch: &SignedBatch) -> Result<Outcome> {
        let Some(peer_key) = self.peers.get(&peer) else {
            return Err(Error::UnknownPeer(peer));
        };
        let body = &batch.body;
        if body.from != peer {
            return Err(Error::Misaddressed {
                claimed: body.from,
                peer,
            });
        }
        let digest = body.digest()?;
        let refuse = |reason: Refusal| {
            tracing::warn!(from = %peer, kind = %body.kind, first_seq = body.first_seq, %reason, "mirror batch refused");
            Ok(Outcome::Refused(RefusalNotice {
                from: self.me,
                to: peer,
                kind: body.kind,
                first_seq: body.first_seq,
                batch: digest,
                reason,
            }))
        };
        if body.to != self.me {
            return refuse(Refusal::NotForUs {
                to: body.to,
                me: self.me,
            });
        }
        if let Err(reason) = body.check_limits() {
            return refuse(reason);
        }
        // The signer before anything about the content: a refusal names who vouched.
        if batch.signer != peer_key.key_id() {
            return refuse(Refusal::WrongSigner {
                node: peer,
                expected: peer_key.key_id(),
                got: batch.signer,
            });
        }
        if peer_key
            .verify(Domain::MirrorBatch, &digest.0, &batch.signature)
            .is_err()
        {
            return refuse(Refusal::BadSignature);
        }
        // A kind written by its owner only: the other side's copy of it is never merged,
        // whoever signed it.
        if body.kind.owner() != peer.side() {
            return refuse(Refusal::NotOwner {
                sender: peer,
                kind: body.kind,
            });
        }
        if !self.schemas.contains(&body.schema) {
            return refuse(Refusal::UnknownSchema {
                got: body.schema,
                min: *self.schemas.start(),
                max: *self.schemas.end(),
            });
        }
        let channel = self.channels.entry((peer, body.kind)).or_default();
        let cp = &channel.checkpoint;
        if body.first_seq < cp.next_seq {
            // Either a replay of an applied batch (the same receipt again, nothing applied)
            // or another history for applied rows.
            return match channel.receipts.get(&body.first_seq) {
                Some(r) if r.body.batch == digest => {
                    tracing::debug!(from = %peer, kind = %body.kind, first_seq = body.first_seq, "mirror batch replayed");
                    Ok(Outcome::Replayed(r.clone()))
                }
                _ => refuse(Refusal::Conflict {
                    first_seq: body.first_seq,
                }),
            };
        }
        if body.first_seq > cp.next_seq {
            return refuse(Refusal::OutOfSequence {
                expected: cp.next_seq,
                got: body.first_seq,
            });
        }
        if body.prev != cp.last_batch {
            return refuse(Refusal::BrokenChain {
                expected: cp.last_batch,
                got: body.prev,
            });
        }
        if let Some(Check(check)) = &self.row_check {
            for (i, row) in body.rows.iter().enumerate() {
                let seq = body.first_seq + i as u64;
                if let Err(mut reason) = check(peer, body.kind, seq, row) {
                    // The reason goes back on the wire: keep the notice small whatever the
                    // check wrote.
                    if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
                        reason.truncate(cut);
                    }
                    return refuse(Refusal::RowRefused { seq, reason });
                }
            }
        }
        let receipt = SignedReceipt::sign(
            ReceiptBody {
                from: self.me,
                to: peer,
                kind: body.kind,
                first_seq: body.first_seq,
                last_seq: body.last_seq(),
                batch: digest,
            },
            &self.key,
        )?;
        // Re-borrow: `refuse` above held `self.me` only, the channel is ours now.
        let channel = self.channels.entry((peer, body.kind)).or_default();
        channel.checkpoint = Checkpoint {
            next_seq: body.last_seq() + 1,
            last_batch: digest,
            batches: channel.checkpoint.batches + 1,
        };
        channel.receipts.insert(body.first_seq, receipt.clone());
        tracing::debug!(from = %peer, kind = %body.kind, first_seq = body.first_seq, rows = body.rows.len(), "mirror batch applied");
        Ok(Outcome::Applied(AppliedBatch {
            from: peer,
            kind: body.kind,
            first_seq: body.first_seq,
            rows: body.rows.iter().map(|r| r.to_vec()).collect(),
            digest,
            checkpoint: channel.checkpoint.clone(),
            receipt,
            signed: Vec::new(),
        }))
    }
}
