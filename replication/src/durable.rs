//! Small helpers for durable files: fsync a file, fsync the directory that holds a rename.

use std::fs;
use std::path::{Path, PathBuf};

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

/// A sled database and the folder it lives in, so that a flush can be made durable for
/// real: sled 0.34 ends its flush with `sync_file_range`, which flushes neither the
/// drive's write cache nor the file's size, so a power cut can take what a plain
/// `flush` returned on. Everything else is sled's own API, through `Deref`.
#[derive(Debug, Clone)]
pub struct SledDb {
    db: sled::Db,
    path: PathBuf,
}

impl std::ops::Deref for SledDb {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        &self.db
    }
}

impl SledDb {
    /// Flushes sled, then fsyncs its log file and its folder: only after this may a
    /// receipt be sent or a packet be marked delivered on the strength of what was written.
    pub fn flush_durably(&self) -> std::result::Result<(), sled::Error> {
        self.db.flush()?;
        fs::File::open(self.path.join("db"))?.sync_all()?;
        // A snapshot sled renamed into place, or a blob it wrote, is named in the folder.
        fs::File::open(&self.path)?.sync_all()?;
        let blobs = self.path.join("blobs");
        if blobs.is_dir() {
            for entry in fs::read_dir(&blobs)? {
                fs::File::open(entry?.path())?.sync_all()?;
            }
            fs::File::open(&blobs)?.sync_all()?;
        }
        Ok(())
    }

    /// The folder the database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens the sled database at `path`. Its file lock outlives the handle for a moment
/// (sled's flusher thread lets go at its next tick), so a database closed and opened
/// again in one process — a relay or day loop restarted in place — waits for it; a lock
/// held by another process is still refused after that wait. A new database's folder and
/// files are made durable before it is handed out.
pub fn open_sled(path: &Path) -> std::result::Result<SledDb, sled::Error> {
    let until = std::time::Instant::now() + RELOCK_WAIT;
    let mut cleared = false;
    loop {
        match sled::open(path) {
            // sled 0.34.7 takes a `snap.*.generating` file, one a kill cut short before its
            // rename, as the newest snapshot and refuses to open (spacejam/sled#1527). Such a
            // file was never a snapshot: the finished one before it and the log hold
            // everything. Cleared only after sled failed with the lock taken, so no live
            // process is writing it.
            Err(sled::Error::Corruption { .. }) if !cleared && !unfinished_snapshots(path).is_empty() => {
                cleared = true;
                for file in unfinished_snapshots(path) {
                    tracing::warn!(file = %file.display(), "removing a snapshot a kill left unfinished");
                    fs::remove_file(&file)?;
                }
                fs::File::open(path)?.sync_all()?;
            }
            // sled says so only in words (its error kind is Other).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && std::time::Instant::now() < until =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(db) => {
                let db = SledDb {
                    db,
                    path: path.to_owned(),
                };
                // sled creates its folder and files without fsyncing their names.
                fs::File::open(path)?.sync_all()?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::File::open(parent)?.sync_all()?;
                }
                db.flush_durably()?;
                return Ok(db);
            }
            Err(e) => return Err(e),
        }
    }
}

/// sled's snapshot files that were never finished (written, then renamed when whole).
fn unfinished_snapshots(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(path) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap.") && n.ends_with(".generating"))
        })
        .collect()
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

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
