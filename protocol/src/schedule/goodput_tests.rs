use super::*;

#[test]
fn no_figure_before_the_first_full_sample() {
    let mut m = GoodputMeter::new(10_000, 1000);
    m.record(0, 0);
    m.record(500, 500_000);
    assert_eq!(m.bytes_per_s(), None);
    m.record(1000, 500_000);
    assert_eq!(m.bytes_per_s(), Some(1_000_000));
}

#[test]
fn converges_to_a_new_rate_with_the_time_constant() {
    let mut m = GoodputMeter::new(10_000, 1000);
    m.record(0, 0);
    for s in 1..=100 {
        m.record(s * 1000, 1_000_000);
    }
    assert_eq!(m.bytes_per_s(), Some(1_000_000));
    // The link halves: after one time constant the figure has moved 1 − 1/e of the way.
    for s in 101..=110 {
        m.record(s * 1000, 500_000);
    }
    let r = m.bytes_per_s().unwrap() as f64;
    let expected = 500_000.0 + 500_000.0 * (-1.0f64).exp();
    assert!((r - expected).abs() < 1_000.0, "{r} vs {expected}");
}

#[test]
fn idle_time_is_not_a_slow_link_but_a_stall_is() {
    let mut m = GoodputMeter::new(5_000, 1000);
    m.record(0, 0);
    for s in 1..=30 {
        m.record(s * 1000, 2_000_000);
    }
    // An hour with nothing to send, then sending again at the same rate.
    m.idle();
    m.record(3_630_000, 0);
    m.record(3_631_000, 2_000_000);
    assert_eq!(m.bytes_per_s(), Some(2_000_000));
    // A stall while busy: zero acknowledged bytes drag the figure down.
    for s in 1..=30 {
        m.record(3_631_000 + s * 1000, 0);
    }
    assert!(m.bytes_per_s().unwrap() < 2_000_000 / 100);
}
