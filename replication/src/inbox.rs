//! The center's inbox: envelopes held durably, still encrypted, content-addressed by
//! their SHA-256, indexed by packet id and version in sled. A packet version is stored
//! once; its first receipt is its only receipt.

use std::fs;
use std::path::{Path, PathBuf};

use konvert_crypto::KeyId;
use serde::{Deserialize, Serialize};

use crate::durable::{packet_key, rename_durably, storage_err, sync_dir};
use crate::{Error, Receipt, Result};

/// What the center knows of a stored packet version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    /// The receipt sent when it was stored.
    pub receipt: Receipt,
    /// The member key that signed the envelope.
    pub signer: KeyId,
    /// The edge's claimed sealing time.
    pub sealed_at_unix_ms: u64,
    /// A technical-readiness test packet: kept and judged by staff, never processed.
    pub test_packet: bool,
}

/// The center's durable store of received envelopes.
pub struct Inbox {
    db: sled::Db,
    packets: sled::Tree,
    staging: PathBuf,
    store: PathBuf,
}

impl Inbox {
    /// Opens (or creates) the inbox in `dir`. Leftover staging files from a crash are
    /// removed: they were never receipted, so the edge still holds and resends them.
    pub fn open(dir: &Path) -> Result<Self> {
        let staging = dir.join("staging");
        let store = dir.join("store");
        fs::create_dir_all(&staging)?;
        fs::create_dir_all(&store)?;
        for entry in fs::read_dir(&staging)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
            }
        }
        let db = sled::open(dir.join("inbox.sled")).map_err(|e| {
            Error::Storage(format!(
                "cannot open the inbox at {}: {e}; is another konvert-center running?",
                dir.display()
            ))
        })?;
        let packets = db.open_tree("packets").map_err(storage_err)?;
        Ok(Inbox {
            db,
            packets,
            staging,
            store,
        })
    }

    /// The stored record of a packet version, if any.
    pub fn lookup(&self, packet_id: &str, version: u32) -> Result<Option<InboxRecord>> {
        match self.packets.get(packet_key(packet_id, version)).map_err(storage_err)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// A fresh staging file for an incoming envelope with this digest.
    pub fn create_staging(&self, digest: &[u8; 32]) -> Result<(fs::File, PathBuf)> {
        let path = self.staging.join(format!("{}.part", hex::encode(digest)));
        let file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        Ok((file, path))
    }

    /// Where the envelope with this digest is stored.
    pub fn store_path(&self, digest: &[u8; 32]) -> PathBuf {
        Inbox::envelope_path(&self.store, digest)
    }

    /// Where the envelope with this digest lies in the inbox at `dir`, for readers that
    /// must not open the inbox's database (the receiver holds it).
    pub fn stored_envelope(dir: &Path, digest: &[u8; 32]) -> PathBuf {
        Inbox::envelope_path(&dir.join("store"), digest)
    }

    fn envelope_path(store: &Path, digest: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(digest);
        store.join(&hex[..2]).join(format!("{hex}.env"))
    }

    /// Moves a staged, fsynced and verified envelope into the store and records it. Only
    /// after this returns may the receipt be sent. Fails if the packet version is
    /// already recorded (the caller answers with the stored receipt instead).
    pub fn commit(&self, staged: &Path, record: &InboxRecord) -> Result<()> {
        let target = self.store_path(&record.receipt.body.digest);
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent)?;
                sync_dir(&self.store)?;
            }
        }
        rename_durably(staged, &target)?;
        let key = packet_key(&record.receipt.body.packet_id, record.receipt.body.version);
        let bytes = postcard::to_allocvec(record).map_err(storage_err)?;
        let swapped = self
            .packets
            .compare_and_swap(key, None::<&[u8]>, Some(bytes))
            .map_err(storage_err)?;
        if swapped.is_err() {
            return Err(Error::Storage(format!(
                "packet {} v{} was stored concurrently",
                record.receipt.body.packet_id, record.receipt.body.version
            )));
        }
        self.db.flush().map_err(storage_err)?;
        Ok(())
    }

    /// Removes a staging file that will not be committed.
    pub fn discard_staging(&self, staged: &Path) {
        let _ = fs::remove_file(staged);
    }

    /// Every stored record.
    pub fn records(&self) -> Result<Vec<InboxRecord>> {
        let mut all = Vec::new();
        for kv in self.packets.iter() {
            let (_, v) = kv.map_err(storage_err)?;
            all.push(decode(&v)?);
        }
        Ok(all)
    }

    /// The number of stored packet versions.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

fn decode(bytes: &[u8]) -> Result<InboxRecord> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("corrupt inbox record: {e}")))
}
