//! Power cuts: the center's data folder on a file system that keeps only what was fsynced
//! (tests/src/lazyfs.rs). kill -9 keeps the page cache and proves nothing about power loss;
//! here a cut drops every byte and name not made durable, at many points during receive and
//! store, and every packet the edge holds a receipt for must still be there and open.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};

use konvert_tests::faults::{check_receipted, data_on_lazyfs};
use konvert_tests::lazyfs::LazyMount;

/// The test file system keeps exactly what was fsynced: the contract the power-cut test
/// rests on, checked on its own.
#[test]
fn the_test_file_system_drops_what_was_not_fsynced() {
    let root = tempfile::tempdir().unwrap();
    let mnt = LazyMount::mount(root.path())
        .expect("mount the FUSE test file system: needs /dev/fuse and root, or fusermount3");
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

/// Cuts the power to the center at many points while it receives and stores a day's
/// packets: each time, the center's process dies with SIGKILL, everything its file system
/// did not make durable is dropped, and the center starts again on what is left. Every
/// packet receipted before a cut is there and opens afterwards; the edge resends the rest
/// and in the end everything is delivered, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_during_receive_and_store_lose_no_receipted_packet() {
    use rand::{Rng, SeedableRng};
    const PACKETS: usize = 32;
    const CUTS: usize = 20;
    let seed: u64 = std::env::var("KONVERT_POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("power-cut seed {seed} (KONVERT_POWER_SEED={seed} replays it)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let addr = konvert_tests::free_udp_addr();
    let fx = konvert_tests::CenterFixture::new(addr);
    let token = fx.issue_token("0101");
    let mut cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", addr);
    let (mnt, data) = data_on_lazyfs(fx.root.path(), "power", &cfg.data_dir);
    cfg.data_dir = data.clone();
    cfg.save(&fx.init.config_path).unwrap();
    for i in 0..PACKETS {
        site.seal_room(&format!("{:04}", i + 1), 2, 60_000 + 10_000 * (i % 5), seed ^ i as u64);
    }

    let exe = env!("CARGO_BIN_EXE_konvert-test-center");
    let mut center = konvert_tests::start_listening(exe, &fx.init.config_path);
    let pushing = site.spawn_push(konvert_edge::PushOptions {
        max_wait: std::time::Duration::from_secs(120),
        ..Default::default()
    });
    let began = std::time::Instant::now();
    let mut cuts = Vec::new();
    while cuts.len() < CUTS && !pushing.is_finished() && began.elapsed() < std::time::Duration::from_secs(40) {
        mnt.arm_power_cut(rng.gen_range(1..=40));
        let cut_at = loop {
            if let Some(at) = mnt.cut_at() {
                break Some(at);
            }
            if pushing.is_finished() {
                break None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        let Some(cut_at) = cut_at else {
            mnt.disarm();
            break;
        };
        center.kill().unwrap(); // SIGKILL: nothing after the cut runs
        mnt.kill_switch();
        center.wait().unwrap();
        mnt.restore_power();
        let held = tokio::task::block_in_place(|| check_receipted(&site, &fx, &data));
        eprintln!(
            "cut {} at {cut_at}: {held} receipted packets there and open",
            cuts.len() + 1
        );
        cuts.push(cut_at);
        center = konvert_tests::start_listening(exe, &fx.init.config_path);
    }
    let report = pushing.await.unwrap().unwrap();
    // One more cut with nothing in flight: what was receipted last is durable too.
    center.kill().unwrap();
    center.wait().unwrap();
    mnt.restore_power();
    let held = tokio::task::block_in_place(|| check_receipted(&site, &fx, &data));
    assert_eq!(held, PACKETS, "every packet delivered: {report:?}");
    assert!(
        cuts.len() >= 12,
        "the power was cut at many points, not {}: {cuts:?}",
        cuts.len()
    );
    let inbox = konvert_replication::Inbox::open(&data).unwrap();
    assert_eq!(inbox.len(), PACKETS, "each stored once");
    assert_eq!(konvert_tests::stored_files(mnt.path()), PACKETS);
}
