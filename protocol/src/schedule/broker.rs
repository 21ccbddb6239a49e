//! The center's bandwidth broker: splits the center's ingress among the connected sites so
//! the ones with the least slack are served first and no capacity is left idle.

use std::collections::BTreeMap;

use super::{transfer_ms, DeadlineRisk};
use crate::{Share, SiteStatus};

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The center's ingress capacity, bytes per second.
    pub capacity_bytes_per_s: u64,
    /// A site with a share and a backlog that delivered nothing for this long is stalled.
    pub stall_after_ms: u64,
    /// What a stalled site keeps, to show when it recovers.
    pub probe_bytes_per_s: u64,
    /// How long a share stays valid at the edge (a few re-plan periods).
    pub share_valid_ms: u64,
    /// Slack below this is `AtRisk`.
    pub at_risk_margin_ms: u64,
}

impl BrokerConfig {
    /// Defaults for a center of `capacity_bytes_per_s`: stalled after 30 s, 16 KB/s probe,
    /// shares valid 30 s, 30 min margin.
    pub fn new(capacity_bytes_per_s: u64) -> Self {
        BrokerConfig {
            capacity_bytes_per_s,
            stall_after_ms: 30_000,
            probe_bytes_per_s: 16_000,
            share_valid_ms: 30_000,
            at_risk_margin_ms: 30 * 60_000,
        }
    }
}

/// What the broker knows of one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteState {
    /// Whether its station is connected.
    pub connected: bool,
    /// Its last reported backlog, less what arrived since.
    pub backlog_bytes: u64,
    /// Bytes it still expects today (not queued yet).
    pub expected_bytes: u64,
    /// Its last reported goodput; 0: unknown.
    pub goodput_bytes_per_s: u64,
    /// Its configured link rate; 0: unknown.
    pub link_bytes_per_s: u64,
    /// The earliest deadline in its backlog; 0: none.
    pub deadline_unix_ms: u64,
    /// The share given at the last plan.
    pub share_bytes_per_s: u64,
    /// Since when it has been expected to make progress (active with a share) without any.
    pub waiting_since_unix_ms: Option<u64>,
}

/// One site's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteShare {
    /// The site code.
    pub site: String,
    /// The rate it may send at, bytes per second.
    pub rate_bytes_per_s: u64,
    /// The rate it needs to finish by its deadline (its backlog over the time left).
    pub needed_bytes_per_s: u64,
    /// What the broker believes its link can take.
    pub link_cap_bytes_per_s: u64,
    /// Whether it is stalled (given only the probe rate).
    pub stalled: bool,
    /// The center's verdict on its deadline.
    pub risk: DeadlineRisk,
}

impl SiteShare {
    /// The message to send the site.
    pub fn message(&self, now_unix_ms: u64, valid_ms: u64) -> Share {
        Share {
            rate_bytes_per_s: self.rate_bytes_per_s,
            valid_until_unix_ms: now_unix_ms.saturating_add(valid_ms),
            risk: self.risk,
        }
    }
}

/// A bandwidth plan: one share per connected site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// When it was made.
    pub at_unix_ms: u64,
    /// Per connected site, in order of least slack first.
    pub shares: Vec<SiteShare>,
}

impl Plan {
    /// The sum of all shares (never above the capacity).
    pub fn total_bytes_per_s(&self) -> u64 {
        self.shares.iter().map(|s| s.rate_bytes_per_s).sum()
    }

    /// The share of `site`, if it is connected.
    pub fn share(&self, site: &str) -> Option<&SiteShare> {
        self.shares.iter().find(|s| s.site == site)
    }

    /// Sites that cannot finish in time even with everything they could get.
    pub fn will_miss(&self) -> impl Iterator<Item = &str> {
        self.shares
            .iter()
            .filter(|s| s.risk == DeadlineRisk::WillMiss)
            .map(|s| s.site.as_str())
    }
}

/// The center's broker (see the module docs).
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    sites: BTreeMap<String, SiteState>,
}

/// Goodput well below the share means the link, not the share, is the limit.
const LINK_LIMITED: f64 = 0.8;
/// Headroom over a link-limited goodput, so a link that got faster is noticed.
const LINK_HEADROOM: f64 = 1.25;

impl Broker {
    /// A broker with no sites.
    pub fn new(config: BrokerConfig) -> Self {
        Broker {
            config,
            sites: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Changes the center's capacity (e.g. the reserve channel took over).
    pub fn set_capacity(&mut self, capacity_bytes_per_s: u64) {
        self.config.capacity_bytes_per_s = capacity_bytes_per_s;
    }

    /// What the broker knows of `site`.
    pub fn site(&self, site: &str) -> Option<&SiteState> {
        self.sites.get(site)
    }

    /// A site's station connected.
    pub fn connect(&mut self, site: &str, _now_unix_ms: u64) {
        let s = self.sites.entry(site.to_owned()).or_insert(SiteState {
            connected: true,
            backlog_bytes: 0,
            expected_bytes: 0,
            goodput_bytes_per_s: 0,
            link_bytes_per_s: 0,
            deadline_unix_ms: 0,
            share_bytes_per_s: 0,
            waiting_since_unix_ms: None,
        });
        s.connected = true;
        s.waiting_since_unix_ms = None;
    }

    /// A site's station disconnected: it gets nothing until it connects again.
    pub fn disconnect(&mut self, site: &str, _now_unix_ms: u64) {
        if let Some(s) = self.sites.get_mut(site) {
            s.connected = false;
            s.share_bytes_per_s = 0;
            s.waiting_since_unix_ms = None;
        }
    }

    /// A site's status report (a site not connected yet is connected by it).
    pub fn report(&mut self, site: &str, now_unix_ms: u64, status: &SiteStatus) {
        if !self.sites.get(site).is_some_and(|s| s.connected) {
            self.connect(site, now_unix_ms);
        }
        if let Some(s) = self.sites.get_mut(site) {
            if s.backlog_bytes == 0 && status.backlog_bytes > 0 {
                // New work after an idle spell: the stall clock starts now, not at the last byte.
                s.waiting_since_unix_ms = None;
            }
            s.backlog_bytes = status.backlog_bytes;
            s.expected_bytes = status.expected_bytes;
            s.goodput_bytes_per_s = status.goodput_bytes_per_s;
            s.link_bytes_per_s = status.link_bytes_per_s;
            s.deadline_unix_ms = status.deadline_unix_ms;
        }
    }

    /// Bytes of `site` arrived at the center: progress (and less backlog until the next report).
    pub fn received(&mut self, site: &str, now_unix_ms: u64, bytes: u64) {
        if let Some(s) = self.sites.get_mut(site) {
            if bytes > 0 {
                s.backlog_bytes = s.backlog_bytes.saturating_sub(bytes);
                s.waiting_since_unix_ms = Some(now_unix_ms);
            }
        }
    }

    fn link_cap(&self, s: &SiteState) -> u64 {
        let cap = self.config.capacity_bytes_per_s;
        let declared = if s.link_bytes_per_s > 0 {
            s.link_bytes_per_s.min(cap)
        } else {
            cap
        };
        let g = s.goodput_bytes_per_s;
        if g > 0 && s.share_bytes_per_s > 0 && (g as f64) < s.share_bytes_per_s as f64 * LINK_LIMITED {
            // The site did not use what it was given: its link is the limit.
            ((g as f64 * LINK_HEADROOM) as u64).clamp(1, declared)
        } else {
            declared
        }
    }

    /// Re-plans the shares of all connected sites.
    pub fn plan(&mut self, now_unix_ms: u64) -> Plan {
        let capacity = self.config.capacity_bytes_per_s;
        struct Row {
            site: String,
            backlog: u64,
            cap: u64,
            need: u64,
            slack: i64,
            stalled: bool,
            rate: u64,
        }
        let mut rows: Vec<Row> = Vec::new();
        for (site, s) in &self.sites {
            if !s.connected {
                continue;
            }
            let active = s.backlog_bytes > 0;
            let stalled = active
                && s.share_bytes_per_s > 0
                && s.waiting_since_unix_ms
                    .is_some_and(|t| now_unix_ms.saturating_sub(t) >= self.config.stall_after_ms);
            let cap = if active { self.link_cap(s) } else { 0 };
            // Need and slack count the whole day's remaining bytes, so a site that will be
            // busy later is served faster now; only queued bytes make a site eligible.
            let total = s.backlog_bytes.saturating_add(s.expected_bytes);
            // Aim to be through a margin before the deadline, so a late hiccup is survivable.
            let target = match s.deadline_unix_ms.checked_sub(self.config.at_risk_margin_ms) {
                Some(t) if t > now_unix_ms => t,
                _ => s.deadline_unix_ms,
            };
            let left_ms = target.saturating_sub(now_unix_ms);
            let best = transfer_ms(total, cap).map_or(i64::MIN, |ms| {
                s.deadline_unix_ms as i64 - now_unix_ms.saturating_add(ms) as i64
            });
            let need = if !active {
                0
            } else if left_ms == 0 || best < self.config.at_risk_margin_ms as i64 {
                // Within the margin even at full speed: it needs all its link can take.
                cap
            } else {
                u64::try_from((u128::from(total) * 1000).div_ceil(u128::from(left_ms))).unwrap_or(u64::MAX)
            };
            rows.push(Row {
                site: site.clone(),
                backlog: s.backlog_bytes,
                cap,
                need,
                slack: if active { best } else { i64::MAX },
                stalled,
                rate: 0,
            });
        }
        rows.sort_by(|a, b| a.slack.cmp(&b.slack).then_with(|| a.site.cmp(&b.site)));

        let mut left = capacity;
        // Stalled sites first keep a probe each (all probes together at most the capacity).
        let stalled = rows.iter().filter(|r| r.stalled).count() as u64;
        if let Some(each) = capacity.checked_div(stalled) {
            let probe = self.config.probe_bytes_per_s.min(each);
            for r in rows.iter_mut().filter(|r| r.stalled) {
                r.rate = probe.min(r.cap);
                left -= r.rate;
            }
        }
        let eligible = |r: &Row| r.backlog > 0 && !r.stalled;
        // 1. Least slack first: the rate each needs, capped by its link.
        for r in rows.iter_mut().filter(|r| eligible(r)) {
            let give = r.need.min(r.cap).min(left);
            r.rate += give;
            left -= give;
        }
        // 2. Water-fill what is left up to the links' caps.
        water_fill(
            &mut rows,
            &mut left,
            |r| if eligible(r) { r.cap } else { r.rate },
            |r| &mut r.rate,
        );
        // 3. Still capacity and still backlog (every link estimate is full): spread it anyway.
        water_fill(
            &mut rows,
            &mut left,
            |r| if eligible(r) { u64::MAX } else { r.rate },
            |r| &mut r.rate,
        );

        let margin = self.config.at_risk_margin_ms as i64;
        let shares: Vec<SiteShare> = rows
            .into_iter()
            .map(|r| {
                let risk = if r.backlog == 0 {
                    DeadlineRisk::OnTrack
                } else if r.slack < 0 {
                    DeadlineRisk::WillMiss
                } else if r.rate < r.need || r.slack < margin {
                    DeadlineRisk::AtRisk
                } else {
                    DeadlineRisk::OnTrack
                };
                if let Some(s) = self.sites.get_mut(&r.site) {
                    s.share_bytes_per_s = r.rate;
                    if r.rate > 0 && r.backlog > 0 {
                        s.waiting_since_unix_ms.get_or_insert(now_unix_ms);
                    } else {
                        s.waiting_since_unix_ms = None;
                    }
                }
                SiteShare {
                    site: r.site,
                    rate_bytes_per_s: r.rate,
                    needed_bytes_per_s: r.need,
                    link_cap_bytes_per_s: r.cap,
                    stalled: r.stalled,
                    risk,
                }
            })
            .collect();
        Plan {
            at_unix_ms: now_unix_ms,
            shares,
        }
    }
}

/// Raises every row's rate toward its `cap` by equal increments until `left` runs out or
/// every row is at its cap (max-min fair).
fn water_fill<R>(rows: &mut [R], left: &mut u64, cap: impl Fn(&R) -> u64, rate: impl Fn(&mut R) -> &mut u64) {
    loop {
        let open: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                let c = cap(&rows[i]);
                *rate(&mut rows[i]) < c
            })
            .collect();
        if open.is_empty() || *left == 0 {
            return;
        }
        let n = open.len() as u64;
        let step = (*left / n).max(1);
        for i in open {
            if *left == 0 {
                return;
            }
            let c = cap(&rows[i]);
            let r = rate(&mut rows[i]);
            let give = step.min(c - *r).min(*left);
            *r += give;
            *left -= give;
        }
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
