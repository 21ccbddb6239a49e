//! How long is left until the site's 23:59 deadline, and whether the push, at the rate
//! it is going, will make it — the operator is warned early, not at 23:58.

use std::fmt;

/// Where a push stands against its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineStatus {
    /// Milliseconds until the deadline (negative once past).
    pub left_ms: i64,
    /// Milliseconds the rest will take at the measured rate, if a rate is known.
    pub eta_ms: Option<i64>,
}

impl DeadlineStatus {
    /// The status at `now_ms` with `remaining` bytes to send at `rate` bytes per second.
    pub fn at(now_ms: i64, deadline_ms: i64, remaining: u64, rate: f64) -> Self {
        let eta_ms = (rate > 0.0).then(|| (remaining as f64 / rate * 1000.0).ceil() as i64);
        DeadlineStatus {
            left_ms: deadline_ms - now_ms,
            eta_ms,
        }
    }

    /// Whether the last byte is expected after the deadline (or the deadline has passed).
    pub fn at_risk(&self) -> bool {
        self.left_ms <= 0 || self.eta_ms.is_some_and(|eta| eta > self.left_ms)
    }
}

fn hm(ms: i64) -> String {
    let minutes = ms.unsigned_abs().div_ceil(60_000);
    format!("{}h{:02}m", minutes / 60, minutes % 60)
}

impl fmt::Display for DeadlineStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.left_ms <= 0 {
            return write!(
                f,
                "⚠ the 23:59 deadline passed {} ago — call the center",
                hm(self.left_ms)
            );
        }
        match self.eta_ms {
            Some(eta) if eta > self.left_ms => write!(
                f,
                "⚠ at this rate the last packet lands {} after 23:59 ({} left) — call the center, consider the reserve channel",
                hm(eta - self.left_ms),
                hm(self.left_ms)
            ),
            _ => write!(f, "{} left until 23:59 local", hm(self.left_ms)),
        }
    }
}

#[cfg(test)]
#[path = "deadline_tests.rs"]
mod tests;
