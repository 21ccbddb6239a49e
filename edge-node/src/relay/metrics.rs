//! The relay's Prometheus metrics (`metrics_listen` in relay.toml): what it holds for the
//! center and for how long, whether its upstream is reachable, the stations connected to
//! it, when its station revocation list expires, and its disk's free share against its
//! floor. Held figures are read from the outbox, and the free share from the disk, at each
//! scrape.

use std::sync::atomic::{AtomicI64, Ordering};

use konvert_replication::disk_floor::{DiskFloor, DiskGauges};
use konvert_replication::live::LiveStations;
use konvert_replication::Outbox;
use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};

use crate::cli::now_unix_ms;

/// The relay's metric families.
pub(crate) struct RelayMetrics {
    registry: Registry,
    /// Packets the center receipted through this relay.
    pub(crate) forwarded: IntCounter,
    /// 1 while the forwarder is connected upstream.
    pub(crate) upstream_connected: IntGauge,
    held_packets: IntGauge,
    held_bytes: IntGauge,
    oldest_held: IntGauge,
    stations: IntGauge,
    crl_next_update: IntGauge,
    /// When the revocation list in force expires (Unix seconds; 0: none held).
    pub(crate) crl_expires: AtomicI64,
    /// The data folder's free share and the floor below which no new packet is taken.
    pub(crate) disk: DiskGauges,
}

impl RelayMetrics {
    /// Creates and registers every family.
    pub(crate) fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let forwarded = IntCounter::new(
            "konvert_relay_forwarded_packets_total",
            "Packets the center receipted through this relay.",
        )?;
        let upstream_connected = IntGauge::new(
            "konvert_relay_upstream_connected",
            "1 while the relay is connected to the next hop (the center or the next relay).",
        )?;
        let held_packets = IntGauge::new(
            "konvert_relay_held_packets",
            "Packets held durably, waiting for the center's receipt.",
        )?;
        let held_bytes = IntGauge::new("konvert_relay_held_bytes", "Envelope bytes of the held packets.")?;
        let oldest_held = IntGauge::new(
            "konvert_relay_oldest_held_seconds",
            "Age of the oldest held packet since the school sealed it (0 when nothing is held).",
        )?;
        let stations = IntGauge::new(
            "konvert_relay_station_connections",
            "Connections from the stations below the relay open now.",
        )?;
        let crl_next_update = IntGauge::new(
            "konvert_relay_crl_next_update_timestamp_seconds",
            "When the station revocation list the relay enforces expires (Unix time; 0: none yet); after that it refuses every station.",
        )?;
        for c in [
            &held_packets,
            &held_bytes,
            &oldest_held,
            &stations,
            &crl_next_update,
            &upstream_connected,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(forwarded.clone()))?;
        let disk = DiskGauges::register(&registry, "relay")?;
        Ok(RelayMetrics {
            registry,
            forwarded,
            upstream_connected,
            held_packets,
            held_bytes,
            oldest_held,
            stations,
            crl_next_update,
            crl_expires: AtomicI64::new(0),
            disk,
        })
    }

    /// The Prometheus text, with the held figures read from `outbox` and the free share
    /// from `disk` now.
    pub(crate) fn render(&self, outbox: &Outbox, live: &LiveStations, disk: &DiskFloor) -> Result<String, String> {
        // Below the floor is not a failure to render: the gauge shows it.
        let _ = disk.check();
        let pending = outbox.pending().map_err(|e| e.to_string())?;
        let now = now_unix_ms();
        let oldest = pending.iter().map(|e| e.offer.sealed_at_unix_ms).min();
        self.held_packets.set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        self.held_bytes
            .set(i64::try_from(pending.iter().map(|e| e.offer.size).sum::<u64>()).unwrap_or(i64::MAX));
        self.oldest_held
            .set(oldest.map_or(0, |t| i64::try_from(now.saturating_sub(t) / 1000).unwrap_or(i64::MAX)));
        self.stations.set(i64::try_from(live.len()).unwrap_or(i64::MAX));
        self.crl_next_update.set(self.crl_expires.load(Ordering::Relaxed));
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(|e| e.to_string())?;
        String::from_utf8(buf).map_err(|e| e.to_string())
    }
}
