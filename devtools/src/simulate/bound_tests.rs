use super::*;
use crate::simulate::region::SimPacket;
use crate::simulate::{Scenario, HOUR_MS};

fn site(link: u64, outage: Option<(u64, u64)>, packets: &[(u64, u64)]) -> SimSite {
    SimSite {
        code: "0101".into(),
        utc_offset_h: 3,
        participants: 100,
        oral: false,
        link_bytes_per_s: link,
        outage,
        deadline_unix_ms: 10 * HOUR_MS,
        packets: packets
            .iter()
            .enumerate()
            .map(|(i, (ready, size))| SimPacket {
                id: format!("p{i}"),
                priority: 1,
                size: *size,
                ready_unix_ms: *ready,
            })
            .collect(),
    }
}

#[test]
fn a_site_bound_counts_bytes_released_late_and_outages() {
    // 1 MB/s: 3.6 GB fit in the last hour, not 3.7 GB; an outage of half that hour halves it.
    assert!(site_feasible(&site(
        1_000_000,
        None,
        &[(0, 1_000), (9 * HOUR_MS, 3_600_000_000)]
    )));
    assert!(!site_feasible(&site(
        1_000_000,
        None,
        &[(0, 1_000), (9 * HOUR_MS, 3_700_000_000)]
    )));
    let outage = Some((9 * HOUR_MS, 9 * HOUR_MS + HOUR_MS / 2));
    assert!(!site_feasible(&site(
        1_000_000,
        outage,
        &[(9 * HOUR_MS, 2_000_000_000)]
    )));
    assert!(site_feasible(&site(1_000_000, outage, &[(9 * HOUR_MS, 1_800_000_000)])));
}

#[test]
fn the_center_bound_adds_up_every_site_due_by_a_deadline() {
    let s = Scenario {
        center_mbit: 8.0,
        center_reserve: None,
        ..Scenario::region(2_500)
    };
    let center = CenterLink::new(&s);
    // 1 MB/s center, the last hour: two sites of 2 GB each do not fit, of 1.8 GB each do.
    let two = |size| {
        vec![
            site(100_000_000, None, &[(9 * HOUR_MS, size)]),
            site(100_000_000, None, &[(9 * HOUR_MS, size)]),
        ]
    };
    assert!(!center_feasible(&two(2_000_000_000), &center));
    assert!(center_feasible(&two(1_800_000_000), &center));
}
