//! Wakes the intake when the hot folder changes. Events only shorten the wait: the
//! intake lists the folder on a timer anyway, so a missed or coalesced event (network
//! shares, overflowing inotify queues) delays a file by one tick and never loses it.

use std::path::Path;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::{Error, Result};

/// A watch on the hot folder; dropping it stops watching.
pub struct HotFolderWatch {
    _watcher: notify::RecommendedWatcher,
}

impl HotFolderWatch {
    /// Watches `dir` and calls `wake.notify_one()` on every change.
    pub fn start(dir: &Path, wake: std::sync::Arc<Notify>) -> Result<Self> {
        let mut watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
            wake.notify_one();
        })
        .map_err(|e| Error::Push(format!("cannot watch the hot folder: {e}")))?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| Error::Push(format!("cannot watch the hot folder {}: {e}", dir.display())))?;
        Ok(HotFolderWatch { _watcher: watcher })
    }
}
