use super::*;

#[test]
fn missing_binaries_are_named_with_their_packages() {
    let empty = tempfile::tempdir().unwrap();
    let err = find_in(empty.path().as_os_str(), &[]).unwrap_err();
    assert_eq!(err.0.len(), 4);
    let msg = err.to_string();
    assert!(msg.contains("sshd, ssh, ssh-keygen, rsync not found"), "{msg}");
    assert!(
        msg.contains("apt-get install openssh-server openssh-client rsync"),
        "{msg}"
    );
}

#[test]
fn only_the_missing_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for bin in ["sshd", "ssh", "ssh-keygen"] {
        std::fs::write(dir.path().join(bin), b"").unwrap();
    }
    let err = find_in(dir.path().as_os_str(), &[]).unwrap_err();
    assert_eq!(err, Missing(vec![("rsync", "rsync")]));
    std::fs::write(dir.path().join("rsync"), b"").unwrap();
    let tools = find_in(OsStr::new(""), &[dir.path()]).unwrap();
    assert_eq!(tools.rsync, dir.path().join("rsync"));
    assert_eq!(tools.sshd, dir.path().join("sshd"));
}

#[test]
fn an_sshd_that_cannot_run_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such-binary");
    let tools = Tools {
        sshd: nowhere.clone(),
        ssh: nowhere.clone(),
        ssh_keygen: nowhere.clone(),
        rsync: nowhere,
    };
    let err = LoopbackSshd::start(&tools, dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("running ssh-keygen"), "{err:#}");
}

#[test]
fn rsync_versions_are_read_and_compared() {
    assert_eq!(
        parse_rsync_version("rsync  version 3.2.7  protocol version 31\nCopyright"),
        Some((3, 2, 7))
    );
    assert_eq!(parse_rsync_version("rsync  version v3.1.3  protocol version 31"), None);
    assert_eq!(
        parse_rsync_version("rsync  version 3.2.3pre1  protocol"),
        Some((3, 2, 3))
    );
    assert_eq!(parse_rsync_version("something else"), None);
    assert!((3, 2, 7) >= RSYNC_WITH_FSYNC);
    assert!((3, 2, 3) < RSYNC_WITH_FSYNC);
    assert!((3, 10, 0) >= RSYNC_WITH_FSYNC);
}
