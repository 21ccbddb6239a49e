//! Starting the center: the QUIC endpoint, the accept loop, and the metrics endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use konvert_crypto::audit::AuditLog;
use konvert_crypto::keyfile;
use konvert_replication::driver::{BrokerDesk, Drain, FrameLimits};
use konvert_replication::schedule::BrokerConfig;
use konvert_replication::service::ControlSocket;
use konvert_replication::{driver, pki, tls, Inbox};
use tracing::{info, warn};

use crate::config::CenterConfig;
use crate::control;
use crate::intake::{now_ms, CenterIntake};
use crate::metrics::{watch_plans, Metrics};
use crate::plans::PlanDesk;
use crate::registry::{CenterRegistry, WATCH_INTERVAL};
use crate::reserve;
use crate::revocation::{self, Revocation};
use crate::site_watch::SiteWatch;
use crate::test_packets::{TestDesk, TestPacketRecord};
use crate::{Error, Result};

/// The center's audit log, under its data folder.
pub const AUDIT_LOG: &str = "audit.log";
/// A signed checkpoint after this many decisions.
pub const AUDIT_CHECKPOINT_EVERY: u64 = 64;
/// How long a stopping center lets packets in flight finish; what is still arriving then
/// stays durable in staging and the site resumes it at the next connection.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// A center that is serving.
pub struct RunningCenter {
    /// The QUIC address it listens on.
    pub addr: SocketAddr,
    /// The `/metrics` address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its inbox.
    pub inbox: Arc<Inbox>,
    /// The key registry it enforces and serves.
    pub registry: Arc<CenterRegistry>,
    /// Its audit log of decisions.
    pub audit: Arc<AuditLog>,
    /// The watch over every site the exam-day plans expect (connected or not).
    pub site_watch: Arc<SiteWatch>,
    endpoint: quinn::Endpoint,
    /// Watches the station revocation list and closes revoked stations' connections.
    pub revocation: Revocation,
    drain: Drain,
    _control: Option<ControlSocket>,
}

impl RunningCenter {
    /// Packets being received now.
    pub fn packets_in_flight(&self) -> usize {
        self.drain.in_flight()
    }

    /// Stops taking connections and streams, lets the packets in flight finish for up to
    /// [`SHUTDOWN_GRACE`], closes every connection and writes a closing checkpoint.
    /// Returns how many packets were still arriving (kept in staging, to be resumed).
    pub async fn shutdown(self) -> usize {
        self.drain.stop();
        self.endpoint.set_server_config(None);
        let unfinished = self.drain.finish(SHUTDOWN_GRACE).await;
        self.endpoint.close(0u32.into(), b"center shutting down");
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.endpoint.wait_idle())
            .await
            .is_err()
        {
            warn!("stations did not acknowledge the close within 5 s");
        }
        // A signed checkpoint over the last decisions, so cutting them off shows.
        if let Err(e) = self.audit.checkpoint() {
            warn!("cannot write the audit log's closing checkpoint: {e}");
        }
        unfinished
    }
}

/// Puts back on the test desk any stored test packet whose desk record was never
/// written (a crash or full disk between storing it and recording it).
fn restore_test_desk(inbox: &Inbox, desk: &TestDesk) -> Result<()> {
    for record in inbox.records()? {
        let desk_record = TestPacketRecord::from_inbox(&record);
        if record.test_packet && !desk.contains(&desk_record.envelope_id) {
            desk.record_received(&desk_record)?;
            info!(packet = %desk_record.packet_id, version = desk_record.version, "test packet put back on the desk");
        }
    }
    Ok(())
}

/// Takes the registry file if it changed; a refused file is logged and changes nothing.
fn take_registry(registry: &CenterRegistry, inbox: &Inbox) {
    if let Err(e) = registry.refresh(inbox, now_ms()) {
        registry.note_refused();
        warn!("the key registry file was not taken: {e}");
    }
}

/// How often the data folder's free space is looked at while no packet arrives.
const DISK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Keeps the free-space gauge current (and its alert able to resolve) between packets.
fn watch_disk(intake: &Arc<CenterIntake>) {
    // Weak: the watch ends with the center.
    let intake = Arc::downgrade(intake);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DISK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(intake) = intake.upgrade() else { return };
            if tokio::task::spawn_blocking(move || intake.check_disk()).await.is_err() {
                return;
            }
        }
    });
}

/// Looks at the registry file every [`WATCH_INTERVAL`] for as long as the runtime runs.
fn watch_registry(registry: Arc<CenterRegistry>, inbox: Arc<Inbox>, expiry: prometheus::IntGauge) {
    // Weak: the watch ends with the center, and never keeps its inbox open after it.
    let (registry, inbox) = (Arc::downgrade(&registry), Arc::downgrade(&inbox));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(r), Some(i)) = (registry.upgrade(), inbox.upgrade()) else {
                return;
            };
            let expiry = expiry.clone();
            if tokio::task::spawn_blocking(move || {
                take_registry(&r, &i);
                control::show_registry_expiry(&expiry, &r, now_ms());
            })
            .await
            .is_err()
            {
                return;
            }
        }
    });
}

/// Starts the center described by `cfg` and returns once it listens.
pub async fn serve(cfg: &CenterConfig) -> Result<RunningCenter> {
    cfg.check_serving().map_err(|message| Error::Config {
        path: cfg.data_dir.clone(),
        message,
    })?;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(Error::file(p));
    let ca_pem = read(&cfg.ca_cert)?;
    let cert = pki::IssuedCert {
        cert_pem: read(&cfg.cert)?,
        key_pem: read(&cfg.key)?.into(),
    };
    let receipt_key = keyfile::read_signing_key(&cfg.receipt_key)?;
    // The inbox first: its lock makes this the only process writing the center's files
    // (a reserve import run while the center is stopped holds it too).
    // Whether the center ran here before is looked at first: opening the inbox creates it.
    let had_state = revocation::data_has_state(cfg);
    let inbox = Arc::new(Inbox::open(&cfg.data_dir)?);
    // Decisions are chained in the audit log; the center's receipt key signs checkpoints.
    let audit = Arc::new(AuditLog::open(
        &cfg.data_dir.join(AUDIT_LOG),
        Some(keyfile::read_signing_key(&cfg.receipt_key)?),
        AUDIT_CHECKPOINT_EVERY,
    )?);
    restore_test_desk(&inbox, &TestDesk::open(&cfg.data_dir)?)?;
    let metrics = Metrics::new()?;
    crate::metrics::export_audit_anchor(&metrics.registry, &audit)?;
    let registry = Arc::new(CenterRegistry::open(cfg, now_ms(), Some(audit.clone()))?);
    registry.register_metrics(&metrics.registry)?;
    take_registry(&registry, &inbox);
    if registry.in_force(now_ms()).is_none() {
        warn!(
            file = %cfg.registry.display(),
            "no key registry in force: every packet is refused until the officers' registry is imported"
        );
    }
    let expiry = control::registry_expiry_gauge(&metrics.registry)?;
    control::show_registry_expiry(&expiry, &registry, now_ms());
    watch_registry(registry.clone(), inbox.clone(), expiry);
    let crl = revocation::load_crl_to_serve(cfg, had_state)?;
    let server_config = tls::server_config(&ca_pem, &cert, std::slice::from_ref(&crl.der))?;
    // Keyed resets: after a crash and restart the stations reconnect at once.
    let endpoint = tls::server_endpoint_keyed(cfg.listen, server_config, cert.key_pem.as_bytes())?;
    let revocation = revocation::start(
        cfg,
        endpoint.clone(),
        ca_pem,
        cert,
        crl,
        &metrics.registry,
        Some(audit.clone()),
    )?;
    let mut intake = CenterIntake::new(
        cfg,
        inbox.clone(),
        registry.clone(),
        receipt_key,
        metrics.clone(),
        audit.clone(),
    )?
    .with_revocations(revocation.feed());
    let broker = cfg.ingress_mbit.map(|mbit| {
        let desk = BrokerDesk::new(BrokerConfig::new((mbit * 125_000.0) as u64), now_ms);
        desk.spawn_replanning();
        desk
    });
    // Every site the plans expect is watched, connected or not; it records plan imports
    // in the audit log this process holds.
    let site_watch = SiteWatch::new(
        Arc::new(PlanDesk::open(&cfg.data_dir)?),
        metrics.clone(),
        broker.clone(),
        Some(audit.clone()),
        &inbox,
    )?;
    site_watch.look(now_ms());
    site_watch.spawn(konvert_replication::driver::STATUS_EVERY);
    intake = intake.with_site_watch(site_watch.clone());
    if let Some(desk) = broker {
        // Weak: the watch holds the desk, and ends with the intake that holds the watch.
        watch_plans(metrics.clone(), desk.clone(), Some(Arc::downgrade(&site_watch)));
        intake = intake.with_broker(desk);
    }
    let intake = Arc::new(intake);
    watch_disk(&intake);
    reserve::watch_spool(intake.clone(), &cfg.data_dir)?;
    crate::answers::watch_incoming(cfg, inbox.clone(), registry.clone(), audit.clone())?;
    let live = revocation.live();
    let addr = endpoint.local_addr()?;
    let metrics_addr = match cfg.metrics_listen {
        // The monitoring page beside /metrics: the plans imported, what arrived, and the
        // loader's answers taken from its drives.
        Some(a) => {
            let plans = PlanDesk::open(&cfg.data_dir)?;
            let answers = crate::answers::AnswerDesk::open(&cfg.data_dir)?;
            let review = crate::review::ReviewDesk::open(&cfg.data_dir)?;
            let source = crate::monitor::MonitorSource::new(inbox.clone())
                .with_plans(Arc::new(move || {
                    plans.plans().unwrap_or_else(|e| {
                        warn!("the monitoring page shows no plan: {e}");
                        Vec::new()
                    })
                }))
                .with_answers(Arc::new(move || match answers.held() {
                    Ok(held) => held.into_iter().map(|h| h.signed.answer).collect(),
                    Err(e) => {
                        warn!("the monitoring page shows no answers: {e}");
                        Vec::new()
                    }
                }))
                .with_review(Arc::new(move || match review.list() {
                    Ok(flags) => flags,
                    Err(e) => {
                        warn!("the monitoring page shows no packets held for review: {e}");
                        Vec::new()
                    }
                }));
            Some(crate::monitor::serve(a, metrics.clone(), source).await?)
        }
        None => None,
    };
    info!(%addr, name = %cfg.name, "center listening");
    let ep = endpoint.clone();
    let name = cfg.name.clone();
    let m = metrics.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let drain = Drain::default();
    let stopping = drain.clone();
    // `konvert-center status` beside this process asks it here: it holds the inbox's lock.
    // Not fatal: a center that serves matters more than `status` beside it.
    let control = ControlSocket::start(
        &cfg.data_dir,
        crate::backup::control_handler(
            control::handler(inbox.clone(), cfg.data_dir.clone()),
            inbox.clone(),
            audit.clone(),
        ),
    )
    .map_err(|e| warn!("`konvert-center status` will not work beside this center: no control socket: {e}"))
    .ok();
    tokio::spawn(async move {
        loop {
            let incoming = tokio::select! {
                i = ep.accept() => i,
                _ = stopping.stopped() => break,
            };
            let Some(incoming) = incoming else { break };
            // A full center refuses at once; the edge backs off and retries.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn!(
                    "refusing a station connection: {} connections are open",
                    m.connections.get()
                );
                incoming.refuse();
                continue;
            };
            let intake = intake.clone();
            let name = name.clone();
            let m = m.clone();
            let live = live.clone();
            let drain = stopping.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!("handshake with a station failed: {e}");
                        return;
                    }
                };
                m.connections.inc();
                let _live = live.register(&conn);
                if let Err(e) = driver::serve_connection_until(conn, intake, name, drain, FrameLimits::default()).await
                {
                    warn!("station connection ended with an error: {e}");
                }
                m.connections.dec();
            });
        }
    });
    Ok(RunningCenter {
        addr,
        metrics_addr,
        metrics,
        inbox,
        registry,
        audit,
        site_watch,
        endpoint,
        revocation,
        drain,
        _control: control,
    })
}
