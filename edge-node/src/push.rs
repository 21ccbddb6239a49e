//! Pushing the outbox: connect with the station certificate, send every packet that has
//! no receipt yet (several in flight), store each verified receipt, and reconnect on
//! failure with backoff until everything is delivered or the wait runs out.
//!
//! The same push runs at a site (to the center, or to the relay the site sends through)
//! and at a relay (forwarding what it holds to the next relay or the center): a [`Link`]
//! says where to connect and whose receipts count — always the center's receipt key. A
//! relay's `Held` leaves the packet pending, to be offered again after a backoff.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use konvert_protocol::push::{PushPlan, PushSession, Retry, SendOutcome, SessionEnd, Step};
use konvert_replication::driver::{self, Outcome};
use konvert_replication::inbox::SEGMENT;
use konvert_replication::{pki, tls, Offer, Outbox, OutboxEntry, RejectReason};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::cli::now_unix_ms;
use crate::config::{PushTuning, SiteConfig};
use crate::{Error, Result};
use konvert_crypto::registry::{RegistryStore, SignedRegistry};

/// What the push reports as it goes.
#[derive(Debug, Clone)]
pub enum PushEvent {
    /// Connected to the center.
    Connected,
    /// Could not connect or lost the connection; will retry.
    Retrying {
        /// What went wrong.
        error: String,
        /// Seconds until the next attempt.
        in_seconds: f64,
    },
    /// Bytes of a packet acknowledged as sent so far.
    Progress {
        /// The packet.
        packet_id: String,
        /// Offset reached.
        offset: u64,
        /// Envelope size.
        size: u64,
    },
    /// A packet was receipted.
    Delivered {
        /// The packet.
        packet_id: String,
        /// Its version.
        version: u32,
    },
    /// A newer key registry from the center was checked and is now in force here.
    Registry {
        /// Its version.
        version: u64,
    },
    /// A relay took a newer station revocation list from upstream (checked against the
    /// center's CA and kept); the relay puts it in force.
    Revocations {
        /// When it was signed (Unix seconds).
        signed_at_unix: u64,
        /// Station certificates on it.
        revoked: usize,
    },
    /// A relay holds the packet durably; the center's receipt has not come back yet. It
    /// stays pending and is offered again.
    Held {
        /// The packet.
        packet_id: String,
        /// The relay's name.
        relay: String,
        /// Where the packet stands upstream.
        detail: String,
    },
    /// The center's bandwidth broker gave this site a new share.
    Share {
        /// Bytes per second this site may send at.
        rate_bytes_per_s: u64,
        /// The center's view of this site's deadline.
        risk: konvert_replication::schedule::DeadlineRisk,
    },
    /// Where the whole backlog stands against the deadline (every couple of seconds).
    Schedule {
        /// Bytes still to send, queued and still expected today.
        backlog_bytes: u64,
        /// When the backlog will be through at the measured goodput (or the configured
        /// link speed before any measurement); `None` when nothing moves.
        eta_unix_ms: Option<u64>,
        /// The earliest deadline in the backlog (23:59 local of its exam day).
        deadline_unix_ms: Option<u64>,
        /// The verdict.
        risk: konvert_replication::schedule::DeadlineRisk,
    },
    /// A packet was refused.
    Rejected {
        /// The packet.
        packet_id: String,
        /// Why.
        reason: RejectReason,
        /// Detail from the center.
        detail: String,
    },
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Give up after this long without delivering everything.
    pub max_wait: Duration,
    /// Told about progress.
    pub on_event: Arc<dyn Fn(PushEvent) + Send + Sync>,
    /// While this flag is up, more packets are being sealed: keep the connection and pick
    /// them up as they land in the outbox instead of returning when it is empty.
    pub more_coming: Option<Arc<AtomicBool>>,
    /// Bytes still expected today that are not sealed yet (participants not yet scanned ×
    /// m), kept current by whoever seals: the ETA and the center's broker count them, so
    /// the morning's plan is T = x·m/v before anything is queued.
    pub expected: Option<Arc<Expected>>,
}

/// Bytes a site still expects to seal today, and their deadline.
#[derive(Debug, Default)]
pub struct Expected {
    bytes: std::sync::atomic::AtomicU64,
    deadline_unix_ms: std::sync::atomic::AtomicU64,
}

impl Expected {
    /// Sets what is still expected.
    pub fn set(&self, bytes: u64, deadline_unix_ms: u64) {
        self.deadline_unix_ms.store(deadline_unix_ms, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// (bytes, deadline).
    pub fn get(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.deadline_unix_ms.load(Ordering::Relaxed),
        )
    }
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            max_wait: Duration::from_secs(3600),
            on_event: Arc::new(|_| {}),
            more_coming: None,
            expected: None,
        }
    }
}

impl PushOptions {
    fn more_coming(&self) -> bool {
        self.more_coming.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// Packets receipted in this push.
    pub delivered: usize,
    /// Envelope bytes of the packets receipted in this push.
    pub delivered_bytes: u64,
    /// Packets refused for good: (packet id, reason, detail).
    pub rejected: Vec<(String, RejectReason, String)>,
    /// Connections made.
    pub connections: u32,
    /// UDP payload bytes sent over all connections: what really went on the wire, QUIC's
    /// headers and its own retransmissions included.
    pub wire_bytes: u64,
    /// Bytes QUIC declared lost and sent again, over all connections.
    pub lost_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Where a push connects and whose receipts it takes: the center directly, or a relay on
/// the way to it. Receipts are always checked against the center's receipt key.
#[derive(Debug, Clone)]
pub struct Link {
    /// `host:port` to connect to.
    pub address: String,
    /// The name in the peer's certificate (the center's, or `<relay>.relay.konvert`).
    pub server_name: String,
    /// The site (or relay id) this station speaks for: its certificate's name.
    pub station: String,
    /// The center's CA certificate (PEM).
    pub ca_cert: std::path::PathBuf,
    /// This station's certificate (PEM).
    pub station_cert: std::path::PathBuf,
    /// This station's private key (PEM).
    pub station_key: std::path::PathBuf,
    /// The center's receipt key.
    pub receipt_key: konvert_crypto::VerifyingKey,
    /// Parallelism and retry pacing.
    pub tuning: PushTuning,
    /// Where the station keeps its key registry (watched while connected), if anywhere.
    pub registry_dir: Option<std::path::PathBuf>,
    /// Where a relay keeps the station revocation list (watched while connected).
    pub revocations_file: Option<std::path::PathBuf>,
}

impl Link {
    /// The link of a site's station, as its `site.toml` says.
    pub fn of_site(cfg: &SiteConfig) -> Result<Link> {
        Ok(Link {
            address: cfg.center.address.clone(),
            server_name: cfg.center.server_name.clone(),
            station: cfg.site.as_str().to_owned(),
            ca_cert: cfg.center.ca_cert.clone(),
            station_cert: cfg.center.station_cert.clone(),
            station_key: cfg.center.station_key.clone(),
            receipt_key: cfg.receipt_key()?,
            tuning: cfg.push.clone(),
            registry_dir: Some(cfg.data_dir.clone()),
            revocations_file: None,
        })
    }
}

async fn resolve(address: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| Error::Push(format!("cannot resolve the center address {address}: {e}")))?
        .next()
        .ok_or_else(|| Error::Push(format!("the center address {address} resolves to nothing")))
}

/// Pushes everything in the outbox that has no receipt yet.
pub async fn push(cfg: &SiteConfig, outbox: Arc<Outbox>, opts: PushOptions) -> Result<PushReport> {
    push_via(&Link::of_site(cfg)?, outbox, opts).await
}

/// Pushes everything in the outbox that has no receipt yet over `link`.
///
/// The decisions (what to start, when a session is over, pacing, backoff, giving up) are
/// [`PushSession`]'s; this drives it with the connection, the outbox and the clock.
pub async fn push_via(link: &Link, outbox: Arc<Outbox>, opts: PushOptions) -> Result<PushReport> {
    let started = Instant::now();
    let endpoint = link_endpoint(link)?;
    let center_key = link.receipt_key;
    let mut report = PushReport::default();
    let session: Session = Arc::new(Mutex::new(PushSession::new(
        PushPlan {
            parallel: link.tuning.parallel,
            max_wait_ms: u64::try_from(opts.max_wait.as_millis()).unwrap_or(u64::MAX),
            retry_seconds: link.tuning.retry_seconds,
            scheduler: link.tuning.scheduler_config(),
        },
        now_unix_ms(),
    )));
    loop {
        // While more is coming the station stays connected even with nothing to send,
        // so registry updates and notices reach it at once.
        if outbox.pending()?.is_empty() && !opts.more_coming() {
            break;
        }
        let error = match connect_link(link, &endpoint).await {
            Err(e) => e.to_string(),
            Ok(conn) => {
                (opts.on_event)(PushEvent::Connected);
                lock(&session).connected(now_unix_ms(), &offers(&outbox.pending()?));
                // Side tasks of this connection, in a set that aborts them when the session
                // ends and also when the push itself is dropped (a relay shutting down):
                // none outlives the push holding what its events reach.
                let mut side = JoinSet::new();
                if let Some(dir) = link.registry_dir.clone() {
                    side.spawn(watch_registry(conn.clone(), dir, opts.on_event.clone()));
                }
                if let Some(file) = link.revocations_file.clone() {
                    let ca = link.ca_cert.clone();
                    side.spawn(crate::relay::revocations::watch_upstream(
                        conn.clone(),
                        ca,
                        file,
                        opts.on_event.clone(),
                    ));
                }
                side.spawn(bandwidth(conn.clone(), session.clone(), opts.clone()));
                let ended = send_session(&conn, &outbox, &session, center_key, &opts).await;
                side.abort_all();
                // Why the center closed the connection (a revoked station certificate), in
                // plain words, rather than the failed stream's error.
                let explained = conn
                    .close_reason()
                    .map(|r| tls::explain_connection_error(&r))
                    .filter(|e| matches!(e, konvert_replication::Error::Tls(_)));
                let stats = conn.stats();
                report.wire_bytes += stats.udp_tx.bytes;
                report.lost_bytes += stats.path.lost_bytes;
                conn.close(0u32.into(), b"push done");
                let done = matches!(ended, Ok(SessionEnd::Done));
                lock(&session).connection_ended(stats.udp_tx.bytes >= SEGMENT, done);
                let reason = match ended {
                    Ok(end) => match end.retry_reason() {
                        None => continue,
                        Some(reason) => reason,
                    },
                    Err(e) => e,
                };
                explained.map(|x| x.to_string()).unwrap_or(reason)
            }
        };
        let retry = lock(&session).retry(now_unix_ms());
        let wait = match retry {
            Retry::After(wait) => wait,
            Retry::GiveUp => {
                let left = outbox.pending()?.len();
                return Err(Error::Push(format!(
                    "{left} packet(s) still not delivered after {:.0} s; last error: {error}. \
                     Act on the last error; if the network stays down, use the reserve channel",
                    opts.max_wait.as_secs_f64()
                )));
            }
        };
        warn!("push: {error}; retrying in {:.1} s", wait.as_secs_f64());
        (opts.on_event)(PushEvent::Retrying {
            error,
            in_seconds: wait.as_secs_f64(),
        });
        tokio::time::sleep(wait).await;
    }
    endpoint.close(0u32.into(), b"bye");
    let s = lock(&session);
    (report.delivered, report.delivered_bytes) = s.delivered();
    report.rejected = s.rejected().to_vec();
    report.connections = s.connections();
    drop(s);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The offers of outbox entries.
fn offers(pending: &[OutboxEntry]) -> Vec<Offer> {
    pending.iter().map(|e| e.offer.clone()).collect()
}

/// Runs one connection's session: starts the sends the session asks for (several in
/// flight), tells it how each ended, and sleeps or polls as it says. Returns how the
/// session ended, or `Err(reason)` when the connection or the outbox failed.
async fn send_session(
    conn: &quinn::Connection,
    outbox: &Arc<Outbox>,
    session: &Session,
    center_key: konvert_crypto::VerifyingKey,
    opts: &PushOptions,
) -> std::result::Result<SessionEnd, String> {
    let mut tasks = JoinSet::new();
    loop {
        let pending = outbox.pending().map_err(|e| e.to_string())?;
        let step = lock(session).step(now_unix_ms(), &offers(&pending), opts.more_coming());
        let next = match step {
            Step::End(end) => return Ok(end),
            Step::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            Step::Start(started) => {
                // In the session's order (streams opened first send first); at most
                // `parallel` offers, so looking each up in `pending` is cheap.
                let mut pending = pending;
                for offer in started {
                    let same =
                        |e: &OutboxEntry| e.offer.packet_id == offer.packet_id && e.offer.version == offer.version;
                    let Some(at) = pending.iter().position(same) else {
                        continue;
                    };
                    let entry = pending.swap_remove(at);
                    let (conn, outbox, opts, session) = (conn.clone(), outbox.clone(), opts.clone(), session.clone());
                    tasks.spawn(async move {
                        let outcome = send_one(&conn, &outbox, &session, &entry, center_key, &opts).await;
                        (entry, outcome)
                    });
                }
                continue;
            }
            Step::AwaitSend { poll_ms: Some(ms) } => {
                match tokio::time::timeout(Duration::from_millis(ms), tasks.join_next()).await {
                    Ok(next) => next,
                    Err(_) => continue,
                }
            }
            Step::AwaitSend { poll_ms: None } => tasks.join_next().await,
        };
        // The session counts a send in flight only once its task is spawned.
        let Some(joined) = next else {
            return Err("the push lost track of its sends in flight".into());
        };
        let (entry, outcome) = joined.map_err(|e| format!("send task failed: {e}"))?;
        let outcome = match outcome {
            Ok(Outcome::Delivered(_)) => SendOutcome::Delivered,
            Ok(Outcome::Held { relay, .. }) => SendOutcome::Held { relay },
            Ok(Outcome::Rejected { reason, detail }) => SendOutcome::Rejected { reason, detail },
            Err(e) => {
                tasks.abort_all();
                return Err(e.to_string());
            }
        };
        lock(session).finished(now_unix_ms(), &entry.offer, &outcome);
    }
}

/// Takes every newer key registry the center sends while connected: checked against the
/// officers' signatures and persisted before it counts. A registry that is refused is
/// logged and changes nothing; the watch goes on.
async fn watch_registry(
    conn: quinn::Connection,
    data_dir: std::path::PathBuf,
    on_event: Arc<dyn Fn(PushEvent) + Send + Sync>,
) {
    let store = match RegistryStore::open(&data_dir) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot open the station's key registry store: {e}");
            return;
        }
    };
    let have = match store.trust() {
        Ok(Some(t)) => t.version,
        Ok(None) => {
            // Once per process: every reconnect (and every connection of a process that
            // holds many) would otherwise repeat it.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                warn!(
                    "this station is not anchored in the officers' authority, so it cannot check key registries; \
                       run `konvert-edge registry --anchor authority.toml`"
                );
            }
            return;
        }
        Err(e) => {
            warn!("cannot read the station's registry trust: {e}");
            return;
        }
    };
    let taken = driver::watch_registry(&conn, have, |bytes| {
        let offered = SignedRegistry::from_bytes(&bytes).and_then(|s| store.offer(&s, now_unix_ms()));
        match offered {
            Ok(body) => {
                info!(version = body.version, "key registry taken from the center");
                on_event(PushEvent::Registry { version: body.version });
            }
            Err(e) => warn!("a key registry from the center was refused: {e}"),
        }
        Ok(())
    })
    .await;
    if let Err(e) = taken {
        tracing::debug!("registry watch ended: {e}");
    }
}

/// A QUIC endpoint that presents this site's station certificate and trusts only the
/// center's CA.
pub(crate) fn station_endpoint(cfg: &SiteConfig) -> Result<quinn::Endpoint> {
    link_endpoint(&Link::of_site(cfg)?)
}

/// A QUIC endpoint that presents the link's station certificate and trusts only the
/// center's CA.
pub fn link_endpoint(link: &Link) -> Result<quinn::Endpoint> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(Error::file(p));
    let ca = read(&link.ca_cert)?;
    let station = pki::IssuedCert {
        cert_pem: read(&link.station_cert)?,
        key_pem: read(&link.station_key)?.into(),
    };
    Ok(tls::client_endpoint(tls::client_config(&ca, &station)?)?)
}

impl Link {
    /// Checks the station's files as the first handshake would (the key fits the
    /// certificate, which names this station) and returns warnings about secrets others
    /// can read. `check-config` runs it, so a wrong folder shows before the exam day.
    pub fn check_identity(&self) -> Result<Vec<String>> {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(Error::file(p));
        let ca = read(&self.ca_cert)?;
        let station = pki::IssuedCert {
            cert_pem: read(&self.station_cert)?,
            key_pem: read(&self.station_key)?.into(),
        };
        tls::check_station_identity(&ca, &station, &self.station).map_err(|e| Error::Config {
            path: self.station_cert.clone(),
            message: format!(
                "{e} (station_cert = {}, station_key = {})",
                self.station_cert.display(),
                self.station_key.display()
            ),
        })?;
        Ok(tls::exposed_warning("the station key", &self.station_key)
            .into_iter()
            .collect())
    }
}

/// Connects to the center and says Hello for this site.
pub(crate) async fn connect(cfg: &SiteConfig, endpoint: &quinn::Endpoint) -> Result<quinn::Connection> {
    connect_link(&Link::of_site(cfg)?, endpoint).await
}

/// Connects over `link` and says Hello for its station.
pub async fn connect_link(link: &Link, endpoint: &quinn::Endpoint) -> Result<quinn::Connection> {
    let addr = resolve(&link.address).await?;
    Ok(driver::connect(endpoint, addr, &link.server_name, &link.station).await?)
}

async fn send_one(
    conn: &quinn::Connection,
    outbox: &Outbox,
    session: &Session,
    entry: &OutboxEntry,
    center_key: konvert_crypto::VerifyingKey,
    opts: &PushOptions,
) -> Result<Outcome> {
    let path = outbox.envelope_path(entry);
    let (id, size) = (entry.offer.packet_id.clone(), entry.offer.size);
    let on_event = opts.on_event.clone();
    let progress = {
        let (session, offer) = (session.clone(), entry.offer.clone());
        move |offset| {
            lock(&session).acknowledged(now_unix_ms(), &offer, offset);
            on_event(PushEvent::Progress {
                packet_id: id.clone(),
                offset,
                size,
            })
        }
    };
    let pace = {
        let session = session.clone();
        move |bytes: u64| lock(&session).pace(now_unix_ms(), bytes).map(Duration::from_millis)
    };
    let outcome = driver::send_packet_paced(conn, entry.offer.clone(), center_key, &path, &progress, &pace).await?;
    match &outcome {
        Outcome::Delivered(receipt) => {
            outbox.mark_delivered(&entry.offer, receipt.clone())?;
            info!(packet = %entry.offer.packet_id, version = entry.offer.version, "delivered");
            (opts.on_event)(PushEvent::Delivered {
                packet_id: entry.offer.packet_id.clone(),
                version: entry.offer.version,
            });
        }
        Outcome::Held { relay, detail } => {
            info!(packet = %entry.offer.packet_id, version = entry.offer.version, %relay, "held at relay: {detail}");
            (opts.on_event)(PushEvent::Held {
                packet_id: entry.offer.packet_id.clone(),
                relay: relay.clone(),
                detail: detail.clone(),
            });
        }
        Outcome::Rejected { reason, detail } => {
            if !reason.is_retryable() {
                outbox.mark_rejected(&entry.offer, *reason, detail.clone())?;
            }
            warn!(packet = %entry.offer.packet_id, reason = reason.as_str(), "refused: {}", reason.plain_words());
            (opts.on_event)(PushEvent::Rejected {
                packet_id: entry.offer.packet_id.clone(),
                reason: *reason,
                detail: detail.clone(),
            });
        }
    }
    Ok(outcome)
}

/// The push's session, shared by its send tasks and its bandwidth stream.
type Session = Arc<Mutex<PushSession>>;

fn lock(session: &Session) -> std::sync::MutexGuard<'_, PushSession> {
    // A panicked send task leaves at worst a stale byte count, which the next
    // acknowledgment corrects.
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reports the site's backlog, goodput and deadline to the center and paces to the shares
/// it sends back, for as long as the connection lasts. Against a center without a broker
/// it only keeps the goodput measurement ticking.
async fn bandwidth(conn: quinn::Connection, session: Session, opts: PushOptions) {
    let on_event = opts.on_event.clone();
    // Every report also tells the operator where the backlog stands against 23:59.
    let measure = {
        let session = session.clone();
        move || {
            let expected = opts.expected.as_ref().map(|e| e.get());
            let (status, site) = lock(&session).tick(now_unix_ms(), expected);
            (opts.on_event)(PushEvent::Schedule {
                backlog_bytes: status.backlog_bytes,
                eta_unix_ms: status.eta_unix_ms,
                deadline_unix_ms: status.deadline_unix_ms,
                risk: status.risk,
            });
            site
        }
    };
    let measure = Arc::new(measure);
    let status = measure.clone();
    let on_share = {
        let session = session.clone();
        Arc::new(move |share: konvert_replication::Share| {
            let (rate, risk) = (share.rate_bytes_per_s, share.risk);
            lock(&session).share(now_unix_ms(), share);
            on_event(PushEvent::Share {
                rate_bytes_per_s: rate,
                risk,
            });
        })
    };
    if let Err(e) = driver::exchange_bandwidth(&conn, status, on_share).await {
        tracing::debug!("bandwidth stream ended: {e}");
    }
    // No broker at the center (or the stream failed): the site's own rate applies.
    lock(&session).no_share_coming();
    loop {
        tokio::time::sleep(driver::STATUS_EVERY).await;
        measure();
    }
}
