//! `konvert bench --only monitor-page`: the center's monitoring page for a region's day —
//! 68 sites, 2,000 rooms, 16,000 participants, mid-afternoon — as each request makes it:
//! the records read from a real inbox (sled), the view built with the plan and the
//! loader's answers, and the HTML rendered. Goal (issue 15): under 200 ms per page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_center::monitor::{build, render, sample, MonitorSource};
use konvert_crypto::SigningKey;
use konvert_replication::{Inbox, Offer};

use crate::bench_table::{Row, RowsResult};

/// The monitoring page's row.
pub const ROW_MONITOR: (&str, &str) = (
    "monitoring page, 68 sites, 2,000 rooms, 16,000 participants: inbox read, built and rendered per request",
    "< 200 ms",
);

/// The region measured.
const SITES: usize = 68;
const ROOMS: usize = 2_000;
const PARTICIPANTS: usize = 16_000;

/// Pages made; the median is the figure, the slowest is shown beside it.
const RUNS: usize = 25;

/// Puts the sample's records into a real inbox under `dir` (one empty envelope file each).
fn fill_inbox(dir: &std::path::Path, records: &[konvert_replication::InboxRecord]) -> anyhow::Result<Arc<Inbox>> {
    let inbox = Arc::new(Inbox::open(dir)?);
    for r in records {
        let b = &r.receipt.body;
        let offer = Offer {
            packet_id: b.packet_id.clone(),
            version: b.version,
            size: 0,
            digest: b.digest,
            priority: 0,
            sealed_at_unix_ms: r.sealed_at_unix_ms,
            deadline_unix_ms: 0,
        };
        let staged = inbox.fresh_staging(&offer)?;
        inbox.commit(&staged.path, r)?;
    }
    Ok(inbox)
}

/// Fills an inbox, then makes the page [`RUNS`] times after one warm-up.
pub fn run() -> RowsResult {
    let key = SigningKey::generate()?;
    let day = sample::sample_day(SITES, ROOMS, PARTICIPANTS, &key)?;
    let work = tempfile::Builder::new().prefix("konvert-bench-monitor-").tempdir()?;
    let filling = Instant::now();
    let inbox = fill_inbox(work.path(), &day.records)?;
    let filled = filling.elapsed();
    let (plans, answers) = (day.plans.clone(), day.answers.clone());
    let source = MonitorSource::new(inbox.clone())
        .with_plans(Arc::new(move || plans.clone()))
        .with_answers(Arc::new(move || answers.clone()));
    // The whole request as served, and its parts apart.
    let mut whole = Vec::with_capacity(RUNS);
    let mut parts = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for run in 0..=RUNS {
        let started = Instant::now();
        let page = source
            .page("/monitor", day.now_unix_ms)
            .ok_or_else(|| anyhow::anyhow!("no page at /monitor"))??;
        let took = started.elapsed();
        let started = Instant::now();
        let records = inbox.records()?;
        let read = started.elapsed();
        let view = build(&day.plans, &records, &day.answers, &[], day.now_unix_ms);
        let built = started.elapsed() - read;
        let html = render(&view, day.now_unix_ms);
        let rendered = started.elapsed() - read - built;
        anyhow::ensure!(html.len() == page.len(), "the page differs from its parts");
        bytes = page.len();
        // Run 0 warms the caches up.
        if run > 0 {
            whole.push(took);
            parts.push((read, built, rendered));
        }
    }
    whole.sort();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let figure = whole[whole.len() / 2];
    Ok(vec![Row::measured(
        ROW_MONITOR.0,
        ROW_MONITOR.1,
        format!("{:.1} ms", ms(figure)),
        Some(figure < Duration::from_millis(200)),
        format!(
            "median of {RUNS}, slowest {:.1} ms; parts: inbox read {:.1} ms + build {:.1} ms + render {:.1} ms; \
             {} records ({} ms to store), {} answers, page {:.0} kB",
            ms(whole[whole.len() - 1]),
            ms(median(parts.iter().map(|p| p.0).collect())),
            ms(median(parts.iter().map(|p| p.1).collect())),
            ms(median(parts.iter().map(|p| p.2).collect())),
            day.records.len(),
            filled.as_millis(),
            day.answers.len(),
            bytes as f64 / 1e3
        ),
    )])
}
