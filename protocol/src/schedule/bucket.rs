//! A token bucket pacing bytes to a rate, in integer milli-bytes so it never drifts.

use crate::frame::DATA_CHUNK;

/// Paces bytes to `rate` bytes per second with a burst of `burst_ms` worth of rate (at least
/// one data chunk, so a whole chunk can always be granted eventually).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    burst_ms: u64,
    /// Tokens × 1000 (bytes per second × milliseconds accrue exactly).
    milli_tokens: u128,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `rate_bytes_per_s`.
    pub fn new(rate_bytes_per_s: u64, burst_ms: u64, now_unix_ms: u64) -> Self {
        let mut b = TokenBucket {
            rate: rate_bytes_per_s,
            burst_ms,
            milli_tokens: 0,
            last_ms: now_unix_ms,
        };
        b.milli_tokens = b.capacity_milli();
        b
    }

    fn capacity_milli(&self) -> u128 {
        (u128::from(self.rate) * u128::from(self.burst_ms)).max(DATA_CHUNK as u128 * 1000)
    }

    fn refill(&mut self, now_unix_ms: u64) {
        if now_unix_ms > self.last_ms {
            let add = u128::from(self.rate) * u128::from(now_unix_ms - self.last_ms);
            self.milli_tokens = (self.milli_tokens + add).min(self.capacity_milli());
            self.last_ms = now_unix_ms;
        }
    }

    /// The rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The largest grant the bucket can hold, bytes.
    pub fn burst_bytes(&self) -> u64 {
        u64::try_from(self.capacity_milli() / 1000).unwrap_or(u64::MAX)
    }

    /// Changes the rate from `now` on (tokens accrued so far at the old rate are kept, up to
    /// the new burst).
    pub fn set_rate(&mut self, now_unix_ms: u64, rate_bytes_per_s: u64) {
        self.refill(now_unix_ms);
        self.rate = rate_bytes_per_s;
        self.milli_tokens = self.milli_tokens.min(self.capacity_milli());
    }

    /// Bytes that could be granted now.
    pub fn available(&mut self, now_unix_ms: u64) -> u64 {
        self.refill(now_unix_ms);
        u64::try_from(self.milli_tokens / 1000).unwrap_or(u64::MAX)
    }

    /// Takes up to `want_bytes` now and returns how many were granted.
    pub fn grant(&mut self, now_unix_ms: u64, want_bytes: u64) -> u64 {
        let n = self.available(now_unix_ms).min(want_bytes);
        self.milli_tokens -= u128::from(n) * 1000;
        n
    }

    /// When `bytes` (at most the burst) can be granted at once; `None` while the rate is 0
    /// and the bucket does not hold them.
    pub fn ready_at(&mut self, now_unix_ms: u64, bytes: u64) -> Option<u64> {
        self.refill(now_unix_ms);
        let want = (u128::from(bytes) * 1000).min(self.capacity_milli());
        if self.milli_tokens >= want {
            return Some(now_unix_ms);
        }
        if self.rate == 0 {
            return None;
        }
        let wait = (want - self.milli_tokens).div_ceil(u128::from(self.rate));
        Some(now_unix_ms.saturating_add(u64::try_from(wait).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
#[path = "bucket_tests.rs"]
mod tests;
