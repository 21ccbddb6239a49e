use super::*;
use crate::simulate::{Scenario, HOUR_MS};

/// The designed scenario at 2,500 participants, quick enough for the test suite, with the
/// center scaled down so there is contention again: 16 Mbit/s (100 × 2,500 / 16,000) and a
/// 0.5 Mbit/s reserve channel while the main link is down (06:00–12:45 UTC).
fn small_zones() -> Scenario {
    let mut s = Scenario::zones_reserve(2_500);
    s.center_mbit = 16.0;
    if let Some(r) = &mut s.center_reserve {
        r.mbit = 0.5;
    }
    s
}

#[test]
fn konvert_meets_every_feasible_deadline_where_fifo_does_not() {
    let s = small_zones();
    let r = run(&s).unwrap();
    assert!(r.feasible, "the designed scenario must be feasible by the bound");
    assert_eq!(
        r.konvert.sites_missing,
        0,
        "{:#?}",
        r.sites.iter().filter(|o| o.konvert.missed).collect::<Vec<_>>()
    );
    assert!(r.fifo.sites_missing > 0, "FIFO should miss some eastern deadlines");
    // The sites FIFO misses are the eastern ones, whose 23:59 comes first.
    assert!(r.sites.iter().filter(|o| o.fifo.missed).all(|o| o.utc_offset_h > 9));
    // Every packet went through the real sender and receiver with a verified receipt.
    let packets: usize = region::generate(&s).iter().map(|x| x.packets.len()).sum();
    assert_eq!(r.konvert.receipts_verified, packets as u64);
    assert_eq!(r.fifo.receipts_verified, packets as u64);
    // Forms overtake blanks.
    assert!(r.konvert.forms_latency_p95_s < r.fifo.forms_latency_p95_s);
}

#[test]
fn an_ordinary_day_is_met_by_both_and_the_run_is_deterministic() {
    let s = Scenario::region(1_000);
    let a = run(&s).unwrap();
    let b = run(&s).unwrap();
    assert_eq!(a.konvert.sites_missing, 0);
    let done = |r: &SimReport| {
        r.sites
            .iter()
            .map(|o| (o.fifo.done_unix_ms, o.konvert.done_unix_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(done(&a), done(&b));
    // Every site finishes after its last room was scanned and before 23:59.
    for (o, site) in a.sites.iter().zip(region::generate(&s)) {
        let last = site.packets.iter().map(|p| p.ready_unix_ms).max().unwrap();
        let t = o.konvert.done_unix_ms.unwrap();
        assert!(t > last && t <= site.deadline_unix_ms - HOUR_MS / 2, "{}", o.code);
    }
}
