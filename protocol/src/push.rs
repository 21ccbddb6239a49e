//! The edge's push, as a state machine: which packets to start on a connection, when a
//! session is over and why, how the connection's first moments wait for the center's
//! share, how each chunk is paced, and how long to wait before connecting again.
//!
//! The driver (`konvert-edge`'s push) owns the sockets, the outbox and the tasks; it asks
//! [`PushSession::step`] what to do, tells it what happened, and passes the time in as
//! Unix milliseconds. Nothing here reads a clock, so a whole exam day's push, with drops,
//! refusals and relays, runs in virtual time in the tests.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::schedule::{EdgeScheduler, QueuedPacket, ScheduleStatus, SchedulerConfig};
use crate::{Offer, RejectReason, Share, SiteStatus};

/// How long the driver waits before looking again when it has nothing else to wait for
/// (more packets are being sealed).
pub const POLL_MS: u64 = 20;

/// How long a share from the center is obeyed without a newer one. Judged by this
/// station's clock from when the share arrived: the center's clock is not this one's.
pub const SHARE_VALID_MS: u64 = 30_000;

/// The longest a connection holds data back waiting for its first share, so a fast site
/// does not flood a center that is rationing its ingress, nor waits on one without a broker.
pub const FIRST_SHARE_WAIT_MS: u64 = 1_000;

/// How a push is tuned (from `[push]` in site.toml).
#[derive(Debug, Clone)]
pub struct PushPlan {
    /// Packets in flight at once on one connection.
    pub parallel: usize,
    /// Give up after this long without delivering everything.
    pub max_wait_ms: u64,
    /// The first wait after a failed attempt, in seconds (`push.retry_seconds`).
    pub retry_seconds: f64,
    /// The site's sending schedule.
    pub scheduler: SchedulerConfig,
}

/// What a send ended with, as far as the session cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The center's receipt was verified and stored.
    Delivered,
    /// A relay holds the packet; the center's receipt has not come back yet.
    Held {
        /// The relay's name.
        relay: String,
    },
    /// The center refused the packet.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The center's detail.
        detail: String,
    },
}

/// What the driver does next on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start sending these packets (already counted in flight), then ask again.
    Start(Vec<Offer>),
    /// Wait for a send in flight to end; with `poll_ms`, at most that long (new packets may
    /// land in the outbox meanwhile), then ask again.
    AwaitSend {
        /// The longest wait, if any.
        poll_ms: Option<u64>,
    },
    /// Nothing to do now: sleep this long, then ask again.
    Sleep {
        /// How long.
        ms: u64,
    },
    /// The session is over: close the connection.
    End(SessionEnd),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Nothing is left to send.
    Done,
    /// The center asked to retry some packets later.
    Deferred {
        /// How many.
        packets: usize,
        /// The last reason given.
        reason: Option<RejectReason>,
    },
    /// A relay holds some packets without the center's receipt yet.
    Held {
        /// How many.
        packets: usize,
        /// The relay.
        relay: String,
    },
}

impl SessionEnd {
    /// The reason to connect again, in plain words; `None` when everything went.
    pub fn retry_reason(&self) -> Option<String> {
        match self {
            SessionEnd::Done => None,
            SessionEnd::Deferred { packets, reason } => Some(format!(
                "the center asked to retry {packets} packet(s) later: {}",
                reason.map(RejectReason::plain_words).unwrap_or("no reason given")
            )),
            SessionEnd::Held { packets, relay } => Some(format!(
                "{packets} packet(s) held at relay {relay}, waiting for the center's receipt"
            )),
        }
    }
}

/// What to do after a connection attempt failed or a session ended short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Connect again after this wait.
    After(Duration),
    /// The push has waited its longest: give up with what is left.
    GiveUp,
}

/// A packet version, as the session keys it.
type Key = (String, u32);

fn key(offer: &Offer) -> Key {
    (offer.packet_id.clone(), offer.version)
}

/// The scheduler's name for a packet version.
fn schedule_id(offer: &Offer) -> String {
    format!("{}.v{}", offer.packet_id, offer.version)
}

/// One connection's bookkeeping.
#[derive(Debug)]
struct Connection {
    since_ms: u64,
    in_flight: HashSet<Key>,
    /// Packets the center asked to retry later: left for the next connection.
    deferred: HashSet<Key>,
    last_deferral: Option<RejectReason>,
    /// Packets a relay holds without the center's receipt yet: offered again next time.
    held: HashSet<Key>,
    held_at: String,
    share_seen: bool,
    delivered_at_start: usize,
}

/// A push, across its connections (see the module docs).
#[derive(Debug)]
pub struct PushSession {
    plan: PushPlan,
    started_ms: u64,
    scheduler: EdgeScheduler,
    backoff: Backoff,
    conn: Option<Connection>,
    connections: u32,
    delivered: usize,
    delivered_bytes: u64,
    rejected: Vec<(String, RejectReason, String)>,
}

impl PushSession {
    /// A push starting at `now_ms`.
    pub fn new(plan: PushPlan, now_ms: u64) -> Self {
        let scheduler = EdgeScheduler::new(plan.scheduler.clone(), now_ms);
        let backoff = Backoff::from_seconds(plan.retry_seconds);
        PushSession {
            plan,
            started_ms: now_ms,
            scheduler,
            backoff,
            conn: None,
            connections: 0,
            delivered: 0,
            delivered_bytes: 0,
            rejected: Vec::new(),
        }
    }

    /// Queues every pending packet the scheduler does not know yet (the first report to the
    /// center already counts the whole backlog).
    pub fn queue(&mut self, pending: &[Offer]) {
        for offer in pending {
            let id = schedule_id(offer);
            if !self.scheduler.contains(&id) {
                self.scheduler.push(QueuedPacket {
                    id,
                    priority: offer.priority,
                    deadline_unix_ms: offer.deadline_unix_ms,
                    size: offer.size,
                    acked: 0,
                });
            }
        }
    }

    /// A connection is up (Hello answered).
    pub fn connected(&mut self, now_ms: u64, pending: &[Offer]) {
        self.connections += 1;
        self.queue(pending);
        self.conn = Some(Connection {
            since_ms: now_ms,
            in_flight: HashSet::new(),
            deferred: HashSet::new(),
            last_deferral: None,
            held: HashSet::new(),
            held_at: String::new(),
            share_seen: false,
            delivered_at_start: self.delivered,
        });
    }

    /// What to do next on the connection, given what the outbox holds without a receipt
    /// and whether more packets are being sealed.
    pub fn step(&mut self, now_ms: u64, pending: &[Offer], more_coming: bool) -> Step {
        self.queue(pending);
        let Some(conn) = self.conn.as_mut() else {
            return Step::End(SessionEnd::Done);
        };
        // The scheduler decides the order (class, then earliest deadline, then arrival) and
        // holds a class whose transfer window has not opened.
        let mut by_id: BTreeMap<String, &Offer> = pending.iter().map(|o| (schedule_id(o), o)).collect();
        let mut start = Vec::new();
        for queued in self.scheduler.order(now_ms) {
            if conn.in_flight.len() >= self.plan.parallel {
                break;
            }
            let Some(offer) = by_id.remove(&queued.id) else {
                continue;
            };
            let k = key(offer);
            if conn.in_flight.contains(&k) || conn.deferred.contains(&k) || conn.held.contains(&k) {
                continue;
            }
            conn.in_flight.insert(k);
            start.push(offer.clone());
        }
        if !start.is_empty() {
            return Step::Start(start);
        }
        if !conn.in_flight.is_empty() {
            return Step::AwaitSend {
                poll_ms: more_coming.then_some(POLL_MS),
            };
        }
        if conn.deferred.is_empty() && conn.held.is_empty() {
            if let Some(at) = self.scheduler.next_wakeup(now_ms) {
                // Everything left waits for its transfer window: stay connected (registry
                // updates still arrive) and look again when the first window opens.
                return Step::Sleep {
                    ms: at.saturating_sub(now_ms).clamp(POLL_MS, 1000),
                };
            }
        }
        if !conn.deferred.is_empty() {
            return Step::End(SessionEnd::Deferred {
                packets: conn.deferred.len(),
                reason: conn.last_deferral,
            });
        }
        if !conn.held.is_empty() {
            return Step::End(SessionEnd::Held {
                packets: conn.held.len(),
                relay: conn.held_at.clone(),
            });
        }
        if more_coming {
            return Step::Sleep { ms: POLL_MS };
        }
        Step::End(SessionEnd::Done)
    }

    /// A send of `offer` ended with `outcome` (the driver already stored a receipt or a
    /// refusal in the outbox).
    pub fn finished(&mut self, now_ms: u64, offer: &Offer, outcome: &SendOutcome) {
        let k = key(offer);
        if let Some(conn) = self.conn.as_mut() {
            conn.in_flight.remove(&k);
        }
        let done = match outcome {
            SendOutcome::Delivered => true,
            SendOutcome::Rejected { reason, .. } => !reason.is_retryable(),
            SendOutcome::Held { .. } => false,
        };
        if done {
            self.scheduler.finished(now_ms, &schedule_id(offer));
        }
        match outcome {
            SendOutcome::Delivered => {
                self.delivered += 1;
                self.delivered_bytes += offer.size;
            }
            SendOutcome::Held { relay } => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.held_at = relay.clone();
                    conn.held.insert(k);
                }
            }
            SendOutcome::Rejected { reason, .. } if reason.is_retryable() => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.last_deferral = Some(*reason);
                    conn.deferred.insert(k);
                }
            }
            SendOutcome::Rejected { reason, detail } => {
                self.rejected.push((offer.packet_id.clone(), *reason, detail.clone()));
            }
        }
    }

    /// The stream of `offer` has handed `offset` bytes to the center: QUIC's flow control
    /// keeps them within a window of what the center has read, which is what goodput and
    /// the ETA are about.
    pub fn acknowledged(&mut self, now_ms: u64, offer: &Offer, offset: u64) {
        self.scheduler.acknowledged(now_ms, &schedule_id(offer), offset);
    }

    /// May `bytes` go now? `None`: yes (and they are counted); `Some(ms)`: ask again then.
    pub fn pace(&mut self, now_ms: u64, bytes: u64) -> Option<u64> {
        if let Some(conn) = &self.conn {
            if !conn.share_seen && now_ms.saturating_sub(conn.since_ms) < FIRST_SHARE_WAIT_MS {
                return Some(10);
            }
        }
        match self.scheduler.ready_at(now_ms, bytes) {
            Some(at) if at <= now_ms => {
                self.scheduler.grant(now_ms, bytes);
                None
            }
            Some(at) => Some(at - now_ms),
            // A share of zero: ask again shortly, a new plan may come.
            None => Some(500),
        }
    }

    /// The center's broker sent a share; it is obeyed for [`SHARE_VALID_MS`] by this clock.
    pub fn share(&mut self, now_ms: u64, mut share: Share) {
        share.valid_until_unix_ms = now_ms + SHARE_VALID_MS;
        self.scheduler.set_share(now_ms, share);
        self.no_share_coming();
    }

    /// The center has no broker (or the bandwidth stream failed): the site's own rate
    /// applies and nothing waits for a share.
    pub fn no_share_coming(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.share_seen = true;
        }
    }

    /// A status tick: `expected` is (bytes still to seal today, their deadline). Returns
    /// where the backlog stands (for the operator) and the report for the center's broker.
    pub fn tick(&mut self, now_ms: u64, expected: Option<(u64, u64)>) -> (ScheduleStatus, SiteStatus) {
        if let Some((bytes, deadline)) = expected {
            self.scheduler.expect(bytes, deadline);
        }
        self.scheduler.tick(now_ms);
        (self.scheduler.status(now_ms), self.scheduler.site_status(now_ms))
    }

    /// The connection ended; `carried` is true when it got at least a durable segment
    /// across. A connection that delivered or carried something was not a failure to
    /// connect: the next attempt starts from the shortest wait again, so a link that drops
    /// now and then never waits the longest backoff after every drop.
    pub fn connection_ended(&mut self, carried: bool, session_done: bool) {
        let delivered = self.conn.take().is_some_and(|c| self.delivered > c.delivered_at_start);
        self.backoff.connection_ended(delivered || carried || session_done);
    }

    /// An attempt failed (no connection, or a session that ended short): when to try again.
    pub fn retry(&mut self, now_ms: u64) -> Retry {
        if now_ms.saturating_sub(self.started_ms) >= self.plan.max_wait_ms {
            return Retry::GiveUp;
        }
        Retry::After(self.backoff.failed())
    }

    /// Packets receipted in this push, and their envelope bytes.
    pub fn delivered(&self) -> (usize, u64) {
        (self.delivered, self.delivered_bytes)
    }

    /// Packets refused for good: (packet id, reason, detail).
    pub fn rejected(&self) -> &[(String, RejectReason, String)] {
        &self.rejected
    }

    /// Connections made.
    pub fn connections(&self) -> u32 {
        self.connections
    }
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
