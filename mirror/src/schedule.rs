//! When the mirror exchanges: "weekly, and during the preparation and the exams daily,
//! several times a day" (`002:6655`). A region's (or the federal node's) schedule names its
//! periods as date ranges in its own time zone; inside a period the exchange runs at the busy
//! interval (every 2 hours unless a period says otherwise), outside at the quiet one (weekly).
//! Closing an exam sends its results at once whatever the schedule says (`002:7451`): the
//! schedule is the floor, not the only trigger.
//!
//! Sans-IO like the rest of the crate: the caller passes the time in. Dates become instants
//! once, in [`Schedule::from_config`], with the bundled time-zone database, so the rest is
//! arithmetic on Unix milliseconds.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Error, Millis, Result};

/// A minute in milliseconds.
const MINUTE: Millis = 60_000;

/// The longest interval a schedule takes: a year (an interval beyond it is a typo, and the
/// status page would never call anything behind).
pub const MAX_INTERVAL_MINUTES: u64 = 366 * 24 * 60;

/// What a period is for. Both are busy (the busy interval applies); only an exam period makes
/// a lag beyond the interval an alert (`konvert_mirror_exam_period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodKind {
    /// Preparation: planning data goes up by the plan-graph's dates.
    Preparation,
    /// An exam period (early, main, additional): results and appeals go both ways.
    Exam,
}

impl PeriodKind {
    /// Its name in the configuration and on the status page.
    pub fn name(self) -> &'static str {
        match self {
            PeriodKind::Preparation => "preparation",
            PeriodKind::Exam => "exam",
        }
    }
}

/// One period as configured: `[[periods]]` in the schedule's TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodConfig {
    /// Its name, e.g. `main`, shown on the status page.
    pub name: String,
    /// `preparation` or `exam`.
    pub kind: PeriodKind,
    /// The first day, `YYYY-MM-DD`, from 00:00 local time.
    pub first_day: String,
    /// The last day, `YYYY-MM-DD`, through 24:00 local time.
    pub last_day: String,
    /// The interval inside this period, in minutes; the schedule's busy interval if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_minutes: Option<u64>,
}

/// The exchange schedule as configured (TOML, unknown keys refused). For example:
///
/// ```toml
/// time_zone = "Asia/Novosibirsk"
/// busy_interval_minutes = 120     # preparation and exams (the default)
/// quiet_interval_minutes = 10080  # otherwise: weekly (the default)
///
/// [[periods]]
/// name = "preparation"
/// kind = "preparation"
/// first_day = "2027-02-01"
/// last_day = "2027-03-19"
///
/// [[periods]]
/// name = "main"
/// kind = "exam"
/// first_day = "2027-05-26"
/// last_day = "2027-07-01"
/// interval_minutes = 60           # this period only
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The IANA time zone the period dates are in (the region's; Moscow for the federal node).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// The interval during preparation and exam periods, in minutes (default 120).
    #[serde(default = "default_busy_minutes")]
    pub busy_interval_minutes: u64,
    /// The interval outside them, in minutes (default 10080, a week).
    #[serde(default = "default_quiet_minutes")]
    pub quiet_interval_minutes: u64,
    /// The periods; none means the quiet interval all year.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<PeriodConfig>,
}

fn default_time_zone() -> String {
    "Europe/Moscow".to_owned()
}

fn default_busy_minutes() -> u64 {
    120
}

fn default_quiet_minutes() -> u64 {
    7 * 24 * 60
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            time_zone: default_time_zone(),
            busy_interval_minutes: default_busy_minutes(),
            quiet_interval_minutes: default_quiet_minutes(),
            periods: Vec::new(),
        }
    }
}

/// A period with its instants: from 00:00 local of its first day to 00:00 local of the day
/// after its last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub kind: PeriodKind,
    /// Its first day as configured.
    pub first_day: String,
    /// Its last day as configured.
    pub last_day: String,
    /// Its start, Unix milliseconds (inclusive).
    pub start_unix_ms: u64,
    /// Its end, Unix milliseconds (exclusive).
    pub end_unix_ms: u64,
    /// The interval inside it.
    pub interval: Millis,
}

impl Period {
    /// Whether `unix_ms` falls inside it.
    pub fn contains(&self, unix_ms: u64) -> bool {
        (self.start_unix_ms..self.end_unix_ms).contains(&unix_ms)
    }
}

/// A checked schedule: periods in order, none overlapping.
#[derive(Debug, Clone)]
pub struct Schedule {
    time_zone: String,
    tz: TimeZone,
    quiet: Millis,
    periods: Vec<Period>,
}

fn interval(what: &str, minutes: u64) -> Result<Millis> {
    if minutes == 0 || minutes > MAX_INTERVAL_MINUTES {
        return Err(Error::ScheduleInterval {
            what: what.to_owned(),
            minutes,
        });
    }
    Ok(minutes * MINUTE)
}

/// 00:00 local time of `date` in `tz`, in Unix milliseconds (`None` before 1970 or beyond the
/// database's range). A midnight skipped by a clock change is the first instant after it.
fn midnight(tz: &TimeZone, date: Date) -> Option<u64> {
    let ts = tz.to_timestamp(date.to_datetime(Time::midnight())).ok()?;
    u64::try_from(ts.as_millisecond()).ok()
}

impl Schedule {
    /// Checks `config` and turns its dates into instants. Refuses an unknown time zone, a
    /// date that does not parse, a period that ends before it starts, two periods that
    /// overlap or share a name, an interval of zero or over a year, and a busy interval
    /// longer than the quiet one.
    pub fn from_config(config: &ScheduleConfig) -> Result<Schedule> {
        let tz = jiff::tz::db()
            .get(&config.time_zone)
            .map_err(|_| Error::ScheduleTimeZone {
                name: config.time_zone.clone(),
            })?;
        let busy = interval("busy_interval_minutes", config.busy_interval_minutes)?;
        let quiet = interval("quiet_interval_minutes", config.quiet_interval_minutes)?;
        if busy > quiet {
            return Err(Error::ScheduleBusyLonger {
                busy_minutes: config.busy_interval_minutes,
                quiet_minutes: config.quiet_interval_minutes,
            });
        }
        let mut periods = Vec::with_capacity(config.periods.len());
        for p in &config.periods {
            let name = p.name.trim();
            if name.is_empty() || periods.iter().any(|q: &Period| q.name == name) {
                return Err(Error::SchedulePeriodName { name: p.name.clone() });
            }
            let bad = |field: &'static str, value: &str| Error::ScheduleDate {
                period: name.to_owned(),
                field,
                value: value.to_owned(),
            };
            let day = |field, value: &str| value.trim().parse::<Date>().map_err(|_| bad(field, value));
            let (first, last) = (day("first_day", &p.first_day)?, day("last_day", &p.last_day)?);
            if last < first {
                return Err(Error::ScheduleEmptyPeriod {
                    period: name.to_owned(),
                    first_day: p.first_day.clone(),
                    last_day: p.last_day.clone(),
                });
            }
            // The period runs through its last day: it ends when the next day begins.
            let start = midnight(&tz, first).ok_or_else(|| bad("first_day", &p.first_day))?;
            let end = last
                .tomorrow()
                .ok()
                .and_then(|d| midnight(&tz, d))
                .ok_or_else(|| bad("last_day", &p.last_day))?;
            let interval = match p.interval_minutes {
                Some(m) => interval(&format!("interval_minutes of period {name}"), m)?,
                None => busy,
            };
            periods.push(Period {
                name: name.to_owned(),
                kind: p.kind,
                first_day: p.first_day.trim().to_owned(),
                last_day: p.last_day.trim().to_owned(),
                start_unix_ms: start,
                end_unix_ms: end,
                interval,
            });
        }
        periods.sort_by_key(|p| p.start_unix_ms);
        for pair in periods.windows(2) {
            if pair[1].start_unix_ms < pair[0].end_unix_ms {
                return Err(Error::ScheduleOverlap {
                    first: pair[0].name.clone(),
                    second: pair[1].name.clone(),
                });
            }
        }
        Ok(Schedule {
            time_zone: config.time_zone.clone(),
            tz,
            quiet,
            periods,
        })
    }

    /// The time zone the periods are in.
    pub fn time_zone(&self) -> &str {
        &self.time_zone
    }

    /// The periods, in order.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// The interval outside every period.
    pub fn quiet_interval(&self) -> Millis {
        self.quiet
    }

    /// The period `now_unix_ms` falls in, if any.
    pub fn period_at(&self, now_unix_ms: u64) -> Option<&Period> {
        // Sorted and disjoint: the last period starting at or before `now` is the only
        // candidate.
        let i = self.periods.partition_point(|p| p.start_unix_ms <= now_unix_ms);
        i.checked_sub(1)
            .map(|i| &self.periods[i])
            .filter(|p| p.contains(now_unix_ms))
    }

    /// The interval in force at `now_unix_ms`.
    pub fn interval_at(&self, now_unix_ms: u64) -> Millis {
        self.segment_at(now_unix_ms).0
    }

    /// Whether `now_unix_ms` falls in an exam period (not preparation): when a lag beyond
    /// the interval is an alert.
    pub fn in_exam_period(&self, now_unix_ms: u64) -> bool {
        self.period_at(now_unix_ms).is_some_and(|p| p.kind == PeriodKind::Exam)
    }

    /// The interval in force at `t` and when that changes (`None`: never, past the last
    /// period).
    fn segment_at(&self, t: u64) -> (Millis, Option<u64>) {
        if let Some(p) = self.period_at(t) {
            return (p.interval, Some(p.end_unix_ms));
        }
        let next = self
            .periods
            .iter()
            .find(|p| p.start_unix_ms > t)
            .map(|p| p.start_unix_ms);
        (self.quiet, next)
    }

    /// When the next exchange is due after one at `last_exchange_unix_ms` (`None`: never
    /// exchanged, so now). It is the first instant at which the interval in force has passed
    /// since the last exchange, so a period starting earlier than a quiet week would end
    /// brings the exchange forward to its first minute, and one ending does not make the
    /// next busy exchange wait a week. Never earlier than `now_unix_ms`: an overdue exchange
    /// is due now.
    pub fn next_exchange(&self, last_exchange_unix_ms: Option<u64>, now_unix_ms: u64) -> u64 {
        let Some(last) = last_exchange_unix_ms else {
            return now_unix_ms;
        };
        let mut t = last;
        // Each step moves `t` to the next period boundary; past the last one the quiet
        // interval holds for good, so the loop ends within 2 × periods + 1 steps.
        loop {
            let (interval, until) = self.segment_at(t);
            let due = t.max(last.saturating_add(interval));
            match until {
                Some(end) if due >= end => t = end,
                _ => return due.max(now_unix_ms),
            }
        }
    }

    /// `unix_ms` as `YYYY-MM-DD HH:MM` in the schedule's time zone, for the status page.
    pub fn local_time(&self, unix_ms: u64) -> String {
        i64::try_from(unix_ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map(|ts| self.tz.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| format!("{unix_ms} ms after 1970"))
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
