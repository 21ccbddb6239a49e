//! Watching every site the plans expect, connected or not (R8, domain.md §3).
//!
//! The bandwidth broker only knows the sites connected now; a site that never connected,
//! or dropped off with packets still to send, is exactly the one that misses its 23:59.
//! So for each site of an imported plan, from 00:00 local of its exam day until
//! [`WATCH_AFTER_DEADLINE`] past its delivery deadline, the center exports — and never
//! drops while the site owes something, so an alert on it cannot resolve by silence:
//! - `konvert_site_deadline_risk`: the broker's verdict while connected, and by the clock
//!   whatever it is: a site still owing blanks (a seated room with no blanks packet, or a
//!   backlog it last reported) is at risk after the blanks window closes (17:30 local) and
//!   will miss within 30 minutes of its deadline; one gone silent with a backlog is at
//!   risk at once;
//! - `konvert_site_silence_seconds`, `konvert_site_rooms_outstanding`;
//! - the per-site counters at zero, so the first packet after a window is an increase.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use konvert_crypto::audit::AuditLog;
use konvert_exam::{ExamDate, ExamKind, PacketKind, RoomId};
use konvert_replication::driver::BrokerDesk;
use konvert_replication::schedule::DeadlineRisk;
use konvert_replication::{Inbox, InboxRecord};
use tracing::warn;

use crate::metrics::Metrics;
use crate::plans::{ExpectedSite, PlanDesk};
use crate::Result;

/// How long after its delivery deadline a site stays watched: a site that never delivered
/// stays "will miss" until its packets come (by drive, say), not until the day is over.
pub const WATCH_AFTER_DEADLINE_MS: i64 = 72 * 3_600_000;
/// [`WATCH_AFTER_DEADLINE_MS`] in words for the docs.
pub const WATCH_AFTER_DEADLINE: &str = "72 hours";

/// Before its deadline by this much, a site still owing blanks will miss it.
const WILL_MISS_MARGIN_MS: i64 = 30 * 60_000;
/// The final essay's blanks come over seven days; a day before the deadline is late enough.
const ESSAY_AT_RISK_MS: i64 = 24 * 3_600_000;

/// One planned site's standing at one instant, for [`assess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Connected to the center now (the broker gives it a share).
    pub connected: bool,
    /// The broker's verdict, while connected.
    pub broker_risk: Option<DeadlineRisk>,
    /// Bytes it still has to send by its last report (remembered when it went silent).
    pub backlog_bytes: u64,
    /// Seated rooms no blanks packet has come from.
    pub rooms_outstanding: usize,
    /// When the blanks window closes (17:30 local on the exam day), Unix ms.
    pub window_end_ms: i64,
    /// Its delivery deadline (23:59 local), Unix ms.
    pub deadline_ms: i64,
}

/// The risk of a planned site missing its deadline, whether or not it is connected.
pub fn assess(s: &Standing, now_ms: i64) -> DeadlineRisk {
    let owes = s.rooms_outstanding > 0 || s.backlog_bytes > 0;
    let by_clock = if !owes {
        DeadlineRisk::OnTrack
    } else if now_ms >= s.deadline_ms - WILL_MISS_MARGIN_MS {
        DeadlineRisk::WillMiss
    } else if now_ms >= s.window_end_ms {
        DeadlineRisk::AtRisk
    } else {
        DeadlineRisk::OnTrack
    };
    let silent = if !s.connected && s.backlog_bytes > 0 {
        DeadlineRisk::AtRisk
    } else {
        DeadlineRisk::OnTrack
    };
    let broker = s.broker_risk.filter(|_| s.connected).unwrap_or(DeadlineRisk::OnTrack);
    by_clock.max(silent).max(broker)
}

/// What the watch keeps of the packets received.
#[derive(Default)]
struct Seen {
    /// Newest receipt time of any exam packet, by site.
    last_packet_ms: HashMap<String, u64>,
    /// Exam packets received: site, day, exam, room, kind.
    packets: HashSet<(String, ExamDate, ExamKind, RoomId, PacketKind)>,
    /// The last backlog each site reported while connected.
    backlog: HashMap<String, u64>,
    /// The sites shown now.
    shown: BTreeSet<String>,
}

/// The watch over every expected site; shared by the intake (which tells it of each
/// packet) and the broker's gauges (which leave these sites' risk to it).
pub struct SiteWatch {
    plans: Arc<PlanDesk>,
    metrics: Metrics,
    broker: Option<Arc<BrokerDesk>>,
    audit: Option<Arc<AuditLog>>,
    seen: Mutex<Seen>,
    expected: RwLock<BTreeMap<String, WatchedSite>>,
}

/// A watched site as last looked at (what its gauges show).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedSite {
    /// The site code.
    pub site: String,
    /// Its risk of missing its deadline, worst over the plans watching it.
    pub risk: DeadlineRisk,
    /// Seconds silent on its exam day (since its last packet, counted from 11:00 local).
    pub silence_seconds: f64,
    /// Seated rooms without a blanks packet.
    pub rooms_outstanding: i64,
    /// Connected to the center at the look (known only when the center brokers ingress).
    pub connected: bool,
}

impl SiteWatch {
    /// A watch over `plans`, knowing what `inbox` already holds. With `audit`, plan
    /// imports waiting for the log are recorded at every look.
    pub fn new(
        plans: Arc<PlanDesk>,
        metrics: Metrics,
        broker: Option<Arc<BrokerDesk>>,
        audit: Option<Arc<AuditLog>>,
        inbox: &Inbox,
    ) -> Result<Arc<Self>> {
        let watch = SiteWatch {
            plans,
            metrics,
            broker,
            audit,
            seen: Mutex::new(Seen::default()),
            expected: RwLock::new(BTreeMap::new()),
        };
        for record in inbox.records()? {
            watch.remember(&record);
        }
        Ok(Arc::new(watch))
    }

    fn remember(&self, record: &InboxRecord) -> bool {
        let Some(packet) = record.packet.as_ref().filter(|p| p.kind != PacketKind::Test) else {
            return false;
        };
        let b = &record.receipt.body;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let last = seen.last_packet_ms.entry(b.site.clone()).or_default();
        *last = (*last).max(b.received_at_unix_ms);
        seen.packets.insert((
            b.site.clone(),
            packet.date,
            packet.exam,
            packet.room.clone(),
            packet.kind,
        ));
        true
    }

    /// Takes note of a packet just stored.
    pub fn note(&self, record: &InboxRecord) {
        if !self.remember(record) {
            return;
        }
        let site = &record.receipt.body.site;
        let connected = self.connected(site);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // A packet that came another way (a drive) pays off what the site last reported.
        if !connected {
            if let Some(left) = seen.backlog.get_mut(site) {
                *left = left.saturating_sub(record.receipt.body.bytes);
            }
        }
    }

    /// Whether `site` is watched now (its risk gauge is this watch's, not the broker's).
    pub fn is_expected(&self, site: &str) -> bool {
        self.expected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(site)
    }

    /// Every site watched at the last look, by code: the plans' sites on their exam day,
    /// connected or not.
    pub fn sites(&self) -> Vec<WatchedSite> {
        self.expected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn connected(&self, site: &str) -> bool {
        self.broker.as_ref().is_some_and(|b| b.plan().share(site).is_some())
    }

    /// Looks at every expected site at `now_ms` and updates the gauges.
    pub fn look(&self, now_ms: u64) {
        if let (Some(audit), true) = (&self.audit, self.plans.audit_pending()) {
            if let Err(e) = self.plans.record_pending(audit) {
                warn!("a plan import could not be written to the audit log: {e}");
            }
        }
        let expected = match self.plans.expected_sites() {
            Ok(e) => e,
            Err(e) => {
                warn!("the exam-day plans cannot be read; sites are watched as before: {e}");
                return;
            }
        };
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let mut rows: BTreeMap<String, WatchedSite> = BTreeMap::new();
        let broker_plan = self.broker.as_ref().map(|b| b.plan());
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for e in &expected {
            let Some((window_end, deadline, opens, start)) = times(e) else {
                continue;
            };
            if now < start || now > deadline + WATCH_AFTER_DEADLINE_MS {
                continue;
            }
            let code = e.site.code.as_str();
            let share = broker_plan.as_ref().and_then(|p| p.share(code));
            if share.is_some() {
                if let Some(b) = &self.broker {
                    seen.backlog.insert(code.to_owned(), b.backlog(code));
                }
            }
            let outstanding = e
                .seated_rooms
                .iter()
                .filter(|r| {
                    !seen
                        .packets
                        .contains(&(code.to_owned(), e.date, e.exam, (*r).clone(), PacketKind::Blanks))
                })
                .count();
            let standing = Standing {
                connected: share.is_some(),
                broker_risk: share.map(|s| s.risk),
                backlog_bytes: seen.backlog.get(code).copied().unwrap_or(0),
                rooms_outstanding: outstanding,
                window_end_ms: window_end,
                deadline_ms: deadline,
            };
            let risk = assess(&standing, now);
            let heard = seen
                .last_packet_ms
                .get(code)
                .map_or(0, |&t| i64::try_from(t).unwrap_or(0));
            let silence = (now - heard.max(opens)).max(0) as f64 / 1000.0;
            let row = rows.entry(code.to_owned()).or_insert(WatchedSite {
                site: code.to_owned(),
                risk: DeadlineRisk::OnTrack,
                silence_seconds: f64::INFINITY,
                rooms_outstanding: 0,
                connected: standing.connected,
            });
            row.risk = row.risk.max(risk);
            row.silence_seconds = row.silence_seconds.min(silence);
            row.rooms_outstanding += i64::try_from(outstanding).unwrap_or(i64::MAX);
        }
        let m = &self.metrics;
        for gone in seen.shown.iter().filter(|s| !rows.contains_key(*s)) {
            let _ = m.site_silence.remove_label_values(&[gone]);
            let _ = m.site_rooms_outstanding.remove_label_values(&[gone]);
            // Connected sites get the broker's verdict back at its next plan.
            let _ = m.site_deadline_risk.remove_label_values(&[gone]);
        }
        for (site, row) in &rows {
            let l = [site.as_str()];
            m.site_deadline_risk.with_label_values(&l).set(row.risk as i64);
            m.site_silence.with_label_values(&l).set(row.silence_seconds);
            m.site_rooms_outstanding
                .with_label_values(&l)
                .set(row.rooms_outstanding);
            // At zero from the start: an alert sees the first increase.
            for family in [
                &m.packets_received,
                &m.packets_late,
                &m.blanks_after_window,
                &m.journals_after_window,
            ] {
                family.with_label_values(&l);
            }
        }
        seen.shown = rows.keys().cloned().collect();
        drop(seen);
        *self.expected.write().unwrap_or_else(PoisonError::into_inner) = rows;
    }

    /// Looks every `every` for as long as the runtime runs and the watch is held elsewhere.
    pub fn spawn(self: &Arc<Self>, every: std::time::Duration) {
        let watch = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(w) = watch.upgrade() else { return };
                if tokio::task::spawn_blocking(move || w.look(crate::intake::now_ms()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// An expected site's instants (Unix ms): the blanks window's end, its delivery deadline,
/// when silence starts to count (11:00 local), and when it is first watched (00:00 local).
fn times(e: &ExpectedSite) -> Option<(i64, i64, i64, i64)> {
    let zone = e.zone();
    let deadline = zone.delivery_deadline_unix_ms(e.date, e.exam).ok()?;
    let window_end = match e.exam {
        ExamKind::Essay => deadline - ESSAY_AT_RISK_MS,
        ExamKind::Ege | ExamKind::Oge | ExamKind::Gve => zone.local_unix_ms(e.date, 17, 30).ok()?,
    };
    Some((
        window_end,
        deadline,
        zone.local_unix_ms(e.date, 11, 0).ok()?,
        zone.local_unix_ms(e.date, 0, 0).ok()?,
    ))
}

#[cfg(test)]
#[path = "site_watch_tests.rs"]
mod tests;
