//! The tamper-evident audit log: every key action and every accept/reject decision, in an
//! append-only file where each entry commits to the previous one (a SHA-256 hash chain)
//! and periodic checkpoints, signed by the log's key (the center's, or the officers'
//! workspace audit key), commit to the whole chain up to them.
//!
//! - [`AuditLog`] (in `log.rs`): the writer. `&self` methods behind an internal mutex,
//!   so many threads (the center's blocking tasks, one per packet) share one log.
//!   Every append is fsynced before it returns; a checkpoint follows every `every`
//!   entries and every explicit [`AuditLog::checkpoint`] (call it on clean shutdown).
//!   The newest checkpoint is also kept in a sidecar `<log>.head`, replaced atomically,
//!   so cutting the log's tail off, checkpoints and all, is detected.
//! - [`verify`] (in `verify.rs`): sans-IO. Walks the bytes, recomputes the chain, checks
//!   sequence numbers and checkpoint signatures, and names the **first** problem as a
//!   [`Finding`]: an edited, removed, reordered or truncated entry, a bad checkpoint, or
//!   an unreadable record.
//! - `record.rs`: the file format (`crypto/FORMAT.md` §7): a magic header, then records
//!   `kind ‖ u32 LE length ‖ postcard`, each at most [`MAX_RECORD_LEN`] bytes, checked
//!   before anything is allocated.
//!
//! # A crash in the middle of an append
//!
//! An append writes one record with one `write` and fsyncs it; it returns only after the
//! fsync. A crash can therefore leave at most one *torn* record at the very end of the
//! file (a partial header or fewer payload bytes than its length says), and that record's
//! append never returned. [`AuditLog::open`] removes such a torn tail **only** when no
//! checkpoint (in the log or in the head file) claims entries beyond the intact part; it
//! then logs a warning and appends an `audit.repair` entry saying at which offset how many
//! bytes were cut, so the repair itself is in the chain. Anything else that [`verify`]
//! finds — an edit, a gap, a damaged record in the middle, a head checkpoint ahead of the
//! log — makes `open` refuse with [`crate::Error::AuditLogRefused`]: keep the file as
//! evidence, verify it with `konvert keys audit verify`, and start a new log beside it.
//! Checkpoint signatures are not checked by `open` (it may not hold the verifying keys of
//! older checkpoints); they are the auditor's business, in [`verify`].
//!
//! # Rollback, and the anchor outside the log's folder
//!
//! The head file lives beside the log, so whoever can write the folder can roll both back
//! together: cut the log back to an older checkpoint and copy that checkpoint into the head
//! file (or cut it to its header and delete the head file). Such a log is a valid shorter
//! log, and nothing inside the folder can tell. What catches it is an **anchor** kept
//! elsewhere: every checkpoint's `(seq, head)` ([`AuditAnchor`]) is handed to
//! [`AuditLog::on_checkpoint`] hooks (the center exports it as metrics, which Prometheus
//! keeps off the machine), printed by `konvert keys audit verify` and after each officers'
//! command, and a copy of the head file can be kept anywhere. [`verify_anchored`] (`konvert
//! keys audit verify --expect-at-least N`, or `--head <copy kept elsewhere>`) then reports
//! a log rolled back past the anchor.
//!
//! # What cannot be detected
//!
//! - Entries after the newest checkpoint, if the head file is rolled back together with
//!   the log: removing or editing them leaves a valid shorter chain. The writer checkpoints
//!   every `every` entries, at every explicit [`AuditLog::checkpoint`] (each officers'
//!   command, the center's shutdown) and when the log is dropped, so what is exposed is the
//!   entries written since then by a process that was killed or lost power: at most
//!   `every - 1`.
//! - A rollback to a point after the newest anchor kept outside the folder.
//! - Whoever holds the checkpoint key can rewrite the whole log and re-sign it. The key
//!   protects the log against everyone else; keep a copy of its public key, and of the
//!   head file, outside the reach of the machine that writes the log.
//! - An entry's content is what the writer was told; the log proves it was not changed
//!   afterwards, not that it was true.
//!
//! One process writes a log at a time; nothing locks the file against a second writer.

mod log;
mod record;
mod verify;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Domain, KeyId, Result, Signature, SigningKey, VerifyingKey};

pub use log::{head_path, read_head, AuditLog};
pub use record::{parse, Parsed, Record, RecordAt, MAX_RECORD_LEN};
pub use verify::{verify, verify_anchored, AuditAnchor, AuditReport, Evidence, Finding};

/// The label hashed before an entry's bytes: SHA-256("konvert/v1/audit-entry\0" ‖ entry).
pub const ENTRY_HASH_LABEL: &[u8] = b"konvert/v1/audit-entry\0";

/// The longest actor name, in bytes.
pub const MAX_ACTOR_LEN: usize = 256;
/// The longest action kind, in bytes.
pub const MAX_ACTION_LEN: usize = 64;
/// The longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 1024;
/// The longest detail, in bytes.
pub const MAX_DETAIL_LEN: usize = 16 * 1024;

/// What an entry records. Stored as its stable dotted string ([`AuditAction::as_str`]),
/// so kinds added later are still read (as [`AuditAction::Other`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// `authority.init`: the officers' authority was created.
    AuthorityInit,
    /// `token.issue`: a member token was created and recorded in the registry draft.
    TokenIssue,
    /// `token.status`: a token moved to another status.
    TokenStatus,
    /// `registry.publish`: a registry version was signed and published.
    RegistryPublish,
    /// `center_key.rotate`: a new center key became the one edges seal to.
    CenterKeyRotate,
    /// `center_key.retire`: center keys past their grace period were destroyed.
    CenterKeyRetire,
    /// `station.revoke`: a station was revoked.
    StationRevoke,
    /// `packet.accept`: the center accepted a packet.
    PacketAccept,
    /// `packet.reject`: the center rejected a packet.
    PacketReject,
    /// `audit.repair`: the writer cut a torn record left by a crash.
    AuditRepair,
    /// Any other kind (lowercase letters, digits, `.`, `_`, `-`).
    Other(String),
}

impl AuditAction {
    /// The stable string stored in the log.
    pub fn as_str(&self) -> &str {
        match self {
            AuditAction::AuthorityInit => "authority.init",
            AuditAction::TokenIssue => "token.issue",
            AuditAction::TokenStatus => "token.status",
            AuditAction::RegistryPublish => "registry.publish",
            AuditAction::CenterKeyRotate => "center_key.rotate",
            AuditAction::CenterKeyRetire => "center_key.retire",
            AuditAction::StationRevoke => "station.revoke",
            AuditAction::PacketAccept => "packet.accept",
            AuditAction::PacketReject => "packet.reject",
            AuditAction::AuditRepair => "audit.repair",
            AuditAction::Other(s) => s,
        }
    }

    /// The action for a stored string.
    pub fn parse(s: &str) -> Self {
        const KNOWN: [AuditAction; 10] = [
            AuditAction::AuthorityInit,
            AuditAction::TokenIssue,
            AuditAction::TokenStatus,
            AuditAction::RegistryPublish,
            AuditAction::CenterKeyRotate,
            AuditAction::CenterKeyRetire,
            AuditAction::StationRevoke,
            AuditAction::PacketAccept,
            AuditAction::PacketReject,
            AuditAction::AuditRepair,
        ];
        KNOWN
            .into_iter()
            .find(|a| a.as_str() == s)
            .unwrap_or_else(|| AuditAction::Other(s.to_owned()))
    }

    fn is_well_formed(&self) -> bool {
        let s = self.as_str();
        !s.is_empty()
            && s.len() <= MAX_ACTION_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(AuditAction::parse(&s))
    }
}

/// One entry of the log. Its hash is SHA-256([`ENTRY_HASH_LABEL`] ‖ its stored bytes), and
/// `prev` is the hash of the entry before it (all zeros for the first, `seq` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When it was written (the writer's clock), ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// Who did it: an officer, the OS user, the center, a station.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// What it was done to: a token id, a registry version, a packet id.
    pub subject: String,
    /// Anything else worth keeping, in words (never a secret).
    pub detail: String,
    /// The hash of the previous entry.
    pub prev: [u8; 32],
}

impl AuditEntry {
    /// Checks the text fields against their bounds.
    pub fn check_fields(&self) -> Result<()> {
        for (field, len, max) in [
            ("actor", self.actor.len(), MAX_ACTOR_LEN),
            ("subject", self.subject.len(), MAX_SUBJECT_LEN),
            ("detail", self.detail.len(), MAX_DETAIL_LEN),
        ] {
            if len > max {
                return Err(crate::Error::AuditField {
                    field,
                    message: format!("{len} bytes, at most {max}"),
                });
            }
        }
        if !self.action.is_well_formed() {
            return Err(crate::Error::AuditField {
                field: "action",
                message: format!("at most {MAX_ACTION_LEN} of a-z, 0-9, '.', '_', '-'"),
            });
        }
        Ok(())
    }

    /// The entry's bytes as the log stores them.
    pub fn encode(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|e| crate::Error::Encode(e.to_string()))
    }
}

/// The hash of an entry's stored bytes.
pub fn entry_hash(stored: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(ENTRY_HASH_LABEL);
    ctx.update(stored);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A signed statement that the log held `seq` entries, the last of them hashing to `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last entry it covers.
    pub seq: u64,
    /// That entry's hash.
    pub head: [u8; 32],
    /// When it was signed, ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// The key that signed it.
    pub signer: KeyId,
    /// Ed25519 over `Domain::AuditCheckpoint` ‖ postcard((seq, head, at_unix_ms, signer)).
    pub signature: Signature,
}

impl Checkpoint {
    fn message(seq: u64, head: &[u8; 32], at_unix_ms: u64, signer: &KeyId) -> Result<Vec<u8>> {
        postcard::to_allocvec(&(seq, head, at_unix_ms, signer)).map_err(|e| crate::Error::Encode(e.to_string()))
    }

    /// Signs a checkpoint for entry `seq` hashing to `head`.
    pub fn sign(key: &SigningKey, seq: u64, head: [u8; 32], at_unix_ms: u64) -> Result<Self> {
        let signer = key.key_id();
        let signature = key.sign(
            Domain::AuditCheckpoint,
            &Self::message(seq, &head, at_unix_ms, &signer)?,
        );
        Ok(Checkpoint {
            seq,
            head,
            at_unix_ms,
            signer,
            signature,
        })
    }

    /// Checks the signature against the trusted key with the signer's id.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<()> {
        let key = trusted
            .iter()
            .find(|k| k.key_id() == self.signer)
            .ok_or(crate::Error::UnknownSigner(self.signer))?;
        key.verify(
            Domain::AuditCheckpoint,
            &Self::message(self.seq, &self.head, self.at_unix_ms, &self.signer)?,
            &self.signature,
        )
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
