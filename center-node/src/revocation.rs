//! Enforcing station revocation in the running center.
//!
//! The revocation list file (`crl` in center.toml) is checked against the CA at start
//! ([`load_crl`]) and watched: a changed file that verifies becomes a new server config
//! (new handshakes check it) and every live connection of a station now on the list is
//! closed at once with [`tls::CLOSE_REVOKED`], since a new config does not touch
//! connections already made. A file that does not verify (wrong CA, damaged, older than
//! the one in force) is logged and ignored; the list in force stays. The newest list put
//! in force is remembered outside the list file ([`CrlFloor`]), so a restarted center
//! refuses to start with an older one instead of undoing revocations; since that record
//! could itself be deleted, every list is also checked against the station index
//! (`pki/stations.toml`, written before the list) and refused if it lacks a serial the
//! index marks revoked, and a data folder the center ran in without the record is refused.
//!
//! Expiry: rustls enforces the list's next-update date, so an expired list refuses every
//! station. With `ca_key` in center.toml the center signs a fresh list (same serials) when
//! less than [`RENEW_BEFORE_DAYS`] days remain; without it, it logs an error every hour
//! from then on. Either way `konvert_station_crl_next_update_timestamp_seconds` is
//! exported for an alert rule.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_replication::crl_floor::CrlFloor;
use konvert_replication::driver::{RevocationFeed, SignedUpdate};
use konvert_replication::live::LiveStations;
use konvert_replication::pki::{self, IssuedCert, VerifiedCrl};
use konvert_replication::tls;
use prometheus::{IntCounter, IntGauge, Registry};
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::CenterConfig;
use crate::{stations, Error, Result};

/// How often the list file is looked at.
const POLL: StdDuration = StdDuration::from_millis(500);
/// The running center re-signs the list when fewer days than this remain.
pub const RENEW_BEFORE_DAYS: i64 = 3;
/// Without the CA key, how often the coming expiry is logged.
const WARN_EVERY: Duration = Duration::hours(1);
/// The largest list file read.
const MAX_CRL_BYTES: u64 = 64 << 20;

/// Reads the revocation list file of `cfg` and checks it against the CA; an expired list
/// is returned (it refuses every station) and logged.
pub fn load_crl(cfg: &CenterConfig) -> Result<VerifiedCrl> {
    let bytes = read_crl_file(cfg)?;
    let ca_pem = std::fs::read_to_string(&cfg.ca_cert).map_err(Error::file(&cfg.ca_cert))?;
    let crl = pki::verify_crl(&ca_pem, &bytes).map_err(|e| Error::Config {
        path: cfg.crl.clone(),
        message: e.to_string(),
    })?;
    if crl.is_expired(OffsetDateTime::now_utc()) {
        error!(
            next_update = %crl.next_update,
            "the station revocation list has expired: every station is refused until a new one is signed \
             (`konvert keys renew-crl --center DIR`)"
        );
    }
    Ok(crl)
}

/// Files only a center that ran before has in its data folder: beside them a missing
/// floor means it was removed, not that the center is new.
const STATE_FILES: [&str; 2] = ["inbox.sled", crate::service::AUDIT_LOG];

/// Whether the center's data folder already holds state (the center ran here before).
/// Looked at before the inbox is opened, which creates it.
pub fn data_has_state(cfg: &CenterConfig) -> bool {
    STATE_FILES.iter().any(|f| cfg.data_dir.join(f).exists())
}

/// [`load_crl`] for serving: also refused if it lacks a station the index marks revoked,
/// if it is older than a list this center already put in force (remembered in
/// `data_dir`, outside the list file, so a restart cannot put an old list back), or if
/// that record is missing from a data folder that `had_state` ([`data_has_state`],
/// looked at before the inbox was opened); then remembered as in force.
pub fn load_crl_to_serve(cfg: &CenterConfig, had_state: bool) -> Result<VerifiedCrl> {
    let crl = load_crl(cfg)?;
    check_floor(cfg, &crl, had_state)?;
    CrlFloor::in_dir(&cfg.data_dir).raise(&crl)?;
    Ok(crl)
}

/// Whether the list file may be put in force: it names every station the index marks
/// revoked, it is not older than one this center already put in force, and that record
/// is there if the data folder `has_state` (for `check-config` and at start).
pub fn check_floor(cfg: &CenterConfig, crl: &VerifiedCrl, has_state: bool) -> Result<()> {
    // Most telling first: an older list than the record, then a serial the index has.
    let floor = CrlFloor::in_dir(&cfg.data_dir);
    floor.check(crl, &cfg.crl)?;
    check_index(cfg, crl)?;
    Ok(floor.require(has_state)?)
}

/// Refuses `crl` if it lacks a serial the station index (`pki/stations.toml`) marks
/// revoked: the index is written before the list, so such a list is an old one put back
/// and would let a revoked station in again.
fn check_index(cfg: &CenterConfig, crl: &VerifiedCrl) -> Result<()> {
    let index = stations::StationIndex::load(&cfg.station_index())?;
    let missing: Vec<String> = index
        .revoked()
        .into_iter()
        .filter(|r| !crl.revoked.contains_key(&r.serial))
        .map(|r| r.serial.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Config {
        path: cfg.crl.clone(),
        message: format!(
            "this station revocation list does not name station certificate(s) {} that the station index {} \
             marks revoked; it is an old list and would let a revoked station in again, so it is refused. \
             Sign a fresh list with every revocation: `konvert keys renew-crl --center DIR`",
            missing.join(", "),
            cfg.station_index().display()
        ),
    })
}

fn read_crl_file(cfg: &CenterConfig) -> Result<Vec<u8>> {
    if !cfg.crl.exists() {
        return Err(Error::Config {
            path: cfg.crl.clone(),
            message: "the station revocation list does not exist; the center will not accept stations \
                      without one — write it with `konvert keys renew-crl --center DIR`"
                .into(),
        });
    }
    Ok(konvert_crypto::keyfile::read_bounded(&cfg.crl, MAX_CRL_BYTES)?.to_vec())
}

/// The revocation metrics, registered in the center's registry.
#[derive(Clone)]
struct RevocationMetrics {
    closed: IntCounter,
    next_update: IntGauge,
    revoked: IntGauge,
    reload_failures: IntCounter,
}

impl RevocationMetrics {
    fn register(registry: &Registry) -> Result<Self> {
        let m = |e: prometheus::Error| Error::Metrics(e.to_string());
        let closed = IntCounter::new(
            "konvert_station_connections_revoked_total",
            "Live station connections closed because their certificate was revoked.",
        )
        .map_err(m)?;
        let next_update = IntGauge::new(
            "konvert_station_crl_next_update_timestamp_seconds",
            "When the station revocation list in force expires (Unix time); after that every station is refused.",
        )
        .map_err(m)?;
        let revoked = IntGauge::new(
            "konvert_station_crl_revoked",
            "Station certificates on the revocation list in force.",
        )
        .map_err(m)?;
        let reload_failures = IntCounter::new(
            "konvert_station_crl_reload_failures_total",
            "Changed revocation list files that were not put in force (bad signature, damaged, older).",
        )
        .map_err(m)?;
        registry.register(Box::new(closed.clone())).map_err(m)?;
        registry.register(Box::new(next_update.clone())).map_err(m)?;
        registry.register(Box::new(revoked.clone())).map_err(m)?;
        registry.register(Box::new(reload_failures.clone())).map_err(m)?;
        Ok(RevocationMetrics {
            closed,
            next_update,
            revoked,
            reload_failures,
        })
    }

    fn in_force(&self, crl: &VerifiedCrl) {
        self.next_update.set(crl.next_update.unix_timestamp());
        self.revoked.set(i64::try_from(crl.revoked.len()).unwrap_or(i64::MAX));
    }
}

/// The revocation watcher of a running center; stops when dropped.
pub struct Revocation {
    live: Arc<LiveStations>,
    feed: RevocationFeed,
    task: JoinHandle<()>,
}

impl Revocation {
    /// The live connection registry.
    pub fn live(&self) -> Arc<LiveStations> {
        self.live.clone()
    }

    /// The list in force, as it changes: what relays are passed on.
    pub fn feed(&self) -> RevocationFeed {
        self.feed.clone()
    }
}

impl Drop for Revocation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the watcher needs to build server configs.
struct Watch {
    cfg: CenterConfig,
    endpoint: quinn::Endpoint,
    ca_pem: String,
    cert: IssuedCert,
    live: Arc<LiveStations>,
    metrics: RevocationMetrics,
    current: VerifiedCrl,
    last_bytes: Vec<u8>,
    last_warned: Option<OffsetDateTime>,
    audit: Option<Arc<AuditLog>>,
    /// What relays are told is in force.
    feed: watch::Sender<Option<Arc<SignedUpdate>>>,
}

/// Starts watching the revocation list of `cfg`; `crl` (from [`load_crl`]) is in force in
/// `endpoint`'s server config already.
pub fn start(
    cfg: &CenterConfig,
    endpoint: quinn::Endpoint,
    ca_pem: String,
    cert: IssuedCert,
    crl: VerifiedCrl,
    registry: &Registry,
    audit: Option<Arc<AuditLog>>,
) -> Result<Revocation> {
    let metrics = RevocationMetrics::register(registry)?;
    metrics.in_force(&crl);
    // Relays enforce the list too: it is passed on to them as it comes into force.
    let (feed, watching) = watch::channel(Some(Arc::new(crl.as_update())));
    let closed = metrics.closed.clone();
    let live = Arc::new(LiveStations::new(
        crl.revoked.keys().cloned().collect(),
        Box::new(move |_| closed.inc()),
    ));
    let mut watch = Watch {
        cfg: cfg.clone(),
        endpoint,
        ca_pem,
        cert,
        live: live.clone(),
        metrics,
        // Empty: the first poll reads the file again, so a change made while starting
        // is not missed (the same list put in force twice is harmless).
        last_bytes: Vec::new(),
        current: crl,
        last_warned: None,
        audit,
        feed,
    };
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            watch.poll().await;
        }
    });
    Ok(Revocation {
        live,
        feed: watching,
        task,
    })
}

impl Watch {
    async fn poll(&mut self) {
        match read_crl_file(&self.cfg) {
            Ok(bytes) if bytes != self.last_bytes => {
                self.last_bytes = bytes;
                if let Err(e) = self.reload() {
                    self.metrics.reload_failures.inc();
                    error!(
                        file = %self.cfg.crl.display(),
                        "the changed station revocation list was NOT put in force; the previous one stays: {e}"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !self.last_bytes.is_empty() {
                    self.last_bytes.clear();
                    self.metrics.reload_failures.inc();
                    error!("the station revocation list cannot be read; the previous one stays in force: {e}");
                }
            }
        }
        self.mind_expiry().await;
    }

    /// Verifies the file just read and puts it in force.
    fn reload(&mut self) -> Result<()> {
        let crl = pki::verify_crl(&self.ca_pem, &self.last_bytes)?;
        check_index(&self.cfg, &crl)?;
        if crl.number < self.current.number {
            return Err(Error::Stations(format!(
                "it was signed at {}, before the list in force ({}); an old list would undo revocations",
                crl.this_update, self.current.this_update
            )));
        }
        // Remembered before it is relied on: a restart then refuses anything older.
        CrlFloor::in_dir(&self.cfg.data_dir).raise(&crl)?;
        let server = tls::server_config(&self.ca_pem, &self.cert, std::slice::from_ref(&crl.der))?;
        self.endpoint.set_server_config(Some(server));
        let closed = self.live.enforce(&crl.revoked.keys().cloned().collect());
        self.feed.send_replace(Some(Arc::new(crl.as_update())));
        self.metrics.in_force(&crl);
        if let Some(audit) = &self.audit {
            for serial in crl.revoked.keys().filter(|s| !self.current.revoked.contains_key(s)) {
                let detail = format!("revocation list in force; {closed} live connection(s) closed");
                if let Err(e) = audit.append("center", AuditAction::StationRevoke, &serial.to_string(), &detail) {
                    error!("the audit log cannot be written: {e}");
                }
            }
        }
        info!(
            revoked = crl.revoked.len(),
            next_update = %crl.next_update,
            closed,
            "station revocation list in force"
        );
        if crl.is_expired(OffsetDateTime::now_utc()) {
            error!(
                next_update = %crl.next_update,
                "the new station revocation list has already expired: every station is refused"
            );
        }
        self.current = crl;
        Ok(())
    }

    /// Re-signs the list before it expires when the CA key is at hand, else warns.
    async fn mind_expiry(&mut self) {
        let now = OffsetDateTime::now_utc();
        if self.current.next_update - now > Duration::days(RENEW_BEFORE_DAYS) {
            return;
        }
        if self.last_warned.is_some_and(|t| now - t < WARN_EVERY) {
            return;
        }
        self.last_warned = Some(now);
        let why = match self.cfg.ca_key.as_ref().filter(|p| p.is_file()) {
            Some(_) => {
                let cfg = self.cfg.clone();
                match tokio::task::spawn_blocking(move || stations::renew_crl(&cfg, now)).await {
                    Ok(Ok(crl)) => {
                        info!(next_update = %crl.next_update, "station revocation list re-signed before it expires");
                        // The file changed: the next poll puts it in force.
                        return;
                    }
                    Ok(Err(e)) => format!("re-signing it failed: {e}"),
                    Err(e) => format!("re-signing it failed: {e}"),
                }
            }
            None => "the center does not hold the CA key (ca_key in center.toml)".to_owned(),
        };
        error!(
            next_update = %self.current.next_update,
            "the station revocation list expires soon and then every station is refused; {why} — \
             sign a new one with `konvert keys renew-crl --center DIR`"
        );
    }
}

#[cfg(test)]
#[path = "revocation_tests.rs"]
mod tests;
