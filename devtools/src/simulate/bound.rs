//! Whether a schedule meeting every deadline could exist at all: two necessary conditions.
//!
//! 1. Per site: for every release time τ of its packets, the bytes released at or after τ fit
//!    through its link while it is up between τ and its deadline.
//! 2. Center: for every deadline D and release time τ, the bytes of all sites released at or
//!    after τ with deadline ≤ D fit through the center's ingress between τ and D (the
//!    demand-bound test of preemptive earliest-deadline-first on one resource).
//!
//! Both are necessary, not sufficient (a site's link and the center's ingress can each be
//! enough on their own but not at the same moments), so "feasible" here is optimistic: a
//! policy that misses a deadline the bound calls feasible may still have had no way out,
//! but a policy that meets every deadline the bound calls infeasible is impossible.

use super::network::CenterLink;
use super::region::SimSite;

/// Uptime of a site's link in [from, to), ms.
fn uptime(site: &SimSite, from: u64, to: u64) -> u64 {
    let total = to.saturating_sub(from);
    match site.outage {
        Some((a, b)) => total - to.min(b).saturating_sub(from.max(a)).min(total),
        None => total,
    }
}

/// Condition 1 for one site.
pub(super) fn site_feasible(site: &SimSite) -> bool {
    let mut suffix = 0u128;
    for p in site.packets.iter().rev() {
        suffix += u128::from(p.size);
        let room =
            u128::from(site.link_bytes_per_s) * u128::from(uptime(site, p.ready_unix_ms, site.deadline_unix_ms)) / 1000;
        if suffix > room {
            return false;
        }
    }
    true
}

/// Condition 2 for the whole region.
pub(super) fn center_feasible(sites: &[SimSite], center: &CenterLink) -> bool {
    let mut deadlines: Vec<u64> = sites.iter().map(|s| s.deadline_unix_ms).collect();
    deadlines.sort_unstable();
    deadlines.dedup();
    for d in deadlines {
        let mut due: Vec<(u64, u64)> = sites
            .iter()
            .filter(|s| s.deadline_unix_ms <= d)
            .flat_map(|s| s.packets.iter().map(|p| (p.ready_unix_ms, p.size)))
            .collect();
        due.sort_unstable();
        let mut suffix = 0u128;
        for (ready, size) in due.into_iter().rev() {
            suffix += u128::from(size);
            if suffix > center.bytes_between(ready, d) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
#[path = "bound_tests.rs"]
mod tests;
