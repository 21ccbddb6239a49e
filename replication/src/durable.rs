//! Small helpers for durable files: fsync a file, fsync the directory that holds a rename.

use std::fs;
use std::path::Path;

use crate::Result;

/// Makes a completed rename or create in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Renames `from` to `to` atomically and makes the rename durable.
pub(crate) fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to)?;
    if let Some(parent) = to.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

pub(crate) fn storage_err(e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Storage(e.to_string())
}

/// The sled key of a packet version: packet id ‖ 0 ‖ version (big-endian, so versions sort).
pub(crate) fn packet_key(packet_id: &str, version: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(packet_id.len() + 5);
    k.extend_from_slice(packet_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The prefix of every version of a packet.
pub(crate) fn packet_prefix(packet_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(packet_id.len() + 1);
    k.extend_from_slice(packet_id.as_bytes());
    k.push(0);
    k
}
