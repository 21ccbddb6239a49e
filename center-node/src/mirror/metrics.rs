//! The mirror's metrics in a running node (`mirror run`, `federal serve`): the driver's
//! hooks count refusals and exchanges as they happen, and a ticker reads the channels'
//! lag from the store ([`PgMirror::status`]) on a blocking thread and sets the gauges
//! ([`MirrorMetrics::observe`]) every [`OBSERVE_EVERY`] and right after an exchange.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use konvert_mirror::{Node, RecordKind, Refusal, Schedule};
use konvert_records::{PgMirror, PgRecords};
use prometheus::{Registry, TextEncoder};
use tokio::sync::Notify;

use crate::mirror::node::{MirrorHooks, NodeWaker};
use crate::mirror_metrics::MirrorMetrics;
use crate::{Error, Result};

/// How often the gauges are read from the store when nothing happens.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(15);

impl MirrorHooks for MirrorMetrics {
    fn refused(&self, peer: Node, kind: RecordKind, reason: &Refusal) {
        MirrorMetrics::refused(self, peer, kind, reason);
    }

    fn stalled(&self, peer: Node, kind: RecordKind, reason: &Refusal) {
        MirrorMetrics::refused(self, peer, kind, reason);
    }

    fn exchanged(&self, peer: Node, ok: bool) {
        MirrorMetrics::exchanged(self, peer, ok);
    }
}

/// The hooks a node runs with: the metrics' counters, and a nudge for the ticker so the
/// gauges follow an exchange at once.
struct Hooks {
    metrics: MirrorMetrics,
    changed: Arc<Notify>,
}

impl MirrorHooks for Hooks {
    fn refused(&self, peer: Node, kind: RecordKind, reason: &Refusal) {
        MirrorHooks::refused(&self.metrics, peer, kind, reason);
        self.changed.notify_one();
    }

    fn stalled(&self, peer: Node, kind: RecordKind, reason: &Refusal) {
        MirrorHooks::stalled(&self.metrics, peer, kind, reason);
        self.changed.notify_one();
    }

    fn exchanged(&self, peer: Node, ok: bool) {
        MirrorHooks::exchanged(&self.metrics, peer, ok);
        self.changed.notify_one();
    }
}

/// A node's mirror metrics on a registry of their own.
#[derive(Clone)]
pub struct NodeMetrics {
    registry: Registry,
    metrics: MirrorMetrics,
    changed: Arc<Notify>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl NodeMetrics {
    /// Registers the mirror's families on a new registry.
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let metrics = MirrorMetrics::register(&registry)?;
        Ok(NodeMetrics {
            registry,
            metrics,
            changed: Arc::new(Notify::new()),
        })
    }

    /// The hooks to build the node with ([`crate::mirror::node::NodeSetup::hooks`]).
    pub fn hooks(&self) -> Arc<dyn MirrorHooks> {
        Arc::new(Hooks {
            metrics: self.metrics.clone(),
            changed: self.changed.clone(),
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Result<String> {
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&TextEncoder::new(), &self.registry.gather(), &mut buf)
            .map_err(|e| Error::Metrics(e.to_string()))?;
        String::from_utf8(buf).map_err(|e| Error::Metrics(e.to_string()))
    }

    /// Serves `/metrics` on `addr` in the background; returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> Result<SocketAddr> {
        let me = self.clone();
        let render = Arc::new(move || me.render().map_err(|e| e.to_string()));
        Ok(konvert_replication::metrics_http::serve(addr, render).await?)
    }

    /// Sets the gauges from node `me`'s store every [`OBSERVE_EVERY`] and after each
    /// exchange, until the node is gone. A store that cannot be read leaves the gauges as
    /// they were (the scrape's age shows it) and is opened again next time.
    pub fn spawn_observer(&self, records_url: String, me: Node, schedule: Schedule, node: NodeWaker) {
        let metrics = self.metrics.clone();
        let changed = self.changed.clone();
        let store: Arc<Mutex<Option<PgMirror>>> = Arc::new(Mutex::new(None));
        tokio::spawn(async move {
            loop {
                if node.is_stopped() {
                    return;
                }
                let (store, url) = (store.clone(), records_url.clone());
                let read = tokio::task::spawn_blocking(move || -> Result<_> {
                    let mut held = store
                        .lock()
                        .map_err(|_| Error::Metrics("the metrics store lock is poisoned".into()))?;
                    if held.is_none() {
                        *held = Some(PgMirror::open(Arc::new(PgRecords::connect(&url)?), me)?);
                    }
                    let status = held.as_ref().map(PgMirror::status).transpose();
                    if status.is_err() {
                        *held = None;
                    }
                    Ok(status?.unwrap_or_default())
                })
                .await;
                match read {
                    Ok(Ok(status)) => metrics.observe(&status, &schedule, crate::intake::now_ms()),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot read the mirror's lag for the metrics; trying again")
                    }
                    Err(e) => tracing::warn!(error = %e, "the mirror metrics' reader failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(OBSERVE_EVERY) => {}
                    _ = changed.notified() => {}
                }
            }
        });
    }
}
