//! The center's configuration (TOML). Relative paths are relative to the config file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use konvert_exam::SiteZone;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Default largest envelope accepted: 4 GiB.
pub const DEFAULT_MAX_PACKET_BYTES: u64 = 4 << 30;

/// `center.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterConfig {
    /// The center's name, as in its TLS certificate (edges connect to this name).
    pub name: String,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; keep it on loopback or a management network.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the inbox and the store live.
    pub data_dir: PathBuf,
    /// Where the loader's workstation keeps the regional records and the loader's audit
    /// log (`konvert-center loader …`); backups take them from here.
    #[serde(default = "default_records")]
    pub records: PathBuf,
    /// The regional records on PostgreSQL instead (`postgresql://user@host/db`, with
    /// `sslmode=require&sslrootcert=ca.pem` for a remote server); unset, they are on sled in
    /// `records`, which still holds the loader's audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_url: Option<String>,
    /// The center's CA certificate (PEM), which issued every station certificate.
    pub ca_cert: PathBuf,
    /// The CA's private key (PEM, 0600). When set, the running center re-signs the station
    /// revocation list before it expires; leave it out to keep the CA key offline (then the
    /// officers run `konvert keys renew-crl` in time, or every station is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<PathBuf>,
    /// The station revocation list (PEM, signed by the CA) the center enforces; a new one
    /// written here takes effect within a second. Its station index lives beside it.
    #[serde(default = "default_crl")]
    pub crl: PathBuf,
    /// The center's TLS certificate (PEM).
    pub cert: PathBuf,
    /// The center's TLS private key (PEM, 0600).
    pub key: PathBuf,
    /// The center's receipt-signing key file (0600).
    pub receipt_key: PathBuf,
    /// The loader workstation's own signing key (0600), made by `konvert-center loader
    /// workstation-key`: it signs that workstation's backups and its audit logs'
    /// checkpoints, where `receipt_key` names only the receipt public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workstation_key: Option<PathBuf>,
    /// Largest envelope accepted, in bytes.
    #[serde(default = "default_max")]
    pub max_packet_bytes: u64,
    /// Station connections served at once; more are refused and retry later.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The security officers' `authority.toml`: the center trusts key registries signed
    /// by a threshold of these officers (read once, when the center is first started).
    #[serde(default = "default_authority")]
    pub authority: PathBuf,
    /// Where the officers' newest signed key registry is put (`konvert-center registry
    /// import`); the running center watches it and passes it on to every station.
    #[serde(default = "default_registry")]
    pub registry: PathBuf,
    /// Packets a token signed that the center received this many minutes before the
    /// token was blocked (or later) are flagged for review.
    #[serde(default = "default_review_window")]
    pub review_window_minutes: u64,
    /// The center's ingress capacity in Mbit/s. When set, the center brokers it: every
    /// connected site gets a rate share so the sites with the least slack before their
    /// 23:59 go first. Unset: sites send at their own pace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_mbit: Option<f64>,
    /// The region's IANA time zone. A packet received (by the center's clock; from a drive,
    /// when it is imported) after 23:59 local time of its exam day at its site is late:
    /// stored and receipted, but held back from processing until an operator decides.
    /// A site in an imported exam-day plan is judged in the plan's zone; this is the fallback.
    #[serde(default = "default_time_zone")]
    pub time_zone: SiteZone,
    /// Sites whose time zone is not the region's, e.g. `"0901" = "Asia/Yakutsk"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub site_time_zones: BTreeMap<String, SiteZone>,
    /// The share of `data_dir`'s file system, in percent, kept free: below it the center
    /// takes no new packet (each site is told to send it again later) and raises an alert.
    /// The regulations keep 5 % free (`002:8253`).
    #[serde(default = "konvert_replication::disk_floor::default_min_free_percent")]
    pub min_free_percent: f64,
}

/// The regulations' free-space floor for the center's storage, in percent (`002:8253`).
pub use konvert_replication::disk_floor::DEFAULT_MIN_FREE_PERCENT;

fn default_time_zone() -> SiteZone {
    SiteZone::moscow()
}

fn default_records() -> PathBuf {
    "records".into()
}

fn default_authority() -> PathBuf {
    "registry/authority.toml".into()
}

fn default_registry() -> PathBuf {
    "registry/registry.bin".into()
}

fn default_review_window() -> u64 {
    240
}

fn default_max() -> u64 {
    DEFAULT_MAX_PACKET_BYTES
}

fn default_crl() -> PathBuf {
    "pki/stations.crl".into()
}

fn default_max_connections() -> usize {
    1024
}

impl CenterConfig {
    /// Reads and checks a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = konvert_crypto::keyfile::read_text_bounded(path, konvert_crypto::keyfile::MAX_CONFIG_BYTES)?;
        let mut cfg: CenterConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: konvert_replication::toml_error(&e, &text),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.data_dir,
            &mut cfg.records,
            &mut cfg.ca_cert,
            &mut cfg.crl,
            &mut cfg.cert,
            &mut cfg.key,
            &mut cfg.receipt_key,
            &mut cfg.authority,
            &mut cfg.registry,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in [cfg.ca_key.as_mut(), cfg.workstation_key.as_mut()]
            .into_iter()
            .flatten()
        {
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

    /// The time zone of `site`: its own if listed, else the region's.
    pub fn site_zone(&self, site: &str) -> &SiteZone {
        self.site_time_zones.get(site).unwrap_or(&self.time_zone)
    }

    /// The station index beside the revocation list (`stations.toml`).
    pub fn station_index(&self) -> PathBuf {
        self.crl.with_file_name("stations.toml")
    }

    /// Checks what can be checked without starting: keys parse, files exist. (The
    /// revocation list is checked against the CA by `revocation::load_crl`.)
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some(m) = self.ingress_mbit {
            if !(m.is_finite() && (0.1..=1_000_000.0).contains(&m)) {
                return Err(format!(
                    "ingress_mbit = {m} is not a link capacity; give the center's ingress in Mbit/s (e.g. 100), \
                     or remove it to let sites send at their own pace"
                ));
            }
        }
        if !self.receipt_key.is_file() {
            return Err(format!(
                "receipt_key = {} does not exist; run `konvert-center init` first (on the loader's \
                 workstation: copy the receiver's keys/receipt.pub and name it here)",
                self.receipt_key.display()
            ));
        }
        if let Some(key) = self.workstation_key.as_ref().filter(|k| !k.is_file()) {
            return Err(format!(
                "workstation_key = {} does not exist or is not a regular file; run `konvert-center loader \
                 workstation-key` on the loader's workstation, or restore the key from where the officers keep it",
                key.display()
            ));
        }
        konvert_replication::disk_floor::check_min_free_percent(self.min_free_percent)?;
        if self.max_packet_bytes == 0 {
            return Err("max_packet_bytes must be positive".into());
        }
        if self.max_connections == 0 {
            return Err("max_connections must be positive".into());
        }
        Ok(())
    }

    /// What only the receiver needs, to serve: its TLS certificate, key and CA. The
    /// loader's workstation works with a center.toml that names none of them present.
    pub fn check_serving(&self) -> std::result::Result<(), String> {
        for (what, p) in [("ca_cert", &self.ca_cert), ("cert", &self.cert), ("key", &self.key)] {
            if !p.is_file() {
                return Err(format!(
                    "{what} = {} does not exist; run `konvert-center init` first (a loader's workstation, which \
                     never serves, needs none of the TLS files: its commands check what they use)",
                    p.display()
                ));
            }
        }
        Ok(())
    }

    /// Writes the config as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(Error::file(path))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
