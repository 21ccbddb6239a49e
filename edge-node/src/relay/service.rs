//! Running a relay: the QUIC endpoint downstream stations connect to (mutual TLS with the
//! center's CA, the relay's server certificate), and the forwarder that pushes what the
//! relay holds to the next hop with the edge's own resumable push.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use konvert_crypto::registry::{AuthorityFile, RegistryStore};
use konvert_replication::disk_floor::DiskFloor;
use konvert_replication::driver::{self, Drain, FrameLimits, SignedUpdate};
use konvert_replication::{pki, tls, Outbox};
use tokio::sync::watch;
use tracing::{info, warn};

use super::config::RelayConfig;
use super::intake::{Forwarding, RelayIntake};
use super::metrics::RelayMetrics;
use super::revocations;
use crate::cli::now_unix_ms;
use crate::push::{push_via, PushEvent, PushOptions};
use crate::{Error, Result};

/// Downstream connections served at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long one forwarding push runs before it is started again (it reconnects by itself
/// within; this only bounds a push that never ends).
const FORWARD_ROUND: Duration = Duration::from_secs(24 * 3600);

/// A relay that is serving.
pub struct RunningRelay {
    /// The QUIC address downstream stations connect to.
    pub addr: SocketAddr,
    /// Where its Prometheus metrics are served, if `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// What the relay holds for forwarding.
    pub outbox: Arc<Outbox>,
    endpoint: quinn::Endpoint,
    forwarder: tokio::task::JoinHandle<()>,
    drain: Drain,
}

/// How long a stopping relay lets packets arriving from downstream finish; the rest stay
/// durable in staging and the stations resume them at the next connection.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

impl RunningRelay {
    /// Stops taking connections and streams, lets packets arriving finish for up to
    /// [`SHUTDOWN_GRACE`], closes every connection and stops forwarding. What the relay
    /// holds stays in its outbox for the next start. Returns how many packets were still
    /// arriving (kept in staging, to be resumed).
    pub async fn shutdown(self) -> usize {
        self.drain.stop();
        self.endpoint.set_server_config(None);
        let unfinished = self.drain.finish(SHUTDOWN_GRACE).await;
        self.forwarder.abort();
        let _ = self.forwarder.await;
        self.endpoint.close(0u32.into(), b"relay shutting down");
        if tokio::time::timeout(Duration::from_secs(5), self.endpoint.wait_idle())
            .await
            .is_err()
        {
            warn!("stations did not acknowledge the close within 5 s");
        }
        unfinished
    }
}

/// Anchors the relay's key registry in the officers' authority (once), if configured.
fn registry_store(cfg: &RelayConfig) -> Result<Option<RegistryStore>> {
    let Some(path) = &cfg.authority else { return Ok(None) };
    let store = RegistryStore::open(&cfg.data_dir)?;
    if store.trust()?.is_none() {
        let text = konvert_crypto::keyfile::read_text_bounded(path, konvert_crypto::keyfile::MAX_CONFIG_BYTES)?;
        let file: AuthorityFile = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: format!("not an authority file: {}", konvert_replication::toml_error(&e, &text)),
        })?;
        store.anchor(file.authority()?)?;
        info!("relay anchored in the officers' authority");
    }
    Ok(Some(store))
}

/// The newest registry the relay holds, as it is passed on downstream.
fn stored_update(store: &RegistryStore) -> Option<Arc<SignedUpdate>> {
    match store.current_signed(now_unix_ms()) {
        Ok(Some((body, signed))) => signed.to_bytes().ok().map(|signed| {
            Arc::new(SignedUpdate {
                version: body.version,
                signed,
            })
        }),
        Ok(None) => None,
        Err(e) => {
            warn!("the relay's key registry is not passed on: {e}");
            None
        }
    }
}

/// Starts the relay `cfg` describes and returns once it listens.
pub async fn serve(cfg: &RelayConfig) -> Result<RunningRelay> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(Error::file(p));
    let ca_pem = read(&cfg.upstream.ca_cert)?;
    let server_cert = pki::IssuedCert {
        cert_pem: read(&cfg.server_cert)?,
        key_pem: read(&cfg.server_key)?.into(),
    };
    // Whether the relay ran here before is looked at first: opening the outbox creates it.
    let had_state = revocations::data_has_state(&cfg.data_dir);
    std::fs::create_dir_all(&cfg.data_dir).map_err(Error::file(&cfg.data_dir))?;
    let outbox = Arc::new(Outbox::open(&cfg.outbox_dir())?);
    let store = registry_store(cfg)?;
    let (feed_tx, feed_rx) = watch::channel(store.as_ref().and_then(stored_update));
    let forwarding = Arc::new(Forwarding::default());
    // Downstream stations are checked against the center's CA and the station revocation
    // list the forwarder keeps from upstream; `enroll-relay` gives the relay the center's
    // list, so it judges stations from its first start. Without one it would check no
    // revocation at all: it does not start.
    let crl_file = cfg.data_dir.join(revocations::FILE);
    let crl = revocations::load_to_serve(&ca_pem, &crl_file, &cfg.data_dir, had_state)?;
    let crls = vec![crl.der.clone()];
    let server_config = tls::server_config(&ca_pem, &server_cert, &crls)?;
    // Keyed resets: after a crash the downstream stations reconnect at once.
    let endpoint = tls::server_endpoint_keyed(cfg.listen, server_config, server_cert.key_pem.as_bytes())?;
    let metrics = Arc::new(
        RelayMetrics::new().map_err(|e| Error::Push(format!("the relay's metrics cannot be registered: {e}")))?,
    );
    let (enforcer, crl_feed) = revocations::Enforcer::new(
        endpoint.clone(),
        ca_pem,
        server_cert,
        crl_file,
        &crl,
        cfg.data_dir.clone(),
        metrics.clone(),
    );
    let disk = Arc::new(DiskFloor::new(
        &cfg.data_dir,
        "relay",
        cfg.min_free_percent,
        &metrics.disk,
    ));
    let metrics_addr = match cfg.metrics_listen {
        Some(listen) => {
            Some(serve_metrics(listen, metrics.clone(), outbox.clone(), enforcer.live(), disk.clone()).await?)
        }
        None => None,
    };
    let intake = Arc::new(
        RelayIntake::new(
            cfg,
            outbox.clone(),
            disk,
            forwarding.clone(),
            store.clone(),
            store.as_ref().map(|_| feed_rx),
        )?
        .with_revocations(crl_feed),
    );
    let addr = endpoint.local_addr()?;
    info!(%addr, relay = %cfg.relay, "relay listening");

    let ep = endpoint.clone();
    let name = cfg.relay.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let live = enforcer.live();
    let drain = Drain::default();
    let stopping = drain.clone();
    tokio::spawn(async move {
        loop {
            let incoming = tokio::select! {
                i = ep.accept() => i,
                _ = stopping.stopped() => break,
            };
            let Some(incoming) = incoming else { break };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                incoming.refuse();
                continue;
            };
            let (intake, name, live, drain) = (intake.clone(), name.clone(), live.clone(), stopping.clone());
            tokio::spawn(async move {
                let _slot = slot;
                match incoming.await {
                    Ok(conn) => {
                        let _live = live.register(&conn);
                        if let Err(e) =
                            driver::serve_connection_until(conn, intake, name, drain, FrameLimits::default()).await
                        {
                            warn!("downstream connection ended with an error: {e}");
                        }
                    }
                    Err(e) => warn!("handshake with a downstream station failed: {e}"),
                }
            });
        }
    });

    let link = cfg.link()?;
    let forwarder = Arc::new(Forwarder {
        outbox: outbox.clone(),
        forwarding,
        registry_feed: feed_tx,
        store,
        enforcer,
        metrics,
        keep_delivered: cfg.keep_delivered,
    });
    let ob = outbox.clone();
    let forwarder = tokio::spawn(async move {
        loop {
            let f = forwarder.clone();
            let opts = PushOptions {
                max_wait: FORWARD_ROUND,
                on_event: Arc::new(move |ev| f.on_event(ev)),
                more_coming: Some(Arc::new(AtomicBool::new(true))),
                expected: None,
            };
            if let Err(e) = push_via(&link, ob.clone(), opts).await {
                warn!("forwarding stopped, starting again: {e}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(RunningRelay {
        addr,
        metrics_addr,
        outbox,
        endpoint,
        forwarder,
        drain,
    })
}

/// Serves the relay's `/metrics` on `listen`; returns the bound address.
async fn serve_metrics(
    listen: SocketAddr,
    metrics: Arc<RelayMetrics>,
    outbox: Arc<Outbox>,
    live: Arc<konvert_replication::live::LiveStations>,
    disk: Arc<DiskFloor>,
) -> Result<SocketAddr> {
    let render = Arc::new(move || metrics.render(&outbox, &live, &disk));
    let bound = konvert_replication::metrics_http::serve(listen, render)
        .await
        .map_err(|e| Error::Push(format!("cannot serve the relay's metrics on {listen}: {e}")))?;
    info!(%bound, "relay metrics at http://{bound}/metrics");
    Ok(bound)
}

/// What the forwarder's push events reach: the downstream stations' view of each packet,
/// the registry and revocation list passed down, the relay's metrics.
struct Forwarder {
    outbox: Arc<Outbox>,
    forwarding: Arc<Forwarding>,
    registry_feed: watch::Sender<Option<Arc<SignedUpdate>>>,
    store: Option<RegistryStore>,
    enforcer: Arc<revocations::Enforcer>,
    metrics: Arc<RelayMetrics>,
    keep_delivered: bool,
}

impl Forwarder {
    fn on_event(&self, ev: PushEvent) {
        let up = &self.forwarding;
        match ev {
            PushEvent::Connected => {
                self.metrics.upstream_connected.set(1);
                up.set_trouble(None)
            }
            PushEvent::Retrying { error, .. } => {
                self.metrics.upstream_connected.set(0);
                up.set_trouble(Some(error))
            }
            PushEvent::Delivered { packet_id, version } => {
                self.metrics.forwarded.inc();
                if !self.keep_delivered {
                    if let Err(e) = self.outbox.drop_delivered_envelope(&packet_id, version) {
                        warn!(packet = %packet_id, "the delivered envelope was not removed: {e}");
                    }
                }
                up.bump()
            }
            PushEvent::Rejected {
                packet_id,
                reason,
                detail,
            } => {
                // A final refusal is in the outbox; a retryable one is told downstream.
                if reason.is_retryable() {
                    warn!(packet = %packet_id, reason = reason.as_str(), "the center asked to retry later: {detail}");
                    up.note(
                        &packet_id,
                        format!(
                            "held durably; the center refused it for now ({}): {} ({detail})",
                            reason.as_str(),
                            reason.plain_words()
                        ),
                    );
                }
                up.bump();
            }
            PushEvent::Held {
                packet_id,
                relay,
                detail,
            } => up.note(
                &packet_id,
                format!("held durably; the next relay {relay} says: {detail}"),
            ),
            PushEvent::Revocations { .. } => {
                if let Err(e) = self.enforcer.apply() {
                    warn!("the station revocation list from upstream was NOT put in force: {e}");
                }
            }
            PushEvent::Registry { .. } => {
                if let Some(update) = self.store.as_ref().and_then(stored_update) {
                    self.registry_feed.send_replace(Some(update));
                }
            }
            PushEvent::Progress { .. } | PushEvent::Share { .. } | PushEvent::Schedule { .. } => {}
        }
    }
}
