use super::*;

#[test]
fn an_error_of_the_callers_own_leaves_the_database_open_and_its_data_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db: Mending<SledDb> = Mending::open(&dir.path().join("t.sled"), "the test database").unwrap();
    db.write(|d| {
        d.insert(b"k", b"v").map_err(crate::durable::storage_err)?;
        d.flush_durably().map_err(crate::durable::storage_err)
    })
    .unwrap();
    let refused: Result<(), Error> = db.write(|_| Err(Error::Storage("a duplicate, refused".into())));
    assert!(
        matches!(refused, Err(Error::Storage(_))),
        "the caller's error is passed on"
    );
    assert_eq!(db.failures(), 0, "sled did not fail: nothing is opened again");
    let kept = db.read(|d| d.get(b"k").map_err(crate::durable::storage_err)).unwrap();
    assert_eq!(kept.as_deref(), Some(&b"v"[..]));
}
