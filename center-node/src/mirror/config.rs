//! The mirror's configuration: `federal.toml` for the federal node (ФИС) and `mirror.toml`
//! for a region's mirror process (РИС). Relative paths are relative to the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use konvert_crypto::VerifyingKey;
use konvert_mirror::{Schedule, ScheduleConfig, SenderLimits};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a node paces its batches ([`SenderLimits`]); the defaults suit a regional link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Batches cut and unreceipted per (peer, kind).
    #[serde(default = "default_window")]
    pub window: usize,
    /// Seconds to wait for a receipt before a batch is sent again.
    #[serde(default = "default_resend")]
    pub resend_after_secs: u64,
    /// Most rows in one batch.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
}

fn default_window() -> usize {
    SenderLimits::default().window
}

fn default_resend() -> u64 {
    SenderLimits::default().resend_after / 1000
}

fn default_batch_rows() -> usize {
    SenderLimits::default().batch_rows
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            window: default_window(),
            resend_after_secs: default_resend(),
            batch_rows: default_batch_rows(),
        }
    }
}

impl LimitsConfig {
    /// As the core takes them.
    pub fn sender_limits(&self) -> SenderLimits {
        SenderLimits {
            window: self.window,
            resend_after: self.resend_after_secs.saturating_mul(1000),
            batch_rows: self.batch_rows,
            ..SenderLimits::default()
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.window == 0 || self.batch_rows == 0 || self.resend_after_secs == 0 {
            return Err("[limits]: window, batch_rows and resend_after_secs must be positive".into());
        }
        if self.batch_rows > konvert_mirror::MAX_BATCH_ROWS {
            return Err(format!(
                "[limits] batch_rows = {} is over the protocol's {} rows in a batch",
                self.batch_rows,
                konvert_mirror::MAX_BATCH_ROWS
            ));
        }
        Ok(())
    }
}

/// A region the federal node exchanges records with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    /// The region's code, 1–99; its certificate is named `region-NN.mirror.konvert`.
    pub code: u8,
    /// The public half of the region's mirror signing key (64 hex digits): its batches
    /// and receipts must verify with it.
    pub key: String,
    /// The SHA-256 of the region certificate this node issued last (64 hex digits): the
    /// only certificate it takes from the region, so one issued before (`enroll-region
    /// --replace`) is refused. Absent in files written before pins: any certificate of
    /// the federal CA for the region's name is taken, and `check-config` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Revoked (`federal revoke-region`): its connections are refused. The entry stays,
    /// since the stored exchange with the region (checkpoints, receipts) is checked with
    /// its key at every start; enrolling it again (`--replace`) lifts this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// `federal.toml`: the federal node (ФИС).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederalConfig {
    /// The node's name in its TLS certificate; regions connect to this name.
    pub name: String,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// The federal records on PostgreSQL (`postgresql://user@host/db`).
    pub records_url: String,
    /// The federal CA's certificate (PEM): it issued every region's certificate.
    pub ca_cert: PathBuf,
    /// The federal CA's key (PEM, 0600), for `federal enroll-region` only; `serve` never
    /// reads it, so it can be kept offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<PathBuf>,
    /// The node's TLS certificate (PEM).
    pub cert: PathBuf,
    /// The node's TLS key (PEM, 0600).
    pub key: PathBuf,
    /// The federal node's mirror signing key (0600): it signs what goes down and the
    /// receipts for what comes up.
    pub signing_key: PathBuf,
    /// Seconds between looks at the outbox for rows written by other processes (a
    /// `NOTIFY konvert_mirror` wakes the node at once).
    #[serde(default = "default_outbox_poll")]
    pub outbox_poll_secs: u64,
    /// Where `federal serve` answers Prometheus (`/metrics`); unset: no metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// The periods and intervals the status and the metrics measure the lag against
    /// (`[schedule]`, Moscow time by default).
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Pacing of the batches going down.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The enrolled regions (`[[regions]]`, written by `federal enroll-region`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionEntry>,
}

fn default_outbox_poll() -> u64 {
    10
}

/// `mirror.toml`: a region's mirror process (РИС ↔ ФИС).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionMirrorConfig {
    /// The region's code, 1–99.
    pub region: u8,
    /// The region's records on PostgreSQL.
    pub records_url: String,
    /// The federal node's address, `host:port`.
    pub federal_address: String,
    /// The federal node's name in its TLS certificate.
    pub federal_name: String,
    /// The federal CA's certificate (PEM), the only one trusted for the federal node.
    pub ca_cert: PathBuf,
    /// The region's certificate (PEM), issued by the federal CA.
    pub cert: PathBuf,
    /// The region's TLS key (PEM, 0600).
    pub key: PathBuf,
    /// The region's mirror signing key (0600).
    pub signing_key: PathBuf,
    /// The federal node's mirror public key (a file of 64 hex digits).
    pub federal_key: PathBuf,
    /// Where `mirror run` answers Prometheus (`/metrics`); unset: no metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds an exchange may take before `mirror sync` gives up and says what is left.
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout_secs: u64,
    /// When to exchange (`[schedule]`): every 2 hours in preparation and exam periods,
    /// weekly otherwise; closing an exam (`NOTIFY konvert_mirror`) starts one at once.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Pacing of the batches going up.
    #[serde(default)]
    pub limits: LimitsConfig,
}

fn default_sync_timeout() -> u64 {
    120
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = konvert_crypto::keyfile::read_text_bounded(path, konvert_crypto::keyfile::MAX_CONFIG_BYTES)?;
    toml::from_str(&text).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: konvert_replication::toml_error(&e, &text),
    })
}

fn save_toml<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    let text = toml::to_string_pretty(value).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // 0600: records_url may carry the database password.
    konvert_crypto::keyfile::write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(())
}

fn resolve(base: &Path, paths: &mut [&mut PathBuf]) {
    for p in paths.iter_mut() {
        if p.is_relative() {
            **p = base.join(&**p);
        }
    }
}

fn region_code_ok(code: u8) -> std::result::Result<(), String> {
    if (1..=99).contains(&code) {
        Ok(())
    } else {
        Err(format!("region code {code} is not 1–99"))
    }
}

fn file_exists(what: &str, p: &Path, hint: &str) -> std::result::Result<(), String> {
    if p.is_file() {
        Ok(())
    } else {
        Err(format!(
            "{what} = {} does not exist or is not a file; {hint}",
            p.display()
        ))
    }
}

/// The `[schedule]` table checked as the node will use it.
fn check_schedule(config: &ScheduleConfig) -> std::result::Result<(), String> {
    Schedule::from_config(config)
        .map(|_| ())
        .map_err(|e| format!("[schedule]: {e}"))
}

/// The checked schedule of a loaded config; a config file names itself in the error.
fn schedule_of(config: &ScheduleConfig, path: &Path) -> Result<Schedule> {
    Schedule::from_config(config).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: format!("[schedule]: {e}"),
    })
}

impl FederalConfig {
    /// Reads the file as written, paths unresolved (to edit and save it again).
    pub fn read(path: &Path) -> Result<Self> {
        read_toml(path)
    }

    /// Reads and checks the file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let mut cfg = Self::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        resolve(
            base,
            &mut [&mut cfg.ca_cert, &mut cfg.cert, &mut cfg.key, &mut cfg.signing_key],
        );
        if let Some(k) = cfg.ca_key.as_mut() {
            resolve(base, &mut [k]);
        }
        cfg.check().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Writes the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_toml(self, path)
    }

    /// Checks what can be checked without starting.
    pub fn check(&self) -> std::result::Result<(), String> {
        konvert_records::PgRecords::check_url(&self.records_url).map_err(|e| format!("records_url: {e}"))?;
        let hint = "run `konvert-center federal init` first, or fix the path";
        file_exists("ca_cert", &self.ca_cert, hint)?;
        file_exists("cert", &self.cert, hint)?;
        file_exists("key", &self.key, hint)?;
        file_exists("signing_key", &self.signing_key, hint)?;
        self.limits.check()?;
        if self.outbox_poll_secs == 0 {
            return Err("outbox_poll_secs must be positive".into());
        }
        check_schedule(&self.schedule)?;
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.regions {
            region_code_ok(r.code).map_err(|e| format!("[[regions]]: {e}"))?;
            if !seen.insert(r.code) {
                return Err(format!(
                    "[[regions]]: region {:02} is listed twice; keep one entry",
                    r.code
                ));
            }
            VerifyingKey::from_hex(&r.key).map_err(|e| {
                format!(
                    "[[regions]] region {:02}: key is not a mirror public key ({e}); copy the region's mirror.pub again",
                    r.code
                )
            })?;
            if let Some(pin) = &r.certificate {
                if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(format!(
                        "[[regions]] region {:02}: certificate is not a SHA-256 (64 lowercase hex digits); enroll \
                         the region again with `konvert-center federal enroll-region --replace`",
                        r.code
                    ));
                }
            }
        }
        Ok(())
    }

    /// The checked `[schedule]` (`path` is the file it came from, for the error).
    pub fn schedule(&self, path: &Path) -> Result<Schedule> {
        schedule_of(&self.schedule, path)
    }

    /// Warnings for the secrets of this node that others than their owner may read:
    /// `config` itself when its records URL carries a password, the TLS key, the mirror
    /// signing key and the CA key.
    pub fn exposed_secrets(&self, config: &Path) -> Vec<String> {
        let mut files = vec![
            ("the TLS key", self.key.as_path()),
            ("the mirror signing key", self.signing_key.as_path()),
        ];
        if let Some(ca_key) = &self.ca_key {
            files.push(("the federal CA key", ca_key.as_path()));
        }
        exposed(config, &self.records_url, &files)
    }

    /// Regions enrolled before certificates were pinned: any certificate of the federal
    /// CA for their name is taken, until they are enrolled again.
    pub fn unpinned(&self) -> Vec<u8> {
        self.regions
            .iter()
            .filter(|r| r.certificate.is_none() && !r.revoked)
            .map(|r| r.code)
            .collect()
    }

    /// The enrolled regions' nodes and their public keys.
    pub fn peers(&self) -> Result<std::collections::BTreeMap<konvert_mirror::Node, VerifyingKey>> {
        self.regions
            .iter()
            .map(|r| Ok((konvert_mirror::Node::Region(r.code), VerifyingKey::from_hex(&r.key)?)))
            .collect()
    }
}

/// [`FederalConfig::exposed_secrets`] and [`RegionMirrorConfig::exposed_secrets`].
fn exposed(config: &Path, records_url: &str, files: &[(&str, &Path)]) -> Vec<String> {
    let mut out = Vec::new();
    if url_has_password(records_url) {
        out.extend(konvert_replication::tls::exposed_warning(
            "the config, whose records_url holds a password,",
            config,
        ));
    }
    for (what, path) in files {
        out.extend(konvert_replication::tls::exposed_warning(what, path));
    }
    out
}

/// Whether a PostgreSQL URL (or key=value string) carries a password.
fn url_has_password(url: &str) -> bool {
    match url.split_once("://") {
        Some((_, rest)) => rest
            .split(['/', '?'])
            .next()
            .and_then(|authority| authority.rsplit_once('@'))
            .is_some_and(|(userinfo, _)| userinfo.contains(':')),
        None => url.split_whitespace().any(|kv| kv.starts_with("password=")),
    }
}

impl RegionMirrorConfig {
    /// Warnings for the secrets of this node that others than their owner may read:
    /// `config` itself when its records URL carries a password, the TLS key and the
    /// mirror signing key.
    pub fn exposed_secrets(&self, config: &Path) -> Vec<String> {
        exposed(
            config,
            &self.records_url,
            &[
                ("the TLS key", self.key.as_path()),
                ("the mirror signing key", self.signing_key.as_path()),
            ],
        )
    }

    /// Reads the file as written, paths unresolved and unchecked (to edit and save it again).
    pub fn read(path: &Path) -> Result<Self> {
        read_toml(path)
    }

    /// Reads and checks the file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let mut cfg: Self = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        resolve(
            base,
            &mut [
                &mut cfg.ca_cert,
                &mut cfg.cert,
                &mut cfg.key,
                &mut cfg.signing_key,
                &mut cfg.federal_key,
            ],
        );
        cfg.check().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Writes the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_toml(self, path)
    }

    /// Checks what can be checked without starting.
    pub fn check(&self) -> std::result::Result<(), String> {
        region_code_ok(self.region).map_err(|e| format!("region: {e}"))?;
        konvert_records::PgRecords::check_url(&self.records_url).map_err(|e| format!("records_url: {e}"))?;
        let hint = "the federal node writes it with `konvert-center federal enroll-region`; copy its folder here";
        file_exists("ca_cert", &self.ca_cert, hint)?;
        file_exists("cert", &self.cert, hint)?;
        file_exists("key", &self.key, hint)?;
        file_exists("federal_key", &self.federal_key, hint)?;
        file_exists(
            "signing_key",
            &self.signing_key,
            "run `konvert-center mirror init` first, or fix the path",
        )?;
        check_schedule(&self.schedule)?;
        if self.sync_timeout_secs == 0 {
            return Err("sync_timeout_secs must be positive".into());
        }
        if self.federal_address.trim().is_empty() {
            return Err("federal_address is empty; give the federal node's host:port".into());
        }
        self.limits.check()
    }

    /// The checked `[schedule]` (`path` is the file it came from, for the error).
    pub fn schedule(&self, path: &Path) -> Result<Schedule> {
        schedule_of(&self.schedule, path)
    }

    /// The federal node's mirror public key, from its file.
    pub fn federal_public_key(&self) -> Result<VerifyingKey> {
        read_public_key(&self.federal_key)
    }
}

/// Reads a public key file (64 hex digits, as `mirror.pub` and `federal.pub` hold).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let text = konvert_crypto::keyfile::read_text_bounded(path, 4096)?;
    VerifyingKey::from_hex(text.trim()).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: format!("not a mirror public key ({e}); it holds one line of 64 hex digits"),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
