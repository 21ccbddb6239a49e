//! The loader's decryptions and key wraps in the center's audit log: who (the specialist's
//! token), what (the packets opened, by packet id, version and envelope id; or the tokens
//! a center key was wrapped to, by the key's id), when. Never key material: a center key
//! is named by its key id only.
//!
//! The log is the one in the center's data folder the loader works on (its copy on the
//! offline workstation). A log has one writer, so this refuses a data folder a center is
//! serving from.

use std::path::Path;

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::{keyfile, RecipientPublicKey, RecipientSecretKey};

use crate::center_key::HolderList;
use crate::config::CenterConfig;
use crate::preview::PacketPreview;
use crate::service::{AUDIT_CHECKPOINT_EVERY, AUDIT_LOG};
use crate::unpack::UnpackReport;
use crate::{Error, Result};

/// A specialist unlocked center keys to decrypt: before anything is opened.
pub const LOGIN: &str = "loader.login";
/// One exam packet decrypted by `loader unpack`.
pub const UNPACK: &str = "loader.unpack";
/// One packet `loader unpack` could not open.
pub const UNPACK_FAILED: &str = "loader.unpack_failed";
/// One test packet decrypted for a preview.
pub const PREVIEW: &str = "loader.preview";
/// A center key born on the loader's side and wrapped to its first holders.
pub const KEY_NEW: &str = "center_key.new";
/// A center key wrapped for one more specialist's token.
pub const KEY_WRAP: &str = "center_key.wrap";

/// The longest subject written (within the log's bound).
const MAX_SUBJECT: usize = konvert_crypto::audit::MAX_SUBJECT_LEN;
/// The longest detail written (within the log's bound).
const MAX_DETAIL: usize = 4096;

/// The most bytes of a `packet.json` read back for its envelope id.
const MAX_PACKET_FILE: u64 = 16 * 1024 * 1024;

/// The center's audit log, open for the loader's entries.
#[derive(Debug)]
pub struct LoaderAudit {
    log: AuditLog,
}

impl LoaderAudit {
    /// Opens the audit log in `cfg`'s data folder (checkpoints signed with the receipt key
    /// where this is the receiver, else the workstation key when center.toml names one).
    /// Refuses when a center serves from that folder.
    pub fn open(cfg: &CenterConfig) -> Result<Self> {
        if crate::control::ask_center(&cfg.data_dir, "status").is_some() {
            return Err(Error::Loader {
                what: format!(
                    "a center is serving from {} and writes its audit log",
                    cfg.data_dir.display()
                ),
                hint: "decrypt on the loader's workstation, against its copy of the data folder (or stop the center)",
            });
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(Error::file(&cfg.data_dir))?;
        let checkpoint_key = crate::workstation_key::local_signing_key(cfg)?;
        let log = AuditLog::open(&cfg.data_dir.join(AUDIT_LOG), checkpoint_key, AUDIT_CHECKPOINT_EVERY)?;
        Ok(LoaderAudit { log })
    }

    fn append(&self, actor: &str, action: &str, subject: &str, detail: &str) -> Result<()> {
        let (subject, detail) = (bounded(subject, MAX_SUBJECT), bounded(detail, MAX_DETAIL));
        self.log
            .append(actor, AuditAction::Other(action.to_owned()), &subject, &detail)?;
        Ok(())
    }

    /// Records that the specialist with `token_id` unlocked `keys` to `purpose` (before
    /// anything is decrypted: an opening that is not in the log does not happen).
    pub fn login(&self, token_id: &str, keys: &[RecipientSecretKey], purpose: &str) -> Result<()> {
        let ids: Vec<String> = keys.iter().map(|k| k.public_key().key_id().to_string()).collect();
        self.append(
            &specialist(token_id),
            LOGIN,
            token_id,
            &format!("{purpose}; center key(s) {}", ids.join(", ")),
        )
    }

    /// Records every packet `report` says was decrypted (one entry each, with its envelope
    /// id from its `packet.json`) and every one that could not be opened.
    pub fn unpacked(&self, token_id: &str, report: &UnpackReport) -> Result<()> {
        let actor = specialist(token_id);
        for (dir, bytes) in &report.unpacked {
            let (subject, site) = packet_named(dir);
            self.append(
                &actor,
                UNPACK,
                &subject,
                &format!("site {site}; {bytes} bytes of scans into {}", dir.display()),
            )?;
        }
        for (packet, why) in &report.failed {
            self.append(&actor, UNPACK_FAILED, packet, why)?;
        }
        Ok(())
    }

    /// Records every test packet a preview decrypted.
    pub fn previewed(&self, token_id: &str, previews: &[PacketPreview]) -> Result<()> {
        let actor = specialist(token_id);
        for p in previews {
            let r = &p.packet.record;
            let outcome = match &p.pages {
                Ok(pages) => format!("{} page(s) opened", pages.len()),
                Err(why) => format!("not opened: {why}"),
            };
            self.append(
                &actor,
                PREVIEW,
                &format!("{} v{} envelope {}", r.packet_id, r.version, r.envelope_id),
                &format!("test packet of site {}; {outcome}", r.site),
            )?;
        }
        Ok(())
    }

    /// Records a center key born and wrapped to `holders` (token id, person).
    pub fn born(&self, key: &RecipientPublicKey, holders: &HolderList) -> Result<()> {
        let ids: Vec<&str> = holders.iter().map(|(id, _)| id.as_str()).collect();
        let shown: Vec<String> = holders.iter().map(|(id, p)| format!("{id} ({p})")).collect();
        self.append(
            &format!("specialists {}", ids.join(", ")),
            KEY_NEW,
            &format!("center key {}", key.key_id()),
            &format!(
                "generated on the loader's workstation and wrapped to {}; no bare copy written",
                shown.join(", ")
            ),
        )
    }

    /// Records the specialist with `by` wrapping `key` for token `to`.
    pub fn wrapped(&self, by: &str, key: &RecipientPublicKey, to: &str) -> Result<()> {
        self.append(
            &specialist(by),
            KEY_WRAP,
            &format!("center key {}", key.key_id()),
            &format!("unwrapped in memory by {by} and wrapped for token {to}"),
        )
    }

    /// Signs a checkpoint over the entries written (when the data folder has the receipt
    /// key); a failure is logged, the entries stand.
    pub fn finish(&self) {
        if let Err(e) = self.log.checkpoint() {
            tracing::warn!("cannot write the audit log's checkpoint: {e}");
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut: an entry
/// over the log's bounds would be refused, and the decryption with it.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn specialist(token_id: &str) -> String {
    format!("specialist {token_id}")
}

/// "packet id vN envelope E" and the site for an unpacked folder, from its `packet.json`;
/// the folder's own name when that cannot be read.
fn packet_named(dir: &Path) -> (String, String) {
    let read = || -> Option<(String, String)> {
        let bytes = keyfile::read_bounded(&dir.join("packet.json"), MAX_PACKET_FILE).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some((
            format!(
                "{} v{} envelope {}",
                v.get("packet_id")?.as_str()?,
                v.get("version")?.as_u64()?,
                v.get("envelope_id")?.as_str()?
            ),
            v.get("site")?.as_str()?.to_owned(),
        ))
    };
    read().unwrap_or_else(|| (dir.display().to_string(), "?".into()))
}

#[cfg(test)]
#[path = "loader_audit_tests.rs"]
mod tests;
