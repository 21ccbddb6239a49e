//! Pushing the outbox: connect with the station certificate, send every packet that has
//! no receipt yet (several in flight), store each verified receipt, and reconnect on
//! failure with backoff until everything is delivered or the wait runs out.
//!
//! The same push runs at a site (to the center, or to the relay the site sends through)
//! and at a relay (forwarding what it holds to the next relay or the center): a [`Link`]
//! says where to connect and whose receipts count — always the center's receipt key. A
//! relay's `Held` leaves the packet pending, to be offered again after a backoff.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use konvert_replication::driver::{self, Outcome};
use konvert_replication::inbox::SEGMENT;
use konvert_replication::schedule::{EdgeScheduler, QueuedPacket};
use konvert_replication::{pki, tls, Outbox, OutboxEntry, RejectReason};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::cli::now_unix_ms;
use crate::config::{PushTuning, SiteConfig};
use crate::retry::Backoff;
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

/// How long to wait for newly sealed packets while `more_coming` is up.
const POLL: Duration = Duration::from_millis(20);

/// Pushes everything in the outbox that has no receipt yet.
pub async fn push(cfg: &SiteConfig, outbox: Arc<Outbox>, opts: PushOptions) -> Result<PushReport> {
    push_via(&Link::of_site(cfg)?, outbox, opts).await
}

/// Pushes everything in the outbox that has no receipt yet over `link`.
pub async fn push_via(link: &Link, outbox: Arc<Outbox>, opts: PushOptions) -> Result<PushReport> {
    let started = Instant::now();
    let endpoint = link_endpoint(link)?;
    let center_key = link.receipt_key;
    let mut backoff = Backoff::from_seconds(link.tuning.retry_seconds);
    let mut report = PushReport::default();
    let schedule: Schedule = Arc::new(Mutex::new(EdgeScheduler::new(
        link.tuning.scheduler_config(),
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
                report.connections += 1;
                let delivered_before = report.delivered;
                (opts.on_event)(PushEvent::Connected);
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
                // The first report to the center already counts the whole backlog.
                queue_pending(&mut lock(&schedule), &outbox.pending()?);
                let gate = Arc::new(ShareGate::new());
                side.spawn(bandwidth(conn.clone(), schedule.clone(), gate.clone(), opts.clone()));
                let session = send_session(
                    &conn,
                    &outbox,
                    &Pacing {
                        schedule: schedule.clone(),
                        gate: gate.clone(),
                    },
                    center_key,
                    link.tuning.parallel,
                    &opts,
                    &mut report,
                )
                .await;
                side.abort_all();
                // Why the center closed the connection (a revoked station certificate), in
                // plain words, rather than the failed stream's error.
                let explained = conn
                    .close_reason()
                    .map(|r| tls::explain_connection_error(&r))
                    .filter(|e| matches!(e, konvert_replication::Error::Tls(_)));
                // A connection that got something across was not a failure to connect: the
                // next attempt starts from the shortest wait again, so a link that drops now
                // and then never ends up waiting the longest backoff after every drop.
                let stats = conn.stats();
                report.wire_bytes += stats.udp_tx.bytes;
                report.lost_bytes += stats.path.lost_bytes;
                let progressed = report.delivered > delivered_before || stats.udp_tx.bytes >= SEGMENT;
                conn.close(0u32.into(), b"push done");
                backoff.connection_ended(progressed || session.is_ok());
                match session {
                    Ok(()) => continue,
                    Err(e) => explained.map(|x| x.to_string()).unwrap_or(e),
                }
            }
        };
        if started.elapsed() >= opts.max_wait {
            let left = outbox.pending()?.len();
            return Err(Error::Push(format!(
                "{left} packet(s) still not delivered after {:.0} s; last error: {error}. \
                 Act on the last error; if the network stays down, use the reserve channel",
                opts.max_wait.as_secs_f64()
            )));
        }
        let wait = backoff.failed();
        warn!("push: {error}; retrying in {:.1} s", wait.as_secs_f64());
        (opts.on_event)(PushEvent::Retrying {
            error,
            in_seconds: wait.as_secs_f64(),
        });
        tokio::time::sleep(wait).await;
    }
    endpoint.close(0u32.into(), b"bye");
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Keeps up to `parallel` packets in flight on one connection, topping up from the
/// outbox as packets finish or get sealed. Returns `Ok` when nothing is left to send,
/// `Err(reason)` when the connection failed or the center asked to retry later.
async fn send_session(
    conn: &quinn::Connection,
    outbox: &Arc<Outbox>,
    pacing: &Pacing,
    center_key: konvert_crypto::VerifyingKey,
    parallel: usize,
    opts: &PushOptions,
    report: &mut PushReport,
) -> std::result::Result<(), String> {
    let mut tasks = JoinSet::new();
    let mut in_flight: HashSet<(String, u32)> = HashSet::new();
    // Packets the center asked to retry later are left for the next session.
    let mut deferred: HashSet<(String, u32)> = HashSet::new();
    let mut last_deferral: Option<RejectReason> = None;
    // Packets a relay holds without the center's receipt yet: offered again next session.
    let mut held: HashSet<(String, u32)> = HashSet::new();
    let mut held_at = String::new();
    loop {
        let pending = outbox.pending().map_err(|e| e.to_string())?;
        // The scheduler decides the order (class, then earliest deadline, then arrival) and
        // holds a class whose transfer window has not opened.
        let (mut order, wakeup) = {
            let mut s = lock(&pacing.schedule);
            queue_pending(&mut s, &pending);
            let now = now_unix_ms();
            let order: Vec<String> = s.order(now).into_iter().map(|p| p.id.clone()).collect();
            (order, s.next_wakeup(now))
        };
        let mut by_id: HashMap<String, OutboxEntry> = pending.into_iter().map(|e| (schedule_id(&e.offer), e)).collect();
        for id in order.drain(..) {
            if in_flight.len() >= parallel {
                break;
            }
            let Some(entry) = by_id.remove(&id) else { continue };
            let key = (entry.offer.packet_id.clone(), entry.offer.version);
            if in_flight.contains(&key) || deferred.contains(&key) || held.contains(&key) {
                continue;
            }
            in_flight.insert(key);
            let (conn, outbox, opts, pacing) = (conn.clone(), outbox.clone(), opts.clone(), pacing.clone());
            tasks.spawn(async move {
                let outcome = send_one(&conn, &outbox, &pacing, &entry, center_key, &opts).await;
                (entry, outcome)
            });
        }
        if tasks.is_empty() && deferred.is_empty() && held.is_empty() {
            if let Some(at) = wakeup {
                // Everything left waits for its transfer window: stay connected (registry
                // updates still arrive) and look again when the first window opens.
                let wait = at.saturating_sub(now_unix_ms()).clamp(20, 1000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            }
        }
        if tasks.is_empty() {
            if !held.is_empty() && deferred.is_empty() {
                return Err(format!(
                    "{} packet(s) held at relay {held_at}, waiting for the center's receipt",
                    held.len()
                ));
            }
            if !deferred.is_empty() {
                let why = last_deferral
                    .map(RejectReason::plain_words)
                    .unwrap_or("no reason given");
                return Err(format!(
                    "the center asked to retry {} packet(s) later: {why}",
                    deferred.len()
                ));
            }
            if !opts.more_coming() {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let next = if opts.more_coming() {
            match tokio::time::timeout(POLL, tasks.join_next()).await {
                Ok(next) => next,
                Err(_) => continue,
            }
        } else {
            tasks.join_next().await
        };
        let Some(joined) = next else { continue };
        let (entry, outcome) = joined.map_err(|e| format!("send task failed: {e}"))?;
        in_flight.remove(&(entry.offer.packet_id.clone(), entry.offer.version));
        if matches!(&outcome, Ok(Outcome::Delivered(_)))
            || matches!(&outcome, Ok(Outcome::Rejected { reason, .. }) if !reason.is_retryable())
        {
            lock(&pacing.schedule).finished(now_unix_ms(), &schedule_id(&entry.offer));
        }
        match outcome {
            Ok(Outcome::Delivered(_)) => {
                report.delivered += 1;
                report.delivered_bytes += entry.offer.size;
            }
            Ok(Outcome::Held { relay, .. }) => {
                held_at = relay;
                held.insert((entry.offer.packet_id.clone(), entry.offer.version));
            }
            Ok(Outcome::Rejected { reason, .. }) if reason.is_retryable() => {
                last_deferral = Some(reason);
                deferred.insert((entry.offer.packet_id.clone(), entry.offer.version));
            }
            Ok(Outcome::Rejected { reason, detail }) => {
                report.rejected.push((entry.offer.packet_id.clone(), reason, detail));
            }
            Err(e) => {
                tasks.abort_all();
                return Err(e.to_string());
            }
        }
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
    pacing: &Pacing,
    entry: &OutboxEntry,
    center_key: konvert_crypto::VerifyingKey,
    opts: &PushOptions,
) -> Result<Outcome> {
    let path = outbox.envelope_path(entry);
    let (id, size) = (entry.offer.packet_id.clone(), entry.offer.size);
    let on_event = opts.on_event.clone();
    let sid = schedule_id(&entry.offer);
    let progress = {
        let (schedule, sid) = (pacing.schedule.clone(), sid.clone());
        move |offset| {
            // Bytes handed to the stream: QUIC's flow control keeps them within a window
            // of what the center has read, which is what goodput and the ETA are about.
            lock(&schedule).acknowledged(now_unix_ms(), &sid, offset);
            on_event(PushEvent::Progress {
                packet_id: id.clone(),
                offset,
                size,
            })
        }
    };
    let pace = {
        let (schedule, gate) = (pacing.schedule.clone(), pacing.gate.clone());
        move |bytes: u64| {
            if let Some(wait) = gate.wait() {
                return Some(wait);
            }
            let mut s = lock(&schedule);
            let now = now_unix_ms();
            match s.ready_at(now, bytes) {
                Some(at) if at <= now => {
                    s.grant(now, bytes);
                    None
                }
                Some(at) => Some(Duration::from_millis(at - now)),
                // A share of zero: ask again shortly, a new plan may come.
                None => Some(Duration::from_millis(500)),
            }
        }
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

/// The edge's schedule for one push, shared by its send tasks and its bandwidth stream.
type Schedule = Arc<Mutex<EdgeScheduler>>;

/// What paces a connection's send tasks: the push's schedule and the connection's gate.
#[derive(Clone)]
struct Pacing {
    schedule: Schedule,
    gate: Arc<ShareGate>,
}

fn lock(schedule: &Schedule) -> std::sync::MutexGuard<'_, EdgeScheduler> {
    // A panicked send task leaves at worst a stale byte count, which the next
    // acknowledgment corrects.
    schedule.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues every pending packet the scheduler does not know yet.
fn queue_pending(s: &mut EdgeScheduler, pending: &[OutboxEntry]) {
    for entry in pending {
        let id = schedule_id(&entry.offer);
        if !s.contains(&id) {
            s.push(QueuedPacket {
                id,
                priority: entry.offer.priority,
                deadline_unix_ms: entry.offer.deadline_unix_ms,
                size: entry.offer.size,
                acked: 0,
            });
        }
    }
}

/// The scheduler's name for a packet version.
fn schedule_id(offer: &konvert_replication::Offer) -> String {
    format!("{}.v{}", offer.packet_id, offer.version)
}

/// How long a share from the center is obeyed without a newer one. Judged by this
/// station's clock from when the share arrived: the center's clock is not this one's.
const SHARE_VALID: Duration = Duration::from_secs(30);

/// Reports the site's backlog, goodput and deadline to the center and paces to the shares
/// it sends back, for as long as the connection lasts. Against a center without a broker
/// it only keeps the goodput measurement ticking.
async fn bandwidth(conn: quinn::Connection, schedule: Schedule, gate: Arc<ShareGate>, opts: PushOptions) {
    let on_event = opts.on_event.clone();
    // Every report also tells the operator where the backlog stands against 23:59.
    let measure = {
        let schedule = schedule.clone();
        let opts = opts.clone();
        move || {
            let mut s = lock(&schedule);
            let now = now_unix_ms();
            if let Some(expected) = &opts.expected {
                let (bytes, deadline) = expected.get();
                s.expect(bytes, deadline);
            }
            s.tick(now);
            let status = s.status(now);
            drop(s);
            (opts.on_event)(PushEvent::Schedule {
                backlog_bytes: status.backlog_bytes,
                eta_unix_ms: status.eta_unix_ms,
                deadline_unix_ms: status.deadline_unix_ms,
                risk: status.risk,
            });
            lock(&schedule).site_status(now)
        }
    };
    let measure = Arc::new(measure);
    let status = measure.clone();
    let on_share_gate = gate.clone();
    let on_share = {
        let schedule = schedule.clone();
        Arc::new(move |mut share: konvert_replication::Share| {
            let now = now_unix_ms();
            share.valid_until_unix_ms = now + SHARE_VALID.as_millis() as u64;
            let (rate, risk) = (share.rate_bytes_per_s, share.risk);
            lock(&schedule).set_share(now, share);
            on_share_gate.open();
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
    gate.open();
    loop {
        tokio::time::sleep(driver::STATUS_EVERY).await;
        measure();
    }
}

/// Holds data back at the start of a connection until the center's first share arrives
/// (or the center turns out to have no broker), so a fast site does not flood a center
/// that is rationing its ingress. Never for long: after [`FIRST_SHARE_WAIT`] it opens.
struct ShareGate {
    open: AtomicBool,
    since: Instant,
}

/// The longest a connection waits for its first share.
const FIRST_SHARE_WAIT: Duration = Duration::from_secs(1);

impl ShareGate {
    fn new() -> Self {
        ShareGate {
            open: AtomicBool::new(false),
            since: Instant::now(),
        }
    }

    fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// How long to wait before asking again, while the gate is shut.
    fn wait(&self) -> Option<Duration> {
        if self.open.load(Ordering::Acquire) || self.since.elapsed() >= FIRST_SHARE_WAIT {
            return None;
        }
        Some(Duration::from_millis(10))
    }
}
