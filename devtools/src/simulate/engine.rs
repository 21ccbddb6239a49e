//! The virtual-time loop: releases packets as rooms are scanned, moves bytes through the
//! fluid network in steps, and drives each policy's senders.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use konvert_replication::schedule::{Broker, BrokerConfig, EdgeScheduler, QueuedPacket, SchedulerConfig};

use super::bound;
use super::exchange::{offer, Exchange, SimCenter};
use super::network::{fair_share, CenterLink};
use super::region::{self, SimSite};
use super::report::{self, SimReport};
use super::Scenario;

/// A link down this long drops the QUIC connection (the stall is noticed earlier, at the
/// broker's 30 s).
const IDLE_TIMEOUT_MS: u64 = 60_000;
/// How long past the last deadline the simulation follows late sites.
const FOLLOW_LATE_MS: u64 = 6 * super::HOUR_MS;

/// Which sending policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    /// Arrival order, full link rate, center split equally.
    Fifo,
    /// konvert's scheduler and broker.
    Konvert,
}

struct SiteRun<'a> {
    site: &'a SimSite,
    released: usize,
    released_bytes: u64,
    /// Bytes released and not yet delivered.
    queued_bytes: u64,
    fifo: VecDeque<usize>,
    sched: Option<EdgeScheduler>,
    /// Exchanges open (each packet is its own QUIC stream): konvert may pause a packet for a
    /// more urgent one (forms overtake a room's blanks); FIFO has at most one.
    open: BTreeMap<usize, Exchange>,
    /// FIFO's packet being sent.
    current: Option<usize>,
    acked: Vec<u64>,
    delivered_at: Vec<Option<u64>>,
    index: HashMap<String, usize>,
    connected: bool,
    down_since: Option<u64>,
}

/// What one policy's run produced.
pub(super) struct PolicyRun {
    /// Per site, per packet: when the receipt was verified.
    pub delivered_at: Vec<Vec<Option<u64>>>,
    /// Receipts verified.
    pub receipts: u64,
    /// Data frames passed through both state machines.
    pub data_frames: u64,
}

fn simulate(s: &Scenario, sites: &[SimSite], center: &CenterLink, policy: Policy) -> anyhow::Result<PolicyRun> {
    let dt = s.step_ms.max(1);
    let first = sites
        .iter()
        .flat_map(|x| x.packets.iter().map(|p| p.ready_unix_ms))
        .min()
        .unwrap_or(0);
    let last_deadline = sites.iter().map(|x| x.deadline_unix_ms).max().unwrap_or(0);
    let t0 = first / dt * dt;
    let t_end = last_deadline + FOLLOW_LATE_MS;
    let mut sim_center = SimCenter::new(s.seed)?;
    let mut broker = Broker::new(BrokerConfig::new(center.rate_at(t0)));
    let valid_ms = broker.config().share_valid_ms;
    let mut runs: Vec<SiteRun> = sites
        .iter()
        .map(|site| {
            let sched = (policy == Policy::Konvert).then(|| {
                let mut cfg = SchedulerConfig::regulations(site.link_bytes_per_s);
                cfg.burst_ms = dt.max(cfg.burst_ms);
                let mut sch = EdgeScheduler::new(cfg, t0);
                sch.expect(site.bytes(), site.deadline_unix_ms);
                sch
            });
            if policy == Policy::Konvert {
                broker.connect(&site.code, t0);
            }
            SiteRun {
                site,
                released: 0,
                released_bytes: 0,
                queued_bytes: 0,
                fifo: VecDeque::new(),
                sched,
                open: BTreeMap::new(),
                current: None,
                acked: vec![0; site.packets.len()],
                delivered_at: vec![None; site.packets.len()],
                index: site
                    .packets
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.id.clone(), i))
                    .collect(),
                connected: true,
                down_since: None,
            }
        })
        .collect();
    let total_packets: usize = sites.iter().map(|x| x.packets.len()).sum();
    let mut delivered = 0usize;
    let mut spare_bufs: Vec<Vec<u8>> = Vec::new();
    let mut offered = vec![0u64; runs.len()];
    let mut t = t0;
    let mut next_plan = t0;
    while t < t_end && delivered < total_packets {
        let te = t + dt;
        let capacity = center.rate_at(t);
        let mut replan = false;
        if policy == Policy::Konvert && broker.config().capacity_bytes_per_s != capacity {
            broker.set_capacity(capacity);
            replan = true;
        }
        for r in runs.iter_mut() {
            // Rooms scanned and sealed by now.
            while r.released < r.site.packets.len() && r.site.packets[r.released].ready_unix_ms <= t {
                let p = &r.site.packets[r.released];
                if r.queued_bytes == 0 {
                    // The edge reports at once when its backlog stops being empty.
                    replan = true;
                }
                r.queued_bytes += p.size;
                r.released_bytes += p.size;
                match &mut r.sched {
                    Some(sch) => {
                        sch.push(QueuedPacket {
                            id: p.id.clone(),
                            priority: p.priority,
                            deadline_unix_ms: r.site.deadline_unix_ms,
                            size: p.size,
                            acked: 0,
                        });
                        sch.expect(r.site.bytes() - r.released_bytes, r.site.deadline_unix_ms);
                    }
                    None => r.fifo.push_back(r.released),
                }
                r.released += 1;
            }
            // The link and the connection over it.
            if r.site.link_up(t) {
                r.down_since = None;
                if !r.connected {
                    r.connected = true;
                    if policy == Policy::Konvert {
                        broker.connect(&r.site.code, t);
                        replan = true;
                    }
                }
            } else {
                let since = *r.down_since.get_or_insert(t);
                if r.connected && t - since >= IDLE_TIMEOUT_MS {
                    r.connected = false;
                    for (idx, ex) in std::mem::take(&mut r.open) {
                        r.acked[idx] = ex.acked;
                        r.queued_bytes += ex.partial_bytes();
                        spare_bufs.push(ex.into_buf());
                    }
                    if let Some(idx) = r.current.take() {
                        r.fifo.push_front(idx);
                    }
                    if policy == Policy::Konvert {
                        broker.disconnect(&r.site.code, t);
                        replan = true;
                    }
                }
            }
        }
        if policy == Policy::Konvert && (replan || t >= next_plan) {
            for r in runs.iter().filter(|r| r.connected) {
                if let Some(sch) = &r.sched {
                    broker.report(&r.site.code, t, &sch.site_status(t));
                }
            }
            let plan = broker.plan(t);
            for share in &plan.shares {
                if let Some(r) = runs.iter_mut().find(|r| r.site.code == share.site) {
                    if let Some(sch) = &mut r.sched {
                        sch.set_share(t, share.message(t, valid_ms));
                    }
                }
            }
            next_plan = t + s.replan_ms;
        }
        // What each site puts on its link this step.
        for (i, r) in runs.iter_mut().enumerate() {
            offered[i] = 0;
            if !r.connected || !r.site.link_up(t) || r.queued_bytes == 0 {
                continue;
            }
            let link = r.site.link_bytes_per_s * dt / 1000;
            let want = link.min(r.queued_bytes);
            offered[i] = match &mut r.sched {
                Some(sch) if sch.next(t).is_some() => sch.grant(te, want),
                Some(_) => 0,
                None => want,
            };
        }
        let got = fair_share(&offered, capacity * dt / 1000);
        for (i, r) in runs.iter_mut().enumerate() {
            let mut budget = got[i];
            while budget > 0 {
                let idx = match &r.sched {
                    Some(sch) => sch.next(t).and_then(|p| r.index.get(&p.id).copied()),
                    None => r.current.or_else(|| r.fifo.pop_front()),
                };
                let Some(idx) = idx else { break };
                if r.sched.is_none() {
                    r.current = Some(idx);
                }
                if !r.open.contains_key(&idx) {
                    let p = &r.site.packets[idx];
                    let o = offer(&p.id, p.priority, p.size, p.ready_unix_ms, r.site.deadline_unix_ms);
                    let buf = spare_bufs.pop().unwrap_or_default();
                    r.open
                        .insert(idx, Exchange::open(&sim_center, &r.site.code, o, r.acked[idx], buf)?);
                }
                let Some(ex) = r.open.get_mut(&idx) else { break };
                let (used, done) = ex.feed(&mut sim_center, budget, te)?;
                budget -= used;
                r.queued_bytes -= used;
                r.acked[idx] = ex.acked;
                if let Some(sch) = &mut r.sched {
                    sch.acknowledged(te, ex.id(), ex.acked);
                    broker.received(&r.site.code, te, used);
                }
                if done {
                    if let Some(sch) = &mut r.sched {
                        sch.finished(te, ex.id());
                    }
                    r.delivered_at[idx] = Some(te);
                    delivered += 1;
                    r.current = None;
                    if let Some(ex) = r.open.remove(&idx) {
                        spare_bufs.push(ex.into_buf());
                    }
                } else if used == 0 {
                    break;
                }
            }
            if let Some(sch) = &mut r.sched {
                if r.queued_bytes == 0 {
                    sch.idle();
                } else if got[i] == 0 {
                    sch.tick(te);
                }
            }
        }
        t = te;
    }
    Ok(PolicyRun {
        delivered_at: runs.into_iter().map(|r| r.delivered_at).collect(),
        receipts: sim_center.receipts,
        data_frames: sim_center.data_frames,
    })
}

/// Simulates the scenario under both policies and reports.
pub fn run(s: &Scenario) -> anyhow::Result<SimReport> {
    let started = Instant::now();
    let sites = region::generate(s);
    let center = CenterLink::new(s);
    let fifo = simulate(s, &sites, &center, Policy::Fifo)?;
    let konvert = simulate(s, &sites, &center, Policy::Konvert)?;
    let site_bounds: Vec<bool> = sites.iter().map(bound::site_feasible).collect();
    let center_bound = bound::center_feasible(&sites, &center);
    Ok(report::build(
        s,
        &sites,
        &site_bounds,
        center_bound,
        &fifo,
        &konvert,
        started.elapsed(),
    ))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
