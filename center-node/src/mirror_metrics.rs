//! The mirror's Prometheus series (РИС ↔ ФИС), on the process's own registry: the lag per
//! channel in rows and in seconds, the last exchange, refusals, and the schedule's interval
//! and exam period, which the alert `KonvertMirrorBehind` compares the lag with
//! (ops/alerts/konvert.rules.yml).
//!
//! Labels: `peer` is `federal` or a region's two-digit code; `kind` is
//! [`RecordKind::name`]; `direction` is `outgoing` (this node owns the kind) or `incoming`.
//! A kind has one owner, so `peer` and `kind` already say which way a refusal went.

use konvert_mirror::{Node, RecordKind, Refusal, Schedule};
use konvert_records::{MirrorChannelStatus, MirrorDirection};
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::mirror_status::lag_ms;
use crate::{Error, Result};

/// The mirror's metric families, registered on a registry the caller owns.
#[derive(Clone)]
pub struct MirrorMetrics {
    lag_rows: IntGaugeVec,
    lag_seconds: GaugeVec,
    last_exchange: GaugeVec,
    refusals: IntCounterVec,
    exchanges: IntCounterVec,
    interval: Gauge,
    exam_period: IntGauge,
}

/// A node as a label value: `federal`, or the region's code as the regulations write it (`07`).
pub fn peer_label(node: Node) -> String {
    match node {
        Node::Federal => "federal".to_owned(),
        Node::Region(code) => format!("{code:02}"),
    }
}

impl MirrorMetrics {
    /// Creates the families and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<MirrorMetrics> {
        let m = |e: prometheus::Error| Error::Metrics(e.to_string());
        let lag_rows = IntGaugeVec::new(
            Opts::new(
                "konvert_mirror_lag_rows",
                "Rows this node wrote for a peer that the peer has not receipted yet (outgoing channels only: \
                 only the owner knows its lag).",
            ),
            &["peer", "kind", "direction"],
        )
        .map_err(m)?;
        let lag_seconds = GaugeVec::new(
            Opts::new(
                "konvert_mirror_lag_seconds",
                "How long the oldest row not yet receipted by the peer has waited (0 when every row is receipted).",
            ),
            &["peer", "kind"],
        )
        .map_err(m)?;
        let last_exchange = GaugeVec::new(
            Opts::new(
                "konvert_mirror_last_exchange_timestamp_seconds",
                "When the last receipt came (outgoing) or the last batch was applied (incoming), Unix seconds \
                 by the records database's clock.",
            ),
            &["peer", "kind", "direction"],
        )
        .map_err(m)?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "konvert_mirror_refusals_total",
                "Batches refused, by the receiver's reason: of a kind this node owns, refused by the peer; \
                 of the peer's kind, refused by this node.",
            ),
            &["peer", "kind", "reason"],
        )
        .map_err(m)?;
        let exchanges = IntCounterVec::new(
            Opts::new(
                "konvert_mirror_exchanges_total",
                "Exchanges with a peer that ended, by outcome: `done` (everything receipted), `left` (something \
                 is left: the connection failed or the time ran out). The federal node counts each region's \
                 connection that ended.",
            ),
            &["peer", "outcome"],
        )
        .map_err(m)?;
        let interval = Gauge::new(
            "konvert_mirror_interval_seconds",
            "The exchange interval the schedule sets now (busy in preparation and exam periods, weekly otherwise).",
        )
        .map_err(m)?;
        let exam_period = IntGauge::new(
            "konvert_mirror_exam_period",
            "1 during an exam period of the schedule (a lag beyond the interval then alerts), 0 otherwise.",
        )
        .map_err(m)?;
        registry.register(Box::new(lag_rows.clone())).map_err(m)?;
        registry.register(Box::new(lag_seconds.clone())).map_err(m)?;
        registry.register(Box::new(last_exchange.clone())).map_err(m)?;
        registry.register(Box::new(refusals.clone())).map_err(m)?;
        registry.register(Box::new(exchanges.clone())).map_err(m)?;
        registry.register(Box::new(interval.clone())).map_err(m)?;
        registry.register(Box::new(exam_period.clone())).map_err(m)?;
        Ok(MirrorMetrics {
            lag_rows,
            lag_seconds,
            last_exchange,
            refusals,
            exchanges,
            interval,
            exam_period,
        })
    }

    /// Sets the gauges from this node's channels ([`konvert_records::PgMirror::status`]) and
    /// the schedule at `now_unix_ms`. Channels are never removed from the store, so a series,
    /// once shown, stays.
    pub fn observe(&self, status: &[MirrorChannelStatus], schedule: &Schedule, now_unix_ms: u64) {
        self.interval.set(schedule.interval_at(now_unix_ms) as f64 / 1000.0);
        self.exam_period.set(i64::from(schedule.in_exam_period(now_unix_ms)));
        for c in status {
            let peer = peer_label(c.peer);
            let (kind, direction) = (c.kind.name(), c.direction.name());
            if let Some(lag) = c.lag {
                self.lag_rows
                    .with_label_values(&[peer.as_str(), kind, direction])
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
            if c.direction == MirrorDirection::Outgoing {
                let waited = lag_ms(c, now_unix_ms).unwrap_or(0);
                self.lag_seconds
                    .with_label_values(&[peer.as_str(), kind])
                    .set(waited as f64 / 1000.0);
            }
            if let Some(ms) = c.last_exchange_unix_ms {
                self.last_exchange
                    .with_label_values(&[peer.as_str(), kind, direction])
                    .set(ms as f64 / 1000.0);
            }
        }
    }

    /// Counts a refused batch of `kind` on the channel with `peer`: one this node refused
    /// ([`konvert_mirror::Event::Refused`]) or one of ours the peer refused
    /// ([`konvert_mirror::SendEvent::Stalled`]).
    pub fn refused(&self, peer: Node, kind: RecordKind, reason: &Refusal) {
        self.refusals
            .with_label_values(&[peer_label(peer).as_str(), kind.name(), reason.name()])
            .inc();
    }

    /// Counts an exchange with `peer` that ended: `ok` when nothing was left.
    pub fn exchanged(&self, peer: Node, ok: bool) {
        let outcome = if ok { "done" } else { "left" };
        self.exchanges
            .with_label_values(&[peer_label(peer).as_str(), outcome])
            .inc();
    }
}

#[cfg(test)]
#[path = "mirror_metrics_tests.rs"]
mod tests;
