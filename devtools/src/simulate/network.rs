//! The simulated network, as a fluid model: each site's link carries up to its rate (zero
//! while down), and the center's ingress is shared max-min fairly among the flows that
//! offer more than it can take — what competing TCP-like flows converge to.

use super::{CenterReserve, Scenario};

/// The center's ingress over the day: its main link, or the reserve channel while the main
/// one is down.
#[derive(Debug, Clone)]
pub(super) struct CenterLink {
    main: u64,
    reserve: Option<CenterReserve>,
}

impl CenterLink {
    /// From the scenario.
    pub(super) fn new(s: &Scenario) -> Self {
        CenterLink {
            main: mbit(s.center_mbit),
            reserve: s.center_reserve.clone(),
        }
    }

    /// Capacity at `t`, bytes per second.
    pub(super) fn rate_at(&self, t: u64) -> u64 {
        match &self.reserve {
            Some(r) if t >= r.from_unix_ms && t < r.to_unix_ms => mbit(r.mbit),
            _ => self.main,
        }
    }

    /// Bytes the center can take in [from, to) (the integral of `rate_at`).
    pub(super) fn bytes_between(&self, from: u64, to: u64) -> u128 {
        if to <= from {
            return 0;
        }
        let full = u128::from(self.main) * u128::from(to - from) / 1000;
        match &self.reserve {
            Some(r) => {
                let a = from.max(r.from_unix_ms);
                let b = to.min(r.to_unix_ms);
                if b > a {
                    let lost = u128::from(self.main.saturating_sub(mbit(r.mbit))) * u128::from(b - a) / 1000;
                    full - lost.min(full)
                } else {
                    full
                }
            }
            None => full,
        }
    }
}

/// Megabits per second to bytes per second.
pub(super) fn mbit(m: f64) -> u64 {
    (m * 1e6 / 8.0) as u64
}

/// Splits `capacity` among `offered` (each gets at most its offer) max-min fairly.
pub(super) fn fair_share(offered: &[u64], capacity: u64) -> Vec<u64> {
    let total: u64 = offered.iter().sum();
    if total <= capacity {
        return offered.to_vec();
    }
    let mut order: Vec<usize> = (0..offered.len()).filter(|&i| offered[i] > 0).collect();
    order.sort_by_key(|&i| offered[i]);
    let mut out = vec![0; offered.len()];
    let mut left = capacity;
    let mut n = order.len() as u64;
    for i in order {
        let level = left / n.max(1);
        let give = offered[i].min(level);
        out[i] = give;
        left -= give;
        n -= 1;
    }
    out
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
