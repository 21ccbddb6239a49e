use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn key_files_round_trip_with_0600_and_no_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("receipt.key");
    let k = SigningKey::generate().unwrap();
    write_signing_key(&p, &k).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(read_signing_key(&p).unwrap().verifying_key(), k.verifying_key());
    assert!(write_signing_key(&p, &SigningKey::generate().unwrap()).is_err());
    assert_eq!(read_signing_key(&p).unwrap().verifying_key(), k.verifying_key());
    assert!(read_recipient_key(&p).is_err(), "kind is checked");

    let r = dir.path().join("recipient.key");
    let rk = RecipientSecretKey::generate().unwrap();
    write_recipient_key(&r, &rk).unwrap();
    assert_eq!(read_recipient_key(&r).unwrap().public_key(), rk.public_key());
    fs::write(&r, b"garbage").unwrap();
    let err = read_recipient_key(&r).unwrap_err().to_string();
    assert!(err.contains("not a konvert key file"), "{err}");
    assert!(!dir
        .path()
        .read_dir()
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
}

#[test]
fn write_atomic_replaces_with_the_exact_mode_and_kinds_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("center.pub");
    write_atomic(&p, b"one", 0o644).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    write_atomic(&p, b"two", 0o600).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);

    let r = dir.path().join("recipient.key");
    write_recipient_key(&r, &RecipientSecretKey::generate().unwrap()).unwrap();
    let e = read_signing_key(&r).unwrap_err().to_string();
    assert!(e.contains("recipient.key") && e.contains("recipient key"), "{e}");
    let mut bytes = fs::read(&r).unwrap();
    bytes.push(0);
    fs::write(&r, &bytes).unwrap();
    let e = read_recipient_key(&r).unwrap_err().to_string();
    assert!(e.contains("42 bytes"), "{e}");
    assert!(read_recipient_key(&dir.path().join("missing.key")).is_err());
    assert!(write_new_atomic(&p, b"x", 0o600).is_err(), "no overwrite");
    assert_eq!(fs::read(&p).unwrap(), b"two");
}

#[test]
fn a_fifo_a_device_or_a_folder_is_refused_at_once_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("center.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let zero = dir.path().join("member.token");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let folder = dir.path().join("stations.crl");
    std::fs::create_dir(&folder).unwrap();
    let started = std::time::Instant::now();
    for (path, what) in [(&fifo, "FIFO"), (&zero, "device"), (&folder, "a folder")] {
        let e = read_bounded(path, 1 << 20).unwrap_err().to_string();
        assert!(e.contains(what) && e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("not a regular file"), "{e}");
    }
    // Before, the FIFO blocked for ever: the open waited for a writer.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let text = dir.path().join("site.toml");
    std::fs::write(&text, "site = \"0101\"\n").unwrap();
    assert_eq!(read_text_bounded(&text, 1 << 20).unwrap(), "site = \"0101\"\n");
    assert!(read_text_bounded(&text, 4)
        .unwrap_err()
        .to_string()
        .contains("too large"));
}
