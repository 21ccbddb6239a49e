use super::*;

#[test]
fn a_database_being_written_is_copied_entry_whole_and_a_held_one_is_not_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_sled(&dir.path().join("live.sled")).unwrap();
    let packets = db.open_tree("packets").unwrap();
    for i in 0..100u32 {
        packets.insert(i.to_be_bytes(), vec![i as u8; 300]).unwrap();
    }
    db.insert(b"default-key", b"default-value".as_slice()).unwrap();
    let writer = {
        let packets = packets.clone();
        std::thread::spawn(move || {
            for i in 100..2000u32 {
                packets.insert(i.to_be_bytes(), vec![i as u8; 300]).unwrap();
            }
        })
    };
    let copy_path = dir.path().join("copy.sled");
    let copied = copy_db(&db, &copy_path).unwrap();
    writer.join().unwrap();
    assert!(copied >= 101, "{copied}");
    let copy = open_sled(&copy_path).unwrap();
    let tree = copy.open_tree("packets").unwrap();
    assert!(tree.len() >= 100);
    for kv in tree.iter() {
        let (k, v) = kv.unwrap();
        let i = u32::from_be_bytes(<[u8; 4]>::try_from(k.as_ref()).unwrap());
        assert_eq!(v.as_ref(), vec![i as u8; 300].as_slice(), "entry {i} whole");
    }
    assert_eq!(copy.get(b"default-key").unwrap().unwrap().as_ref(), b"default-value");
    // Never into a database that is there; never a database another handle holds.
    assert!(copy_db(&db, &copy_path).is_err());
    drop(copy);
    let err = copy_closed(&dir.path().join("live.sled"), &dir.path().join("again.sled")).unwrap_err();
    assert!(err.to_string().contains("is a process using it"), "{err}");
}
