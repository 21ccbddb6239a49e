//! The crate's error enum and the reasons a receiver refuses a batch.

use konvert_crypto::KeyId;
use serde::{Deserialize, Serialize};

use crate::{Digest, Node, RecordKind};

/// Errors of the mirror's core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A message longer than the maximum; nothing of it was parsed.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes; the peer is misbehaving or incompatible")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A message in a wire format this build does not know.
    #[error("wire format version {got}, this build speaks version {known}; upgrade the older side")]
    UnknownFormat {
        /// The version the message carries.
        got: u16,
        /// The version this build speaks.
        known: u16,
    },
    /// A message that does not parse.
    #[error("malformed mirror message: {0}")]
    Malformed(String),
    /// A row's payload over the limit; the caller must not write such a row.
    #[error("row payload of {len} bytes exceeds the maximum of {max} bytes (images go by reference)")]
    RowTooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A row of a kind this node does not own: writing it would be merged nowhere.
    #[error("{node} does not own {kind} records; only the {kind} owner writes them")]
    NotOwner {
        /// This node.
        node: Node,
        /// The kind.
        kind: RecordKind,
    },
    /// A row addressed to a node this one does not exchange with.
    #[error("{node} does not exchange records with {peer}")]
    NotAPeer {
        /// This node.
        node: Node,
        /// The addressee.
        peer: Node,
    },
    /// A message that came over the connection of a node that is not configured.
    #[error("{0} is not a configured peer")]
    UnknownPeer(Node),
    /// A message that claims to come from another node than the connection's.
    #[error("a message claiming to be from {claimed} came over the connection of {peer}")]
    Misaddressed {
        /// Who the message says it is from.
        claimed: Node,
        /// Who the connection is authenticated as.
        peer: Node,
    },
    /// A key that cannot be used (from konvert-crypto).
    #[error("key: {0}")]
    Key(#[from] konvert_crypto::Error),
    /// Stored state that does not hold together; rebuilding from it would send a history
    /// the peer must refuse.
    #[error("stored mirror state is damaged: {0}")]
    Restore(String),
    /// A receipt that does not verify or matches no batch of ours.
    #[error("receipt refused: {0}")]
    BadReceipt(String),
    /// A schedule whose time zone the bundled database does not know.
    #[error(
        "mirror schedule: time zone {name:?} is unknown; use an IANA name such as Europe/Moscow or Asia/Novosibirsk"
    )]
    ScheduleTimeZone {
        /// The configured name.
        name: String,
    },
    /// A schedule interval of zero or over a year.
    #[error("mirror schedule: {what} = {minutes} minutes; give 1 to {max} minutes (120 is every 2 hours, 10080 weekly)", max = crate::schedule::MAX_INTERVAL_MINUTES)]
    ScheduleInterval {
        /// Which interval.
        what: String,
        /// Its value.
        minutes: u64,
    },
    /// A busy interval longer than the quiet one: the two were probably swapped.
    #[error("mirror schedule: busy_interval_minutes ({busy_minutes}) is longer than quiet_interval_minutes ({quiet_minutes}); preparation and exams exchange more often, not less")]
    ScheduleBusyLonger {
        /// The busy interval.
        busy_minutes: u64,
        /// The quiet interval.
        quiet_minutes: u64,
    },
    /// A period without a name or with another period's name.
    #[error("mirror schedule: period name {name:?} is empty or used twice; name each period once (preparation, early, main, additional)")]
    SchedulePeriodName {
        /// The name.
        name: String,
    },
    /// A period date that does not parse or lies outside the time-zone database's range.
    #[error("mirror schedule: period {period}: {field} = {value:?} is not a date; write YYYY-MM-DD")]
    ScheduleDate {
        /// The period.
        period: String,
        /// `first_day` or `last_day`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A period whose last day comes before its first.
    #[error("mirror schedule: period {period} ends ({last_day}) before it starts ({first_day}); last_day is the period's last day, inclusive")]
    ScheduleEmptyPeriod {
        /// The period.
        period: String,
        /// Its first day.
        first_day: String,
        /// Its last day.
        last_day: String,
    },
    /// Two periods that share a day: which interval holds then would be a guess.
    #[error("mirror schedule: periods {first} and {second} overlap; make one end the day before the other starts")]
    ScheduleOverlap {
        /// The earlier period.
        first: String,
        /// The later one.
        second: String,
    },
}

/// Why a receiver did not apply a batch. Only [`Refusal::OutOfSequence`] is retryable:
/// the sender resends from the expected row. Every other reason stops the channel until
/// someone looks, since resending the same bytes cannot help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The batch does not start at the next expected row (a gap: an earlier batch was
    /// lost or overtaken). Retryable.
    #[error("out of sequence: expected row {expected}, the batch starts at {got}; not applied — an earlier batch was lost or overtaken, and the sender resends from row {expected} by itself")]
    OutOfSequence {
        /// The next row the receiver expects.
        expected: u64,
        /// The batch's first row.
        got: u64,
    },
    /// The batch starts at the expected row but does not chain to the last applied batch.
    #[error("broken hash chain: the batch follows batch {got}, but the last batch applied here is {expected}; not applied — the sender's history is not the one applied here (was a node restored from an older backup?): compare both nodes' mirror audit trails before the channel is resumed")]
    BrokenChain {
        /// The digest of the last applied batch.
        expected: Digest,
        /// The digest the batch says it follows.
        got: Digest,
    },
    /// A different batch for rows already applied: the owner signed two versions of its
    /// history. Never merged; someone must look.
    #[error("rows {first_seq}.. were already applied from another batch; never merged — the owner signed two versions of these rows: compare both nodes' mirror audit trails")]
    Conflict {
        /// The batch's first row.
        first_seq: u64,
    },
    /// The batch was not signed by the configured key of its sender.
    #[error("signed by key {got}, but the configured key of {node} is {expected}; not applied — if {node} changed its key, configure its new public key on this node; otherwise someone else signed the batch")]
    WrongSigner {
        /// The sender named in the batch.
        node: Node,
        /// The configured key's id.
        expected: KeyId,
        /// The signing key's id.
        got: KeyId,
    },
    /// The signature does not verify with the configured key.
    #[error("bad signature: the batch does not verify with its sender's configured key; not applied — it was altered on the way or the sender's key is misconfigured")]
    BadSignature,
    /// The sender does not own the batch's kind. Never merged.
    #[error("{sender} does not own {kind} records; refused and never merged — only their owner writes them: check what made {sender} send them")]
    NotOwner {
        /// The sender.
        sender: Node,
        /// The kind.
        kind: RecordKind,
    },
    /// The batch is addressed to another node.
    #[error("addressed to {to}, this is {me}; not applied — check the sender's peer configuration")]
    NotForUs {
        /// The addressee.
        to: Node,
        /// This node.
        me: Node,
    },
    /// The records' schema version is one this receiver does not know.
    #[error("records' schema version {got}, this receiver knows {min}..={max}; not applied, the channel waits — upgrade the older node so that both know version {got}, then resume")]
    UnknownSchema {
        /// The batch's schema version.
        got: u16,
        /// The oldest known.
        min: u16,
        /// The newest known.
        max: u16,
    },
    /// A row failed the receiver's check of its content (a participant outside the plan's
    /// allow-list, say); the whole batch is refused. Never merged; someone must look.
    #[error("row {seq} refused: {reason}")]
    RowRefused {
        /// The row.
        seq: u64,
        /// Why, in the check's words.
        reason: String,
    },
    /// The batch breaks a limit (empty, too many rows, too many bytes).
    #[error("malformed batch: {0}")]
    Malformed(String),
}

impl Refusal {
    /// Whether resending can help (the batch is fine, only early).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Refusal::OutOfSequence { .. })
    }

    /// A short stable name, for metrics labels and alert rules.
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::OutOfSequence { .. } => "out_of_sequence",
            Refusal::BrokenChain { .. } => "broken_chain",
            Refusal::Conflict { .. } => "conflict",
            Refusal::WrongSigner { .. } => "wrong_signer",
            Refusal::BadSignature => "bad_signature",
            Refusal::NotOwner { .. } => "not_owner",
            Refusal::NotForUs { .. } => "not_for_us",
            Refusal::UnknownSchema { .. } => "unknown_schema",
            Refusal::RowRefused { .. } => "row_refused",
            Refusal::Malformed(_) => "malformed",
        }
    }
}
