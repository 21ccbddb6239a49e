use super::*;

#[test]
fn t_is_participants_times_bytes_over_the_rate() {
    // domain.md §6's example: 300 participants × 3 MB at 10 Mbit/s is 720 s.
    assert_eq!(transfer_time(300 * 3_000_000, 10_000_000), Duration::from_secs(720));
    // The default closed exam: 16,000 × 450 B at 2 Mbit/s.
    assert_eq!(transfer_time(16_000 * 450, 2_000_000), Duration::from_millis(28_800));
    assert_eq!(ratio(Duration::from_secs(36), Duration::from_millis(28_800)), 1.25);
    assert_eq!(ratio(Duration::from_secs(1), Duration::ZERO), 0.0);
}

fn figures(lag_s: u64, bytes_up: u64) -> LagFigures {
    let run = LagRun {
        write: Duration::from_millis(500),
        lag: Duration::from_secs(lag_s),
        bytes_up,
        bytes_down: 40_000,
        dropped: [20, 3],
        received: [1000, 150],
        applied_rows: 16_000,
    };
    LagFigures {
        bench: MirrorLagBench::default(),
        payload_bytes: 16_000 * 450,
        clean: LagRun {
            lag: Duration::from_millis(800),
            ..run.clone()
        },
        poor: run,
    }
}

#[test]
fn the_report_states_t_the_lag_as_a_multiple_of_it_and_the_bytes() {
    let f = figures(36, 7_560_000);
    assert_eq!(f.t(), Duration::from_millis(28_800));
    assert_eq!(LagFigures::wire_per_payload(&f.poor, f.payload_bytes), 1.05);
    assert_eq!(LagFigures::goodput_bps(&f.poor, f.payload_bytes), 1_600_000.0);
    // 7.56 MB at 2 Mbit/s is 30.24 s of the 36 s lag.
    assert!((f.link_busy() - 0.84).abs() < 1e-9, "{}", f.link_busy());
    let text = f.report();
    assert!(
        text.contains("poor link busy 84.0 % of the lag (its bytes up at 2.0 Mbit/s take 30.24 s)"),
        "{text}"
    );
    assert!(
        text.contains("T = x·m/v = 16000 × 450 B × 8 / 2.0 Mbit/s = 28.8 s"),
        "{text}"
    );
    assert!(text.contains("lag 36.00 s = 1.25 × T"), "{text}");
    assert!(text.contains("up 7.56 MB (1.050 B per payload B)"), "{text}");
    assert!(text.contains("dropped 20/1000 up, 3/150 down"), "{text}");
    assert!(text.contains("clean loopback: lag 0.80 s = 0.03 × T"), "{text}");
}

#[test]
fn result_rows_are_the_asked_size_distinct_and_repeatable() {
    let rows = closed_exam(500, 450, 7).unwrap();
    assert!(rows.iter().all(|r| r.len() == 450));
    // Real result rows, of the participant they are numbered for.
    let first = konvert_records::mirror_rows::MirrorRow::decode(RecordKind::ProcessingResults, &rows[0]).unwrap();
    assert_eq!(first.participant(), Some(participant_code(1).as_str()));
    let distinct: std::collections::BTreeSet<_> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len());
    assert_eq!(closed_exam(500, 450, 7).unwrap(), rows);
    assert_ne!(closed_exam(500, 450, 8).unwrap(), rows);
    // Every size from one page up comes out exact; a smaller one is refused.
    for len in 160..400 {
        assert!(closed_exam(3, len, 7).unwrap().iter().all(|r| r.len() == len), "{len}");
    }
    assert!(closed_exam(1, 64, 7).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_closed_exam_arrives_whole_over_both_links_and_its_bytes_are_counted() {
    let Some(cluster) = TestCluster::start() else {
        return;
    };
    let b = MirrorLagBench {
        participants: 300,
        ..Default::default()
    };
    let f = run_on(&cluster, &b).await.unwrap();
    assert_eq!(f.payload_bytes, 300 * 450);
    for run in [&f.clean, &f.poor] {
        assert_eq!(run.applied_rows, 300);
        // Every payload byte crossed the proxy, with the batches' framing and signatures.
        assert!(run.bytes_up > f.payload_bytes, "{run:?}");
        // Receipts (and QUIC's acknowledgements) came back.
        assert!(run.bytes_down > 0, "{run:?}");
        assert!(run.received[0] > 0 && run.received[1] > 0, "{run:?}");
    }
    assert_eq!(f.clean.dropped, [0, 0], "the clean loopback dropped datagrams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_sizes_are_refused_before_anything_starts() {
    let b = MirrorLagBench {
        participants: 0,
        ..Default::default()
    };
    let e = run(&b).await.unwrap_err();
    assert!(e.to_string().contains("--participants"), "{e}");
}
