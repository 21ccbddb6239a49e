//! Wakes the intake when the hot folder changes. Events only shorten the wait: the
//! intake lists the folder on a slow timer anyway, so a missed or coalesced event (network
//! shares, overflowing inotify queues) delays a file by one slow tick and never loses it.
//!
//! Only events that can mean a new or changed scan wake it. inotify also reports every
//! open and read of the folder and its files, and the intake's own listing opens the
//! folder: woken by those, the intake listed the folder again at once, for ever — a whole
//! core spent on an empty hot folder.

use std::path::Path;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::{Error, Result};

/// A watch on the hot folder; dropping it stops watching.
pub struct HotFolderWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Whether an event of this kind can mean that a scan file appeared, grew, was renamed or
/// finished being written — what the intake must look at. Opens, reads and closes after
/// reading (the intake's own listing and reads among them) cannot.
pub(super) fn wakes_intake(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        // `Any` and `Other` include a queue overflow: look, in case something was lost.
        EventKind::Any | EventKind::Other | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
    }
}

impl HotFolderWatch {
    /// Watches `dir` and calls `wake.notify_one()` on every change that can concern a scan
    /// (see [`wakes_intake`]); an error from the watcher wakes it too, to look.
    pub fn start(dir: &Path, wake: std::sync::Arc<Notify>) -> Result<Self> {
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(e) => wakes_intake(&e.kind),
                Err(_) => true,
            };
            if relevant {
                wake.notify_one();
            }
        })
        .map_err(|e| Error::Push(format!("cannot watch the hot folder: {e}")))?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| Error::Push(format!("cannot watch the hot folder {}: {e}", dir.display())))?;
        Ok(HotFolderWatch { _watcher: watcher })
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
