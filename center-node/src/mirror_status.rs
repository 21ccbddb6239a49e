//! The table `konvert-center mirror status` prints: per peer, kind and direction the rows,
//! what was receipted, the lag in rows and in time, the last exchange; the interval in force
//! and whether it is an exam period; and a verdict that says what to do.
//!
//! Pure: the caller reads [`konvert_records::PgMirror::status`] and passes the time in, so the
//! text is tested as text.

use std::fmt::Write as _;

use konvert_mirror::{Millis, PeriodKind, Schedule};
use konvert_records::{MirrorChannelStatus, MirrorDirection};

/// How long the oldest row not receipted has waited at `now_unix_ms`: `None` for an incoming
/// channel (only the owner knows) or one with nothing waiting. A row "written" after `now`
/// (the database's clock ahead of ours) has waited 0.
pub fn lag_ms(channel: &MirrorChannelStatus, now_unix_ms: u64) -> Option<u64> {
    if channel.direction != MirrorDirection::Outgoing || channel.lag == Some(0) {
        return None;
    }
    let oldest = u64::try_from(channel.oldest_unreceipted_unix_ms?).unwrap_or(0);
    Some(now_unix_ms.saturating_sub(oldest))
}

/// A span as people say it: `45 s`, `12 min`, `3 h 10 min`, `2 d 4 h`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// What the schedule says at `now`: the period, the interval in force.
fn schedule_line(schedule: &Schedule, now_unix_ms: u64, interval: Millis) -> String {
    let every = human_duration(interval);
    match schedule.period_at(now_unix_ms) {
        Some(p) if p.kind == PeriodKind::Exam => format!(
            "exam period {} ({} to {}): exchange every {every}",
            p.name, p.first_day, p.last_day
        ),
        Some(p) => format!(
            "{} period {} ({} to {}): exchange every {every}; not an exam period",
            p.kind.name(),
            p.name,
            p.first_day,
            p.last_day
        ),
        None => {
            let next = schedule
                .periods()
                .iter()
                .find(|p| p.start_unix_ms > now_unix_ms)
                .map(|p| format!("; next: {} period {} from {}", p.kind.name(), p.name, p.first_day))
                .unwrap_or_default();
            format!("no exam period: exchange every {every}{next}")
        }
    }
}

/// The status table and its verdict, for the channels of one node at `now_unix_ms`, in the
/// schedule's time zone.
pub fn render(status: &[MirrorChannelStatus], schedule: &Schedule, now_unix_ms: u64) -> String {
    let interval = schedule.interval_at(now_unix_ms);
    let exam = schedule.in_exam_period(now_unix_ms);
    let mut out = format!(
        "Mirror status at {} ({}): {}\n",
        schedule.local_time(now_unix_ms),
        schedule.time_zone(),
        schedule_line(schedule, now_unix_ms, interval)
    );
    if status.is_empty() {
        out.push_str("nothing exchanged yet: this node has written no rows for its peers and applied none of theirs\n");
        return out;
    }
    let mut channels: Vec<&MirrorChannelStatus> = status.iter().collect();
    channels.sort_by_key(|c| (c.peer, c.direction == MirrorDirection::Incoming, c.kind));
    let header = [
        "peer",
        "kind",
        "direction",
        "rows",
        "receipted",
        "lag rows",
        "lag time",
        "last exchange",
    ];
    let rows: Vec<[String; 8]> = channels
        .iter()
        .map(|c| {
            let lag_time = match (c.direction, lag_ms(c, now_unix_ms)) {
                (MirrorDirection::Incoming, _) => "-".to_owned(),
                (_, Some(ms)) => human_duration(ms),
                (_, None) => "0".to_owned(),
            };
            let last = match c.last_exchange_unix_ms.and_then(|ms| u64::try_from(ms).ok()) {
                Some(ms) => format!(
                    "{} ({} ago)",
                    schedule.local_time(ms),
                    human_duration(now_unix_ms.saturating_sub(ms))
                ),
                None => "never".to_owned(),
            };
            [
                c.peer.to_string(),
                c.kind.name().to_owned(),
                c.direction.name().to_owned(),
                c.rows.to_string(),
                c.through.to_string(),
                c.lag.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                lag_time,
                last,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned (rows, receipted, lag rows), text left.
            let pad = w.saturating_sub(cell.chars().count());
            if (3..=5).contains(&i) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                l.push_str("  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }

    let behind: Vec<String> = channels
        .iter()
        .filter_map(|c| {
            let ms = lag_ms(c, now_unix_ms).filter(|ms| *ms > interval)?;
            Some(format!(
                "{} {} ({} rows, the oldest waiting {})",
                c.peer,
                c.kind,
                c.lag.unwrap_or(0),
                human_duration(ms)
            ))
        })
        .collect();
    let every = human_duration(interval);
    if !behind.is_empty() {
        let _ = write!(
            out,
            "behind: {} over the {every} interval{}; exchange now with `konvert-center mirror sync`",
            behind.join(", "),
            if exam {
                " of an exam period (the alert KonvertMirrorBehind fires)"
            } else {
                ""
            }
        );
        out.push('\n');
        return out;
    }
    let waiting: u64 = channels.iter().filter_map(|c| c.lag).sum();
    let oldest = channels.iter().filter_map(|c| lag_ms(c, now_unix_ms)).max();
    let _ = match (waiting, oldest) {
        (0, _) => writeln!(out, "ok: every row written has been receipted"),
        (n, Some(ms)) => writeln!(
            out,
            "ok: {n} rows waiting for receipts, the oldest {}, within the {every} interval",
            human_duration(ms)
        ),
        (n, None) => writeln!(out, "ok: {n} rows waiting for receipts, within the {every} interval"),
    };
    out
}

/// The same figures as [`render`] for a program (`mirror status --json`): the schedule at
/// `now_unix_ms` and one object per channel; times in Unix milliseconds, `null` where the
/// table shows `-` or `never`.
pub fn render_json(status: &[MirrorChannelStatus], schedule: &Schedule, now_unix_ms: u64) -> serde_json::Value {
    let interval = schedule.interval_at(now_unix_ms);
    let channels: Vec<serde_json::Value> = status
        .iter()
        .map(|c| {
            serde_json::json!({
                "peer": crate::mirror_metrics::peer_label(c.peer),
                "kind": c.kind.name(),
                "direction": c.direction.name(),
                "rows": c.rows,
                "receipted": c.through,
                "lag_rows": c.lag,
                "lag_ms": lag_ms(c, now_unix_ms),
                "behind": lag_ms(c, now_unix_ms).is_some_and(|ms| ms > interval),
                "last_exchange_unix_ms": c.last_exchange_unix_ms,
            })
        })
        .collect();
    serde_json::json!({
        "now_unix_ms": now_unix_ms,
        "time_zone": schedule.time_zone(),
        "period": schedule.period_at(now_unix_ms).map(|p| p.name.clone()),
        "exam_period": schedule.in_exam_period(now_unix_ms),
        "interval_ms": interval,
        "channels": channels,
    })
}

#[cfg(test)]
#[path = "mirror_status_tests.rs"]
mod tests;
