use super::*;

const MB: u64 = 1_000_000;
const HOUR: u64 = 3_600_000;
/// 23:59 of some exam day, and 23:59 of the next.
const DAY1: u64 = 100 * 24 * HOUR;
const DAY2: u64 = DAY1 + 24 * HOUR;
/// 14:00 local of day 1.
const AFTERNOON: u64 = DAY1 - 9 * HOUR - 59 * MINUTE;

fn packet(id: &str, priority: u8, deadline: u64, size: u64) -> QueuedPacket {
    QueuedPacket {
        id: id.into(),
        priority,
        deadline_unix_ms: deadline,
        size,
        acked: 0,
    }
}

fn scheduler(rate: u64, now: u64) -> EdgeScheduler {
    EdgeScheduler::new(SchedulerConfig::regulations(rate), now)
}

fn order(s: &mut EdgeScheduler, now: u64) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(p) = s.next(now) {
        let id = p.id.clone();
        s.finished(now, &id);
        out.push(id);
    }
    out
}

#[test]
fn forms_then_blanks_then_journal_then_audio_earliest_deadline_first() {
    let mut s = scheduler(10 * MB, AFTERNOON);
    s.push(packet("audio-d1", 3, DAY1, MB));
    s.push(packet("journal-d1", 2, DAY1, MB));
    s.push(packet("blanks-d2", 1, DAY2, MB));
    s.push(packet("blanks-d1-a", 1, DAY1, MB));
    s.push(packet("forms-d2", 0, DAY2, MB));
    s.push(packet("blanks-d1-b", 1, DAY1, MB));
    s.push(packet("forms-d1", 0, DAY1, MB));
    assert_eq!(
        order(&mut s, AFTERNOON),
        [
            "forms-d1",
            "forms-d2",
            "blanks-d1-a",
            "blanks-d1-b",
            "journal-d1",
            "audio-d1"
        ]
    );
    // Tomorrow's blanks wait for tomorrow's 11:00 window.
    assert_eq!(s.next_wakeup(AFTERNOON), Some(DAY2 - 12 * HOUR - 59 * MINUTE));
    assert_eq!(order(&mut s, DAY2 - 12 * HOUR), ["blanks-d2"]);
}

#[test]
fn a_class_waits_for_its_window_unless_the_deadline_is_at_risk() {
    // 10:00 local: forms may go, blanks wait for 11:00, journals for 10:30.
    let ten = DAY1 - 13 * HOUR - 59 * MINUTE;
    let mut s = scheduler(10 * MB, ten);
    s.push(packet("blanks", 1, DAY1, 100 * MB));
    s.push(packet("journal", 2, DAY1, MB));
    s.push(packet("forms", 0, DAY1, MB));
    assert_eq!(s.next(ten).unwrap().id, "forms");
    s.finished(ten, "forms");
    assert!(s.next(ten).is_none());
    assert_eq!(s.next_wakeup(ten), Some(ten + 30 * MINUTE));
    assert_eq!(s.next(ten + 30 * MINUTE).unwrap().id, "journal");
    assert_eq!(s.next(ten + HOUR).unwrap().id, "blanks");

    // The same morning with 14 hours of work at the site's rate: the window is ignored.
    let mut late = scheduler(10 * MB, ten);
    late.push(packet("blanks", 1, DAY1, 14 * 3600 * 10 * MB));
    assert_eq!(late.status(ten).risk, DeadlineRisk::WillMiss);
    assert_eq!(late.next(ten).unwrap().id, "blanks");
    assert_eq!(late.next_wakeup(ten), None);
}

#[test]
fn eta_is_x_m_over_v_before_any_measurement() {
    // 300 participants × 3 MB at 2 MB/s: T = 450 s.
    let mut s = scheduler(2 * MB, AFTERNOON);
    s.expect(300 * 3 * MB, DAY1);
    let st = s.status(AFTERNOON);
    assert_eq!(st.backlog_bytes, 900 * MB);
    assert_eq!(st.goodput_bytes_per_s, None);
    assert_eq!(st.eta_unix_ms, Some(AFTERNOON + 450_000));
    assert_eq!(st.slack_ms, Some((DAY1 - AFTERNOON - 450_000) as i64));
    assert_eq!(st.risk, DeadlineRisk::OnTrack);
}

#[test]
fn eta_follows_measured_goodput_and_slack_sets_the_risk() {
    let mut s = scheduler(10 * MB, AFTERNOON);
    s.push(packet("blanks", 1, DAY1, 10_000 * MB));
    // The link really does 1 MB/s.
    s.tick(AFTERNOON);
    for sec in 1..=120 {
        s.acknowledged(AFTERNOON + sec * 1000, "blanks", sec * MB);
    }
    let now = AFTERNOON + 120_000;
    let st = s.status(now);
    assert_eq!(st.goodput_bytes_per_s, Some(MB));
    assert_eq!(st.backlog_bytes, 9_880 * MB);
    assert_eq!(st.eta_unix_ms, Some(now + 9_880_000));
    assert_eq!(st.risk, DeadlineRisk::OnTrack);
    // Close to the deadline, the same backlog is at risk, then will miss.
    let tight = DAY1 - 9_880_000 - 10 * MINUTE;
    assert_eq!(s.status(tight).risk, DeadlineRisk::AtRisk);
    assert_eq!(s.status(DAY1 - 9_000_000).risk, DeadlineRisk::WillMiss);
    assert!(s.status(DAY1 - 9_000_000).slack_ms.unwrap() < 0);
}

#[test]
fn slack_is_checked_per_exam_day() {
    // Day 2 has all the time in the world, but day 1's backlog alone does not fit before day 1's 23:59.
    let now = DAY1 - HOUR;
    let mut s = scheduler(MB, now);
    s.push(packet("d1", 1, DAY1, 2 * 3600 * MB));
    s.push(packet("d2", 1, DAY2, MB));
    let st = s.status(now);
    assert_eq!(st.deadline_unix_ms, Some(DAY1));
    assert_eq!(st.slack_ms, Some(-(HOUR as i64)));
    assert_eq!(st.risk, DeadlineRisk::WillMiss);
}

#[test]
fn pacing_is_the_lower_of_site_rate_and_a_valid_share() {
    let now = AFTERNOON;
    let mut s = scheduler(4 * MB, now);
    assert_eq!(s.pacing_rate(now), 4 * MB);
    s.set_share(
        now,
        Share {
            rate_bytes_per_s: MB,
            valid_until_unix_ms: now + 30_000,
            risk: DeadlineRisk::OnTrack,
        },
    );
    assert_eq!(s.pacing_rate(now), MB);
    // Drain the burst, then one second buys one second of share.
    let burst = s.grant(now, 100 * MB);
    assert!(burst <= 4 * MB);
    assert_eq!(s.grant(now + 1000, 100 * MB), MB);
    assert_eq!(s.ready_at(now + 1000, MB / 2), Some(now + 1500));
    // A share above the site's rate does not raise it; a lapsed share falls back to it.
    s.set_share(
        now + 1000,
        Share {
            rate_bytes_per_s: 50 * MB,
            valid_until_unix_ms: now + 30_000,
            risk: DeadlineRisk::OnTrack,
        },
    );
    assert_eq!(s.pacing_rate(now + 2000), 4 * MB);
    s.set_share(
        now + 2000,
        Share {
            rate_bytes_per_s: MB / 10,
            valid_until_unix_ms: now + 30_000,
            risk: DeadlineRisk::OnTrack,
        },
    );
    assert_eq!(s.pacing_rate(now + 29_999), MB / 10);
    assert_eq!(s.pacing_rate(now + 30_000), 4 * MB);
}

#[test]
fn site_status_reports_the_backlog_for_the_broker() {
    let mut s = scheduler(3 * MB, AFTERNOON);
    s.push(packet("forms", 0, DAY1, MB));
    s.expect(299 * MB, DAY1);
    s.acknowledged(AFTERNOON, "forms", MB / 2);
    let st = s.site_status(AFTERNOON);
    assert_eq!(st.backlog_bytes, MB / 2);
    assert_eq!(st.expected_bytes, 299 * MB);
    assert_eq!(st.link_bytes_per_s, 3 * MB);
    assert_eq!(st.deadline_unix_ms, DAY1);
    assert_eq!(st.goodput_bytes_per_s, 0);
    assert_eq!(st.eta_unix_ms, AFTERNOON + 99_834);
    assert_eq!(st.at_unix_ms, AFTERNOON);
}
