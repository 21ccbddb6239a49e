//! `konvert bench --only monitor-page`: the center's monitoring page for a region's day —
//! 68 sites, 2,000 rooms, 16,000 participants, mid-afternoon — built from the plan, the
//! inbox records and the loader's answers, and rendered to HTML, as at each request.
//! Goal (issue 15): under 200 ms per page.

use std::time::{Duration, Instant};

use konvert_center::monitor::{build, render, sample};
use konvert_crypto::SigningKey;

use crate::bench_table::{Row, RowsResult};

/// The monitoring page's row.
pub const ROW_MONITOR: (&str, &str) = (
    "monitoring page, 68 sites, 2,000 rooms, 16,000 participants: built and rendered per request",
    "< 200 ms",
);

/// The region measured.
const SITES: usize = 68;
const ROOMS: usize = 2_000;
const PARTICIPANTS: usize = 16_000;

/// Pages built and rendered; the median is the figure, the slowest is shown beside it.
const RUNS: usize = 25;

/// Builds and renders the page [`RUNS`] times after one warm-up.
pub fn run() -> RowsResult {
    let key = SigningKey::generate()?;
    let day = sample::sample_day(SITES, ROOMS, PARTICIPANTS, &key)?;
    let page = |timed: &mut Vec<(Duration, Duration)>| {
        let started = Instant::now();
        let view = build(&day.plans, &day.records, &day.answers, &[], day.now_unix_ms);
        let built = started.elapsed();
        let html = render(&view, day.now_unix_ms);
        timed.push((built, started.elapsed() - built));
        html.len()
    };
    let mut timed = Vec::with_capacity(RUNS + 1);
    let bytes = page(&mut timed);
    timed.clear();
    for _ in 0..RUNS {
        page(&mut timed);
    }
    let mut totals: Vec<Duration> = timed.iter().map(|(b, r)| *b + *r).collect();
    totals.sort();
    let median = totals[totals.len() / 2];
    let slowest = totals[totals.len() - 1];
    let mut builds: Vec<Duration> = timed.iter().map(|t| t.0).collect();
    builds.sort();
    let mut renders: Vec<Duration> = timed.iter().map(|t| t.1).collect();
    renders.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(vec![Row::measured(
        ROW_MONITOR.0,
        ROW_MONITOR.1,
        format!("{:.1} ms", ms(median)),
        Some(median < Duration::from_millis(200)),
        format!(
            "median of {RUNS}: build {:.1} ms + render {:.1} ms, slowest {:.1} ms; {} records, {} answers, \
             page {:.0} kB",
            ms(builds[builds.len() / 2]),
            ms(renders[renders.len() / 2]),
            ms(slowest),
            day.records.len(),
            day.answers.len(),
            bytes as f64 / 1e3
        ),
    )])
}
