//! The edge's scheduler: which packet to offer next, how fast to send, and when it will be through.

use std::collections::BTreeMap;

use super::{transfer_ms, DeadlineRisk, GoodputMeter, TokenBucket};
use crate::{Share, SiteStatus};

/// When a class may start sending, relative to the deadline (23:59 local time of the exam
/// day), so one setting serves every exam day and time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassWindow {
    /// The class (`Offer::priority`).
    pub priority: u8,
    /// The window opens this long before the packet's deadline.
    pub opens_before_deadline_ms: u64,
}

const MINUTE: u64 = 60_000;

/// The edge scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// The site's configured link rate (v of T = x·m/v), bytes per second: the pacing ceiling
    /// and the rate assumed before goodput is measured.
    pub site_rate_bytes_per_s: u64,
    /// Transfer windows per class; a class not listed may send at any time.
    pub windows: Vec<ClassWindow>,
    /// Slack below this is `AtRisk`.
    pub at_risk_margin_ms: u64,
    /// The token bucket's burst, in milliseconds of rate.
    pub burst_ms: u64,
    /// Goodput EWMA time constant.
    pub goodput_tau_ms: u64,
    /// Goodput sample length.
    pub goodput_sample_ms: u64,
}

impl SchedulerConfig {
    /// The regulations' windows (domain.md §3): blanks (1) and audio (3) from 11:00,
    /// journals (2) from 10:30; forms (0) and test packets (4) at any time. 23:59 − 11:00 is
    /// 12 h 59 min; 23:59 − 10:30 is 13 h 29 min.
    pub fn regulations(site_rate_bytes_per_s: u64) -> Self {
        let blanks = (12 * 60 + 59) * MINUTE;
        let journal = (13 * 60 + 29) * MINUTE;
        SchedulerConfig {
            site_rate_bytes_per_s,
            windows: vec![
                ClassWindow {
                    priority: 1,
                    opens_before_deadline_ms: blanks,
                },
                ClassWindow {
                    priority: 2,
                    opens_before_deadline_ms: journal,
                },
                ClassWindow {
                    priority: 3,
                    opens_before_deadline_ms: blanks,
                },
            ],
            at_risk_margin_ms: 30 * MINUTE,
            burst_ms: 250,
            goodput_tau_ms: 30_000,
            goodput_sample_ms: 1_000,
        }
    }
}

/// A packet waiting to be sent (or part-sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPacket {
    /// The packet id.
    pub id: String,
    /// Class, lower first (`Offer::priority`).
    pub priority: u8,
    /// 23:59 local time of its exam day.
    pub deadline_unix_ms: u64,
    /// Envelope size.
    pub size: u64,
    /// Bytes the center already holds durably.
    pub acked: u64,
}

impl QueuedPacket {
    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.acked)
    }
}

/// What the scheduler knows about the backlog's prospects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// Queued bytes not acknowledged plus bytes still expected today.
    pub backlog_bytes: u64,
    /// Of which still expected (not queued yet).
    pub expected_bytes: u64,
    /// Measured goodput, if any.
    pub goodput_bytes_per_s: Option<u64>,
    /// The rate the ETA assumes (goodput, else the configured site rate).
    pub eta_rate_bytes_per_s: u64,
    /// When the backlog will be through; `None` at rate 0 with a backlog.
    pub eta_unix_ms: Option<u64>,
    /// The earliest deadline in the backlog.
    pub deadline_unix_ms: Option<u64>,
    /// Least slack over the deadlines in the backlog (negative: late); `None` without a
    /// backlog or at rate 0.
    pub slack_ms: Option<i64>,
    /// The verdict.
    pub risk: DeadlineRisk,
}

/// One site's sending schedule (see the module docs for the driver's calls).
#[derive(Debug)]
pub struct EdgeScheduler {
    config: SchedulerConfig,
    queue: BTreeMap<String, (u64, QueuedPacket)>,
    seq: u64,
    /// (deadline, bytes) still expected, not queued yet.
    expected: Option<(u64, u64)>,
    share: Option<Share>,
    bucket: TokenBucket,
    goodput: GoodputMeter,
}

impl EdgeScheduler {
    /// An empty schedule pacing at the site's configured rate.
    pub fn new(config: SchedulerConfig, now_unix_ms: u64) -> Self {
        let bucket = TokenBucket::new(config.site_rate_bytes_per_s, config.burst_ms, now_unix_ms);
        let goodput = GoodputMeter::new(config.goodput_tau_ms, config.goodput_sample_ms);
        EdgeScheduler {
            config,
            queue: BTreeMap::new(),
            seq: 0,
            expected: None,
            share: None,
            bucket,
            goodput,
        }
    }

    /// Queues a packet (a packet already queued under the same id is replaced, keeping its
    /// place in arrival order).
    pub fn push(&mut self, packet: QueuedPacket) {
        let seq = match self.queue.get(&packet.id) {
            Some((seq, _)) => *seq,
            None => {
                self.seq += 1;
                self.seq
            }
        };
        self.queue.insert(packet.id.clone(), (seq, packet));
    }

    /// Bytes still expected today that are not queued yet (participants × m not scanned),
    /// due by `deadline_unix_ms`; 0 when everything is queued.
    pub fn expect(&mut self, bytes: u64, deadline_unix_ms: u64) {
        self.expected = (bytes > 0).then_some((deadline_unix_ms, bytes));
    }

    /// The center now holds `acked_total` bytes of packet `id` durably.
    pub fn acknowledged(&mut self, now_unix_ms: u64, id: &str, acked_total: u64) {
        if let Some((_, p)) = self.queue.get_mut(id) {
            let total = acked_total.min(p.size);
            let delta = total.saturating_sub(p.acked);
            p.acked = p.acked.max(total);
            self.goodput.record(now_unix_ms, delta);
        }
    }

    /// Marks a time with no new acknowledgment while busy (a stall lowers the goodput).
    pub fn tick(&mut self, now_unix_ms: u64) {
        if self.queue.is_empty() {
            self.goodput.idle();
        } else {
            self.goodput.record(now_unix_ms, 0);
        }
    }

    /// The packet was delivered (or refused for good): it leaves the queue.
    pub fn finished(&mut self, now_unix_ms: u64, id: &str) {
        if let Some(size) = self.queue.get(id).map(|(_, p)| p.size) {
            self.acknowledged(now_unix_ms, id, size);
        }
        self.queue.remove(id);
        if self.queue.is_empty() {
            self.goodput.idle();
        }
    }

    /// Nothing to send right now: idle time is not counted against the link.
    pub fn idle(&mut self) {
        self.goodput.idle();
    }

    /// The packets queued, in no particular order.
    pub fn queued(&self) -> impl Iterator<Item = &QueuedPacket> {
        self.queue.values().map(|(_, p)| p)
    }

    fn window_opens(&self, p: &QueuedPacket) -> Option<u64> {
        self.config
            .windows
            .iter()
            .find(|w| w.priority == p.priority)
            .map(|w| p.deadline_unix_ms.saturating_sub(w.opens_before_deadline_ms))
    }

    fn holds_windows(&self, now_unix_ms: u64) -> bool {
        self.status(now_unix_ms).risk == DeadlineRisk::OnTrack
    }

    /// The packet to offer next: class, then earliest deadline, then arrival; `None` when the
    /// queue is empty or every packet waits for its window (see `next_wakeup`).
    pub fn next(&self, now_unix_ms: u64) -> Option<&QueuedPacket> {
        self.order(now_unix_ms).into_iter().next()
    }

    /// Every packet that may be offered now, in the order to offer them (a driver with
    /// several packets in flight takes them from the front, skipping those it is sending).
    pub fn order(&self, now_unix_ms: u64) -> Vec<&QueuedPacket> {
        let hold = self.holds_windows(now_unix_ms);
        let mut open: Vec<_> = self
            .queue
            .values()
            .filter(|(_, p)| !hold || self.window_opens(p).is_none_or(|at| at <= now_unix_ms))
            .collect();
        open.sort_unstable_by_key(|(seq, p)| (p.priority, p.deadline_unix_ms, *seq));
        open.into_iter().map(|(_, p)| p).collect()
    }

    /// Whether a packet is queued under `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.queue.contains_key(id)
    }

    /// When a held packet's window opens, if `next` returns `None` only because of windows.
    pub fn next_wakeup(&self, now_unix_ms: u64) -> Option<u64> {
        if self.next(now_unix_ms).is_some() {
            return None;
        }
        self.queue
            .values()
            .filter_map(|(_, p)| self.window_opens(p))
            .filter(|at| *at > now_unix_ms)
            .min()
    }

    /// Applies the center's share (a lapsed one is ignored).
    pub fn set_share(&mut self, now_unix_ms: u64, share: Share) {
        self.share = Some(share);
        let rate = self.pacing_rate(now_unix_ms);
        self.bucket.set_rate(now_unix_ms, rate);
    }

    /// The rate packets are paced to now: min(site rate, the center's valid share).
    pub fn pacing_rate(&self, now_unix_ms: u64) -> u64 {
        match &self.share {
            Some(s) if s.valid_until_unix_ms > now_unix_ms => s.rate_bytes_per_s.min(self.config.site_rate_bytes_per_s),
            _ => self.config.site_rate_bytes_per_s,
        }
    }

    /// Bytes of `want` that may be sent now.
    pub fn grant(&mut self, now_unix_ms: u64, want_bytes: u64) -> u64 {
        let rate = self.pacing_rate(now_unix_ms);
        if rate != self.bucket.rate() {
            self.bucket.set_rate(now_unix_ms, rate);
        }
        self.bucket.grant(now_unix_ms, want_bytes)
    }

    /// When `bytes` may be sent at once; `None` while the rate is 0.
    pub fn ready_at(&mut self, now_unix_ms: u64, bytes: u64) -> Option<u64> {
        let rate = self.pacing_rate(now_unix_ms);
        if rate != self.bucket.rate() {
            self.bucket.set_rate(now_unix_ms, rate);
        }
        self.bucket.ready_at(now_unix_ms, bytes)
    }

    /// Measured goodput, bytes per second.
    pub fn goodput(&self) -> Option<u64> {
        self.goodput.bytes_per_s()
    }

    /// Backlog, ETA, slack and risk now.
    pub fn status(&self, now_unix_ms: u64) -> ScheduleStatus {
        let mut due: Vec<(u64, u64)> = self
            .queue
            .values()
            .map(|(_, p)| (p.deadline_unix_ms, p.remaining()))
            .collect();
        if let Some(expected) = self.expected {
            due.push(expected);
        }
        due.sort_unstable();
        let goodput = self.goodput.bytes_per_s();
        let rate = goodput.unwrap_or(self.config.site_rate_bytes_per_s);
        let backlog: u64 = due.iter().map(|(_, b)| b).sum();
        let eta = transfer_ms(backlog, rate).map(|ms| now_unix_ms.saturating_add(ms));
        let mut slack: Option<i64> = None;
        let mut cum = 0u64;
        let mut hopeless = false;
        for (deadline, bytes) in &due {
            if *bytes == 0 {
                continue;
            }
            cum += bytes;
            match transfer_ms(cum, rate) {
                Some(ms) => {
                    let s = *deadline as i64 - now_unix_ms.saturating_add(ms) as i64;
                    slack = Some(slack.map_or(s, |m| m.min(s)));
                }
                None => hopeless = true,
            }
        }
        let risk = match slack {
            _ if hopeless => DeadlineRisk::WillMiss,
            Some(s) if s < 0 => DeadlineRisk::WillMiss,
            Some(s) if (s as u64) < self.config.at_risk_margin_ms => DeadlineRisk::AtRisk,
            _ => DeadlineRisk::OnTrack,
        };
        let expected_bytes = self.expected.map_or(0, |(_, b)| b);
        ScheduleStatus {
            backlog_bytes: backlog,
            expected_bytes,
            goodput_bytes_per_s: goodput,
            eta_rate_bytes_per_s: rate,
            eta_unix_ms: if backlog == 0 { Some(now_unix_ms) } else { eta },
            deadline_unix_ms: due.iter().find(|(_, b)| *b > 0).map(|(d, _)| *d),
            slack_ms: if hopeless { None } else { slack },
            risk,
        }
    }

    /// The status report for the center's broker.
    pub fn site_status(&self, now_unix_ms: u64) -> SiteStatus {
        let s = self.status(now_unix_ms);
        SiteStatus {
            backlog_bytes: s.backlog_bytes - s.expected_bytes,
            expected_bytes: s.expected_bytes,
            goodput_bytes_per_s: s.goodput_bytes_per_s.unwrap_or(0),
            link_bytes_per_s: self.config.site_rate_bytes_per_s,
            deadline_unix_ms: s.deadline_unix_ms.unwrap_or(0),
            eta_unix_ms: s.eta_unix_ms.unwrap_or(0),
            risk: s.risk,
            at_unix_ms: now_unix_ms,
        }
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
