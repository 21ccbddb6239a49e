//! The station revocation list at a relay. A school's station reaches the center only
//! through its relay, so the center never sees its certificate: the relay must refuse a
//! revoked station itself. The forwarder watches the list upstream (`WatchRevocations`),
//! keeps each newer one that verifies against the center's CA in `stations.crl` in the
//! relay's data folder, and the relay then puts it in force: a new server config for new
//! handshakes, and every live connection of a station now on it closed at once. A relay
//! further down gets the list from this one the same way.
//!
//! As at the center, rustls enforces the list's next-update date: a relay cut off from
//! the center until its list expires refuses every station, which says plainly that it
//! has lost touch, rather than carrying for stations it can no longer judge. The center
//! re-signs its list days before that.
//!
//! A relay does not start without a list (`enroll-relay` brings the center's), and it
//! remembers the newest list it put in force outside the list file ([`CrlFloor`]): an
//! older list put back in `stations.crl` is refused at start rather than undoing
//! revocations until the center is reached again. A data folder the relay ran in (its
//! outbox is there) without that record is refused too. The limit: a relay has no station
//! index, so an old list restored together with an old record is not caught until the
//! relay reaches the center and takes its newer list.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use konvert_replication::crl_floor::CrlFloor;
use konvert_replication::driver::{self, SignedUpdate};
use konvert_replication::live::LiveStations;
use konvert_replication::pki::{self, IssuedCert, VerifiedCrl};
use konvert_replication::tls;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::metrics::RelayMetrics;
use crate::push::PushEvent;
use crate::{Error, Result};

/// The list's file in the relay's data folder.
pub const FILE: &str = "stations.crl";
/// The largest list read or taken.
const MAX_CRL_BYTES: u64 = 64 << 20;

/// Reads and verifies the list kept at `path` against the CA; `None` if there is none.
pub(crate) fn load(ca_pem: &str, path: &Path) -> Result<Option<VerifiedCrl>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = konvert_crypto::keyfile::read_bounded(path, MAX_CRL_BYTES)?;
    let crl = pki::verify_crl(ca_pem, &bytes).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: format!(
            "the kept station revocation list does not verify against the center's CA: {e}; copy the center's \
             current list (its `crl` file) here in its place"
        ),
    })?;
    Ok(Some(crl))
}

/// Folders only a relay that ran before has in its data folder (its outbox and its
/// staging inbox): beside them a missing floor means it was removed, not that the relay
/// is new. Enrolment brings only `stations.crl`, so a fresh relay has neither.
const STATE_DIRS: [&str; 2] = ["outbound", "inbound"];

/// Whether the relay's data folder already holds state (the relay ran here before).
/// Looked at before the outbox is opened, which creates it.
pub(crate) fn data_has_state(data_dir: &Path) -> bool {
    STATE_DIRS.iter().any(|d| data_dir.join(d).exists())
}

/// The kept list at `path` for a relay about to serve: it must exist (a relay without one
/// would check no revocation at all) and must not be older than a list this relay already
/// put in force (remembered in `data_dir`, outside the list file; that record must be
/// there if the folder `had_state`, see [`data_has_state`]); it is then remembered as in
/// force.
///
/// A relay has no station index, so unlike the center it cannot tell an old list put
/// back together with an old record (both copied from a backup); it refuses only what
/// the record shows, and takes the center's newer list as soon as it connects.
pub(crate) fn load_to_serve(ca_pem: &str, path: &Path, data_dir: &Path, had_state: bool) -> Result<VerifiedCrl> {
    let crl = check_kept(ca_pem, path, data_dir, had_state)?;
    CrlFloor::in_dir(data_dir).raise(&crl)?;
    Ok(crl)
}

/// The kept list at `path`, checked as [`load_to_serve`] checks it, without recording it
/// (for `check-config`).
fn check_kept(ca_pem: &str, path: &Path, data_dir: &Path, had_state: bool) -> Result<VerifiedCrl> {
    let crl = load(ca_pem, path)?.ok_or_else(|| Error::Config {
        path: path.to_owned(),
        message: "the relay holds no station revocation list, so it could not refuse a revoked station; \
                  it does not start without one. Copy the center's list here (the center's `crl` file, \
                  e.g. pki/stations.crl), or enroll the relay again with `konvert keys enroll-relay`, \
                  which brings it along"
            .into(),
    })?;
    let floor = CrlFloor::in_dir(data_dir);
    floor.require(had_state)?;
    floor.check(&crl, path)?;
    Ok(crl)
}

/// The station revocation list relay `cfg` would serve with, checked as at its start
/// (present, verifying against the center's CA, not older than one it put in force).
pub fn check_config(cfg: &super::RelayConfig) -> Result<VerifiedCrl> {
    let ca_pem = std::fs::read_to_string(&cfg.upstream.ca_cert).map_err(Error::file(&cfg.upstream.ca_cert))?;
    check_kept(
        &ca_pem,
        &cfg.data_dir.join(FILE),
        &cfg.data_dir,
        data_has_state(&cfg.data_dir),
    )
}

/// Watches the list upstream on `conn` until the connection ends, keeping each newer one
/// that verifies at `path` and telling `on_event`.
pub(crate) async fn watch_upstream(
    conn: quinn::Connection,
    ca_cert: PathBuf,
    path: PathBuf,
    on_event: Arc<dyn Fn(PushEvent) + Send + Sync>,
) {
    let ca_pem = match std::fs::read_to_string(&ca_cert) {
        Ok(p) => p,
        Err(e) => {
            warn!(
                "cannot read {}: {e}; station revocations are not taken",
                ca_cert.display()
            );
            return;
        }
    };
    let mut have = match load(&ca_pem, &path) {
        Ok(crl) => crl.map_or(0, |c| c.number),
        Err(e) => {
            warn!("{e}");
            0
        }
    };
    let watched = driver::watch_revocations(&conn, have, |der| {
        if der.len() as u64 > MAX_CRL_BYTES {
            warn!(
                "a station revocation list of {} bytes from upstream was refused",
                der.len()
            );
            return Ok(());
        }
        let crl = match pki::verify_crl(&ca_pem, &der) {
            Ok(c) => c,
            Err(e) => {
                warn!("a station revocation list from upstream was refused: {e}");
                return Ok(());
            }
        };
        let number = crl.number;
        if number <= have {
            return Ok(());
        }
        if let Err(e) = konvert_crypto::keyfile::write_atomic(&path, &der, 0o644) {
            warn!("cannot keep the station revocation list at {}: {e}", path.display());
            return Ok(());
        }
        have = number;
        on_event(PushEvent::Revocations {
            signed_at_unix: u64::try_from(crl.this_update.unix_timestamp()).unwrap_or(0),
            revoked: crl.revoked.len(),
        });
        Ok(())
    })
    .await;
    if let Err(e) = watched {
        debug!("revocation watch ended: {e}");
    }
}

/// Puts the kept list in force at a serving relay.
pub(crate) struct Enforcer {
    endpoint: quinn::Endpoint,
    ca_pem: String,
    cert: IssuedCert,
    path: PathBuf,
    live: Arc<LiveStations>,
    /// What relays further down are told is in force.
    feed: watch::Sender<Option<Arc<SignedUpdate>>>,
    in_force: Mutex<u64>,
    /// The newest list put in force, remembered for restarts.
    floor: CrlFloor,
    metrics: Arc<RelayMetrics>,
}

impl Enforcer {
    /// The enforcer of a relay whose endpoint serves with `crl` (the kept list at start),
    /// remembering what it puts in force in `data_dir`.
    pub(crate) fn new(
        endpoint: quinn::Endpoint,
        ca_pem: String,
        cert: IssuedCert,
        path: PathBuf,
        crl: &VerifiedCrl,
        data_dir: PathBuf,
        metrics: Arc<RelayMetrics>,
    ) -> (Arc<Enforcer>, driver::RevocationFeed) {
        metrics
            .crl_expires
            .store(crl.next_update.unix_timestamp(), Ordering::Relaxed);
        let revoked = crl.revoked.keys().cloned().collect();
        let live = Arc::new(LiveStations::new(revoked, Box::new(|_| {})));
        let update = Arc::new(crl.as_update());
        let in_force = update.version;
        let (feed, watch) = watch::channel(Some(update));
        let enforcer = Enforcer {
            endpoint,
            ca_pem,
            cert,
            path,
            live,
            feed,
            in_force: Mutex::new(in_force),
            floor: CrlFloor::in_dir(&data_dir),
            metrics,
        };
        (Arc::new(enforcer), watch)
    }

    /// The live downstream connections.
    pub(crate) fn live(&self) -> Arc<LiveStations> {
        self.live.clone()
    }

    /// Puts the kept list in force if it is newer than the one in force; returns how many
    /// live connections it closed.
    pub(crate) fn apply(&self) -> Result<usize> {
        let Some(crl) = load(&self.ca_pem, &self.path)? else {
            return Ok(0);
        };
        let update = crl.as_update();
        let mut in_force = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        if update.version <= *in_force {
            return Ok(0);
        }
        // Remembered before it is relied on: a restart then refuses anything older.
        self.floor.raise(&crl)?;
        let server = tls::server_config(&self.ca_pem, &self.cert, std::slice::from_ref(&crl.der))?;
        self.endpoint.set_server_config(Some(server));
        let closed = self.live.enforce(&crl.revoked.keys().cloned().collect());
        *in_force = update.version;
        self.feed.send_replace(Some(Arc::new(update)));
        self.metrics
            .crl_expires
            .store(crl.next_update.unix_timestamp(), Ordering::Relaxed);
        info!(
            revoked = crl.revoked.len(),
            next_update = %crl.next_update,
            closed,
            "station revocation list in force at the relay"
        );
        Ok(closed)
    }
}
