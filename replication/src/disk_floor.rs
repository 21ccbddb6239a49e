//! The free-space floor of a node that takes packets (the center, a relay). The
//! regulations keep 5 % of its storage free (`002:8253`); below `min_free_percent` of the
//! data folder's file system the node takes no new packet — a packet it already holds is
//! still answered — and each sender is told the disk is nearly full, keeps the packet and
//! sends it again. The free share is a gauge beside the floor, so an alert fires while it
//! lasts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{Gauge, Registry};
use tracing::{info, warn};

/// The regulations' free-space floor for a node's storage, in percent (`002:8253`).
pub const DEFAULT_MIN_FREE_PERCENT: f64 = 5.0;

/// The serde default of `min_free_percent`.
pub fn default_min_free_percent() -> f64 {
    DEFAULT_MIN_FREE_PERCENT
}

/// Checks a configured `min_free_percent`: the words for the operator if it is no share.
pub fn check_min_free_percent(percent: f64) -> Result<(), String> {
    if percent.is_finite() && (0.0..100.0).contains(&percent) {
        return Ok(());
    }
    Err(format!(
        "min_free_percent = {percent} is not a share of the disk; give a percentage from 0 to below 100 \
         (the regulations keep {DEFAULT_MIN_FREE_PERCENT})"
    ))
}

/// The free share of the file system that holds `dir` (0 to 1): what an unprivileged
/// writer may still use, over the file system's size.
pub fn free_ratio(dir: &Path) -> std::io::Result<f64> {
    let st = rustix::fs::statvfs(dir)?;
    if st.f_blocks == 0 {
        // A file system that states no size (some virtual ones) cannot be judged full.
        return Ok(1.0);
    }
    Ok(st.f_bavail as f64 / st.f_blocks as f64)
}

/// The two gauges of a node's floor: `konvert_<node>_disk_free_ratio` and
/// `konvert_<node>_disk_free_floor_ratio`.
#[derive(Clone)]
pub struct DiskGauges {
    /// The free share of the data folder's file system, as of the last check.
    pub free: Gauge,
    /// The share below which no new packet is taken (`min_free_percent` / 100).
    pub floor: Gauge,
}

impl DiskGauges {
    /// Creates the gauges of `node` ("center", "relay") and registers them in `registry`.
    pub fn register(registry: &Registry, node: &str) -> prometheus::Result<DiskGauges> {
        let free = Gauge::new(
            format!("konvert_{node}_disk_free_ratio"),
            format!("Share of the data folder's file system free for the {node} (0 to 1), as of the last check."),
        )?;
        let floor = Gauge::new(
            format!("konvert_{node}_disk_free_floor_ratio"),
            "Share of the data folder's file system kept free: below it new packets are refused (min_free_percent).",
        )?;
        registry.register(Box::new(free.clone()))?;
        registry.register(Box::new(floor.clone()))?;
        Ok(DiskGauges { free, floor })
    }
}

/// Watches the free share of one folder's file system against a floor.
pub struct DiskFloor {
    dir: PathBuf,
    node: &'static str,
    floor: f64,
    free: Gauge,
    free_metric: String,
    below: AtomicBool,
}

impl DiskFloor {
    /// Watches `dir` of `node` ("center", "relay") against `min_free_percent`, publishing
    /// both in `gauges`.
    pub fn new(dir: &Path, node: &'static str, min_free_percent: f64, gauges: &DiskGauges) -> DiskFloor {
        let floor = min_free_percent / 100.0;
        gauges.floor.set(floor);
        let watch = DiskFloor {
            dir: dir.to_owned(),
            node,
            floor,
            free: gauges.free.clone(),
            free_metric: format!("konvert_{node}_disk_free_ratio"),
            below: AtomicBool::new(false),
        };
        let _ = watch.check();
        watch
    }

    /// Checks the free share now: `Err` with the words for the sender and the log while it
    /// is below the floor. A file system that cannot be asked is not refused on: writing
    /// to it fails on its own, and that refusal is retryable too.
    pub fn check(&self) -> Result<(), String> {
        let node = self.node;
        let free = match free_ratio(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                warn!(dir = %self.dir.display(), "cannot tell the {node}'s data folder's free space: {e}");
                return Ok(());
            }
        };
        self.free.set(free);
        let below = free < self.floor;
        let was = self.below.swap(below, Ordering::Relaxed);
        if below {
            let detail = format!(
                "only {:.1} % of the {node}'s disk is free, below the {:.1} % it keeps free; \
                 nothing new is taken until space is freed",
                free * 100.0,
                self.floor * 100.0
            );
            if !was {
                warn!(dir = %self.dir.display(), "{detail}: free space at the {node} ({})", self.free_metric);
            }
            return Err(detail);
        }
        if was {
            info!(dir = %self.dir.display(), free_percent = free * 100.0, "the {node}'s disk is above its floor again; taking packets");
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "disk_floor_tests.rs"]
mod tests;
