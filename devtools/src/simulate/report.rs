//! The simulation's report: per site delivery against the deadline, per policy the sites
//! that missed it and the forms' latency, and the feasibility bound.

use std::time::Duration;

use serde::Serialize;

use super::engine::PolicyRun;
use super::region::{SimSite, FORMS};
use super::{Scenario, HOUR_MS, MINUTE_MS};

/// When one site's last packet was delivered under one policy.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// When its last receipt was verified; `None` if something never arrived.
    pub done_unix_ms: Option<u64>,
    /// The same, local time (HH:MM, "+1d" past midnight), or "never".
    pub done_local: String,
    /// Minutes to spare before the deadline (negative: late).
    pub slack_min: Option<i64>,
    /// Whether it missed 23:59.
    pub missed: bool,
}

/// One site's line.
#[derive(Debug, Clone, Serialize)]
pub struct SiteOutcome {
    /// Site code.
    pub code: String,
    /// UTC offset, hours.
    pub utc_offset_h: i32,
    /// Participants.
    pub participants: u32,
    /// Oral exam.
    pub oral: bool,
    /// Link, Mbit/s.
    pub link_mbit: f64,
    /// Its link went down for a while.
    pub outage: bool,
    /// Bytes to deliver.
    pub bytes: u64,
    /// The per-site bound holds.
    pub bound_feasible: bool,
    /// FIFO baseline.
    pub fifo: Delivery,
    /// konvert.
    pub konvert: Delivery,
}

/// One policy's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    /// "fifo" or "konvert".
    pub policy: String,
    /// Sites whose last packet arrived after 23:59 local (or never).
    pub sites_missing: usize,
    /// Of those, sites the bound calls feasible.
    pub sites_missing_feasible: usize,
    /// Forms latency (sealed → receipt), seconds: median.
    pub forms_latency_p50_s: f64,
    /// 95th percentile.
    pub forms_latency_p95_s: f64,
    /// Maximum.
    pub forms_latency_max_s: f64,
    /// Receipts signed by the center and verified by the edges.
    pub receipts_verified: u64,
    /// Data frames through the real sender and receiver.
    pub data_frames: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// The scenario.
    pub scenario: Scenario,
    /// Sites.
    pub site_count: usize,
    /// Bytes of the day.
    pub total_bytes: u64,
    /// The center bound (every deadline's demand fits the center's ingress) holds.
    pub center_bound_feasible: bool,
    /// Sites whose own link bound holds.
    pub sites_bound_feasible: usize,
    /// Both bounds hold for every site.
    pub feasible: bool,
    /// FIFO baseline.
    pub fifo: PolicyResult,
    /// konvert.
    pub konvert: PolicyResult,
    /// Per site.
    pub sites: Vec<SiteOutcome>,
    /// Wall-clock time of the simulation (both policies), ms.
    pub wall_ms: u128,
}

fn local(site: &SimSite, t: u64) -> String {
    let midnight = site.local_midnight();
    let m = t.saturating_sub(midnight) / MINUTE_MS;
    let (d, h, mm) = (m / (24 * 60), (m / 60) % 24, m % 60);
    if d > 0 {
        format!("{h:02}:{mm:02}+{d}d")
    } else {
        format!("{h:02}:{mm:02}")
    }
}

fn delivery(site: &SimSite, at: &[Option<u64>]) -> Delivery {
    let done = at.iter().try_fold(0u64, |m, a| a.map(|a| m.max(a)));
    match done {
        Some(t) => Delivery {
            done_unix_ms: Some(t),
            done_local: local(site, t),
            slack_min: Some((site.deadline_unix_ms as i64 - t as i64).div_euclid(MINUTE_MS as i64)),
            missed: t > site.deadline_unix_ms,
        },
        None => Delivery {
            done_unix_ms: None,
            done_local: "never".into(),
            slack_min: None,
            missed: true,
        },
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn policy(name: &str, sites: &[SimSite], bounds: &[bool], run: &PolicyRun) -> PolicyResult {
    let mut forms: Vec<f64> = Vec::new();
    let mut missing = 0;
    let mut missing_feasible = 0;
    for (i, site) in sites.iter().enumerate() {
        if delivery(site, &run.delivered_at[i]).missed {
            missing += 1;
            if bounds[i] {
                missing_feasible += 1;
            }
        }
        for (p, at) in site.packets.iter().zip(&run.delivered_at[i]) {
            if p.priority == FORMS {
                let at = at.unwrap_or(site.deadline_unix_ms + 6 * HOUR_MS);
                forms.push(at.saturating_sub(p.ready_unix_ms) as f64 / 1000.0);
            }
        }
    }
    forms.sort_by(f64::total_cmp);
    PolicyResult {
        policy: name.into(),
        sites_missing: missing,
        sites_missing_feasible: missing_feasible,
        forms_latency_p50_s: percentile(&forms, 0.5),
        forms_latency_p95_s: percentile(&forms, 0.95),
        forms_latency_max_s: forms.last().copied().unwrap_or(0.0),
        receipts_verified: run.receipts,
        data_frames: run.data_frames,
    }
}

pub(super) fn build(
    s: &Scenario,
    sites: &[SimSite],
    site_bounds: &[bool],
    center_bound: bool,
    fifo: &PolicyRun,
    konvert: &PolicyRun,
    wall: Duration,
) -> SimReport {
    let outcomes = sites
        .iter()
        .enumerate()
        .map(|(i, site)| SiteOutcome {
            code: site.code.clone(),
            utc_offset_h: site.utc_offset_h,
            participants: site.participants,
            oral: site.oral,
            link_mbit: site.link_bytes_per_s as f64 * 8.0 / 1e6,
            outage: site.outage.is_some(),
            bytes: site.bytes(),
            bound_feasible: site_bounds[i] && center_bound,
            fifo: delivery(site, &fifo.delivered_at[i]),
            konvert: delivery(site, &konvert.delivered_at[i]),
        })
        .collect();
    let bounds: Vec<bool> = site_bounds.iter().map(|b| *b && center_bound).collect();
    SimReport {
        scenario: s.clone(),
        site_count: sites.len(),
        total_bytes: sites.iter().map(SimSite::bytes).sum(),
        center_bound_feasible: center_bound,
        sites_bound_feasible: site_bounds.iter().filter(|b| **b).count(),
        feasible: center_bound && site_bounds.iter().all(|b| *b),
        fifo: policy("fifo", sites, &bounds, fifo),
        konvert: policy("konvert", sites, &bounds, konvert),
        sites: outcomes,
        wall_ms: wall.as_millis(),
    }
}

/// Prints the report as tables (per site, then the summary).
pub fn print_table(r: &SimReport, per_site: bool) {
    let s = &r.scenario;
    println!("## {} — {}", s.name, s.description);
    println!(
        "{} participants, {} sites, {:.1} GB, center {} Mbit/s, seed {}",
        s.participants,
        r.site_count,
        r.total_bytes as f64 / 1e9,
        s.center_mbit,
        s.seed
    );
    if per_site {
        println!();
        println!("| site | UTC | participants | oral | link Mbit/s | outage | GB | bound | FIFO done | FIFO slack | konvert done | konvert slack |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for o in &r.sites {
            let slack = |d: &Delivery| match d.slack_min {
                Some(m) if d.missed => format!("**{m} min**"),
                Some(m) => format!("{m} min"),
                None => "**never**".into(),
            };
            println!(
                "| {} | +{} | {} | {} | {:.1} | {} | {:.2} | {} | {} | {} | {} | {} |",
                o.code,
                o.utc_offset_h,
                o.participants,
                if o.oral { "yes" } else { "" },
                o.link_mbit,
                if o.outage { "1 h" } else { "" },
                o.bytes as f64 / 1e9,
                if o.bound_feasible { "ok" } else { "infeasible" },
                o.fifo.done_local,
                slack(&o.fifo),
                o.konvert.done_local,
                slack(&o.konvert),
            );
        }
    }
    println!();
    println!(
        "feasibility bound (per-site link and center EDF demand, necessary conditions): center {}, sites {}/{} → {}",
        if r.center_bound_feasible {
            "fits"
        } else {
            "does NOT fit"
        },
        r.sites_bound_feasible,
        r.site_count,
        if r.feasible { "feasible" } else { "infeasible for some" }
    );
    println!();
    println!("| policy | sites missing 23:59 | of them feasible | forms latency p50 / p95 / max | receipts verified | data frames |");
    println!("|---|---|---|---|---|---|");
    for p in [&r.fifo, &r.konvert] {
        println!(
            "| {} | {} | {} | {:.0} s / {:.0} s / {:.0} s | {} | {} |",
            p.policy,
            p.sites_missing,
            p.sites_missing_feasible,
            p.forms_latency_p50_s,
            p.forms_latency_p95_s,
            p.forms_latency_max_s,
            p.receipts_verified,
            p.data_frames
        );
    }
    println!();
    println!(
        "simulated both policies in {:.2} s wall time",
        r.wall_ms as f64 / 1000.0
    );
}
