//! The audit log's file format (`crypto/FORMAT.md` §7): `"KNVRTAUD"` ‖ version 0x01, then
//! records `kind (1 entry, 2 checkpoint) ‖ u32 LE length ‖ postcard payload`.

use serde::de::DeserializeOwned;

use super::{entry_hash, AuditEntry, Checkpoint, Finding};
use crate::Result;

/// The file's first bytes: magic and format version.
pub(crate) const HEADER: &[u8; 9] = b"KNVRTAUD\x01";
/// The largest record payload accepted, checked before anything is allocated.
pub const MAX_RECORD_LEN: usize = 64 * 1024;

const KIND_ENTRY: u8 = 1;
const KIND_CHECKPOINT: u8 = 2;
const RECORD_HEADER_LEN: usize = 5;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An entry, with the hash of its stored bytes.
    Entry {
        /// The entry.
        entry: AuditEntry,
        /// SHA-256 of its bytes as stored (what the next entry must commit to).
        hash: [u8; 32],
    },
    /// A signed checkpoint (its signature not yet checked).
    Checkpoint(Checkpoint),
}

/// A record and where it starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAt {
    /// Byte offset of the record's kind byte.
    pub offset: u64,
    /// The record.
    pub record: Record,
}

/// The records of a log up to the first one that cannot be read.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Every record before `end`, in file order.
    pub records: Vec<RecordAt>,
    /// The length of the readable part: the whole file when `problem` is `None`.
    pub end: u64,
    /// [`Finding::Damaged`] or [`Finding::TornTail`] where reading stopped.
    pub problem: Option<Finding>,
}

/// Encodes one record with its kind and length.
fn frame(kind: u8, payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l as usize <= MAX_RECORD_LEN)
        .ok_or_else(|| crate::Error::AuditField {
            field: "record",
            message: format!("{} bytes, at most {MAX_RECORD_LEN}", payload.len()),
        })?;
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    out.push(kind);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// An entry's record bytes and the entry's hash.
pub(crate) fn entry_record(entry: &AuditEntry) -> Result<(Vec<u8>, [u8; 32])> {
    entry.check_fields()?;
    let payload = entry.encode()?;
    Ok((frame(KIND_ENTRY, &payload)?, entry_hash(&payload)))
}

/// A checkpoint's record bytes.
pub(crate) fn checkpoint_record(cp: &Checkpoint) -> Result<Vec<u8>> {
    frame(
        KIND_CHECKPOINT,
        &postcard::to_allocvec(cp).map_err(|e| crate::Error::Encode(e.to_string()))?,
    )
}

fn decode_exact<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// Reads records until the end of `bytes` or the first that cannot be read. Never
/// allocates more than [`MAX_RECORD_LEN`] per record before checking the length.
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    if bytes.len() < HEADER.len() {
        parsed.problem = Some(if HEADER.starts_with(bytes) {
            Finding::TornTail { offset: 0 }
        } else {
            Finding::Damaged { offset: 0 }
        });
        return parsed;
    }
    if &bytes[..HEADER.len()] != HEADER {
        parsed.problem = Some(Finding::Damaged { offset: 0 });
        return parsed;
    }
    let mut pos = HEADER.len();
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let kind = rest[0];
        if kind != KIND_ENTRY && kind != KIND_CHECKPOINT {
            parsed.problem = Some(Finding::Damaged { offset });
            break;
        }
        let Some(len_bytes) = rest.get(1..RECORD_HEADER_LEN) else {
            parsed.problem = Some(Finding::TornTail { offset });
            break;
        };
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len4) as usize;
        if len > MAX_RECORD_LEN {
            parsed.problem = Some(Finding::Damaged { offset });
            break;
        }
        let Some(payload) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
            parsed.problem = Some(Finding::TornTail { offset });
            break;
        };
        let record = if kind == KIND_ENTRY {
            decode_exact::<AuditEntry>(payload)
                .filter(|e| e.check_fields().is_ok())
                .map(|entry| Record::Entry {
                    entry,
                    hash: entry_hash(payload),
                })
        } else {
            decode_exact::<Checkpoint>(payload).map(Record::Checkpoint)
        };
        let Some(record) = record else {
            parsed.problem = Some(Finding::Damaged { offset });
            break;
        };
        parsed.records.push(RecordAt { offset, record });
        pos += RECORD_HEADER_LEN + len;
    }
    parsed.end = pos as u64;
    parsed
}
