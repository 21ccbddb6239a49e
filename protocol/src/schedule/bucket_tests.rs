use super::*;

const MB: u64 = 1_000_000;

#[test]
fn starts_full_then_paces_to_the_rate() {
    // 2 MB/s with a 1 s burst: 2 MB at once, then 2 MB per second.
    let mut b = TokenBucket::new(2 * MB, 1000, 0);
    assert_eq!(b.grant(0, 5 * MB), 2 * MB);
    assert_eq!(b.grant(0, 1), 0);
    assert_eq!(b.grant(250, 5 * MB), MB / 2);
    assert_eq!(b.grant(1250, 5 * MB), 2 * MB);
    // Over ten seconds of steady asking, exactly rate × time.
    let mut total = 0;
    for t in (1350..=11_250).step_by(100) {
        total += b.grant(t, 5 * MB);
    }
    assert_eq!(total, 20 * MB);
}

#[test]
fn ready_at_says_when_a_chunk_fits() {
    let mut b = TokenBucket::new(MB, 1000, 10_000);
    b.grant(10_000, u64::MAX);
    assert_eq!(b.ready_at(10_000, MB / 4), Some(10_250));
    assert_eq!(b.ready_at(10_000, 0), Some(10_000));
    // Asking for more than the burst waits for a full bucket, never forever.
    let burst = b.burst_bytes();
    assert_eq!(b.ready_at(10_000, 100 * MB), Some(10_000 + (burst * 1000).div_ceil(MB)));
    assert_eq!(b.grant(10_250, MB / 4), MB / 4);
}

#[test]
fn rate_zero_grants_nothing_more_and_never_becomes_ready() {
    let mut b = TokenBucket::new(MB, 1000, 0);
    b.grant(0, 10 * MB);
    b.set_rate(0, 0);
    assert_eq!(b.grant(60_000, 1), 0);
    assert_eq!(b.ready_at(60_000, 1), None);
    b.set_rate(60_000, MB);
    assert_eq!(b.ready_at(60_000, MB / 2), Some(60_500));
}

#[test]
fn a_lower_rate_clips_tokens_to_the_new_burst() {
    // 10 MB/s × 1 s burst, full; the share drops to 2 MB/s: at most one chunk or 2 MB remain.
    let mut b = TokenBucket::new(10 * MB, 1000, 0);
    b.set_rate(0, 2 * MB);
    assert_eq!(b.available(0), 2 * MB);
    assert_eq!(b.rate(), 2 * MB);
}
