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

/// How long [`open_sled`] waits for a lock the same process is letting go of (sled's
/// flusher wakes every 500 ms).
const RELOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database at `path`. Its file lock outlives the handle for a moment
/// (sled's flusher thread lets go at its next tick), so a database closed and opened
/// again in one process — a relay or day loop restarted in place — waits for it; a lock
/// held by another process is still refused after that wait.
pub fn open_sled(path: &Path) -> std::result::Result<sled::Db, sled::Error> {
    let until = std::time::Instant::now() + RELOCK_WAIT;
    loop {
        match sled::open(path) {
            // sled says so only in words (its error kind is Other).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && std::time::Instant::now() < until =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
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
