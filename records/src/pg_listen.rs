//! Waking the mirror when a change was written: `LISTEN konvert_mirror` on a connection of
//! its own, so that closing an exam (which writes its outbox rows and `NOTIFY
//! konvert_mirror` in one transaction) sends its results up at once instead of at the
//! next scheduled exchange (`002:7451`).

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use crate::{PgRecords, Result};

/// The notification channel the mirror listens on; a writer of outbox rows runs
/// `NOTIFY konvert_mirror` in the transaction that writes them.
pub const MIRROR_CHANNEL: &str = "konvert_mirror";

/// A connection that listens on [`MIRROR_CHANNEL`]. Blocking: use it on a thread of its
/// own, never on an async runtime's.
pub struct PgListener {
    client: Client,
    target: String,
}

impl std::fmt::Debug for PgListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgListener").field("target", &self.target).finish()
    }
}

impl PgRecords {
    /// Opens a connection of its own to the records' database that listens on
    /// [`MIRROR_CHANNEL`].
    pub fn listen(&self) -> Result<PgListener> {
        let mut client = self.open()?;
        client
            .batch_execute(&format!("LISTEN {MIRROR_CHANNEL}"))
            .map_err(|e| self.db(e))?;
        Ok(PgListener {
            client,
            target: self.target().to_owned(),
        })
    }
}

impl PgListener {
    /// Waits up to `timeout` for a notification; `true` if one (or several: they are all
    /// taken) came. An error means the connection is lost: open a new listener.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let target = self.target.clone();
        let mut notes = self.client.notifications();
        let first = notes
            .timeout_iter(timeout)
            .next()
            .map_err(|e| crate::Error::database(&target, e))?;
        if first.is_none() {
            return Ok(false);
        }
        // Take what else is queued, so a burst of closes is one wake.
        while notes
            .iter()
            .next()
            .map_err(|e| crate::Error::database(&target, e))?
            .is_some()
        {}
        Ok(true)
    }
}
