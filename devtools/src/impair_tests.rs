use super::*;

#[test]
fn the_same_seed_gives_the_same_fates_and_the_rate_cap_queues() {
    let imp = Impairment {
        loss: 0.1,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        reorder: 0.1,
        duplicate: 0.1,
        rate_bps: Some(8_000_000),
        blackouts: vec![(Duration::from_secs(5), Duration::from_secs(6))],
    };
    let t0 = Instant::now();
    let run = || {
        let mut s = Shaper {
            imp: imp.clone(),
            rng: SmallRng::seed_from_u64(42),
            started: t0,
            link_free_at: t0,
        };
        (0..1000)
            .map(|i| s.schedule(1000, t0 + Duration::from_millis(i)))
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b, "deterministic");
    let dropped = a.iter().filter(|t| t.is_empty()).count();
    assert!((60..=140).contains(&dropped), "about 10% lost: {dropped}");
    assert!(a.iter().any(|t| t.len() == 2), "some duplicated");
    // 1000 B at 8 Mbit/s is 1 ms on the wire: arriving every 1 ms, the queue never
    // drains early, so the 500th datagram leaves no sooner than 500 ms in.
    let late = a[500].first().copied().unwrap_or(t0 + Duration::from_secs(1));
    assert!(late >= t0 + Duration::from_millis(400), "the rate cap queues");
    // The blackout drops everything inside it.
    let mut s = Shaper {
        imp: Impairment {
            blackouts: vec![(Duration::from_secs(1), Duration::from_secs(2))],
            ..Default::default()
        },
        rng: SmallRng::seed_from_u64(1),
        started: t0,
        link_free_at: t0,
    };
    assert!(s.schedule(100, t0 + Duration::from_millis(1500)).is_empty());
    assert_eq!(s.schedule(100, t0 + Duration::from_millis(2500)).len(), 1);
}
