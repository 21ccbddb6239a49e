//! The intake journal (sled, next to the outbox): every scan file taken, keyed by its
//! SHA-256 so the same scan is never taken twice; what the hot folder's names were last
//! seen as, so a rescan does not reread unchanged files; the attendance entered from
//! ППЭ-13-02МАШ; and which files each sealed packet version holds.

use std::path::Path;

use konvert_exam::{PageRecord, RoomId};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Error, Result};

/// A scan file the edge has taken into its spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenFile {
    /// The file's name in packets (the scanner's name, made unique if needed).
    pub name: String,
    /// The name it had in the hot folder.
    pub original: String,
    /// The file's name in the spool folder.
    pub spool_name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
    /// When it was taken (ms since the Unix epoch).
    pub taken_at_unix_ms: u64,
    /// Every page, recognized.
    pub pages: Vec<PageRecord>,
    /// Why the file itself could not be read completely, if so.
    pub problem: Option<String>,
}

/// What a hot-folder name looked like when it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenName {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: u128,
    /// The contents' SHA-256.
    pub sha256: [u8; 32],
}

/// Which files a packet version holds; written before the envelope is sealed and marked
/// committed once the outbox has it, so a crash in between is recognized on restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecord {
    /// The packet version.
    pub version: u32,
    /// The files' digests, sorted.
    pub files: Vec<[u8; 32]>,
    /// Whether the outbox holds this version.
    pub committed: bool,
    /// The operator's reason for sealing despite discrepancies.
    pub override_reason: Option<String>,
}

/// The intake journal; clones share the same database.
#[derive(Clone)]
pub struct Journal {
    /// Opened again after sled's sticky error (a full or failing disk).
    db: std::sync::Arc<konvert_replication::Mending<konvert_replication::SledDb>>,
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Push(format!("intake journal: {e}"))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(storage)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| storage(format!("damaged record ({e}); restore the data folder from backup")))
}

fn key(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(rest);
    k
}

impl Journal {
    /// Opens (or creates) the journal in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join("intake.sled");
        let db = konvert_replication::Mending::open(&path, "the intake journal").map_err(|e| {
            storage(format!(
                "cannot open {}: {e}; is another konvert-edge running on this data folder?",
                path.display()
            ))
        })?;
        Ok(Journal {
            db: std::sync::Arc::new(db),
        })
    }

    /// The file with this digest, if taken.
    pub fn file(&self, sha256: &[u8; 32]) -> Result<Option<TakenFile>> {
        self.db
            .read(|db| db.get(key(b"f/", sha256)).map_err(storage))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every file taken, in the order taken.
    pub fn files(&self) -> Result<Vec<TakenFile>> {
        let mut files: Vec<TakenFile> = self.db.read(|db| {
            let mut files = Vec::new();
            for kv in db.scan_prefix(b"f/") {
                let (_, v) = kv.map_err(storage)?;
                files.push(decode(&v)?);
            }
            Ok::<_, Error>(files)
        })?;
        files.sort_by(|a, b| (a.taken_at_unix_ms, &a.name).cmp(&(b.taken_at_unix_ms, &b.name)));
        Ok(files)
    }

    /// Whether a packet name is used by a taken file.
    pub fn name_taken(&self, name: &str) -> Result<bool> {
        self.db
            .read(|db| db.contains_key(key(b"p/", name.as_bytes())).map_err(storage))
    }

    /// Records a taken file and the hot-folder name it came from, atomically and durably.
    pub fn take(&self, file: &TakenFile, seen: SeenName) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(key(b"f/", &file.sha256), encode(file)?);
        batch.insert(key(b"p/", file.name.as_bytes()), &file.sha256[..]);
        batch.insert(key(b"n/", file.original.as_bytes()), encode(&seen)?);
        self.db.write(|db| {
            db.apply_batch(batch).map_err(storage)?;
            db.flush_durably().map_err(storage)
        })
    }

    /// What `name` in the hot folder was when last read.
    pub fn seen(&self, name: &str) -> Result<Option<SeenName>> {
        self.db
            .read(|db| db.get(key(b"n/", name.as_bytes())).map_err(storage))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Remembers what `name` was (a copy of a file already taken).
    pub fn mark_seen(&self, name: &str, seen: SeenName) -> Result<()> {
        let seen = encode(&seen)?;
        self.db.write(|db| {
            db.insert(key(b"n/", name.as_bytes()), seen).map_err(storage)?;
            db.flush_durably().map_err(storage)
        })
    }

    /// Records the number present in `room` from ППЭ-13-02МАШ.
    pub fn set_attendance(&self, room: &RoomId, present: u32) -> Result<()> {
        self.db.write(|db| {
            db.insert(key(b"a/", room.as_str().as_bytes()), &present.to_le_bytes()[..])
                .map_err(storage)?;
            db.flush_durably().map_err(storage)
        })
    }

    /// The number present in `room`, if entered.
    pub fn attendance(&self, room: &RoomId) -> Result<Option<u32>> {
        let Some(v) = self
            .db
            .read(|db| db.get(key(b"a/", room.as_str().as_bytes())).map_err(storage))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 4] = v
            .as_ref()
            .try_into()
            .map_err(|_| storage("damaged attendance record"))?;
        Ok(Some(u32::from_le_bytes(bytes)))
    }

    /// What was last sealed as `packet_id`.
    pub fn sealed(&self, packet_id: &str) -> Result<Option<SealedRecord>> {
        self.db
            .read(|db| db.get(key(b"s/", packet_id.as_bytes())).map_err(storage))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Records, before sealing, what the next version of `packet_id` will hold.
    pub fn begin_seal(&self, packet_id: &str, record: &SealedRecord) -> Result<()> {
        let record = encode(record)?;
        self.db.write(|db| {
            db.insert(key(b"i/", packet_id.as_bytes()), record).map_err(storage)?;
            db.flush_durably().map_err(storage)
        })
    }

    /// Marks the version begun for `packet_id` as held by the outbox.
    pub fn commit_seal(&self, packet_id: &str) -> Result<()> {
        let Some(intent) = self
            .db
            .read(|db| db.get(key(b"i/", packet_id.as_bytes())).map_err(storage))?
        else {
            return Ok(());
        };
        let mut record: SealedRecord = decode(&intent)?;
        record.committed = true;
        let mut batch = sled::Batch::default();
        batch.insert(key(b"s/", packet_id.as_bytes()), encode(&record)?);
        batch.remove(key(b"i/", packet_id.as_bytes()));
        self.db.write(|db| {
            db.apply_batch(batch).map_err(storage)?;
            db.flush_durably().map_err(storage)
        })
    }

    /// After a restart: a seal that was begun counts if the outbox holds its version,
    /// and is forgotten otherwise.
    pub fn reconcile(&self, outbox: &konvert_replication::Outbox) -> Result<()> {
        let in_outbox = |id: &str, version: u32| -> Result<bool> { Ok(outbox.next_version(id)? > version) };
        let intents = self.db.read(|db| {
            let mut intents = Vec::new();
            for kv in db.scan_prefix(b"i/") {
                let (k, v) = kv.map_err(storage)?;
                let id = String::from_utf8_lossy(&k[2..]).into_owned();
                intents.push((id, decode::<SealedRecord>(&v)?));
            }
            Ok::<_, Error>(intents)
        })?;
        for (id, record) in intents {
            if in_outbox(&id, record.version)? {
                self.commit_seal(&id)?;
            } else {
                self.db
                    .write(|db| db.remove(key(b"i/", id.as_bytes())).map_err(storage))?;
            }
        }
        self.db.write(|db| db.flush_durably().map_err(storage))
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
