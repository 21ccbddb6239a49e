#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// An instant written in UTC, so the expected boundaries do not go through the code under test.
fn utc(s: &str) -> u64 {
    s.parse::<Timestamp>().unwrap().as_millisecond() as u64
}

/// A region's year: preparation, then the early, main and additional exam periods.
const YEAR: &str = r#"
time_zone = "Europe/Moscow"
busy_interval_minutes = 120
quiet_interval_minutes = 10080

[[periods]]
name = "preparation"
kind = "preparation"
first_day = "2027-02-01"
last_day = "2027-03-19"

[[periods]]
name = "early"
kind = "exam"
first_day = "2027-03-20"
last_day = "2027-04-20"

[[periods]]
name = "main"
kind = "exam"
first_day = "2027-05-26"
last_day = "2027-07-01"
interval_minutes = 60

[[periods]]
name = "additional"
kind = "exam"
first_day = "2027-09-03"
last_day = "2027-09-23"
"#;

fn year() -> Schedule {
    Schedule::from_config(&toml::from_str(YEAR).unwrap()).unwrap()
}

fn config(periods: &[(&str, PeriodKind, &str, &str)]) -> ScheduleConfig {
    ScheduleConfig {
        periods: periods
            .iter()
            .map(|(name, kind, first, last)| PeriodConfig {
                name: (*name).to_owned(),
                kind: *kind,
                first_day: (*first).to_owned(),
                last_day: (*last).to_owned(),
                interval_minutes: None,
            })
            .collect(),
        ..ScheduleConfig::default()
    }
}

#[test]
fn without_periods_the_mirror_exchanges_weekly_all_year() {
    let parsed: ScheduleConfig = toml::from_str("").unwrap();
    assert_eq!(parsed, ScheduleConfig::default());
    let s = Schedule::from_config(&parsed).unwrap();
    assert_eq!(s.time_zone(), "Europe/Moscow");
    for t in [utc("2027-01-01T00:00:00Z"), utc("2027-06-01T12:00:00Z")] {
        assert_eq!(s.interval_at(t), 7 * DAY);
        assert!(!s.in_exam_period(t));
        assert!(s.period_at(t).is_none());
    }
    assert_eq!(s.quiet_interval(), 7 * DAY);
}

#[test]
fn a_period_runs_from_midnight_of_its_first_day_through_its_last_day_local_time() {
    let s = year();
    // Moscow is UTC+3 all year: the main period is 2027-05-25T21:00Z .. 2027-07-01T21:00Z.
    let (start, end) = (utc("2027-05-25T21:00:00Z"), utc("2027-07-01T21:00:00Z"));
    let main = s.period_at(start).unwrap();
    assert_eq!(
        (main.name.as_str(), main.start_unix_ms, main.end_unix_ms),
        ("main", start, end)
    );
    assert_eq!(s.interval_at(start - 1), 7 * DAY, "the evening before is quiet");
    assert!(!s.in_exam_period(start - 1));
    assert_eq!(s.interval_at(start), HOUR, "the period's own interval");
    assert!(s.in_exam_period(start));
    assert_eq!(s.interval_at(end - 1), HOUR, "23:59:59.999 of the last day is inside");
    assert!(s.in_exam_period(end - 1));
    assert_eq!(s.interval_at(end), 7 * DAY, "midnight after the last day is outside");
    assert!(!s.in_exam_period(end));
    assert!(s.period_at(end).is_none());
}

#[test]
fn preparation_is_busy_but_not_an_exam_period_and_adjacent_periods_hand_over_at_midnight() {
    let s = year();
    let early_start = utc("2027-03-19T21:00:00Z");
    let prep = s.period_at(early_start - 1).unwrap();
    assert_eq!(
        (prep.name.as_str(), prep.kind),
        ("preparation", PeriodKind::Preparation)
    );
    assert_eq!(s.interval_at(early_start - 1), 2 * HOUR);
    assert!(!s.in_exam_period(early_start - 1));
    assert_eq!(s.period_at(early_start).unwrap().name, "early");
    assert!(s.in_exam_period(early_start));
    let names: Vec<&str> = s.periods().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["preparation", "early", "main", "additional"]);
}

#[test]
fn the_same_dates_are_other_instants_in_another_region() {
    let mut c: ScheduleConfig = toml::from_str(YEAR).unwrap();
    c.time_zone = "Asia/Kamchatka".to_owned();
    let s = Schedule::from_config(&c).unwrap();
    // UTC+12: 2027-05-26 00:00 local is 2027-05-25T12:00Z, nine hours before Moscow's.
    let start = utc("2027-05-25T12:00:00Z");
    assert!(!s.in_exam_period(start - 1));
    assert!(s.in_exam_period(start));
    assert!(s.in_exam_period(utc("2027-05-25T20:00:00Z")));
    assert!(!year().in_exam_period(utc("2027-05-25T20:00:00Z")));
    assert_eq!(s.local_time(start), "2027-05-26 00:00");
    assert_eq!(year().local_time(start), "2027-05-25 15:00");
}

#[test]
fn the_next_exchange_follows_the_interval_in_force() {
    let s = year();
    let now = utc("2027-06-10T09:00:00Z");
    // Never exchanged: at once.
    assert_eq!(s.next_exchange(None, now), now);
    // In the main period (hourly): an hour after the last one.
    let last = utc("2027-06-10T08:30:00Z");
    assert_eq!(s.next_exchange(Some(last), now), last + HOUR);
    // Overdue: now, not in the past.
    assert_eq!(s.next_exchange(Some(last - 5 * HOUR), now), now);
    // Quiet weeks: a week after the last one.
    let quiet = utc("2027-08-01T10:00:00Z");
    assert_eq!(s.next_exchange(Some(quiet), quiet), quiet + 7 * DAY);
}

#[test]
fn a_period_starting_brings_the_exchange_forward_and_one_ending_does_not_delay_it() {
    let s = year();
    // Exchanged weekly on Monday 2027-05-24; the main period starts Wednesday 00:00 local:
    // the next exchange is then, not the following Monday.
    let monday = utc("2027-05-24T07:00:00Z");
    let start = utc("2027-05-25T21:00:00Z");
    assert_eq!(s.next_exchange(Some(monday), monday), start);
    // Exchanged at 23:30 local on the last day: the next comes a week later (quiet again),
    // and not at once at midnight.
    let late = utc("2027-07-01T20:30:00Z");
    assert_eq!(s.next_exchange(Some(late), late), late + 7 * DAY);
    // Exchanged the evening before the preparation ends and the early period starts: the
    // busy interval carries straight across the boundary.
    let eve = utc("2027-03-19T20:00:00Z");
    assert_eq!(s.next_exchange(Some(eve), eve), eve + 2 * HOUR);
}

#[test]
fn a_schedule_that_does_not_hold_together_is_refused_with_what_to_fix() {
    use PeriodKind::*;
    let refused = |c: ScheduleConfig| Schedule::from_config(&c).unwrap_err();

    let err = refused(config(&[
        ("main", Exam, "2027-05-26", "2027-07-01"),
        ("additional", Exam, "2027-07-01", "2027-07-10"),
    ]));
    assert!(
        matches!(&err, Error::ScheduleOverlap { first, second } if first == "main" && second == "additional"),
        "{err:?}"
    );
    assert!(err.to_string().contains("overlap"), "{err}");
    // Listed out of order, overlapping all the same.
    let err = refused(config(&[
        ("later", Exam, "2027-06-01", "2027-06-30"),
        ("earlier", Preparation, "2027-05-01", "2027-06-05"),
    ]));
    assert!(
        matches!(&err, Error::ScheduleOverlap { first, .. } if first == "earlier"),
        "{err:?}"
    );

    let err = refused(config(&[("main", Exam, "2027-07-01", "2027-05-26")]));
    assert!(matches!(err, Error::ScheduleEmptyPeriod { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("ends (2027-05-26) before it starts (2027-07-01)"),
        "{err}"
    );
    // One day is a period, not an empty one.
    let one = Schedule::from_config(&config(&[("day", Exam, "2027-05-26", "2027-05-26")])).unwrap();
    assert_eq!(one.periods()[0].end_unix_ms - one.periods()[0].start_unix_ms, DAY);

    let err = refused(config(&[("main", Exam, "26.05.2027", "2027-07-01")]));
    assert!(
        matches!(&err, Error::ScheduleDate { field: "first_day", value, .. } if value == "26.05.2027"),
        "{err:?}"
    );
    assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
    let err = refused(config(&[("main", Exam, "2027-02-30", "2027-07-01")]));
    assert!(matches!(err, Error::ScheduleDate { .. }), "{err:?}");

    let err = refused(config(&[
        ("main", Exam, "2027-05-26", "2027-06-01"),
        ("main", Exam, "2027-07-26", "2027-08-01"),
    ]));
    assert!(matches!(err, Error::SchedulePeriodName { .. }), "{err:?}");
    let err = refused(config(&[(" ", Exam, "2027-05-26", "2027-06-01")]));
    assert!(matches!(err, Error::SchedulePeriodName { .. }), "{err:?}");

    let err = refused(ScheduleConfig {
        busy_interval_minutes: 0,
        ..ScheduleConfig::default()
    });
    assert!(
        matches!(&err, Error::ScheduleInterval { what, minutes: 0 } if what == "busy_interval_minutes"),
        "{err:?}"
    );
    let err = refused(ScheduleConfig {
        quiet_interval_minutes: MAX_INTERVAL_MINUTES + 1,
        ..ScheduleConfig::default()
    });
    assert!(matches!(err, Error::ScheduleInterval { .. }), "{err:?}");
    let mut zero = config(&[("main", Exam, "2027-05-26", "2027-06-01")]);
    zero.periods[0].interval_minutes = Some(0);
    let err = refused(zero);
    assert!(
        matches!(&err, Error::ScheduleInterval { what, .. } if what.contains("period main")),
        "{err:?}"
    );
    let err = refused(ScheduleConfig {
        busy_interval_minutes: 20_000,
        ..ScheduleConfig::default()
    });
    assert!(matches!(err, Error::ScheduleBusyLonger { .. }), "{err:?}");

    let err = refused(ScheduleConfig {
        time_zone: "Europe/Atlantis".to_owned(),
        ..ScheduleConfig::default()
    });
    assert!(matches!(err, Error::ScheduleTimeZone { .. }), "{err:?}");
    assert!(err.to_string().contains("IANA"), "{err}");
}

#[test]
fn unknown_keys_in_the_toml_are_refused() {
    let err = toml::from_str::<ScheduleConfig>("busy_interval_minute = 60").unwrap_err();
    assert!(err.to_string().contains("busy_interval_minute"), "{err}");
    let err = toml::from_str::<ScheduleConfig>(
        "[[periods]]\nname = \"main\"\nkind = \"exam\"\nfirst_day = \"2027-05-26\"\nlast_day = \"2027-07-01\"\nfrist = 1\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("frist"), "{err}");
    let err = toml::from_str::<ScheduleConfig>(
        "[[periods]]\nname = \"main\"\nkind = \"exams\"\nfirst_day = \"2027-05-26\"\nlast_day = \"2027-07-01\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("exams"), "{err}");
}

proptest::proptest! {
    /// The next exchange is the first instant at which the interval in force has passed since
    /// the last one: it has passed then, and at no earlier instant. The interval is constant
    /// between period boundaries and the time since the last exchange grows, so checking the
    /// last millisecond before each boundary (and before the answer) checks every instant.
    #[test]
    fn the_next_exchange_is_the_first_instant_the_interval_in_force_has_passed(
        gaps in proptest::collection::vec((0i64..40, 1i64..30, 1u64..600), 0..5),
        busy in 1u64..600,
        offset_hours in 0u64..24 * 120,
    ) {
        let mut periods = Vec::new();
        let mut day = Date::new(2027, 1, 1).unwrap();
        for (i, (gap, len, minutes)) in gaps.iter().enumerate() {
            let first = day.checked_add(jiff::Span::new().days(*gap)).unwrap();
            let last = first.checked_add(jiff::Span::new().days(len - 1)).unwrap();
            periods.push(PeriodConfig {
                name: format!("p{i}"),
                kind: if i % 2 == 0 { PeriodKind::Exam } else { PeriodKind::Preparation },
                first_day: first.to_string(),
                last_day: last.to_string(),
                interval_minutes: (i % 3 != 0).then_some(*minutes),
            });
            day = last.tomorrow().unwrap();
        }
        let s = Schedule::from_config(&ScheduleConfig {
            time_zone: "Asia/Novosibirsk".to_owned(),
            busy_interval_minutes: busy,
            periods,
            ..ScheduleConfig::default()
        })
        .unwrap();
        let last = utc("2026-12-31T17:00:00Z") + offset_hours * HOUR;
        let due = s.next_exchange(Some(last), last);
        proptest::prop_assert!(due - last >= s.interval_at(due), "due {} last {}", due, last);
        let boundaries = s.periods().iter().flat_map(|p| [p.start_unix_ms, p.end_unix_ms]);
        for t in boundaries.chain([due]).filter(|b| *b > last && *b <= due).map(|b| b - 1) {
            proptest::prop_assert!(t - last < s.interval_at(t), "already due at {} (last {}, due {})", t, last, due);
        }
    }
}
