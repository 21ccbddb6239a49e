//! Power cuts: the center's data folder on a file system that keeps only what was fsynced
//! (tests/src/lazyfs.rs). kill -9 keeps the page cache and proves nothing about power loss;
//! here a cut drops every byte and name not made durable, at many points during receive and
//! store, and every packet the edge holds a receipt for must still be there and open.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};

use konvert_tests::lazyfs::LazyMount;

/// The test file system keeps exactly what was fsynced: the contract the power-cut test
/// rests on, checked on its own.
#[test]
fn the_test_file_system_drops_what_was_not_fsynced() {
    let root = tempfile::tempdir().unwrap();
    let mnt = LazyMount::mount(root.path()).unwrap();
    let p = mnt.path().to_owned();
    std::fs::create_dir(p.join("kept")).unwrap();
    std::fs::create_dir(p.join("lost")).unwrap();
    let mut f = std::fs::File::create(p.join("kept/synced")).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_all().unwrap();
    f.write_all(b" and not").unwrap();
    drop(f);
    std::fs::write(p.join("kept/unsynced"), b"cached only").unwrap();
    // The folders' names and `synced`'s name are made durable; `unsynced`'s too, not its bytes.
    std::fs::File::open(p.join("kept")).unwrap().sync_all().unwrap();
    std::fs::File::open(&p).unwrap().sync_all().unwrap();
    std::fs::write(p.join("lost/name"), b"x").unwrap();
    std::fs::File::open(p.join("lost/name")).unwrap().sync_all().unwrap();
    std::fs::rename(p.join("kept/synced"), p.join("kept/renamed")).unwrap();

    mnt.arm_power_cut(1);
    let writer = std::thread::spawn({
        let p = p.clone();
        move || std::fs::write(p.join("kept/after"), b"never")
    });
    while mnt.cut_at().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    mnt.kill_switch();
    assert!(
        writer.join().unwrap().is_err(),
        "nothing succeeds once the power is off"
    );
    mnt.restore_power();

    let mut s = String::new();
    std::fs::File::open(p.join("kept/synced"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "durable", "the bytes of the last fsync, the rename undone");
    assert!(!p.join("kept/renamed").exists());
    assert_eq!(
        std::fs::read(p.join("kept/unsynced")).unwrap(),
        b"",
        "a durable name, no durable bytes"
    );
    assert!(
        !p.join("lost/name").exists(),
        "a name whose folder was never fsynced is gone"
    );
    assert!(!p.join("kept/after").exists());

    // Full disk and failing fsync, on command.
    mnt.set_capacity(Some(mnt.used() + 10));
    let e = std::fs::write(p.join("kept/big"), [0u8; 100]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
    let st = rustix::fs::statvfs(&p).unwrap();
    assert!(st.f_bavail * st.f_frsize <= 4096, "statfs says the disk is full");
    mnt.set_capacity(None);
    mnt.fail_fsync(true);
    let f = std::fs::File::create(p.join("kept/f")).unwrap();
    assert_eq!(f.sync_all().unwrap_err().raw_os_error(), Some(5), "EIO");
}
