use super::*;

const HOUR: i64 = 3_600_000;

#[test]
fn on_time_when_the_rest_fits_before_the_deadline() {
    // 1 GB left at 1 MB/s = 1000 s; 2 hours left.
    let s = DeadlineStatus::at(0, 2 * HOUR, 1_000_000_000, 1_000_000.0);
    assert_eq!(s.eta_ms, Some(1_000_000));
    assert!(!s.at_risk());
    assert_eq!(s.to_string(), "2h00m left until 23:59 local");
}

#[test]
fn warned_early_when_the_rate_cannot_make_it() {
    // 10 GB at 1 MB/s = 2h47m, but only 2 hours left: warned now, not at 23:58.
    let s = DeadlineStatus::at(0, 2 * HOUR, 10_000_000_000, 1_000_000.0);
    assert!(s.at_risk());
    assert!(s.to_string().contains("lands 0h47m after 23:59"), "{s}");
}

#[test]
fn past_the_deadline_and_no_rate_yet() {
    let past = DeadlineStatus::at(3 * HOUR, 2 * HOUR, 1, 1.0);
    assert!(past.at_risk());
    assert!(past.to_string().contains("passed 1h00m ago"), "{past}");
    let unknown = DeadlineStatus::at(0, HOUR, 1_000, 0.0);
    assert_eq!(unknown.eta_ms, None);
    assert!(!unknown.at_risk());
}
