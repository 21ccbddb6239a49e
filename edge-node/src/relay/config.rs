//! The relay's configuration (`relay.toml`). Relative paths are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use konvert_crypto::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::config::PushTuning;
use crate::push::Link;
use crate::{Error, Result};

/// Default largest envelope a relay takes: 4 GiB, as the center.
const DEFAULT_MAX_PACKET_BYTES: u64 = 4 << 30;

/// `relay.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// This relay's station id: the name in its station certificate (e.g. "mouo-01").
    pub relay: String,
    /// QUIC address downstream stations connect to.
    pub listen: SocketAddr,
    /// Where the relay keeps what it holds (staging, outbox, key registry).
    pub data_dir: PathBuf,
    /// The sites whose packets the relay carries, as the center enrolled it.
    pub carry: Vec<String>,
    /// Relays downstream of this one whose packets (of the carried sites) it takes.
    #[serde(default)]
    pub relays: Vec<String>,
    /// The relay's server certificate (PEM), named `<relay>.relay.konvert`.
    pub server_cert: PathBuf,
    /// Its private key (PEM, 0600).
    pub server_key: PathBuf,
    /// Milliseconds a downstream station waits on its stream for the center's receipt
    /// before it is told `Held` and asks again later.
    #[serde(default = "default_hold_wait_ms")]
    pub hold_wait_ms: u64,
    /// Largest envelope taken, in bytes.
    #[serde(default = "default_max")]
    pub max_packet_bytes: u64,
    /// Keep each envelope after the center's receipt came back. By default it is removed
    /// then (the center holds it durably, the school keeps its own copy, and a municipal
    /// office carries tens of gigabytes a day); the entry and the receipt are kept either
    /// way, so the relay still answers a re-offer with the center's receipt.
    #[serde(default)]
    pub keep_delivered: bool,
    /// Where to serve Prometheus metrics (`/metrics`: what the relay holds, its upstream,
    /// its stations), e.g. "127.0.0.1:9465"; unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// The officers' `authority.toml`: when set, the relay anchors its key registry in it
    /// (once), checks member signatures against the registry, and passes registries on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<PathBuf>,
    /// Where the relay forwards to: the next relay or the center.
    pub upstream: Upstream,
    /// Forwarding tuning.
    #[serde(default)]
    pub push: PushTuning,
    /// The share of `data_dir`'s file system, in percent, kept free: below it the relay
    /// takes no new packet from its stations (each is told to send it again later), keeps
    /// forwarding what it holds and raises an alert. The regulations keep 5 % free
    /// (`002:8253`).
    #[serde(default = "konvert_replication::disk_floor::default_min_free_percent")]
    pub min_free_percent: f64,
}

/// `[upstream]`: the next hop and the center's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `host:port` of the next hop.
    pub address: String,
    /// The name in its certificate: the center's, or `<relay>.relay.konvert`.
    pub server_name: String,
    /// The center's CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// The relay's station certificate (PEM), for its own id.
    pub station_cert: PathBuf,
    /// Its private key (PEM, 0600).
    pub station_key: PathBuf,
    /// The center's receipt key (64 hex digits): only receipts that verify with it count.
    pub receipt_key: String,
}

fn default_hold_wait_ms() -> u64 {
    3000
}

fn default_max() -> u64 {
    DEFAULT_MAX_PACKET_BYTES
}

impl RelayConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = konvert_crypto::keyfile::read_text_bounded(path, konvert_crypto::keyfile::MAX_CONFIG_BYTES)?;
        let mut cfg: RelayConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: konvert_replication::toml_error(&e, &text),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            Some(&mut cfg.data_dir),
            Some(&mut cfg.server_cert),
            Some(&mut cfg.server_key),
            cfg.authority.as_mut(),
            Some(&mut cfg.upstream.ca_cert),
            Some(&mut cfg.upstream.station_cert),
            Some(&mut cfg.upstream.station_key),
        ]
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

    /// Where the relay's outbox (what it holds for the next hop) lives.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbound")
    }

    /// Checks what can be checked offline.
    pub fn check(&self) -> std::result::Result<(), String> {
        konvert_replication::pki::relay_dns_name(&self.relay).map_err(|e| format!("relay: {e}"))?;
        self.receipt_key()
            .map_err(|_| "upstream.receipt_key must be 64 hex digits (the center's receipt key)".to_owned())?;
        if self.carry.is_empty() {
            return Err("carry is empty: list the sites this relay is enrolled to carry".into());
        }
        for site in self.carry.iter().chain(&self.relays) {
            konvert_replication::pki::station_dns_name(site).map_err(|e| format!("carry/relays: {e}"))?;
        }
        self.push.check()?;
        if self.max_packet_bytes == 0 {
            return Err("max_packet_bytes must be positive".into());
        }
        konvert_replication::disk_floor::check_min_free_percent(self.min_free_percent)?;
        if self.hold_wait_ms > 60_000 {
            return Err("hold_wait_ms must be at most 60000: a station must not wait on a stream for minutes".into());
        }
        crate::config::files_exist(
            &[
                ("server_cert", &self.server_cert),
                ("server_key", &self.server_key),
                ("upstream.ca_cert", &self.upstream.ca_cert),
                ("upstream.station_cert", &self.upstream.station_cert),
                ("upstream.station_key", &self.upstream.station_key),
            ],
            "ask the center to enroll this relay (`konvert keys enroll-relay`)",
        )?;
        if let Some(a) = &self.authority {
            crate::config::files_exist(
                &[("authority", a)],
                "bring the officers' authority.toml or remove the line",
            )?;
        }
        Ok(())
    }

    /// The center's receipt key.
    pub fn receipt_key(&self) -> Result<VerifyingKey> {
        Ok(VerifyingKey::from_hex(&self.upstream.receipt_key)?)
    }

    /// Whether the relay carries `site`.
    pub fn carries(&self, site: &str) -> bool {
        self.carry.iter().any(|s| s.eq_ignore_ascii_case(site))
    }

    /// Whether `station` is a relay downstream of this one.
    pub fn is_downstream_relay(&self, station: &str) -> bool {
        self.relays.iter().any(|s| s.eq_ignore_ascii_case(station))
    }

    /// The link the relay forwards over.
    pub fn link(&self) -> Result<Link> {
        Ok(Link {
            address: self.upstream.address.clone(),
            server_name: self.upstream.server_name.clone(),
            station: self.relay.clone(),
            ca_cert: self.upstream.ca_cert.clone(),
            station_cert: self.upstream.station_cert.clone(),
            station_key: self.upstream.station_key.clone(),
            receipt_key: self.receipt_key()?,
            tuning: self.push.clone(),
            // Watched only when the relay is anchored in the officers' authority.
            registry_dir: self.authority.as_ref().map(|_| self.data_dir.clone()),
            revocations_file: Some(self.data_dir.join(super::revocations::FILE)),
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
