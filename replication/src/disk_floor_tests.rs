use super::*;

#[test]
fn a_nodes_gauges_are_named_for_it_and_its_floor_refuses_in_its_own_words() {
    let registry = Registry::new();
    let gauges = DiskGauges::register(&registry, "relay").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A floor no real disk is above: every check is below it.
    let floor = DiskFloor::new(dir.path(), "relay", 100.0, &gauges);
    let detail = floor.check().unwrap_err();
    assert!(detail.contains("of the relay's disk is free"), "{detail}");
    assert_eq!(gauges.floor.get(), 1.0);
    let free = gauges.free.get();
    assert!(free > 0.0 && free < 1.0, "the gauge holds the free share: {free}");
    let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
    assert_eq!(
        names,
        ["konvert_relay_disk_free_floor_ratio", "konvert_relay_disk_free_ratio"]
    );
    assert!(DiskFloor::new(dir.path(), "relay", 0.0, &gauges).check().is_ok());
}

#[test]
fn a_floor_that_is_no_share_of_the_disk_is_refused() {
    assert!(check_min_free_percent(5.0).is_ok());
    assert!(check_min_free_percent(0.0).is_ok());
    for bad in [100.0, -1.0, f64::NAN] {
        let err = check_min_free_percent(bad).unwrap_err();
        assert!(err.contains("min_free_percent"), "{err}");
    }
}
