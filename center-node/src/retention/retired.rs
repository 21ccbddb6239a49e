//! Transport envelopes retention deleted from the store, each with a tombstone in the data
//! folder (`retired/<first two hex digits>/<envelope id>.json`): who deleted it, when, and
//! that its pages' images are held. The inbox's record and the receipt stay; readers of the
//! store (the loader, backups) skip a retired envelope instead of finding it missing.
//! The tombstone is written before the envelope is deleted, so a stop in between leaves a
//! tombstone whose envelope the next run deletes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The tombstones' folder in the data folder.
pub const RETIRED: &str = "retired";

/// What a tombstone says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// The envelope id (hex).
    pub envelope_id: String,
    /// The packet id.
    pub packet_id: String,
    /// The version.
    pub version: u32,
    /// The site.
    pub site: String,
    /// When retention deleted it (loader's clock).
    pub deleted_at_unix_ms: u64,
    /// Who ran retention.
    pub by: String,
    /// Why it could go.
    pub reason: String,
}

/// Where the tombstone of envelope `digest` lies.
pub fn tombstone_path(data_dir: &Path, digest: &[u8; 32]) -> PathBuf {
    let hex = hex::encode(digest);
    data_dir.join(RETIRED).join(&hex[..2]).join(format!("{hex}.json"))
}

/// Whether retention deleted envelope `digest` from the store at `data_dir`.
pub fn is_retired(data_dir: &Path, digest: &[u8; 32]) -> bool {
    std::fs::symlink_metadata(tombstone_path(data_dir, digest)).is_ok_and(|m| m.is_file())
}

/// Writes the tombstone of an envelope about to be deleted (atomically, durably).
pub fn bury(data_dir: &Path, digest: &[u8; 32], tombstone: &Tombstone) -> Result<()> {
    let path = tombstone_path(data_dir, digest);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::file(parent))?;
    }
    let json = serde_json::to_vec_pretty(tombstone).map_err(|e| Error::Loader {
        what: format!("cannot write a tombstone: {e}"),
        hint: "report this as a bug",
    })?;
    konvert_crypto::keyfile::write_atomic(&path, &json, 0o644)?;
    Ok(())
}
