use konvert_mirror::{Node, PeriodConfig, RecordKind, ScheduleConfig};

use super::*;

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

fn utc(s: &str) -> u64 {
    // 2027-06-10T09:00:00Z and friends, without going through the schedule under test.
    let secs = match s {
        "2027-06-10T09:00:00Z" => 1_812_618_000,
        "2027-08-10T09:00:00Z" => 1_817_888_400,
        "2027-03-01T09:00:00Z" => 1_803_891_600,
        "2027-04-15T09:00:00Z" => 1_807_779_600,
        other => panic!("no fixture for {other}"),
    };
    secs * 1000
}

/// A region's schedule: preparation, then the main exam period, Moscow time.
fn schedule() -> Schedule {
    let period = |name: &str, kind, first: &str, last: &str| PeriodConfig {
        name: name.to_owned(),
        kind,
        first_day: first.to_owned(),
        last_day: last.to_owned(),
        interval_minutes: None,
    };
    Schedule::from_config(&ScheduleConfig {
        periods: vec![
            period("preparation", PeriodKind::Preparation, "2027-02-01", "2027-03-19"),
            period("main", PeriodKind::Exam, "2027-05-26", "2027-07-01"),
        ],
        ..ScheduleConfig::default()
    })
    .unwrap()
}

fn channel(kind: RecordKind, direction: MirrorDirection, rows: u64, through: u64) -> MirrorChannelStatus {
    MirrorChannelStatus {
        peer: Node::Federal,
        kind,
        direction,
        rows,
        through,
        lag: (direction == MirrorDirection::Outgoing).then(|| rows - through),
        last_exchange_unix_ms: None,
        oldest_unreceipted_unix_ms: None,
    }
}

/// A region on the main period's 10 June at 12:00 Moscow time: results waiting 3 h 10 min.
fn region_status(now: u64) -> Vec<MirrorChannelStatus> {
    let ago = |ms: u64| Some((now - ms) as i64);
    let mut results = channel(RecordKind::ProcessingResults, MirrorDirection::Outgoing, 1200, 1000);
    results.last_exchange_unix_ms = ago(3 * HOUR + 15 * MIN);
    results.oldest_unreceipted_unix_ms = ago(3 * HOUR + 10 * MIN);
    let mut planning = channel(RecordKind::Planning, MirrorDirection::Outgoing, 12, 12);
    planning.last_exchange_unix_ms = ago(30 * MIN);
    let mut scores = channel(RecordKind::RecomputedScores, MirrorDirection::Incoming, 40, 40);
    scores.last_exchange_unix_ms = ago(HOUR);
    let tokens = channel(RecordKind::TokenCertificates, MirrorDirection::Incoming, 0, 0);
    // In the store's order (outgoing first, by kind), shuffled: the table sorts.
    vec![scores, results, tokens, planning]
}

#[test]
fn behind_in_an_exam_period_says_so_and_what_to_run() {
    let now = utc("2027-06-10T09:00:00Z");
    let text = render(&region_status(now), &schedule(), now);
    let expected = "\
Mirror status at 2027-06-10 12:00 (Europe/Moscow): exam period main (2027-05-26 to 2027-07-01): exchange every 2 h
peer  kind                direction  rows  receipted  lag rows  lag time    last exchange
ФИС   planning            outgoing     12         12         0  0           2027-06-10 11:30 (30 min ago)
ФИС   processing_results  outgoing   1200       1000       200  3 h 10 min  2027-06-10 08:45 (3 h 15 min ago)
ФИС   recomputed_scores   incoming     40         40         -  -           2027-06-10 11:00 (1 h ago)
ФИС   token_certificates  incoming      0          0         -  -           never
behind: ФИС processing_results (200 rows, the oldest waiting 3 h 10 min) over the 2 h interval of an exam period \
(the alert KonvertMirrorBehind fires); exchange now with `konvert-center mirror sync`
";
    assert_eq!(text, expected, "\n{text}");
}

#[test]
fn the_same_lag_outside_the_periods_is_within_the_weekly_interval() {
    let now = utc("2027-08-10T09:00:00Z");
    let text = render(&region_status(now), &schedule(), now);
    assert!(
        text.starts_with("Mirror status at 2027-08-10 12:00 (Europe/Moscow): no exam period: exchange every 7 d\n"),
        "{text}"
    );
    assert!(!text.contains("behind"), "{text}");
    assert!(
        text.ends_with("ok: 200 rows waiting for receipts, the oldest 3 h 10 min, within the 7 d interval\n"),
        "{text}"
    );
    // Between periods the header names the next one.
    let now = utc("2027-04-15T09:00:00Z");
    let text = render(&region_status(now), &schedule(), now);
    assert!(
        text.starts_with(
            "Mirror status at 2027-04-15 12:00 (Europe/Moscow): no exam period: exchange every 7 d; \
             next: exam period main from 2027-05-26\n"
        ),
        "{text}"
    );
}

#[test]
fn preparation_is_busy_and_behind_shows_without_the_exam_alert() {
    let now = utc("2027-03-01T09:00:00Z");
    let text = render(&region_status(now), &schedule(), now);
    assert!(
        text.contains(
            "preparation period preparation (2027-02-01 to 2027-03-19): exchange every 2 h; not an exam period\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "behind: ФИС processing_results (200 rows, the oldest waiting 3 h 10 min) over the 2 h interval; \
             exchange now with `konvert-center mirror sync`\n"
        ),
        "{text}"
    );
    assert!(!text.contains("KonvertMirrorBehind"), "{text}");
}

#[test]
fn a_lag_of_exactly_the_interval_is_not_behind_and_one_past_it_is() {
    let now = utc("2027-06-10T09:00:00Z");
    let mut status = vec![channel(RecordKind::AppealDecisions, MirrorDirection::Outgoing, 5, 3)];
    status[0].oldest_unreceipted_unix_ms = Some((now - 2 * HOUR) as i64);
    let text = render(&status, &schedule(), now);
    assert!(
        text.ends_with("ok: 2 rows waiting for receipts, the oldest 2 h, within the 2 h interval\n"),
        "{text}"
    );
    let text = render(&status, &schedule(), now + 1000);
    assert!(
        text.contains("behind: ФИС appeal_decisions (2 rows, the oldest waiting 2 h)"),
        "{text}"
    );
    assert!(text.contains("never"), "no exchange yet: {text}");
}

#[test]
fn everything_receipted_and_nothing_at_all_read_plainly() {
    let now = utc("2027-06-10T09:00:00Z");
    let done = vec![channel(RecordKind::Planning, MirrorDirection::Outgoing, 7, 7)];
    assert!(render(&done, &schedule(), now).ends_with("ok: every row written has been receipted\n"));
    let empty = render(&[], &schedule(), now);
    assert_eq!(empty.lines().count(), 2, "{empty}");
    assert!(empty
        .ends_with("nothing exchanged yet: this node has written no rows for its peers and applied none of theirs\n"));
    // The database's clock ahead of ours: waited 0, not a negative or wrapped age.
    let mut ahead = channel(RecordKind::Planning, MirrorDirection::Outgoing, 8, 7);
    ahead.oldest_unreceipted_unix_ms = Some((now + 5000) as i64);
    assert_eq!(lag_ms(&ahead, now), Some(0));
}

#[test]
fn a_federal_node_lists_each_region_in_order() {
    let now = utc("2027-06-10T09:00:00Z");
    let mut status = Vec::new();
    for code in [77u8, 1, 50] {
        let mut c = channel(RecordKind::ProcessingResults, MirrorDirection::Incoming, 10, 10);
        c.peer = Node::Region(code);
        status.push(c);
    }
    let text = render(&status, &schedule(), now);
    let peers: Vec<&str> = text
        .lines()
        .skip(2)
        .take(3)
        .map(|l| &l[..l.find("  ").unwrap()])
        .collect();
    assert_eq!(peers, ["РИС 01", "РИС 50", "РИС 77"], "{text}");
}

#[test]
fn durations_read_as_people_say_them() {
    assert_eq!(human_duration(45_000), "45 s");
    assert_eq!(human_duration(12 * MIN + 5000), "12 min");
    assert_eq!(human_duration(3 * HOUR), "3 h");
    assert_eq!(human_duration(3 * HOUR + 10 * MIN), "3 h 10 min");
    assert_eq!(human_duration(7 * 24 * HOUR), "7 d");
    assert_eq!(human_duration(52 * HOUR + 59 * MIN), "2 d 4 h");
}
