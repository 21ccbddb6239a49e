//! Measured goodput: an exponentially weighted moving average of acknowledged bytes per second.

/// Acknowledged bytes per second, smoothed with time constant `tau_ms` over samples of at
/// least `sample_ms`. Only busy time counts: call `idle` when there is nothing to send.
#[derive(Debug, Clone)]
pub struct GoodputMeter {
    tau_ms: u64,
    sample_ms: u64,
    window_start: Option<u64>,
    window_bytes: u64,
    ewma: Option<f64>,
}

impl GoodputMeter {
    /// A meter with no measurement yet.
    pub fn new(tau_ms: u64, sample_ms: u64) -> Self {
        GoodputMeter {
            tau_ms: tau_ms.max(1),
            sample_ms: sample_ms.max(1),
            window_start: None,
            window_bytes: 0,
            ewma: None,
        }
    }

    /// Records bytes the center acknowledged since the last call (0 is fine and must be
    /// recorded periodically while busy, or a stalled link would keep its old figure). The
    /// first call after `new` or `idle` opens the sampling window.
    pub fn record(&mut self, now_unix_ms: u64, acked_bytes: u64) {
        let Some(start) = self.window_start else {
            self.window_start = Some(now_unix_ms);
            self.window_bytes = acked_bytes;
            return;
        };
        self.window_bytes = self.window_bytes.saturating_add(acked_bytes);
        let dt = now_unix_ms.saturating_sub(start);
        if dt < self.sample_ms {
            return;
        }
        let inst = self.window_bytes as f64 * 1000.0 / dt as f64;
        self.ewma = Some(match self.ewma {
            None => inst,
            Some(prev) => {
                let alpha = 1.0 - (-(dt as f64) / self.tau_ms as f64).exp();
                prev + alpha * (inst - prev)
            }
        });
        self.window_start = Some(now_unix_ms);
        self.window_bytes = 0;
    }

    /// Nothing to send: the open window is dropped so idle time does not read as a slow link.
    pub fn idle(&mut self) {
        self.window_start = None;
        self.window_bytes = 0;
    }

    /// The smoothed goodput, bytes per second; `None` before the first full sample.
    pub fn bytes_per_s(&self) -> Option<u64> {
        self.ewma.map(|r| r.round().max(0.0) as u64)
    }
}

#[cfg(test)]
#[path = "goodput_tests.rs"]
mod tests;
