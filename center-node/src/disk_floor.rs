//! The center's free-space floor. The regulations keep 5 % of its storage free
//! (`002:8253`); below `min_free_percent` of the data folder's file system the center takes
//! no new packet — a packet it already holds is still answered with its receipt — and each
//! site is told the center's disk is nearly full, keeps the packet and sends it again.
//! The free share is a gauge beside the floor, so an alert fires while it lasts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::Gauge;
use tracing::{info, warn};

/// Watches the free share of one folder's file system against a floor.
pub struct DiskFloor {
    dir: PathBuf,
    floor: f64,
    free: Gauge,
    below: AtomicBool,
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

impl DiskFloor {
    /// Watches `dir` against `min_free_percent`, publishing both in `metrics`.
    pub fn new(dir: &Path, min_free_percent: f64, metrics: &crate::metrics::Metrics) -> DiskFloor {
        let floor = min_free_percent / 100.0;
        metrics.disk_free_floor_ratio.set(floor);
        let watch = DiskFloor {
            dir: dir.to_owned(),
            floor,
            free: metrics.disk_free_ratio.clone(),
            below: AtomicBool::new(false),
        };
        let _ = watch.check();
        watch
    }

    /// Checks the free share now: `Err` with the words for the site and the log while it
    /// is below the floor. A file system that cannot be asked is not refused on: writing
    /// to it fails on its own, and that refusal is retryable too.
    pub fn check(&self) -> Result<(), String> {
        let free = match free_ratio(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                warn!(dir = %self.dir.display(), "cannot tell the data folder's free space: {e}");
                return Ok(());
            }
        };
        self.free.set(free);
        let below = free < self.floor;
        let was = self.below.swap(below, Ordering::Relaxed);
        if below {
            let detail = format!(
                "only {:.1} % of the center's disk is free, below the {:.1} % it keeps free; \
                 nothing new is taken until space is freed",
                free * 100.0,
                self.floor * 100.0
            );
            if !was {
                warn!(dir = %self.dir.display(), "{detail}: free space at the center (konvert_center_disk_free_ratio)");
            }
            return Err(detail);
        }
        if was {
            info!(dir = %self.dir.display(), free_percent = free * 100.0, "the center's disk is above its floor again; taking packets");
        }
        Ok(())
    }
}
