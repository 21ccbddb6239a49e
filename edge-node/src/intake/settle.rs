//! When a scan file is completely written: the scanner gives no signal, so a file is
//! taken only after its size and modification time have stayed the same for the settle
//! time. Sans-IO: fed what a directory listing showed and when, it says what is ready.

use std::collections::HashMap;

/// What a listing showed of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
}

#[derive(Debug, Clone, Copy)]
struct Watch {
    stat: Stat,
    /// When this exact stat was first seen.
    since_ms: u64,
}

/// Tracks files until they stop changing.
#[derive(Debug)]
pub struct Settler {
    settle_ms: u64,
    files: HashMap<String, Watch>,
}

impl Settler {
    /// A tracker that calls a file settled after `settle_ms` without change.
    pub fn new(settle_ms: u64) -> Self {
        Settler {
            settle_ms,
            files: HashMap::new(),
        }
    }

    /// Records what a listing at `now_ms` showed of `name`.
    pub fn observe(&mut self, name: &str, stat: Stat, now_ms: u64) {
        match self.files.get_mut(name) {
            Some(w) if w.stat == stat => {}
            Some(w) => {
                w.stat = stat;
                w.since_ms = now_ms;
            }
            None => {
                self.files.insert(name.to_owned(), Watch { stat, since_ms: now_ms });
            }
        }
    }

    /// Stops tracking `name` (taken, or gone from the folder).
    pub fn forget(&mut self, name: &str) {
        self.files.remove(name);
    }

    /// Keeps only the files `present` still lists.
    pub fn retain(&mut self, present: impl Fn(&str) -> bool) {
        self.files.retain(|name, _| present(name));
    }

    /// How long `name` has kept its current size and time, if tracked.
    pub fn stable_for(&self, name: &str, now_ms: u64) -> Option<u64> {
        self.files.get(name).map(|w| now_ms.saturating_sub(w.since_ms))
    }

    /// The stat `name` settled with, if it has settled.
    pub fn settled(&self, name: &str, now_ms: u64) -> Option<Stat> {
        let w = self.files.get(name)?;
        (now_ms.saturating_sub(w.since_ms) >= self.settle_ms).then_some(w.stat)
    }

    /// Every settled file, sorted by name (scanners number their files in order).
    pub fn ready(&self, now_ms: u64) -> Vec<(String, Stat)> {
        let mut ready: Vec<_> = self
            .files
            .iter()
            .filter(|(_, w)| now_ms.saturating_sub(w.since_ms) >= self.settle_ms)
            .map(|(name, w)| (name.clone(), w.stat))
            .collect();
        ready.sort_by(|a, b| a.0.cmp(&b.0));
        ready
    }

    /// The files still watched, sorted by name.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.files.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether anything is still being watched.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod tests;
