use super::*;

#[test]
fn under_capacity_everyone_gets_their_offer() {
    assert_eq!(fair_share(&[5, 0, 7], 20), vec![5, 0, 7]);
}

#[test]
fn over_capacity_small_flows_are_served_and_the_rest_split_equally() {
    // 30 among 4, 10, 50, 50: 4 and 10 are under the level of 7.5 then 8; the big two split 16.
    let out = fair_share(&[4, 10, 50, 50], 30);
    assert_eq!(out, vec![4, 8, 9, 9]);
    assert!(out.iter().sum::<u64>() <= 30);
}

#[test]
fn the_reserve_channel_lowers_the_capacity_integral() {
    let s = Scenario {
        center_mbit: 80.0,
        center_reserve: Some(CenterReserve {
            from_unix_ms: 10_000,
            to_unix_ms: 20_000,
            mbit: 8.0,
        }),
        ..Scenario::region(2_500)
    };
    let c = CenterLink::new(&s);
    assert_eq!(c.rate_at(9_999), 10_000_000);
    assert_eq!(c.rate_at(10_000), 1_000_000);
    assert_eq!(c.rate_at(20_000), 10_000_000);
    // 0–30 s: 20 s at 10 MB/s and 10 s at 1 MB/s.
    assert_eq!(c.bytes_between(0, 30_000), 210_000_000);
    assert_eq!(c.bytes_between(12_000, 14_000), 2_000_000);
}
