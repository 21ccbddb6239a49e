//! The center's key registry: trusted through the officers' `authority.toml` exactly as a
//! station trusts it, taken from the file the officers publish to, enforced on every
//! packet at the moment it is received, and passed on to every connected station.
//!
//! The registry file (`registry` in center.toml) is watched rather than pushed to the
//! running center, so the officers' tools never need the receiver's sled lock: dropping
//! a newly published registry there (`konvert-center registry import`) is enough. A
//! registry that newly blocks a token flags for review the packets that token signed
//! and the center received from `review_window_minutes` before the block onwards.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::registry::{
    AuthorityFile, Registry, RegistryBody, RegistryStore, SignedRegistry, MAX_REGISTRY_LEN,
};
use konvert_crypto::KeyId;
use konvert_replication::driver::{RegistryFeed, SignedUpdate};
use konvert_replication::Inbox;
use prometheus::{IntCounterVec, Opts};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::CenterConfig;
use crate::review::{ReviewDesk, ReviewFlag};
use crate::{Error, Result};

/// How often the running center looks at the registry file.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// The registry the center enforces and serves.
pub struct CenterRegistry {
    store: RegistryStore,
    source: PathBuf,
    in_force: RwLock<Option<Arc<Registry>>>,
    seen: RwLock<Option<(u64, std::time::SystemTime)>>,
    feed: watch::Sender<Option<Arc<SignedUpdate>>>,
    review: ReviewDesk,
    review_window_ms: u64,
    audit: Option<Arc<AuditLog>>,
    /// Registry files not taken, by why (`older`, `refused`).
    ignored: IntCounterVec,
}

/// What taking a registry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The version now in force.
    pub version: u64,
    /// Packets flagged for review because the registry blocked their signer.
    pub flagged: usize,
}

/// The most a registry file may hold: the body's bound plus the officers' signatures.
const MAX_REGISTRY_FILE: u64 = MAX_REGISTRY_LEN as u64 + 64 * 1024;

/// Reads a registry file that anyone with write access to its folder may have swapped: a
/// FIFO there would block the watcher (and with it the center's stop) for ever, a link
/// could point anywhere, so both are refused unread, and no more than a registry's bound
/// is read whatever the file grows to.
fn read_signed(path: &Path) -> Result<SignedRegistry> {
    let refused = |message: String| Error::Config {
        path: path.to_owned(),
        message: format!(
            "{message}; put the officers' published registry file there (`konvert-center registry import`)"
        ),
    };
    let file = konvert_replication::drive::open_regular(path).map_err(|e| refused(e.to_string()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_REGISTRY_FILE + 1), &mut bytes)
        .map_err(|e| refused(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_REGISTRY_FILE {
        return Err(refused(format!(
            "is larger than a key registry can be ({MAX_REGISTRY_FILE} bytes at most)"
        )));
    }
    Ok(SignedRegistry::from_bytes(&bytes)?)
}

/// The newest key registry the center holds, whatever its expiry: its store's, or the
/// imported file's (`registry import`) when that verifies and is newer — a center that
/// has not served since the import has not taken it into its store yet. Reads only, so
/// it works while the center serves.
pub fn held(cfg: &CenterConfig, now_unix_ms: u64) -> Result<Option<RegistryBody>> {
    let store = RegistryStore::open(&cfg.data_dir)?;
    let stored = store.last_known()?;
    let imported = match store.trust()? {
        Some(trust) if cfg.registry.exists() => match trust.accept(&read_signed(&cfg.registry)?, now_unix_ms) {
            Ok((body, _)) => Some(body),
            Err(e) if stored.is_none() => return Err(e.into()),
            Err(_) => None,
        },
        _ => None,
    };
    Ok(match (stored, imported) {
        (Some(s), Some(i)) => Some(if i.version > s.version { i } else { s }),
        (s, i) => s.or(i),
    })
}

impl CenterRegistry {
    /// Opens the center's registry store, anchoring it in the officers' authority file on
    /// first use, and puts the stored registry in force if it still is.
    /// Registries taken are recorded in `audit`, when given.
    pub fn open(cfg: &CenterConfig, now_unix_ms: u64, audit: Option<Arc<AuditLog>>) -> Result<Self> {
        let store = RegistryStore::open(&cfg.data_dir)?;
        if store.trust()?.is_none() {
            // Read as every config is: a FIFO there would hang the start, a huge file exhaust it.
            let text =
                konvert_crypto::keyfile::read_text_bounded(&cfg.authority, konvert_crypto::keyfile::MAX_CONFIG_BYTES)
                    .map_err(|e| Error::Config {
                    path: cfg.authority.clone(),
                    message: format!(
                        "cannot read the officers' authority.toml ({e}); copy it from the officers' workspace \
                     (`konvert keys init-authority`) to this path"
                    ),
                })?;
            let file: AuthorityFile = toml::from_str(&text).map_err(|e| Error::Config {
                path: cfg.authority.clone(),
                message: format!(
                    "not an officers' authority file: {}",
                    konvert_replication::toml_error(&e, &text)
                ),
            })?;
            store.anchor(file.authority()?)?;
            info!(path = %cfg.authority.display(), "registry trust anchored in the officers' authority");
        }
        let (feed, _) = watch::channel(None);
        let ignored = IntCounterVec::new(
            Opts::new(
                "konvert_registry_files_ignored_total",
                "Key registry files at the center that were not taken: older than the one in force, or refused \
                 (not verifying, damaged).",
            ),
            &["why"],
        )
        .map_err(|e| Error::Metrics(e.to_string()))?;
        let registry = CenterRegistry {
            store,
            source: cfg.registry.clone(),
            in_force: RwLock::new(None),
            seen: RwLock::new(None),
            feed,
            review: ReviewDesk::open(&cfg.data_dir)?,
            review_window_ms: cfg.review_window_minutes.saturating_mul(60_000),
            audit,
            ignored,
        };
        match registry.store.current_signed(now_unix_ms) {
            Ok(Some((body, signed))) => registry.put_in_force(body, &signed)?,
            Ok(None) => {}
            Err(e) => warn!("the stored key registry is not in force: {e}"),
        }
        Ok(registry)
    }

    /// The registry in force at `now`: none when there is none or it has expired (the
    /// center then refuses packets rather than trust stale statuses).
    pub fn in_force(&self, now_unix_ms: u64) -> Option<Arc<Registry>> {
        let r = self.in_force.read().ok()?.clone()?;
        (now_unix_ms < r.body().expires_at_unix_ms).then_some(r)
    }

    /// Exports the count of registry files not taken in `metrics` (both series from zero).
    pub fn register_metrics(&self, metrics: &prometheus::Registry) -> Result<()> {
        for why in ["older", "refused"] {
            self.ignored.with_label_values(&[why]);
        }
        metrics
            .register(Box::new(self.ignored.clone()))
            .map_err(|e| Error::Metrics(e.to_string()))
    }

    /// Counts a registry file refused (it did not verify, or could not be read).
    pub fn note_refused(&self) {
        self.ignored.with_label_values(&["refused"]).inc();
    }

    /// The newest registry, for stations.
    pub fn feed(&self) -> RegistryFeed {
        self.feed.subscribe()
    }

    fn put_in_force(&self, body: RegistryBody, signed: &SignedRegistry) -> Result<()> {
        let update = SignedUpdate {
            version: body.version,
            signed: signed.to_bytes()?,
        };
        if let Ok(mut slot) = self.in_force.write() {
            *slot = Some(Arc::new(Registry::from(body)));
        }
        self.feed.send_replace(Some(Arc::new(update)));
        Ok(())
    }

    /// Takes the registry file if it changed since last look and is newer than the one in
    /// force: checked as a station checks it, trust persisted first, then enforced and
    /// sent to stations. A file that is refused leaves everything as it was.
    pub fn refresh(&self, inbox: &Inbox, now_unix_ms: u64) -> Result<Option<Taken>> {
        // Not following a link: what is looked at is what read_signed opens.
        let Ok(meta) = std::fs::symlink_metadata(&self.source) else {
            return Ok(None);
        };
        let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
        if self.seen.read().ok().and_then(|s| *s) == Some(stamp) {
            return Ok(None);
        }
        if let Ok(mut seen) = self.seen.write() {
            *seen = Some(stamp);
        }
        let signed = read_signed(&self.source)?;
        let body = signed.decode_body()?;
        let old = self.in_force.read().ok().and_then(|r| r.clone());
        if let Some(in_force) = old.as_ref().map(|o| o.body().version) {
            if body.version < in_force {
                // Someone dropped an older registry here: harmless, but never silent.
                self.ignored.with_label_values(&["older"]).inc();
                warn!(
                    file = %self.source.display(),
                    version = body.version,
                    in_force,
                    "an older key registry file was put at the center and is ignored; v{in_force} stays in force — \
                     import the newest registry the officers published"
                );
                if let Some(audit) = &self.audit {
                    if let Err(e) = audit.append(
                        "center",
                        AuditAction::Other("registry.ignore".into()),
                        &format!("registry v{}", body.version),
                        &format!("older than v{in_force} in force; ignored"),
                    ) {
                        warn!("the audit log cannot be written: {e}");
                    }
                }
            }
            if body.version <= in_force {
                return Ok(None);
            }
        }
        let body = self.store.offer(&signed, now_unix_ms)?;
        let version = body.version;
        let flags = self.newly_blocked(old.as_deref(), &body, inbox)?;
        self.put_in_force(body, &signed)?;
        for f in &flags {
            self.review.flag(f)?;
        }
        info!(version, flagged = flags.len(), "key registry in force");
        if let Some(audit) = &self.audit {
            let detail = format!("{} packet(s) flagged for review", flags.len());
            if let Err(e) = audit.append(
                "center",
                AuditAction::Other("registry.take".into()),
                &format!("registry v{version}"),
                &detail,
            ) {
                warn!("the audit log cannot be written: {e}");
            }
        }
        Ok(Some(Taken {
            version,
            flagged: flags.len(),
        }))
    }

    /// The stored packets whose signer `new` blocks (and `old` did not), received from the
    /// review window before the block onwards.
    fn newly_blocked(&self, old: Option<&Registry>, new: &RegistryBody, inbox: &Inbox) -> Result<Vec<ReviewFlag>> {
        let blocked: Vec<_> = new
            .tokens
            .iter()
            .filter(|t| t.status.is_blocked())
            .filter(|t| {
                old.and_then(|o| o.token(&t.public.key_id()))
                    .is_none_or(|was| !was.status.is_blocked())
            })
            .collect();
        if blocked.is_empty() {
            return Ok(Vec::new());
        }
        let mut flags = Vec::new();
        for record in inbox.records()? {
            let Some(t) = blocked.iter().find(|t| t.public.key_id() == record.signer) else {
                continue;
            };
            let from = t.status_since_unix_ms.saturating_sub(self.review_window_ms);
            if record.receipt.body.received_at_unix_ms >= from {
                flags.push(ReviewFlag::new(&record, t, new.version));
            }
        }
        Ok(flags)
    }

    /// Checks a registry file against the center's trust without taking it.
    pub fn check_file(&self, path: &Path, now_unix_ms: u64) -> Result<RegistryBody> {
        let signed = read_signed(path)?;
        let trust = self.store.trust()?.ok_or_else(|| Error::Config {
            path: path.to_owned(),
            message: "the center trusts no authority yet; start it once with the officers' authority.toml".into(),
        })?;
        Ok(trust.accept(&signed, now_unix_ms)?.0)
    }

    /// The registry the store holds, whatever its expiry.
    pub fn last_known(&self) -> Result<Option<RegistryBody>> {
        Ok(self.store.last_known()?)
    }

    /// The key of a token in the registry the store holds (for checking stored packets).
    pub fn token_key(body: &RegistryBody, id: &KeyId) -> Option<konvert_crypto::VerifyingKey> {
        body.tokens.iter().find(|t| t.public.key_id() == *id).map(|t| t.public)
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
