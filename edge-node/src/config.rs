//! The site configuration (`site.toml`). Relative paths are relative to the file.

use std::path::{Path, PathBuf};

use konvert_crypto::{RecipientPublicKey, VerifyingKey};
use konvert_exam::{SiteId, SiteZone};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `site.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The site code (ППЭ), e.g. "0101".
    pub site: SiteId,
    /// The site's IANA time zone; the deadline is 23:59 local time of the exam day.
    pub time_zone: SiteZone,
    /// Where the outbox lives.
    pub data_dir: PathBuf,
    /// The member (ГЭК) token file; exactly one of `token` and `[pkcs11]` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<PathBuf>,
    /// The member's hardware token (PKCS#11), used instead of a token file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Token>,
    /// How to reach the center.
    pub center: CenterLink,
    /// Push tuning.
    #[serde(default)]
    pub push: PushTuning,
    /// The exam day's intake: hot folder and seating plan.
    #[serde(default)]
    pub day: Option<DayConfig>,
}

/// `[pkcs11]`: the member's key on a hardware token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Token {
    /// The token's PKCS#11 module (driver), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The member key's label on the token.
    #[serde(default = "default_key_label")]
    pub key_label: String,
}

/// The key label `konvert keys issue-token --pkcs11-token` gives the member key.
pub const DEFAULT_KEY_LABEL: &str = konvert_crypto::pkcs11::IDENTITY_KEY_LABEL;

fn default_key_label() -> String {
    DEFAULT_KEY_LABEL.to_owned()
}

/// `[day]`: where the scanner writes and who sits where.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayConfig {
    /// The scanner's output folder.
    pub hot_folder: PathBuf,
    /// The seating plan of the exam day (TOML, from the center).
    pub seating_plan: PathBuf,
    /// Milliseconds a file must keep its size before it is read.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Milliseconds a settled file that does not parse is waited for before it is taken
    /// flagged.
    #[serde(default = "default_incomplete_wait_ms")]
    pub incomplete_wait_ms: u64,
    /// Seconds a complete room must go without a new file before `day` seals it.
    #[serde(default = "default_quiet_seconds")]
    pub quiet_seconds: u64,
    /// Milliseconds of recognition per page before it is flagged unreadable.
    #[serde(default = "default_page_budget_ms")]
    pub page_budget_ms: u64,
}

fn default_settle_ms() -> u64 {
    1500
}

fn default_incomplete_wait_ms() -> u64 {
    10_000
}

fn default_quiet_seconds() -> u64 {
    30
}

fn default_page_budget_ms() -> u64 {
    1500
}

impl DayConfig {
    /// The intake tuning.
    pub fn tuning(&self) -> crate::intake::IntakeTuning {
        crate::intake::IntakeTuning {
            settle_ms: self.settle_ms,
            incomplete_wait_ms: self.incomplete_wait_ms,
        }
    }

    /// Reads the seating plan.
    pub fn plan(&self) -> Result<konvert_exam::SeatingPlan> {
        let text =
            konvert_crypto::keyfile::read_text_bounded(&self.seating_plan, konvert_crypto::keyfile::MAX_SEATING_BYTES)?;
        let (plan, reading) = konvert_exam::SeatingPlan::from_toml_reading(&text).map_err(|e| Error::Config {
            path: self.seating_plan.clone(),
            message: format!("{e}; ask the center for the seating plan again"),
        })?;
        if reading.without_consent > 0 {
            // Only the number: nothing identifying them goes anywhere (R18).
            tracing::warn!(
                rows = reading.without_consent,
                "the seating plan lists participants without consent to personal-data processing; \
                 they were left out unread: seat them on paper (ИС-05), their blanks are not scanned"
            );
        }
        Ok(plan)
    }
}

/// How to reach and trust the center.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterLink {
    /// `host:port` of the center.
    pub address: String,
    /// The name in the center's certificate.
    pub server_name: String,
    /// The center's CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This station's certificate (PEM).
    pub station_cert: PathBuf,
    /// This station's private key (PEM, 0600).
    pub station_key: PathBuf,
    /// The center's recipient key (64 hex digits); envelopes are sealed to it.
    pub recipient_key: String,
    /// The center's receipt key (64 hex digits); receipts must verify with it.
    pub receipt_key: String,
}

/// Push tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTuning {
    /// Packets in flight at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Seconds to wait before reconnecting (doubling up to 30 s, back to this after any
    /// connection that got something across).
    #[serde(default = "default_retry")]
    pub retry_seconds: f64,
    /// The site's channel speed in Mbit/s, as measured at the readiness check (the `v` of
    /// T = x·m/v): packets are paced to it, and it is the ETA's rate until goodput is
    /// measured. Unset: no ceiling of the site's own (the center's share still applies).
    #[serde(default)]
    pub link_mbit: Option<f64>,
    /// Hold blanks and audio until 11:00 and station logs until 10:30 local time, the
    /// regulations' transfer windows, unless the deadline is at risk.
    #[serde(default = "default_windows")]
    pub windows: bool,
}

fn default_windows() -> bool {
    true
}

/// The pacing ceiling when the site's link speed is not configured: 10 Gbit/s.
const NO_CEILING_BYTES_PER_S: u64 = 1_250_000_000;

impl PushTuning {
    /// The edge scheduler's settings for this site.
    pub fn scheduler_config(&self) -> konvert_replication::schedule::SchedulerConfig {
        let rate = self
            .link_mbit
            .map(|m| (m * 125_000.0) as u64)
            .filter(|r| *r > 0)
            .unwrap_or(NO_CEILING_BYTES_PER_S);
        let mut c = konvert_replication::schedule::SchedulerConfig::regulations(rate);
        if !self.windows {
            c.windows.clear();
        }
        c
    }
}

fn default_parallel() -> usize {
    4
}

impl PushTuning {
    /// Checks the settings are in range.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.parallel == 0 || self.parallel > 64 {
            return Err("push.parallel must be between 1 and 64".into());
        }
        let r = self.retry_seconds;
        if !(r.is_finite() && (0.05..=30.0).contains(&r)) {
            return Err(format!(
                "push.retry_seconds = {r} is out of range; give the first wait before reconnecting, \
                 0.05 to 30 seconds (it doubles up to 30 s), or remove it for the default"
            ));
        }
        if let Some(m) = self.link_mbit {
            if !(m.is_finite() && (0.01..=100_000.0).contains(&m)) {
                return Err(format!(
                    "push.link_mbit = {m} is not a channel speed; give the Mbit/s measured at the readiness check \
                     (e.g. 20), or remove it"
                ));
            }
        }
        Ok(())
    }
}

/// Every (setting, path) names a file that exists; the first that does not is named, with
/// `advice`.
pub(crate) fn files_exist(files: &[(&str, &std::path::Path)], advice: &str) -> std::result::Result<(), String> {
    match files.iter().find(|(_, p)| !p.is_file()) {
        Some((what, p)) => Err(format!("{what} = {} does not exist; {advice}", p.display())),
        None => Ok(()),
    }
}

fn default_retry() -> f64 {
    0.5
}

impl Default for PushTuning {
    fn default() -> Self {
        PushTuning {
            parallel: default_parallel(),
            retry_seconds: default_retry(),
            link_mbit: None,
            windows: default_windows(),
        }
    }
}

impl SiteConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = konvert_crypto::keyfile::read_text_bounded(path, konvert_crypto::keyfile::MAX_CONFIG_BYTES)?;
        let mut cfg: SiteConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: konvert_replication::toml_error(&e, &text),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            Some(&mut cfg.data_dir),
            cfg.token.as_mut(),
            cfg.pkcs11.as_mut().map(|t| &mut t.module),
            Some(&mut cfg.center.ca_cert),
            Some(&mut cfg.center.station_cert),
            Some(&mut cfg.center.station_key),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(day) = &mut cfg.day {
            for p in [&mut day.hot_folder, &mut day.seating_plan] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        cfg.check().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Checks what can be checked offline.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.recipient_key()
            .map_err(|_| "center.recipient_key must be 64 hex digits".to_owned())?;
        self.receipt_key()
            .map_err(|_| "center.receipt_key must be 64 hex digits".to_owned())?;
        match (&self.token, &self.pkcs11) {
            (None, None) => {
                return Err("no member token: set token = \"member.token\" or a [pkcs11] section".into());
            }
            (Some(_), Some(_)) => {
                return Err("both token and [pkcs11] are set; keep the one the member signs with".into());
            }
            (None, Some(t)) => {
                if !t.module.is_file() {
                    return Err(format!(
                        "pkcs11.module = {} does not exist; install the token's driver (for SoftHSM2 the Debian package softhsm2) or fix the path",
                        t.module.display()
                    ));
                }
                if t.token_label.trim().is_empty() || t.key_label.trim().is_empty() {
                    return Err("pkcs11.token_label and pkcs11.key_label must not be empty".into());
                }
            }
            (Some(_), None) => {}
        }
        self.push.check()?;
        files_exist(
            &[
                ("center.ca_cert", &self.center.ca_cert),
                ("center.station_cert", &self.center.station_cert),
                ("center.station_key", &self.center.station_key),
            ],
            "ask the center to enroll this station",
        )?;
        if let Some(day) = &self.day {
            if !day.hot_folder.is_dir() {
                return Err(format!(
                    "day.hot_folder = {} is not a folder; point it at the scanner's output folder",
                    day.hot_folder.display()
                ));
            }
            let plan = day.plan().map_err(|e| e.to_string())?;
            if plan.site != self.site {
                return Err(format!(
                    "the seating plan {} is for site {}, but this station is site {}",
                    day.seating_plan.display(),
                    plan.site,
                    self.site
                ));
            }
            if day.settle_ms < 100 || day.page_budget_ms < 50 {
                return Err("day.settle_ms must be at least 100 and day.page_budget_ms at least 50".into());
            }
        }
        Ok(())
    }

    /// The member token file, or an error if this station signs with a hardware token.
    pub fn token_file(&self) -> Result<&Path> {
        self.token.as_deref().ok_or_else(|| Error::Config {
            path: self.data_dir.clone(),
            message: "this station signs with a hardware token ([pkcs11]), not a token file".into(),
        })
    }

    /// The `[day]` section, or an error saying how to add it.
    pub fn day(&self) -> Result<&DayConfig> {
        self.day.as_ref().ok_or_else(|| Error::Config {
            path: self.data_dir.clone(),
            message: "site.toml has no [day] section; add hot_folder and seating_plan".into(),
        })
    }

    /// Recognition time per page: the `[day]` setting, or its default without one (a
    /// station that only sends test packets has no exam day configured).
    pub fn page_budget(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.day
                .as_ref()
                .map_or_else(default_page_budget_ms, |d| d.page_budget_ms),
        )
    }

    /// The center's recipient key.
    pub fn recipient_key(&self) -> Result<RecipientPublicKey> {
        Ok(RecipientPublicKey::from_hex(&self.center.recipient_key)?)
    }

    /// The center's receipt key.
    pub fn receipt_key(&self) -> Result<VerifyingKey> {
        Ok(VerifyingKey::from_hex(&self.center.receipt_key)?)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
