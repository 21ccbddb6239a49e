//! The center's Prometheus metrics (prefix `konvert_`, base units) and a minimal
//! `/metrics` endpoint meant for loopback or a management network.

use std::net::SocketAddr;
use std::sync::Arc;

use konvert_replication::schedule::DeadlineRisk;
use konvert_replication::RejectReason;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tracing::warn;

use crate::{Error, Result};

/// The center's metric families, registered in a registry owned by this process.
#[derive(Clone)]
pub struct Metrics {
    /// The registry to expose.
    pub registry: Registry,
    /// Seal time (the edge's claim) → receipt, seconds, by site (about 70 sites).
    pub delivery_latency: HistogramVec,
    /// Packets stored, by site.
    pub packets_received: IntCounterVec,
    /// Packets stored after their site's delivery deadline (held back until an operator
    /// decides), by site.
    pub packets_late: IntCounterVec,
    /// Envelope bytes stored, by site.
    pub bytes_received: IntCounterVec,
    /// Packets refused, by reason.
    pub packets_rejected: IntCounterVec,
    /// Offers answered with the original receipt.
    pub packets_duplicate: IntCounter,
    /// Envelope bytes not sent again because an earlier attempt left them durable.
    pub bytes_resumed: IntCounter,
    /// Technical-readiness test packets stored (they are judged, never processed).
    pub test_packets_received: IntCounter,
    /// Stations connected now.
    pub connections: IntGauge,
    /// The bandwidth broker's share per site, bytes per second.
    pub site_share: IntGaugeVec,
    /// The broker's verdict on each site's deadline: 0 on track, 1 at risk, 2 will miss.
    pub site_deadline_risk: IntGaugeVec,
    /// Bytes each connected site still has to send (its last report, less what arrived).
    pub site_backlog: IntGaugeVec,
    /// Seconds each expected site has been silent on its exam day (see `site_watch`).
    pub site_silence: GaugeVec,
    /// Planned rooms with participants that no blanks packet has come from yet, by site.
    pub site_rooms_outstanding: IntGaugeVec,
    /// Blanks, forms and audio packets received after 17:30 local on their exam day, by site.
    pub blanks_after_window: IntCounterVec,
    /// Journal packets received after 19:00 local on their exam day, by site.
    pub journals_after_window: IntCounterVec,
    /// The share of the data folder's file system free for the center, and its floor.
    pub disk: konvert_replication::disk_floor::DiskGauges,
}

/// Publishes the broker's newest plan as gauges, every re-plan period.
pub fn watch_plans(
    metrics: Metrics,
    desk: std::sync::Arc<konvert_replication::driver::BrokerDesk>,
    expected: Option<std::sync::Weak<crate::site_watch::SiteWatch>>,
) {
    let desk = std::sync::Arc::downgrade(&desk);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(konvert_replication::driver::STATUS_EVERY);
        let mut shown: Vec<String> = Vec::new();
        let mut risks: std::collections::HashMap<String, DeadlineRisk> = std::collections::HashMap::new();
        loop {
            every.tick().await;
            let Some(desk) = desk.upgrade() else { return };
            let plan = desk.plan();
            // An expected site's risk is the site watch's: it stays when the site goes silent.
            let owned = |site: &str| {
                expected
                    .as_ref()
                    .and_then(std::sync::Weak::upgrade)
                    .is_some_and(|w| w.is_expected(site))
            };
            // A site no longer connected leaves the gauges rather than showing a stale share.
            for gone in shown.iter().filter(|s| plan.share(s).is_none()) {
                let _ = metrics.site_share.remove_label_values(&[gone]);
                if !owned(gone) {
                    let _ = metrics.site_deadline_risk.remove_label_values(&[gone]);
                }
                let _ = metrics.site_backlog.remove_label_values(&[gone]);
                risks.remove(gone);
            }
            shown = plan.shares.iter().map(|s| s.site.clone()).collect();
            for share in &plan.shares {
                // Said once per change, early: staff call a site at risk while there is time.
                let before = risks.insert(share.site.clone(), share.risk);
                if before != Some(share.risk) && share.risk != DeadlineRisk::OnTrack {
                    warn!(
                        site = %share.site,
                        risk = share.risk.as_str(),
                        needed_bytes_per_s = share.needed_bytes_per_s,
                        share_bytes_per_s = share.rate_bytes_per_s,
                        "a site's 23:59 deadline is at risk at the rate it can get: call the site, consider the reserve channel"
                    );
                }
                let site = [share.site.as_str()];
                metrics
                    .site_share
                    .with_label_values(&site)
                    .set(i64::try_from(share.rate_bytes_per_s).unwrap_or(i64::MAX));
                if !owned(&share.site) {
                    metrics
                        .site_deadline_risk
                        .with_label_values(&site)
                        .set(share.risk as i64);
                }
                let backlog = desk.backlog(&share.site);
                metrics
                    .site_backlog
                    .with_label_values(&site)
                    .set(i64::try_from(backlog).unwrap_or(i64::MAX));
            }
        }
    });
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let m = |e: prometheus::Error| Error::Metrics(e.to_string());
        let delivery_latency = HistogramVec::new(
            HistogramOpts::new(
                "konvert_delivery_latency_seconds",
                "Time from sealing at the site (the edge's clock) to the center's receipt, by site.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
            ]),
            &["site"],
        )
        .map_err(m)?;
        let packets_received = IntCounterVec::new(
            Opts::new(
                "konvert_packets_received_total",
                "Packets stored durably and receipted.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let packets_late = IntCounterVec::new(
            Opts::new(
                "konvert_packets_late_total",
                "Packets received after 23:59 local time of their exam day at their site (by the center's clock), \
                 stored and receipted but held back from processing until an operator decides.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let bytes_received = IntCounterVec::new(
            Opts::new(
                "konvert_received_bytes_total",
                "Envelope bytes stored durably and receipted.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let packets_rejected = IntCounterVec::new(
            Opts::new(
                "konvert_packets_rejected_total",
                "Packets refused, by machine-readable reason.",
            ),
            &["reason"],
        )
        .map_err(m)?;
        let bytes_resumed = IntCounter::new(
            "konvert_bytes_resumed_total",
            "Envelope bytes a resumed transfer did not send again (held durably from an earlier attempt).",
        )
        .map_err(m)?;
        let packets_duplicate = IntCounter::new(
            "konvert_packets_duplicate_total",
            "Offers of packets already stored, answered with the original receipt.",
        )
        .map_err(m)?;
        let test_packets_received = IntCounter::new(
            "konvert_test_packets_received_total",
            "Technical-readiness test packets stored for the staff to judge.",
        )
        .map_err(m)?;
        let connections = IntGauge::new("konvert_station_connections", "Station connections open now.").map_err(m)?;
        let site_share = IntGaugeVec::new(
            Opts::new(
                "konvert_site_share_bytes_per_second",
                "The bandwidth broker's rate share per connected site.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let site_deadline_risk = IntGaugeVec::new(
            Opts::new(
                "konvert_site_deadline_risk",
                "The broker's verdict on a site's 23:59 deadline: 0 on track, 1 at risk, 2 will miss.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let site_backlog = IntGaugeVec::new(
            Opts::new(
                "konvert_site_backlog_bytes",
                "Bytes a connected site still has to send, by its last report.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let site_silence = GaugeVec::new(
            Opts::new(
                "konvert_site_silence_seconds",
                "Seconds since the last packet from an expected site on its exam day, counted from 11:00 local \
                 (the blanks window opens) when nothing has come yet; 0 before then.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let site_rooms_outstanding = IntGaugeVec::new(
            Opts::new(
                "konvert_site_rooms_outstanding",
                "Rooms of an expected site with participants seated that no blanks packet has come from yet.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let blanks_after_window = IntCounterVec::new(
            Opts::new(
                "konvert_blanks_after_window_total",
                "Blanks, forms and audio packets received after 17:30 local on their exam day (the blanks \
                 window is 11:00-17:30), by site.",
            ),
            &["site"],
        )
        .map_err(m)?;
        let journals_after_window = IntCounterVec::new(
            Opts::new(
                "konvert_journals_after_window_total",
                "Journal packets received after 19:00 local on their exam day (the journals window is \
                 10:30-19:00), by site.",
            ),
            &["site"],
        )
        .map_err(m)?;
        // Every reason is exported from the start, at zero, so dashboards and alert rules
        // see the series before the first rejection.
        for reason in RejectReason::ALL {
            packets_rejected.with_label_values(&[reason.as_str()]);
        }
        registry.register(Box::new(delivery_latency.clone())).map_err(m)?;
        registry.register(Box::new(packets_received.clone())).map_err(m)?;
        registry.register(Box::new(packets_late.clone())).map_err(m)?;
        registry.register(Box::new(bytes_received.clone())).map_err(m)?;
        registry.register(Box::new(packets_rejected.clone())).map_err(m)?;
        registry.register(Box::new(packets_duplicate.clone())).map_err(m)?;
        registry.register(Box::new(bytes_resumed.clone())).map_err(m)?;
        registry.register(Box::new(test_packets_received.clone())).map_err(m)?;
        registry.register(Box::new(connections.clone())).map_err(m)?;
        registry.register(Box::new(site_share.clone())).map_err(m)?;
        registry.register(Box::new(site_deadline_risk.clone())).map_err(m)?;
        registry.register(Box::new(site_backlog.clone())).map_err(m)?;
        registry.register(Box::new(site_silence.clone())).map_err(m)?;
        registry.register(Box::new(site_rooms_outstanding.clone())).map_err(m)?;
        registry.register(Box::new(blanks_after_window.clone())).map_err(m)?;
        registry.register(Box::new(journals_after_window.clone())).map_err(m)?;
        let disk = konvert_replication::disk_floor::DiskGauges::register(&registry, "center").map_err(m)?;
        Ok(Metrics {
            registry,
            delivery_latency,
            packets_received,
            packets_late,
            bytes_received,
            packets_rejected,
            packets_duplicate,
            bytes_resumed,
            test_packets_received,
            connections,
            site_share,
            site_deadline_risk,
            site_backlog,
            site_silence,
            site_rooms_outstanding,
            blanks_after_window,
            journals_after_window,
            disk,
        })
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Result<String> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(|e| Error::Metrics(e.to_string()))?;
        String::from_utf8(buf).map_err(|e| Error::Metrics(e.to_string()))
    }
}

/// Binds the `/metrics` endpoint and serves it in the background; returns the bound address.
pub async fn serve_metrics(addr: SocketAddr, metrics: Metrics) -> Result<SocketAddr> {
    let render = Arc::new(move || metrics.render().map_err(|e| e.to_string()));
    Ok(konvert_replication::metrics_http::serve(addr, render).await?)
}

/// Exports the audit log's newest signed checkpoint — its entry count and head hash, the
/// anchor that catches a log rolled back together with its head file — as
/// `konvert_audit_checkpoint_entries` and `konvert_audit_checkpoint_info{head}`, updated at
/// every checkpoint. Prometheus keeps them off this machine, so the rollback check
/// (`konvert keys audit verify --expect-at-least N`) has a number nobody here can rewrite.
pub fn export_audit_anchor(registry: &Registry, audit: &konvert_crypto::audit::AuditLog) -> Result<()> {
    let m = |e: prometheus::Error| Error::Metrics(e.to_string());
    let entries = IntGauge::new(
        "konvert_audit_checkpoint_entries",
        "Entries of the center's audit log covered by its newest signed checkpoint (never goes down).",
    )
    .map_err(m)?;
    let info = IntGaugeVec::new(
        Opts::new(
            "konvert_audit_checkpoint_info",
            "The newest signed audit checkpoint's head hash (the label), value 1.",
        ),
        &["head"],
    )
    .map_err(m)?;
    registry.register(Box::new(entries.clone())).map_err(m)?;
    registry.register(Box::new(info.clone())).map_err(m)?;
    audit
        .on_checkpoint(move |anchor| {
            entries.set(i64::try_from(anchor.seq).unwrap_or(i64::MAX));
            // One series at a time: the newest head only.
            info.reset();
            if let Some(head) = anchor.head {
                info.with_label_values(&[hex::encode(head).as_str()]).set(1);
            }
        })
        .map_err(|e| Error::Metrics(format!("audit checkpoint hook: {e}")))
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
