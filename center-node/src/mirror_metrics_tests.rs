use std::net::SocketAddr;
use std::sync::Arc;

use konvert_mirror::{PeriodConfig, PeriodKind, ScheduleConfig};
use prometheus::{Encoder, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const HOUR: u64 = 3_600_000;
/// 2027-06-10T09:00:00Z, inside the main exam period.
const IN_EXAMS: u64 = 1_812_618_000_000;
/// 2027-08-10T09:00:00Z, between periods.
const QUIET: u64 = 1_817_888_400_000;

fn schedule() -> Schedule {
    Schedule::from_config(&ScheduleConfig {
        periods: vec![PeriodConfig {
            name: "main".to_owned(),
            kind: PeriodKind::Exam,
            first_day: "2027-05-26".to_owned(),
            last_day: "2027-07-01".to_owned(),
            interval_minutes: None,
        }],
        ..ScheduleConfig::default()
    })
    .unwrap()
}

/// Region 76's channels with the federal node: results 200 rows and 3 hours behind, scores
/// applied an hour ago.
fn status(now: u64) -> Vec<MirrorChannelStatus> {
    vec![
        MirrorChannelStatus {
            peer: Node::Federal,
            kind: RecordKind::ProcessingResults,
            direction: MirrorDirection::Outgoing,
            rows: 1200,
            through: 1000,
            lag: Some(200),
            last_exchange_unix_ms: Some((now - 4 * HOUR) as i64),
            oldest_unreceipted_unix_ms: Some((now - 3 * HOUR) as i64),
        },
        MirrorChannelStatus {
            peer: Node::Federal,
            kind: RecordKind::Planning,
            direction: MirrorDirection::Outgoing,
            rows: 12,
            through: 12,
            lag: Some(0),
            last_exchange_unix_ms: None,
            oldest_unreceipted_unix_ms: None,
        },
        MirrorChannelStatus {
            peer: Node::Federal,
            kind: RecordKind::RecomputedScores,
            direction: MirrorDirection::Incoming,
            rows: 40,
            through: 40,
            lag: None,
            last_exchange_unix_ms: Some((now - HOUR) as i64),
            oldest_unreceipted_unix_ms: None,
        },
    ]
}

/// A real scrape: the registry served by the center's `/metrics` endpoint, read over TCP.
async fn scrape(registry: Registry) -> String {
    let render = Arc::new(move || {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .map_err(|e| e.to_string())?;
        String::from_utf8(buf).map_err(|e| e.to_string())
    });
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let addr = konvert_replication::metrics_http::serve(addr, render).await.unwrap();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the one sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_lag_the_last_exchange_the_interval_and_the_exam_period() {
    let registry = Registry::new();
    let metrics = MirrorMetrics::register(&registry).unwrap();
    metrics.observe(&status(IN_EXAMS), &schedule(), IN_EXAMS);
    let text = scrape(registry.clone()).await;

    let results = r#"{direction="outgoing",kind="processing_results",peer="federal"}"#;
    assert_eq!(
        sample(&text, &format!("konvert_mirror_lag_rows{results}")),
        Some(200.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"konvert_mirror_lag_seconds{kind="processing_results",peer="federal"}"#
        ),
        Some(3.0 * 3600.0)
    );
    assert_eq!(
        sample(&text, r#"konvert_mirror_lag_seconds{kind="planning",peer="federal"}"#),
        Some(0.0),
        "every row receipted: 0, shown, so the alert sees the channel"
    );
    assert_eq!(
        sample(
            &text,
            &format!("konvert_mirror_last_exchange_timestamp_seconds{results}")
        ),
        Some(((IN_EXAMS - 4 * HOUR) / 1000) as f64)
    );
    assert_eq!(
        sample(
            &text,
            r#"konvert_mirror_last_exchange_timestamp_seconds{direction="incoming",kind="recomputed_scores",peer="federal"}"#
        ),
        Some(((IN_EXAMS - HOUR) / 1000) as f64)
    );
    assert_eq!(sample(&text, "konvert_mirror_interval_seconds"), Some(7200.0));
    assert_eq!(sample(&text, "konvert_mirror_exam_period"), Some(1.0));
    // The receiver does not know the owner's lag: no series rather than a made-up 0.
    assert!(
        !text.contains(r#"konvert_mirror_lag_rows{direction="incoming""#),
        "{text}"
    );
    assert!(
        !text.contains(r#"konvert_mirror_lag_seconds{kind="recomputed_scores""#),
        "{text}"
    );
    // No exchange yet: no timestamp (a 0 would read as 1970).
    assert!(!text.contains(r#"konvert_mirror_last_exchange_timestamp_seconds{direction="outgoing",kind="planning""#));
    for family in [
        "konvert_mirror_lag_rows gauge",
        "konvert_mirror_lag_seconds gauge",
        "konvert_mirror_last_exchange_timestamp_seconds gauge",
        "konvert_mirror_interval_seconds gauge",
        "konvert_mirror_exam_period gauge",
    ] {
        assert!(text.contains(&format!("# TYPE {family}")), "{family}: {text}");
    }

    // Later, after the exam period: weekly, no longer an exam period, everything receipted.
    let mut done = status(QUIET);
    done[0].through = 1200;
    done[0].lag = Some(0);
    done[0].oldest_unreceipted_unix_ms = None;
    metrics.observe(&done, &schedule(), QUIET);
    let text = scrape(registry).await;
    assert_eq!(
        sample(&text, "konvert_mirror_interval_seconds"),
        Some(7.0 * 24.0 * 3600.0)
    );
    assert_eq!(sample(&text, "konvert_mirror_exam_period"), Some(0.0));
    assert_eq!(sample(&text, &format!("konvert_mirror_lag_rows{results}")), Some(0.0));
    assert_eq!(
        sample(
            &text,
            r#"konvert_mirror_lag_seconds{kind="processing_results",peer="federal"}"#
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_peer_kind_and_reason() {
    let registry = Registry::new();
    let metrics = MirrorMetrics::register(&registry).unwrap();
    // The federal node refuses a region's batch of a federal kind twice, and one of region
    // 7's results arrives out of sequence.
    let not_owner = Refusal::NotOwner {
        sender: Node::Region(76),
        kind: RecordKind::RecomputedScores,
    };
    metrics.refused(Node::Region(76), RecordKind::RecomputedScores, &not_owner);
    metrics.refused(Node::Region(76), RecordKind::RecomputedScores, &not_owner);
    metrics.refused(
        Node::Region(7),
        RecordKind::ProcessingResults,
        &Refusal::OutOfSequence { expected: 4, got: 7 },
    );
    let text = scrape(registry).await;
    assert_eq!(
        sample(
            &text,
            r#"konvert_mirror_refusals_total{kind="recomputed_scores",peer="76",reason="not_owner"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"konvert_mirror_refusals_total{kind="processing_results",peer="07",reason="out_of_sequence"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("# TYPE konvert_mirror_refusals_total counter"), "{text}");
}

#[test]
fn registering_twice_on_one_registry_is_an_error_not_a_panic() {
    let registry = Registry::new();
    MirrorMetrics::register(&registry).unwrap();
    assert!(matches!(MirrorMetrics::register(&registry), Err(Error::Metrics(_))));
}
