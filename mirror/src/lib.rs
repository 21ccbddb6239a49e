//! The records' mirror between the regions (РИС, one per region) and the federal system
//! (ФИС), as plain state machines: fed messages and time, asked for messages, timeouts and
//! events. No IO, no clock, no storage: the drivers put PostgreSQL and QUIC around it (the
//! crate's dependencies hold no tokio, quinn, sled or PostgreSQL, so the compiler keeps it
//! that way).
//!
//! # Rules, and why
//!
//! - **One owner per kind.** [`RecordKind::owner`] names the side that writes each kind:
//!   regions send planning data, processing results, appeal decisions (images by reference
//!   to the content-addressed store), regional re-checks and personal-data corrections up;
//!   the federal node sends centralized checking, recomputed scores, token certificate
//!   data and document requests down. With one writer per kind there is nothing to merge
//!   and no conflict to resolve; a batch of a kind its sender does not own is refused
//!   ([`Refusal::NotOwner`]), logged and never merged, whoever signed it. A sender refuses
//!   to even write such a row ([`Error::NotOwner`]).
//! - **Channels.** Rows are numbered per (peer, kind) from 1 without gaps. A federal row
//!   is addressed to the one region it concerns, so a region only ever receives its own
//!   rows, and a batch addressed to another node is refused ([`Refusal::NotForUs`]). The
//!   mirror runs between the federal node and a region, never region to region.
//! - **Batches** are cut from the outbox, contiguous per channel, and carry the digest of
//!   the channel's previous batch. The chain makes the history one sequence the receiver
//!   can check link by link: a lost, forged or re-ordered batch cannot be spliced in
//!   ([`Refusal::BrokenChain`]). The owner signs the batch digest
//!   ([`konvert_crypto::Domain::MirrorBatch`]); the receiver checks the signer is the
//!   *configured* key of the sender ([`Refusal::WrongSigner`]) and the signature, so a
//!   batch is attributable to its owner in the audit trail, not just to a TLS session.
//!   Once cut, a batch is never re-cut: [`Sender::cut`] hands each new batch to the driver
//!   to store before [`Sender::poll_transmit`] sends it, so a resend, even after a crash,
//!   is the same bytes and its digest (and the receipt) identify it for good. Re-cutting
//!   rows 1–3 as rows 1–5 after a restart would be another history of applied rows, which
//!   the receiver must refuse.
//! - **Exactly once.** The receiver applies a batch only if it starts at the next expected
//!   row and links to the last applied batch; then its checkpoint moves to the batch's
//!   last row and digest. A batch that was applied before (same first row, same digest)
//!   gets the very same receipt again and applies nothing; a *different* batch for applied
//!   rows is the owner contradicting its own history and is refused
//!   ([`Refusal::Conflict`]). The driver stores rows, checkpoint and receipt in one
//!   transaction, so a crash either leaves the batch unapplied (it comes again) or applied
//!   with its receipt (the replay gets the receipt).
//! - **Out of sequence is refused, retryably.** A batch beyond the next expected row is not
//!   held: holding would let a peer fill our memory with batches we cannot yet check
//!   against the chain. The receiver answers [`Refusal::OutOfSequence`] with the row it
//!   expects; the sender makes its batches up to that row due at once. The cost is one
//!   resend of what was overtaken, on a link where reordering is rare. A refusal that
//!   arrives after the receipts it predates (reordered on the way) matches no pending
//!   batch and is ignored. The same rule means a receiver that went back (restored from a
//!   backup older than the receipts it signed) is not repaired by the protocol: it keeps
//!   refusing, its refusals and the sender's lag show it, and someone must look.
//! - **Content checks.** The core never reads a payload, but a receiver can be given a
//!   [`RowCheck`] that every row passes before its batch is applied: the place where the
//!   receiver checks again what the owner's outbox filter should have kept out (the
//!   consent allow-list, R18). One failing row refuses the whole batch
//!   ([`Refusal::RowRefused`]), so nothing is applied half.
//! - **Receipts** are signed by the receiver ([`konvert_crypto::Domain::MirrorReceipt`])
//!   and carry the batch digest, so the owner holds proof of what exactly was applied.
//!   The sender checks the receipt's key and that it names a batch in flight, then moves
//!   its checkpoint. A receipt for one batch acknowledges the earlier ones too, since the
//!   receiver applies in chain order. Refusals are not signed: they never move a
//!   checkpoint, they only hasten a resend or stop a channel.
//! - **Checkpoints only move forward**, on both sides, and only on a verified event (an
//!   applied batch, a verified receipt). They are the lag the status page shows.
//! - **Lag.** [`Sender::lag`] is the rows written and not receipted per (peer, kind): the
//!   figure `mirror status` and the Prometheus gauge report per kind and direction.
//! - **Bounded everything.** Rows are at most [`MAX_ROW_PAYLOAD`] (images go by
//!   reference), batches at most [`MAX_BATCH_ROWS`] rows and [`MAX_BATCH_BYTES`]; a message
//!   longer than [`MAX_MESSAGE_LEN`] is refused before it is parsed, and one of another
//!   wire format ([`FORMAT_VERSION`]) before its body is read. A sender has at most
//!   [`SenderLimits::window`] batches cut and unreceipted per channel, resent after
//!   [`SenderLimits::resend_after`] of the time it is fed.
//! - **Versions.** The wire format is checked first ([`Error::UnknownFormat`]; the driver
//!   closes the connection). Each batch names the records' schema version its rows are
//!   written in; a receiver refuses one it does not know ([`Refusal::UnknownSchema`]),
//!   and the sender's channel stops until one side is upgraded: resending cannot help.
//! - **Restarts.** Everything a node needs to carry on is [`Endpoint::state`]: per channel
//!   the sender's checkpoint, cut batches not yet receipted and outbox rows not yet cut;
//!   the receiver's checkpoint and receipts. The driver keeps it step by step from what
//!   the core hands out, each in one transaction: a row pushed (with the change it
//!   records), the batches [`Endpoint::cut`] returns, an [`Event::Applied`] (rows,
//!   checkpoint, receipt), a [`SendEvent::Acked`] (checkpoint; the pending batches up to it
//!   can go). It rebuilds with [`Endpoint::restore`], which checks that the stored state
//!   holds together (the chain, pending batches' signatures, row digests, receipts within
//!   the checkpoint) and refuses a damaged store
//!   ([`Error::Restore`]) instead of sending from it. A crash in the middle of a step loses
//!   only that step: its batch comes again and is applied then, or was applied and is
//!   answered from the stored receipt. Resend timers are not stored: after a restart every
//!   unreceipted batch is due at once. A node restarted with a rotated key signs its
//!   pending batches again: the signature covers the body's digest only, so the digest,
//!   the chain and a replay's match stay as they were.
//! - **Keys.** Signing keys are konvert-crypto's Ed25519 keys with their own domains, so a
//!   batch or receipt signature can never pass for another konvert signature. Each node
//!   is configured with its peers' keys; the TLS identity of the connection says who is
//!   talking, the batch signature who vouches for the rows, and the two must agree
//!   ([`Error::Misaddressed`] otherwise).
//! - **Schedule.** [`Schedule`] says when to exchange: at the busy interval (every 2 hours)
//!   in the configured preparation and exam periods, weekly otherwise (`002:6655`), with the
//!   periods' dates in the region's time zone. It is the floor: closing an exam sends its
//!   results at once (`002:7451`).
//! - **Who is at fault.** An [`Error`] from [`Endpoint::handle`] means the connection is
//!   wrong (oversized or unparseable bytes, a peer claiming to be another) and the driver
//!   closes it; a [`Refusal`] is about one batch and goes back to its sender.

mod endpoint;
mod error;
mod kind;
mod receiver;
mod schedule;
mod sender;
mod wire;

pub use endpoint::{Endpoint, Event};
pub use error::{Error, Refusal};
pub use kind::{Node, RecordKind, Side};
pub use receiver::{AppliedBatch, Checkpoint, Outcome, ReceiveState, Receiver, RowCheck};
pub use schedule::{Period, PeriodConfig, PeriodKind, Schedule, ScheduleConfig, MAX_INTERVAL_MINUTES};
pub use sender::{CutBatch, Millis, SendCheckpoint, SendEvent, SendState, Sender, SenderLimits, Transmit};
pub use wire::{
    decode, encode, BatchBody, Digest, Message, OutboxRow, ReceiptBody, RefusalNotice, SignedBatch, SignedReceipt,
    FORMAT_VERSION, MAX_BATCH_BYTES, MAX_BATCH_ROWS, MAX_MESSAGE_LEN, MAX_ROW_PAYLOAD,
};

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
