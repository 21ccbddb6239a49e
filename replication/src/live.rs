//! The live station connections of a server (the center, or a relay), by certificate
//! serial, so that a revocation list put in force closes those of revoked stations at
//! once: a new server config only checks new handshakes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::warn;

use crate::pki::Serial;
use crate::tls;

#[derive(Default)]
struct LiveState {
    conns: HashMap<usize, (Serial, quinn::Connection)>,
    revoked: BTreeSet<Serial>,
}

/// Called for every connection closed as revoked (the center counts them in a metric).
pub type OnRevokedClose = Box<dyn Fn(&Serial) + Send + Sync>;

/// The live station connections by certificate serial, so that revoking closes them.
pub struct LiveStations {
    state: Mutex<LiveState>,
    on_close: OnRevokedClose,
}

impl LiveStations {
    /// Live connections under `revoked` (the serials of the list in force at start).
    pub fn new(revoked: BTreeSet<Serial>, on_close: OnRevokedClose) -> Self {
        LiveStations {
            state: Mutex::new(LiveState {
                conns: HashMap::new(),
                revoked,
            }),
            on_close,
        }
    }

    fn state(&self) -> MutexGuard<'_, LiveState> {
        // The state stays consistent even if a holder panicked: every change is one insert
        // or remove.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection for as long as the guard lives; a station whose serial is
    /// already revoked (its handshake raced a new list) is closed at once.
    pub fn register(self: &Arc<Self>, conn: &quinn::Connection) -> LiveGuard {
        let serial = tls::peer_certificates(conn).and_then(|certs| match certs.first() {
            Some(ee) => Serial::of_cert_der(ee),
            None => Err(crate::Error::Tls("no certificate".into())),
        });
        let serial = match serial {
            Ok(s) => s,
            Err(e) => {
                warn!("a station connection without a readable certificate serial: {e}");
                conn.close(1u32.into(), b"station certificate unreadable");
                return LiveGuard { live: None, id: 0 };
            }
        };
        let id = conn.stable_id();
        let mut state = self.state();
        if state.revoked.contains(&serial) {
            drop(state);
            self.close(conn, &serial);
            return LiveGuard { live: None, id };
        }
        state.conns.insert(id, (serial, conn.clone()));
        LiveGuard {
            live: Some(self.clone()),
            id,
        }
    }

    /// Puts `revoked` in force for live connections: closes those on it. Returns how many.
    pub fn enforce(&self, revoked: &BTreeSet<Serial>) -> usize {
        let victims: Vec<(Serial, quinn::Connection)> = {
            let mut state = self.state();
            state.revoked = revoked.clone();
            let ids: Vec<usize> = state
                .conns
                .iter()
                .filter(|(_, (serial, _))| revoked.contains(serial))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| state.conns.remove(id)).collect()
        };
        for (serial, conn) in &victims {
            self.close(conn, serial);
        }
        victims.len()
    }

    fn close(&self, conn: &quinn::Connection, serial: &Serial) {
        warn!(%serial, remote = %conn.remote_address(), "closing the connection of a revoked station certificate");
        // A relay closes with the same words: it enforces the center's list.
        conn.close(
            tls::CLOSE_REVOKED.into(),
            b"the center revoked this station's certificate",
        );
        (self.on_close)(serial);
    }

    /// Live connections registered now.
    pub fn len(&self) -> usize {
        self.state().conns.len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a connection in [`LiveStations`]; removes it when dropped.
pub struct LiveGuard {
    live: Option<Arc<LiveStations>>,
    id: usize,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.state().conns.remove(&self.id);
        }
    }
}
