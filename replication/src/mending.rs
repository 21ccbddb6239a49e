//! A sled database that is opened again after sled's sticky error, so a node whose disk
//! filled or failed goes on once the disk is healthy, without a restart.
//!
//! sled 0.34 keeps the first write error it meets (a full disk, a write or range sync
//! that failed) and fails every later call with it until the `Db` is dropped and opened
//! again. [`Mending`] notices that after a failed call and opens the database again from
//! what is on disk: the failed call still fails (its caller tries again, as it would after
//! any storage error), and the next call finds a working database once the disk is.
//! What was written durably before stays: it is read back from sled's log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use crate::durable::{open_sled, SledDb};
use crate::Error;

/// The handles a store keeps in one sled database (its trees), opened together.
pub trait SledHandles: Sized {
    /// Opens this store's handles in a freshly opened `db`.
    fn from_db(db: SledDb) -> Result<Self, sled::Error>;
    /// The database they live in.
    fn db(&self) -> &SledDb;
}

impl SledHandles for SledDb {
    fn from_db(db: SledDb) -> Result<Self, sled::Error> {
        Ok(db)
    }

    fn db(&self) -> &SledDb {
        self
    }
}

/// A sled database (with its handles `T`) that is opened again after sled's sticky error.
pub struct Mending<T> {
    /// `None` while a database that failed could not be opened again yet.
    current: RwLock<Option<T>>,
    /// Counts the failures mended, so concurrent callers mend one failure once.
    failures: AtomicU64,
    /// Set from the first failure until a write goes through again: the operator is warned
    /// once per spell of a full or failing disk, not at every retry during it.
    failing: AtomicBool,
    path: PathBuf,
    what: &'static str,
}

impl<T: SledHandles> Mending<T> {
    /// Opens the database at `path`; `what` names it for the operator ("the outbox's
    /// database").
    pub fn open(path: &Path, what: &'static str) -> Result<Self, sled::Error> {
        let handles = T::from_db(open_sled(path)?)?;
        Ok(Mending {
            current: RwLock::new(Some(handles)),
            failures: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            path: path.to_owned(),
            what,
        })
    }

    /// Runs `f`, which only reads, on the database.
    pub fn read<R, E: From<Error> + std::fmt::Display>(&self, f: impl FnOnce(&T) -> Result<R, E>) -> Result<R, E> {
        self.run(f)
    }

    /// Runs `f`, which writes, on the database. Once a write goes through, a failure met
    /// later is news again.
    pub fn write<R, E: From<Error> + std::fmt::Display>(&self, f: impl FnOnce(&T) -> Result<R, E>) -> Result<R, E> {
        let done = self.run(f)?;
        if self.failing.swap(false, Ordering::SeqCst) {
            tracing::info!(db = %self.path.display(), "{} takes writes again", self.what);
        }
        Ok(done)
    }

    fn run<R, E: From<Error> + std::fmt::Display>(&self, f: impl FnOnce(&T) -> Result<R, E>) -> Result<R, E> {
        let seen = self.failures.load(Ordering::SeqCst);
        let guard = self.guard();
        let Some(handles) = guard.as_ref() else {
            drop(guard);
            self.reopen(seen, "its disk failed before")?;
            return self.run_opened(f);
        };
        match f(handles) {
            Ok(v) => Ok(v),
            // An error of the caller's own (a refused duplicate, a damaged record) leaves
            // sled working; sled's own flush says whether it holds a failure.
            Err(e) if handles.db().flush().is_ok() => Err(e),
            // The failed call's own error is what its caller is told; the database is
            // mended for the next one, or left closed until the disk lets it open.
            Err(e) => {
                drop(guard);
                let _ = self.reopen(seen, &format!("a write failed ({e})"));
                Err(e)
            }
        }
    }

    /// Runs `f` once on a database just opened again.
    fn run_opened<R, E: From<Error>>(&self, f: impl FnOnce(&T) -> Result<R, E>) -> Result<R, E> {
        match self.guard().as_ref() {
            Some(handles) => f(handles),
            None => Err(self.down("it was closed again at once").into()),
        }
    }

    /// Opens the database again unless another caller already did since `seen`.
    fn reopen(&self, seen: u64, why: &str) -> Result<(), Error> {
        // A panic in a caller's closure leaves nothing half-done in the handles.
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        if self.failures.load(Ordering::SeqCst) != seen {
            return if guard.is_some() {
                Ok(())
            } else {
                Err(self.down("it failed again"))
            };
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
        let first = !self.failing.swap(true, Ordering::SeqCst);
        // The failed handle must let go of the files (and sled's lock) first.
        drop(guard.take());
        match open_sled(&self.path).and_then(T::from_db) {
            Ok(handles) => {
                if first {
                    tracing::warn!(
                        db = %self.path.display(),
                        "{} failed: {why}; sled refuses every later call after that, so it was opened again \
                         from what is on disk: what was durable is kept, the operation that failed was refused \
                         to its caller, and the next one goes on (free space or mend the disk if it fails again)",
                        self.what
                    );
                }
                *guard = Some(handles);
                Ok(())
            }
            Err(e) => {
                if first {
                    tracing::warn!(
                        db = %self.path.display(),
                        "{} failed: {why}, and cannot be opened again yet ({e}); free space on its disk or \
                         mend the disk: it is opened again at its next use",
                        self.what
                    );
                }
                Err(self.down(&e.to_string()))
            }
        }
    }

    fn guard(&self) -> RwLockReadGuard<'_, Option<T>> {
        // A panic in a caller's closure leaves nothing half-done in the handles.
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    fn down(&self, cause: &str) -> Error {
        Error::DatabaseDown {
            what: self.what,
            path: self.path.clone(),
            cause: cause.to_owned(),
        }
    }

    /// How many times the database failed and was opened again (or tried to be).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The database's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[path = "mending_tests.rs"]
mod tests;
