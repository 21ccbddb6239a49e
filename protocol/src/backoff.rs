//! How long a push waits before it connects again (sans-IO: it only counts, the driver sleeps).

use std::time::Duration;

/// The longest wait between two attempts: a site near 23:59 never sits idle longer.
pub const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// Doubling waits between failed attempts, back to the shortest after any attempt that
/// got something across: a link that drops now and then is not a link that is down.
#[derive(Debug, Clone)]
pub struct Backoff {
    shortest: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits starting at `shortest`, kept within 50 ms and [`LONGEST_WAIT`].
    pub fn new(shortest: Duration) -> Self {
        let shortest = shortest.clamp(Duration::from_millis(50), LONGEST_WAIT);
        Backoff {
            shortest,
            next: shortest,
        }
    }

    /// Waits starting at `seconds` as configured (`push.retry_seconds`).
    pub fn from_seconds(seconds: f64) -> Self {
        Backoff::new(Duration::try_from_secs_f64(seconds).unwrap_or(LONGEST_WAIT))
    }

    /// A connection ended; `progressed` if it delivered a packet or carried at least a
    /// segment the center makes durable.
    pub fn connection_ended(&mut self, progressed: bool) {
        if progressed {
            self.next = self.shortest;
        }
    }

    /// An attempt failed: how long to wait before the next one.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(LONGEST_WAIT);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_longest_and_start_again_after_progress() {
        let mut b = Backoff::new(Duration::from_millis(100));
        let waits: Vec<u64> = (0..11).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        b.connection_ended(false);
        assert_eq!(
            b.failed(),
            LONGEST_WAIT,
            "a connection that carried nothing changes nothing"
        );
        b.connection_ended(true);
        assert_eq!(b.failed(), Duration::from_millis(100));
        assert_eq!(b.failed(), Duration::from_millis(200));
        assert_eq!(Backoff::new(Duration::ZERO).failed(), Duration::from_millis(50));
        assert_eq!(Backoff::from_seconds(f64::INFINITY).failed(), LONGEST_WAIT);
        assert_eq!(Backoff::from_seconds(-1.0).failed(), LONGEST_WAIT);
        assert_eq!(Backoff::from_seconds(0.5).failed(), Duration::from_millis(500));
    }
}
