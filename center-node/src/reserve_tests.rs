use super::*;

#[test]
fn results_nobody_picked_up_go_after_an_hour_and_fresh_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let old = spool.results.join("1-1.res");
    let fresh = spool.results.join("2-2.res");
    let other = spool.results.join("notes.txt");
    for p in [&old, &fresh, &other] {
        std::fs::write(p, b"x").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    for p in [&old, &other] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    assert_eq!(spool.prune_results(STALE_RESULT).unwrap(), 1);
    assert!(!old.exists());
    assert!(fresh.exists() && other.exists(), "only stale results go");
}
