//! The center's station index and its revocation list file.
//!
//! Every station certificate the CA issues is recorded in `stations.toml` (beside the
//! revocation list): serial number, site, when issued, and — once revoked — when and why.
//! Revoking marks the index first and then writes the revocation list, both atomically,
//! so a crash between the two leaves the index ahead of the list (`konvert keys renew-crl`
//! catches up), never the other way round. A serial once on the list stays on it: a new
//! list also keeps every serial of the list it replaces.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, SystemTime};

use konvert_crypto::keyfile;
use konvert_replication::pki::{verify_crl, Ca, RevokedStation, Serial, VerifiedCrl};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::config::CenterConfig;
use crate::{Error, Result};

/// How long a new revocation list is valid.
pub const CRL_VALID_DAYS: i64 = 7;
/// The site recorded for a serial revoked without being in the index (a certificate
/// issued before the index existed).
pub const UNKNOWN_SITE: &str = "?";
/// A lock file older than this is left over from a crashed command and is removed.
const STALE_LOCK: StdDuration = StdDuration::from_secs(30);
/// How long to wait for another command holding the lock.
const LOCK_WAIT: StdDuration = StdDuration::from_secs(10);
/// The largest index file read.
const MAX_INDEX_BYTES: u64 = 16 << 20;

/// One station certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationRecord {
    /// The certificate's serial number (hex).
    pub serial: Serial,
    /// The site it was issued for.
    pub site: String,
    /// When it was issued, Unix seconds (UTC).
    pub issued_at: i64,
    /// When it was revoked, Unix seconds (UTC); absent while valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Why it was revoked, as the officer wrote it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For a relay's certificate: the sites whose packets it may carry (empty for a
    /// site's own station).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carries: Vec<String>,
}

impl StationRecord {
    /// Whether the certificate is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// Which station certificates to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StationSelector {
    /// Every valid certificate of this site.
    Site(String),
    /// The certificate with this serial number.
    Serial(Serial),
}

/// `stations.toml`: every station certificate the CA issued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationIndex {
    /// The certificates, in the order issued.
    #[serde(default, rename = "station")]
    pub stations: Vec<StationRecord>,
}

impl StationIndex {
    /// Reads the index; a missing file is an empty index.
    pub fn load(path: &Path) -> Result<StationIndex> {
        if !path.exists() {
            return Ok(StationIndex::default());
        }
        let bytes = keyfile::read_bounded(path, MAX_INDEX_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Config {
            path: path.to_owned(),
            message: "the station index is not UTF-8 text".into(),
        })?;
        toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: format!("the station index cannot be read: {e}"),
        })
    }

    /// Writes the index atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# Station certificates issued by this center's CA. Written by konvert; times are Unix seconds.\n{text}"
        );
        keyfile::write_atomic(path, text.as_bytes(), 0o644)?;
        Ok(())
    }

    /// The records `selector` names that are not revoked yet. Errors say why none is.
    pub fn select(&self, selector: &StationSelector) -> Result<Vec<StationRecord>> {
        let matching: Vec<&StationRecord> = self
            .stations
            .iter()
            .filter(|r| match selector {
                StationSelector::Site(site) => r.site.eq_ignore_ascii_case(site),
                StationSelector::Serial(serial) => &r.serial == serial,
            })
            .collect();
        let valid: Vec<StationRecord> = matching
            .iter()
            .filter(|r| !r.is_revoked())
            .map(|r| (*r).clone())
            .collect();
        if !valid.is_empty() {
            return Ok(valid);
        }
        let what = match selector {
            StationSelector::Site(site) => format!("site {site}"),
            StationSelector::Serial(serial) => format!("serial {serial}"),
        };
        match (matching.is_empty(), selector) {
            (true, StationSelector::Serial(serial)) => Ok(vec![StationRecord {
                serial: serial.clone(),
                site: UNKNOWN_SITE.into(),
                issued_at: 0,
                revoked_at: None,
                reason: String::new(),
                carries: Vec::new(),
            }]),
            (true, StationSelector::Site(_)) => Err(Error::Stations(format!(
                "the station index has no certificate for {what}; `konvert keys stations` lists them \
                 (a certificate issued before the index existed is revoked by --serial)"
            ))),
            (false, _) => Err(Error::Stations(format!(
                "every station certificate of {what} is already revoked; nothing to do"
            ))),
        }
    }

    /// Revokes what `selector` names at `now` for `reason`; returns the newly revoked.
    pub fn revoke(
        &mut self,
        selector: &StationSelector,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<StationRecord>> {
        let chosen = self.select(selector)?;
        let at = now.unix_timestamp();
        let mut revoked = Vec::new();
        for mut pick in chosen {
            pick.revoked_at = Some(at);
            pick.reason = reason.trim().to_owned();
            match self.stations.iter_mut().find(|r| r.serial == pick.serial) {
                Some(r) => *r = pick.clone(),
                None => self.stations.push(pick.clone()),
            }
            revoked.push(pick);
        }
        Ok(revoked)
    }

    /// The sites the relay with station id `station` may carry, over its certificates
    /// that are not revoked; `None` if `station` is no relay.
    pub fn carried_by(&self, station: &str) -> Option<Vec<String>> {
        let mut sites: Vec<String> = Vec::new();
        let mut relay = false;
        for r in self
            .stations
            .iter()
            .filter(|r| !r.is_revoked() && !r.carries.is_empty() && r.site.eq_ignore_ascii_case(station))
        {
            relay = true;
            for s in &r.carries {
                if !sites.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                    sites.push(s.clone());
                }
            }
        }
        relay.then_some(sites)
    }

    /// Why `site` is cut off, if it has station certificates and every one is revoked;
    /// `None` while one is valid, or when none is recorded for it (issued before the index
    /// existed: the center cannot tell, and the member's signature still decides).
    pub fn site_cut_off(&self, site: &str) -> Option<String> {
        let own: Vec<&StationRecord> = self
            .stations
            .iter()
            .filter(|r| r.carries.is_empty() && r.site.eq_ignore_ascii_case(site))
            .collect();
        if own.is_empty() || own.iter().any(|r| !r.is_revoked()) {
            return None;
        }
        let revoked: Vec<String> = own
            .iter()
            .map(|r| {
                let at = r
                    .revoked_at
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                    .map_or_else(|| "?".to_owned(), |t| t.date().to_string());
                if r.reason.is_empty() {
                    format!("{} (revoked {at})", r.serial)
                } else {
                    format!("{} (revoked {at}: {})", r.serial, r.reason)
                }
            })
            .collect();
        Some(format!(
            "every station certificate of site {site} is revoked — {}; the center takes nothing from the site, \
             by network or by drive, until the officers enroll a new station for it \
             (`konvert keys enroll-station --site {site}`); then import the drive again",
            revoked.join(", ")
        ))
    }

    /// The revoked certificates, for the revocation list.
    pub fn revoked(&self) -> Vec<RevokedStation> {
        self.stations
            .iter()
            .filter_map(|r| {
                let at = OffsetDateTime::from_unix_timestamp(r.revoked_at?).ok()?;
                Some(RevokedStation {
                    serial: r.serial.clone(),
                    revoked_at: at,
                })
            })
            .collect()
    }
}

/// A lock on the center's station files (index and revocation list) while a command
/// changes them; released on drop.
#[derive(Debug)]
pub struct StationsLock(PathBuf);

impl StationsLock {
    /// Takes the lock beside `index`, waiting for another holder a few seconds.
    pub fn acquire(index: &Path) -> Result<StationsLock> {
        let path = index.with_extension("lock");
        let started = SystemTime::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(StationsLock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|a| a > STALE_LOCK) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed().unwrap_or_default() > LOCK_WAIT {
                        return Err(Error::Stations(format!(
                            "{} is held by another command changing the station certificates; \
                             try again in a minute",
                            path.display()
                        )));
                    }
                    std::thread::sleep(StdDuration::from_millis(50));
                }
                Err(e) => return Err(Error::File { path, source: e }),
            }
        }
    }
}

impl Drop for StationsLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Records a newly issued station certificate in the index at `index_path`.
pub fn record_issued(index_path: &Path, serial: &Serial, site: &str, now: OffsetDateTime) -> Result<()> {
    record_issued_relay(index_path, serial, site, &[], now)
}

/// Records a newly issued station certificate of a relay that may carry `carries` (a
/// site's own station when empty).
pub fn record_issued_relay(
    index_path: &Path,
    serial: &Serial,
    station: &str,
    carries: &[String],
    now: OffsetDateTime,
) -> Result<()> {
    let _lock = StationsLock::acquire(index_path)?;
    let mut index = StationIndex::load(index_path)?;
    index.stations.push(StationRecord {
        serial: serial.clone(),
        site: station.to_owned(),
        issued_at: now.unix_timestamp(),
        revoked_at: None,
        reason: String::new(),
        carries: carries.to_vec(),
    });
    index.save(index_path)
}

/// The running center's view of which stations are relays and which sites each carries,
/// and of sites whose every station is revoked, read from the station index and read
/// again whenever the file changes (an officer enrolled or revoked a station or relay).
/// An index that cannot be read keeps the last good view.
#[derive(Debug)]
pub struct RelayIndex {
    path: PathBuf,
    cached: std::sync::Mutex<(Option<SystemTime>, StationIndex)>,
}

impl RelayIndex {
    /// The view of the index at `path` (read on first use).
    pub fn new(path: PathBuf) -> Self {
        RelayIndex {
            path,
            cached: std::sync::Mutex::new((None, StationIndex::default())),
        }
    }

    /// The sites the relay `station` may carry now; `None` if it is no relay.
    pub fn carried_by(&self, station: &str) -> Option<Vec<String>> {
        self.with_index(|index| index.carried_by(station))
    }

    /// Why `site` is cut off, if every station certificate issued for it is revoked now;
    /// `None` while one is valid (or none was recorded: issued before the index existed).
    pub fn site_cut_off(&self, site: &str) -> Option<String> {
        self.with_index(|index| index.site_cut_off(site))
    }

    fn with_index<T>(&self, f: impl FnOnce(&StationIndex) -> Option<T>) -> Option<T> {
        let Ok(mut cached) = self.cached.lock() else {
            return None;
        };
        let modified = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != cached.0 {
            match StationIndex::load(&self.path) {
                Ok(index) => *cached = (modified, index),
                Err(e) => tracing::warn!("the station index cannot be read; the last good view is used: {e}"),
            }
        }
        f(&cached.1)
    }
}

/// The CA (certificate and key) of the center `cfg` describes: the key from `ca_key`, or
/// `ca.key` beside the CA certificate.
pub fn load_ca(cfg: &CenterConfig) -> Result<Ca> {
    let key_path = cfg
        .ca_key
        .clone()
        .unwrap_or_else(|| cfg.ca_cert.with_file_name("ca.key"));
    let cert = fs::read_to_string(&cfg.ca_cert).map_err(Error::file(&cfg.ca_cert))?;
    let key = fs::read_to_string(&key_path).map_err(|e| {
        Error::Stations(format!(
            "the CA key {} cannot be read ({e}); the revocation list is signed with it — \
             bring the CA key or set ca_key in center.toml",
            key_path.display()
        ))
    })?;
    Ok(Ca::from_pem(&cert, &key)?)
}

/// Signs and writes (atomically) a revocation list valid for [`CRL_VALID_DAYS`] from `now`
/// naming every revoked certificate of the index and of the current list. The caller
/// holds the [`StationsLock`] (or is creating the center).
pub fn write_crl(cfg: &CenterConfig, ca: &Ca, now: OffsetDateTime) -> Result<VerifiedCrl> {
    let index = StationIndex::load(&cfg.station_index())?;
    let mut revoked = index.revoked();
    if let Ok(bytes) = fs::read(&cfg.crl) {
        if let Ok(current) = verify_crl(&ca.cert_pem, &bytes) {
            for r in current.revoked_stations() {
                if !revoked.iter().any(|x| x.serial == r.serial) {
                    revoked.push(r);
                }
            }
        }
    }
    revoked.sort_by(|a, b| a.serial.cmp(&b.serial));
    let crl = ca.revocation_list(&revoked, now, now + Duration::days(CRL_VALID_DAYS))?;
    keyfile::write_atomic(&cfg.crl, crl.pem.as_bytes(), 0o644)?;
    Ok(verify_crl(&ca.cert_pem, crl.pem.as_bytes())?)
}

/// What [`revoke`] did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The certificates revoked now.
    pub stations: Vec<StationRecord>,
    /// The new revocation list.
    pub crl: VerifiedCrl,
}

/// Revokes what `selector` names in the center `cfg` describes: index first, then the
/// revocation list, which a running center picks up within a second.
pub fn revoke(cfg: &CenterConfig, selector: &StationSelector, reason: &str, now: OffsetDateTime) -> Result<Revoked> {
    let ca = load_ca(cfg)?;
    let index_path = cfg.station_index();
    let _lock = StationsLock::acquire(&index_path)?;
    let mut index = StationIndex::load(&index_path)?;
    let stations = index.revoke(selector, reason, now)?;
    index.save(&index_path)?;
    let crl = write_crl(cfg, &ca, now)?;
    Ok(Revoked { stations, crl })
}

/// Signs a fresh revocation list with the same revoked certificates (before the old one
/// expires, to write the first one for a center made before revocation existed, or to
/// put right a lost record of the list in force) and records it as in force.
pub fn renew_crl(cfg: &CenterConfig, now: OffsetDateTime) -> Result<VerifiedCrl> {
    let ca = load_ca(cfg)?;
    let _lock = StationsLock::acquire(&cfg.station_index())?;
    let crl = write_crl(cfg, &ca, now)?;
    // The fresh list names every revocation of the index, so it is recorded as in force
    // at once: this is how a center whose record was lost or damaged is put right. A
    // data folder not made yet gets its record on the center's first start.
    if cfg.data_dir.is_dir() {
        konvert_replication::crl_floor::CrlFloor::in_dir(&cfg.data_dir).raise_complete(&crl)?;
    }
    Ok(crl)
}

#[cfg(test)]
#[path = "stations_tests.rs"]
mod tests;
