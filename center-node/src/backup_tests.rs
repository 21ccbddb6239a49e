use super::*;

#[test]
fn a_target_that_holds_anything_is_refused_by_name_and_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("shift-1");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("notes.txt"), b"yesterday").unwrap();
    let err = make_empty_target(&target).unwrap_err().to_string();
    assert!(err.contains(&target.display().to_string()), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read(target.join("notes.txt")).unwrap(), b"yesterday");
    // A file where the folder goes is refused too; a new or empty folder is taken.
    let file = root.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(make_empty_target(&file)
        .unwrap_err()
        .to_string()
        .contains("not a folder"));
    make_empty_target(&root.path().join("new")).unwrap();
    assert!(root.path().join("new").is_dir());
}

#[test]
fn manifest_paths_outside_the_backup_are_refused() {
    for bad in [
        "../etc/passwd",
        "data/../../x",
        "/abs",
        "data",
        "other/x",
        "data//x",
        "data/./x",
    ] {
        assert!(split_path(bad).is_err(), "{bad}");
    }
    let (folders, name) = split_path("data/store/ab/x.env").unwrap();
    assert_eq!((folders, name), (vec!["data", "store", "ab"], "x.env"));
}
