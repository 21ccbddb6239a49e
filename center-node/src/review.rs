//! Packets flagged for review: stored packets whose signer's token was blocked soon
//! after (or before the center learned of it). They stay stored — a flag is not a
//! verdict — and the staff decide with `konvert-center review`.
//!
//! A folder (`data_dir/review/`, one `<envelope id>.toml` per packet) for the same
//! reason as the test desk: staff read it while the receiver holds the sled lock.

use std::fs;
use std::path::{Path, PathBuf};

use konvert_crypto::keyfile;
use konvert_crypto::registry::TokenRecord;
use konvert_replication::InboxRecord;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const MAX_FLAG_FILE: u64 = 64 * 1024;

/// One stored packet to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewFlag {
    /// The packet id.
    pub packet_id: String,
    /// Its version.
    pub version: u32,
    /// The site whose station delivered it.
    pub site: String,
    /// The envelope id, 64 hex digits.
    pub envelope_id: String,
    /// The center's clock when it was stored.
    pub received_at_unix_ms: u64,
    /// The signer's token id.
    pub token_id: String,
    /// Who holds it.
    pub person: String,
    /// What the token became (lost, compromised, broken).
    pub status: String,
    /// When the officers recorded that status.
    pub blocked_at_unix_ms: u64,
    /// The registry version that blocked it.
    pub registry_version: u64,
}

impl ReviewFlag {
    /// The flag for a stored packet signed by a token that is now blocked.
    pub fn new(record: &InboxRecord, token: &TokenRecord, registry_version: u64) -> Self {
        let b = &record.receipt.body;
        ReviewFlag {
            packet_id: b.packet_id.clone(),
            version: b.version,
            site: b.site.clone(),
            envelope_id: hex::encode(b.digest),
            received_at_unix_ms: b.received_at_unix_ms,
            token_id: token.token_id.clone(),
            person: token.person.clone(),
            status: token.status.as_str().to_owned(),
            blocked_at_unix_ms: token.status_since_unix_ms,
            registry_version,
        }
    }
}

/// The review folder.
#[derive(Debug, Clone)]
pub struct ReviewDesk {
    dir: PathBuf,
}

impl ReviewDesk {
    /// Opens (or creates) `data_dir/review/`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("review");
        fs::create_dir_all(&dir).map_err(Error::file(&dir))?;
        Ok(ReviewDesk { dir })
    }

    /// Records a flag (again, harmlessly, if it is there).
    pub fn flag(&self, flag: &ReviewFlag) -> Result<()> {
        let text = toml::to_string(flag).map_err(|e| Error::Config {
            path: self.dir.clone(),
            message: format!("cannot encode a review flag: {e}"),
        })?;
        let path = self.dir.join(format!("{}.toml", flag.envelope_id));
        keyfile::write_atomic(&path, text.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Every flag, oldest packet first. A damaged file is an error naming it.
    pub fn list(&self) -> Result<Vec<ReviewFlag>> {
        let mut flags = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(Error::file(&self.dir))? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let bytes = keyfile::read_bounded(&path, MAX_FLAG_FILE)?;
            let flag = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| toml::from_str::<ReviewFlag>(t).ok())
                .ok_or_else(|| Error::Config {
                    path: path.clone(),
                    message: "not a review flag; move the file away".into(),
                })?;
            flags.push(flag);
        }
        flags.sort_by_key(|f| f.received_at_unix_ms);
        Ok(flags)
    }
}
