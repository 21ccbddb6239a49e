use super::*;

#[test]
fn the_reset_secret_is_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = reset_secret(&data).unwrap();
    assert_eq!(reset_secret(&data).unwrap(), first, "the same across restarts");
    assert_ne!(first, [0u8; 32]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(RESET_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only");
    }
}

#[test]
fn a_damaged_reset_secret_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(RESET_KEY), b"short").unwrap();
    let secret = reset_secret(dir.path()).unwrap();
    assert_eq!(std::fs::read(dir.path().join(RESET_KEY)).unwrap(), secret.to_vec());
}
