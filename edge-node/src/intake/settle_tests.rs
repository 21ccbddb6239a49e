use super::*;

fn stat(size: u64, mtime_ns: u128) -> Stat {
    Stat { size, mtime_ns }
}

#[test]
fn a_growing_file_is_not_ready_until_it_stops_changing() {
    let mut s = Settler::new(1000);
    s.observe("a.tif", stat(10, 1), 0);
    assert!(s.ready(999).is_empty());
    s.observe("a.tif", stat(20, 2), 900);
    assert!(s.ready(1500).is_empty(), "a change restarts the settle time");
    assert_eq!(s.stable_for("a.tif", 1500), Some(600));
    s.observe("a.tif", stat(20, 2), 1800);
    assert_eq!(s.ready(1900), vec![("a.tif".to_owned(), stat(20, 2))]);
    // Only the modification time changing (rewritten in place, same size) restarts it too.
    s.observe("a.tif", stat(20, 3), 2000);
    assert!(s.settled("a.tif", 2500).is_none());
    assert!(s.settled("a.tif", 3000).is_some());
}

#[test]
fn ready_files_come_in_name_order_and_forgotten_ones_never() {
    let mut s = Settler::new(0);
    for name in ["c", "a", "b"] {
        s.observe(name, stat(1, 1), 0);
    }
    s.forget("b");
    s.retain(|n| n != "c");
    let names: Vec<_> = s.ready(0).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a"]);
}
