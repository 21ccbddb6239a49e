use super::*;

#[test]
fn a_snapshot_a_kill_left_unfinished_is_cleared_and_the_database_opens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.sled");
    {
        let db = open_sled(&path).unwrap();
        db.insert(b"packet", b"receipted").unwrap();
        db.flush_durably().unwrap();
    }
    // What a kill between sled's snapshot write and its rename leaves behind.
    let torn = path.join("snap.FFFFFFFFFFFFFFFF.generating");
    fs::write(&torn, b"torn").unwrap();
    std::thread::sleep(RELOCK_WAIT);
    assert!(
        matches!(sled::open(&path), Err(sled::Error::Corruption { .. })),
        "sled itself refuses to open"
    );
    std::thread::sleep(RELOCK_WAIT);
    let db = open_sled(&path).unwrap();
    assert_eq!(db.get(b"packet").unwrap().as_deref(), Some(&b"receipted"[..]));
    assert!(!torn.exists());
}
