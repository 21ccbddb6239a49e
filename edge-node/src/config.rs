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
    /// The member (ГЭК) token file.
    pub token: PathBuf,
    /// How to reach the center.
    pub center: CenterLink,
    /// Push tuning.
    #[serde(default)]
    pub push: PushTuning,
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
    /// Seconds to wait between reconnect attempts (doubling up to 30 s).
    #[serde(default = "default_retry")]
    pub retry_seconds: f64,
}

fn default_parallel() -> usize {
    4
}

fn default_retry() -> f64 {
    0.5
}

impl Default for PushTuning {
    fn default() -> Self {
        PushTuning {
            parallel: default_parallel(),
            retry_seconds: default_retry(),
        }
    }
}

impl SiteConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::file(path))?;
        let mut cfg: SiteConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.data_dir,
            &mut cfg.token,
            &mut cfg.center.ca_cert,
            &mut cfg.center.station_cert,
            &mut cfg.center.station_key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
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
        if self.push.parallel == 0 || self.push.parallel > 64 {
            return Err("push.parallel must be between 1 and 64".into());
        }
        for (what, p) in [
            ("center.ca_cert", &self.center.ca_cert),
            ("center.station_cert", &self.center.station_cert),
            ("center.station_key", &self.center.station_key),
        ] {
            if !p.is_file() {
                return Err(format!(
                    "{what} = {} does not exist; ask the center to enroll this station",
                    p.display()
                ));
            }
        }
        Ok(())
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
