//! Bandwidth scheduling, sans-IO: which packet an edge sends next and how fast, and how the
//! center splits its ingress among the sites so that every site finishes before 23:59 local
//! time of its exam day (domain.md §3, §6; R4, R6, R15).
//!
//! Nothing here reads a clock or touches a socket: every call takes `now_unix_ms`, and the
//! driver asks when to call again (`EdgeScheduler::next_wakeup`, `TokenBucket::ready_at`).
//!
//! # Edge ([`EdgeScheduler`])
//! The driver keeps one scheduler per site and
//! - `push`es each sealed packet (id, class = `Offer::priority`, deadline, size) and tells it
//!   the bytes still expected today (`expect`: participants × m not yet scanned, so the
//!   morning's ETA is T = x·m/v before anything is queued);
//! - asks `next(now)` for the packet to offer next: class order (forms 0 → blanks 1 →
//!   journal 2 → audio 3 → test 4, `PacketKind::priority`), then earliest deadline first
//!   across exam days, then arrival order. Asking again before each chunk lets a newly
//!   sealed room's forms overtake blanks already in flight (each packet is its own stream;
//!   the paused one continues where it stopped);
//! - before reading each `Data` chunk asks `grant(now, chunk_len)`; when it grants less,
//!   sleeps until `ready_at(now, chunk_len)`;
//! - reports acknowledged bytes with `acknowledged(now, id, total)` and `finished(now, id)`
//!   on receipt or final reject; calls `tick(now)` every second or so while busy (so a stall
//!   lowers the goodput) and `idle()` when nothing is queued (so idle time is not counted as
//!   a slow link). In the quinn driver "acknowledged" can be the bytes whose `write_all` on
//!   the stream returned — QUIC's flow control keeps that within a window of what the center
//!   has read — with `Accept{resume_at}` and the receipt as the durable confirmations;
//! - sends `site_status(now)` to the center every few seconds, and applies the center's
//!   `Share` with `set_share`.
//!
//! **Transfer windows.** The regulations' monitoring windows (blanks from 11:00, journals from
//! 10:30, local time) are configured per class as "opens this long before the deadline"
//! (23:59 local), so they need no time zone and work for every exam day in the queue. A class
//! whose window has not opened is held back — unless the site's deadline is at risk (risk
//! is not `OnTrack`), in which case every window is ignored: sending early and being colored
//! "early" by the monitoring beats missing 23:59. Windows never stop a class once open:
//! after the window closes (17:30 / 19:00) packets still go (late for the monitoring, but the
//! 23:59 deadline is what counts).
//!
//! **Pacing.** A token bucket at min(the site's configured rate, the center's share); with no
//! valid share the site's own rate.
//!
//! **ETA and risk.** Goodput is an EWMA of acknowledged bytes per second while there is
//! something to send. The ETA is backlog / goodput (before any measurement, the configured
//! rate: T = x·m/v). The slack is checked in deadline order (the backlog of each exam day must
//! be through by that day's deadline): slack = min over deadlines d of d − (now + bytes due by
//! d / rate). Negative slack: `WillMiss`; below the margin: `AtRisk`; else `OnTrack`.
//!
//! # Center ([`Broker`])
//! One broker per center, fed `connect`/`disconnect`, each `SiteStatus` (`report`) and the
//! bytes actually received (`received`, the progress signal). A site reports its queued
//! backlog and, apart, the bytes it still expects today: the need and the slack count both,
//! but only a site with queued bytes gets a share (a share for bytes not scanned yet would
//! sit idle). A site with a backlog over several exam days reports its earliest deadline
//! and its whole backlog, so the broker errs on the early side. `plan(now)` returns each
//! site's share: first, in order of least slack, each site gets the rate it needs to finish
//! by its deadline less the at-risk margin (30 min) — all its link can take once even that
//! leaves less than the margin — capped by what its link can take; then the rest is
//! water-filled up to the links' caps; then, if capacity is still left and any site has backlog, it is spread over
//! the active sites anyway (a link estimate may be low). A site that made no progress for
//! `stall_after_ms` although it had a share is *stalled*: it keeps only a small probe rate,
//! so the others get its share, and is reinstated as soon as bytes arrive again. Shares never
//! sum above the capacity. Sites that cannot finish even with everything they could get are
//! flagged `WillMiss`. The center driver re-plans every few seconds and on every connect,
//! disconnect, capacity change or status whose backlog stops being empty, and sends each
//! site `plan.share(site).message(now, config.share_valid_ms)`.

mod broker;
mod bucket;
mod goodput;
mod scheduler;

pub use broker::{Broker, BrokerConfig, Plan, SiteShare, SiteState};
pub use bucket::TokenBucket;
pub use goodput::GoodputMeter;
pub use scheduler::{ClassWindow, EdgeScheduler, QueuedPacket, ScheduleStatus, SchedulerConfig};

use serde::{Deserialize, Serialize};

/// Whether a backlog will be through by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeadlineRisk {
    /// Finishes with at least the margin to spare.
    OnTrack,
    /// Finishes, but with less than the margin to spare (or needs more than it is given).
    AtRisk,
    /// Cannot finish in time at the rate available.
    WillMiss,
}

impl DeadlineRisk {
    /// Every level, for tests and metrics.
    pub const ALL: [DeadlineRisk; 3] = [DeadlineRisk::OnTrack, DeadlineRisk::AtRisk, DeadlineRisk::WillMiss];

    /// A stable machine-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineRisk::OnTrack => "on_track",
            DeadlineRisk::AtRisk => "at_risk",
            DeadlineRisk::WillMiss => "will_miss",
        }
    }
}

/// Milliseconds to move `bytes` at `rate_bytes_per_s` (rounded up); `None` at rate 0.
pub(crate) fn transfer_ms(bytes: u64, rate_bytes_per_s: u64) -> Option<u64> {
    if bytes == 0 {
        return Some(0);
    }
    if rate_bytes_per_s == 0 {
        return None;
    }
    let ms = (u128::from(bytes) * 1000).div_ceil(u128::from(rate_bytes_per_s));
    Some(u64::try_from(ms).unwrap_or(u64::MAX))
}
