#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use clap::ValueEnum;

use super::*;

fn refused(file: &Path) -> String {
    match document_refs(&[file.to_path_buf()]) {
        Ok(r) => panic!("{} was read: {r:?}", file.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_document_is_read_only_from_a_regular_file_never_through_a_link_a_fifo_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("ppe-02.png");
    std::fs::write(&scan, b"scanned appeal").unwrap();
    assert_eq!(
        document_refs(std::slice::from_ref(&scan)).unwrap(),
        vec![ImageRef::of_bytes(b"scanned appeal")]
    );

    // A link to a secret is refused, not hashed and sent.
    let link = dir.path().join("link.png");
    std::os::unix::fs::symlink(&scan, &link).unwrap();
    assert!(refused(&link).contains("symbolic link"), "{}", refused(&link));

    // A FIFO with no writer: refused at once instead of waiting for ever.
    let fifo = dir.path().join("fifo.png");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    assert!(refused(&fifo).contains("FIFO"), "{}", refused(&fifo));

    // An endless device is refused by its kind, nothing read from it.
    assert!(refused(&PathBuf::from("/dev/zero")).contains("character device"));

    // An empty file says so.
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(refused(&empty).contains("empty"));
}

#[test]
fn a_recheck_score_names_a_real_task_and_a_bounded_score() {
    let ok = parse_score("19=2").unwrap();
    assert_eq!((ok.task.as_str(), ok.score), ("19", 2));
    assert_eq!(parse_score(" 7 = 0 ").unwrap().task, "7");
    for bad in [
        "19=999",
        "0=1",
        "=2",
        "99999999999=1",
        "x=1",
        "19=",
        "19=-1",
        "100=1",
        "19",
    ] {
        let e = parse_score(bad).expect_err(bad);
        assert!(e.contains(bad), "{e}");
    }
    assert!(parse_score("0=1").unwrap_err().contains("from 1 to 99"));
    assert!(parse_score("19=999").unwrap_err().contains("from 0 to 50"));
}

#[test]
fn a_correction_names_a_personal_data_field_and_a_one_line_value() {
    for field in [
        "surname",
        "name",
        "patronymic",
        "document-series",
        "document-number",
        "birth-date",
    ] {
        assert_eq!(CorrectionField::from_str(field, false).unwrap().as_str(), field);
    }
    for field in ["password", "score", "", "surname\n"] {
        assert!(CorrectionField::from_str(field, false).is_err(), "{field:?} accepted");
    }
    check_value("Иванова").unwrap();
    for bad in [
        "",
        "  ",
        "Иванова\nscore=100",
        "a\u{7}b",
        "x\u{1b}[2J",
        &"я".repeat(201),
    ] {
        assert!(check_value(bad).is_err(), "{bad:?} accepted");
    }
    for bad in ["", "Белова\nадминистратор", "\t"] {
        assert!(super::super::desk::check_name(bad).is_err(), "{bad:?} accepted");
    }
}
