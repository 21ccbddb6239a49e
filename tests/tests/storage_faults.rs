//! Storage faults an exam-day machine meets — a full disk, an fsync that fails, a power
//! cut — injected by the test file system (tests/src/lazyfs.rs) under the real center,
//! relay, edge, sled and QUIC: the center or a relay below its free-space floor refuses new
//! packets for later, a write or an fsync that fails refuses the packet for later, the
//! edge's sealing and intake fail plainly and the same long-lived objects go on once the
//! disk is healthy (sled's sticky error mended), and an envelope torn inside by a power cut
//! is found by its SHA-256 at the next start; nothing is lost and everything goes through
//! once the disk is healthy again.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use konvert_edge::push::PushEvent;
use konvert_edge::PushOptions;
use konvert_replication::{OutboxState, RejectReason};
use konvert_tests::faults::{check_receipted, data_on_lazyfs};
use konvert_tests::lazyfs::LazyMount;
use konvert_tests::{CenterFixture, SiteFixture};

/// A center served in-process with its data folder on a [`LazyMount`], and one site.
async fn center_on_lazyfs(
    min_free_percent: f64,
) -> (
    CenterFixture,
    LazyMount,
    std::path::PathBuf,
    konvert_center::service::RunningCenter,
    SiteFixture,
) {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let mut cfg = fx.register(&[(&token, "0101")]);
    let (mnt, data) = data_on_lazyfs(fx.root.path(), "disk", &cfg.data_dir);
    cfg.data_dir = data.clone();
    cfg.min_free_percent = min_free_percent;
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    (fx, mnt, data, center, site)
}

/// Pushes in the background, keeping every refusal's reason.
fn push_noting_refusals(
    site: &SiteFixture,
) -> (
    tokio::task::JoinHandle<konvert_edge::Result<konvert_edge::PushReport>>,
    Arc<Mutex<Vec<RejectReason>>>,
) {
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = refused.clone();
    let pushing = site.spawn_push(PushOptions {
        max_wait: Duration::from_secs(90),
        on_event: Arc::new(move |ev| {
            if let PushEvent::Rejected { reason, detail, .. } = ev {
                eprintln!("refused: {reason:?}: {detail}");
                seen.lock().unwrap().push(reason);
            }
        }),
        ..Default::default()
    });
    (pushing, refused)
}

/// Waits (up to 20 s) until the site has been refused for `reason`.
async fn until_refused(refused: &Mutex<Vec<RejectReason>>, reason: RejectReason) {
    for _ in 0..400 {
        if refused.lock().unwrap().contains(&reason) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never refused for {reason:?}: {:?}", refused.lock().unwrap());
}

fn delivered(site: &SiteFixture) -> usize {
    site.outbox
        .entries()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.state, OutboxState::Delivered { .. }))
        .count()
}

/// Sets the test file system's size so that `percent` of it is free now.
fn leave_free(mnt: &LazyMount, percent: f64) {
    let used = mnt.used() as f64;
    mnt.set_capacity(Some((used / (1.0 - percent / 100.0)).ceil() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_its_free_space_floor_the_center_refuses_new_packets_for_later_and_takes_them_when_space_returns() {
    let (fx, mnt, data, center, site) = center_on_lazyfs(5.0).await;
    for i in 0..3 {
        site.seal_room(&format!("{:04}", i + 1), 2, 50_000, 40 + i);
    }
    // A disk filled by other files to 3 % free: under the regulations' 5 %, with room
    // enough for a packet all the same.
    let ballast = mnt.path().join("other files");
    std::fs::write(&ballast, vec![7u8; 10 << 20]).unwrap();
    leave_free(&mnt, 3.0);
    let (pushing, refused) = push_noting_refusals(&site);
    until_refused(&refused, RejectReason::DiskFull).await;
    assert!(
        RejectReason::DiskFull.is_retryable(),
        "the site keeps the packet and sends it again"
    );
    assert!(
        RejectReason::DiskFull.plain_words().contains("disk is nearly full"),
        "the site is told why in plain words"
    );
    assert_eq!(delivered(&site), 0);
    assert_eq!(site.outbox.pending().unwrap().len(), 3, "nothing given up at the site");
    assert!(center.inbox.is_empty(), "nothing new taken below the floor");
    let refusals = center.metrics.packets_rejected.with_label_values(&["disk_full"]).get();
    assert!(refusals >= 1, "counted for the alert");
    let free = center.metrics.disk.free.get();
    assert!(free < 0.05 && free > 0.0, "the gauge shows the free share: {free}");
    assert_eq!(center.metrics.disk.floor.get(), 0.05);
    let text = center.metrics.render().unwrap();
    assert!(text.contains("konvert_center_disk_free_ratio"), "{text}");

    // Space is freed: the pushes already under way deliver everything, by themselves.
    std::fs::remove_file(&ballast).unwrap();
    let report = pushing.await.unwrap().unwrap();
    assert_eq!(delivered(&site), 3, "{report:?}");
    assert_eq!(center.inbox.len(), 3);
    assert!(
        center.metrics.disk.free.get() > 0.5,
        "the gauge is back above the floor"
    );
    mnt.set_capacity(None);
    center.shutdown().await;
    // And what was receipted is durable: a power cut now loses none of it.
    mnt.restore_power();
    assert_eq!(check_receipted(&site, &fx, &data), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_or_a_failing_fsync_while_the_center_receives_loses_nothing_and_resumes() {
    // No floor: the disk fills for real under the packets.
    let (fx, mnt, data, center, site) = center_on_lazyfs(0.0).await;
    for i in 0..3 {
        site.seal_room(&format!("{:04}", i + 1), 3, 100_000, 50 + i);
    }
    // Room for less than one packet: each is refused part-way through its staging.
    mnt.set_capacity(Some(mnt.used() + 150_000));
    let (pushing, refused) = push_noting_refusals(&site);
    until_refused(&refused, RejectReason::Unavailable).await;
    assert_eq!(delivered(&site), 0, "no receipt for what could not be written");
    assert!(center.inbox.is_empty());
    mnt.set_capacity(None);
    pushing.await.unwrap().unwrap();
    assert_eq!(delivered(&site), 3);

    // Every fsync fails (a dying disk, a full thin volume): no receipt goes out for what
    // could not be made durable; once fsync works again, the packets go through.
    for i in 3..5 {
        site.seal_room(&format!("{:04}", i + 1), 2, 60_000, 50 + i);
    }
    mnt.fail_fsync(true);
    refused.lock().unwrap().clear();
    let (pushing, refused) = push_noting_refusals(&site);
    until_refused(&refused, RejectReason::Unavailable).await;
    assert_eq!(delivered(&site), 3, "no receipt without a working fsync");
    // Long enough for sled's own flusher (every 500 ms) to meet the failing fsync too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Nothing made durable: a power cut now would lose it, so no receipt may be out.
    mnt.fail_fsync(false);
    pushing.await.unwrap().unwrap();
    assert_eq!(delivered(&site), 5);
    assert_eq!(center.inbox.len(), 5);
    center.shutdown().await;
    mnt.restore_power();
    assert_eq!(
        check_receipted(&site, &fx, &data),
        5,
        "every receipted packet survives a power cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_sealing_onto_a_full_disk_or_a_failing_fsync_fails_plainly_and_seals_again_once_it_is_healthy() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut site = fx.enroll("0101", center.addr);
    // The station's data folder (outbox, registry) on the test file system.
    let (mnt, data) = data_on_lazyfs(fx.root.path(), "edge", &site.cfg.data_dir);
    site.cfg.data_dir = data.clone();
    let outbox = konvert_replication::Outbox::open(&data).unwrap();
    let room = |n: &str, seed| {
        let dir = site.dir.join("scans").join(n);
        konvert_devtools::rooms::write_room(&dir, seed, 2, 80_000).unwrap();
        dir
    };
    let seal = |dir: &std::path::Path, n: &str| {
        let packet = konvert_exam::PacketRef {
            site: site.cfg.site.clone(),
            date: site.day.parse().unwrap(),
            exam: konvert_exam::ExamKind::Ege,
            room: n.parse().unwrap(),
            kind: konvert_exam::PacketKind::Blanks,
        };
        konvert_edge::seal_room(
            &site.cfg,
            &outbox,
            &site.signer,
            dir,
            packet,
            konvert_edge::cli::now_unix_ms(),
        )
    };
    let first = room("0001", 1);
    let second = room("0002", 2);

    mnt.set_capacity(Some(mnt.used() + 50_000));
    let err = seal(&first, "0001").unwrap_err().to_string();
    assert!(
        err.contains("No space left on device"),
        "the operator is told the disk is full: {err}"
    );
    assert!(
        outbox.entries().unwrap().is_empty(),
        "no half-sealed packet in the outbox"
    );
    mnt.set_capacity(None);

    mnt.fail_fsync(true);
    let err = seal(&second, "0002").unwrap_err().to_string();
    assert!(
        err.contains("Input/output error"),
        "a failing fsync is not taken for sealed: {err}"
    );
    assert!(
        outbox.pending().unwrap().is_empty(),
        "a packet that is not durable is not queued"
    );
    mnt.fail_fsync(false);

    // The disk fills just as sled writes the packet's record to its log (the envelope is
    // written): sled keeps that error and refuses every later call until its database is
    // opened again. The same outbox goes on once there is space, without a restart.
    mnt.full_for(Some("db"));
    let err = seal(&first, "0001").unwrap_err().to_string();
    assert!(
        err.contains("No space left on device"),
        "the operator is told the disk is full: {err}"
    );
    mnt.full_for(None);
    assert!(
        outbox.entries().unwrap().is_empty(),
        "a packet whose record did not reach the disk is not queued"
    );

    // The scans are untouched: both rooms seal now, and a power cut right after keeps them.
    seal(&first, "0001").unwrap();
    seal(&second, "0002").unwrap();
    drop(outbox);
    // sled's flusher lets go of its files at its next tick; the cut comes after that.
    std::thread::sleep(Duration::from_millis(600));
    mnt.restore_power();
    site.outbox = Arc::new(konvert_replication::Outbox::open(&data).unwrap());
    let pending = site.outbox.pending().unwrap();
    assert_eq!(pending.len(), 2, "both sealed packets survive a power cut");
    let versions: Vec<u32> = pending.iter().map(|e| e.offer.version).collect();
    assert_eq!(
        versions,
        [1, 1],
        "each room sealed once: the failed seal left no version behind"
    );
    let report = site
        .spawn_push(PushOptions {
            max_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.delivered, 2);
    assert_eq!(center.inbox.len(), 2);
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_torn_by_a_power_cut_are_found_at_the_next_start_and_repaired_or_refused_plainly() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut site = fx.enroll("0101", center.addr);
    let a = site.seal_room("0001", 2, 30_000, 1);
    let b = site.seal_room("0002", 2, 30_000, 2);
    let report = site
        .spawn_push(PushOptions {
            max_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.delivered, 2);
    let c = site.seal_room("0003", 2, 30_000, 3);
    let d = site.seal_room("0004", 2, 30_000, 4);
    let stored_b = center.inbox.store_path(&b.offer.digest);
    center.shutdown().await;

    // The edge: a queued envelope torn short, and a seal cut off half-way.
    let torn = site.outbox.envelope_path(&c);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&torn)
        .unwrap()
        .set_len(c.offer.size / 2)
        .unwrap();
    let half_sealed = site.cfg.data_dir.join("envelopes/0101-cut-off.v1.env.part");
    std::fs::write(&half_sealed, b"half an envelope").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    drop(std::mem::replace(
        &mut site.outbox,
        Arc::new(konvert_replication::Outbox::open(elsewhere.path()).unwrap()),
    ));
    let outbox = konvert_replication::Outbox::open(&site.cfg.data_dir).unwrap();
    assert!(
        !half_sealed.exists(),
        "an unfinished seal is cleared away (the room is still in its folder)"
    );
    let pending: Vec<_> = outbox
        .pending()
        .unwrap()
        .into_iter()
        .map(|e| e.offer.packet_id)
        .collect();
    assert_eq!(
        pending,
        vec![d.offer.packet_id.clone()],
        "the torn envelope is not sent"
    );
    let entry = outbox.get(&c.offer.packet_id, 1).unwrap().unwrap();
    let OutboxState::Rejected { reason, detail } = &entry.state else {
        panic!("the torn envelope is not refused: {:?}", entry.state)
    };
    assert_eq!(*reason, RejectReason::MalformedEnvelope);
    assert!(reason.plain_words().contains("seal the room again"));
    assert!(
        detail.contains("torn") && detail.contains(&format!("{} bytes", c.offer.size / 2)) && detail.contains("0003"),
        "says what was found and which room to seal again: {detail}"
    );
    assert!(matches!(
        outbox.get(&a.offer.packet_id, 1).unwrap().unwrap().state,
        OutboxState::Delivered { .. }
    ));

    // The center: a stored envelope torn short is named when the inbox opens; the other
    // is not.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&stored_b)
        .unwrap()
        .set_len(100)
        .unwrap();
    let inbox = konvert_replication::Inbox::open(&cfg.data_dir).unwrap();
    let found = inbox.torn();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].packet_id, b.offer.packet_id);
    assert!(
        found[0].detail.contains("torn") && found[0].detail.contains("100 bytes") && found[0].detail.contains("backup"),
        "{}",
        found[0].detail
    );
    assert!(inbox.lookup(&a.offer.packet_id, 1).unwrap().is_some());
}

/// Polls the intake until nothing is settling; returns every event, or the first error.
fn drain_intake(
    intake: &mut konvert_edge::intake::Intake,
) -> konvert_edge::Result<Vec<konvert_edge::intake::IntakeEvent>> {
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    loop {
        events.extend(intake.poll(konvert_edge::cli::now_unix_ms())?);
        if !intake.is_settling() && started.elapsed() > Duration::from_millis(250) {
            return Ok(events);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "intake never settled");
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn the_edge_taking_scans_onto_a_full_disk_or_a_failing_fsync_fails_plainly_and_takes_every_file_once_when_healthy() {
    use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
    let dir = tempfile::tempdir().unwrap();
    let (hot, scans) = (dir.path().join("hot"), dir.path().join("scans"));
    std::fs::create_dir_all(&hot).unwrap();
    let room: konvert_exam::RoomId = "0012".parse().unwrap();
    let plan = synthetic_plan(
        &"0101".parse().unwrap(),
        "2026-06-01".parse().unwrap(),
        konvert_exam::ExamKind::Ege,
        &[(&room, 3)],
        4_000_000_000,
    );
    let pages = room_pages(&plan, &room, 0);
    let job = ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file: 1,
        degrade: false,
        dpi: 150,
        seed: 1,
    };
    let files = write_pages(&pages, &scans, "batch", job).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (mnt, data) = data_on_lazyfs(dir.path(), "disk", &empty);
    let tuning = konvert_edge::intake::IntakeTuning {
        settle_ms: 100,
        incomplete_wait_ms: 2_000,
    };
    let recognizer = || konvert_edge::intake::scan_recognizer(Duration::from_millis(1500));
    let mut intake = konvert_edge::intake::Intake::open(&hot, &data, tuning, recognizer()).unwrap();
    for f in &files {
        std::fs::copy(f, hot.join(f.file_name().unwrap())).unwrap();
    }

    mnt.set_capacity(Some(mnt.used() + 1000));
    let err = drain_intake(&mut intake).unwrap_err().to_string();
    assert!(
        err.contains("No space left on device"),
        "the operator is told the disk is full: {err}"
    );
    assert!(
        intake.journal().files().unwrap().is_empty(),
        "nothing counted as taken without its copy"
    );
    mnt.set_capacity(None);
    mnt.fail_fsync(true);
    let err = drain_intake(&mut intake).unwrap_err().to_string();
    assert!(err.contains("Input/output error"), "{err}");
    assert!(
        intake.journal().files().unwrap().is_empty(),
        "nothing counted as taken that is not durable"
    );
    mnt.fail_fsync(false);

    // The disk fills just as sled writes a file's record to its log (the spool copy is
    // made): sled keeps that error and refuses every later call until its database is
    // opened again. The same intake goes on once there is space, without a restart.
    mnt.full_for(Some("db"));
    let err = drain_intake(&mut intake).unwrap_err().to_string();
    assert!(
        err.contains("No space left on device"),
        "the operator is told the disk is full: {err}"
    );
    mnt.full_for(None);

    let events = drain_intake(&mut intake).unwrap();
    let taken = events
        .iter()
        .filter(|e| matches!(e, konvert_edge::intake::IntakeEvent::Taken { .. }))
        .count();
    assert_eq!(taken, files.len(), "{events:?}");
    drop(intake);
    // sled's flusher lets go of its files at its next tick; the power is cut after that.
    std::thread::sleep(Duration::from_millis(600));
    mnt.restore_power();
    let intake = konvert_edge::intake::Intake::open(&hot, &data, tuning, recognizer()).unwrap();
    let journal = intake.journal().files().unwrap();
    assert_eq!(
        journal.len(),
        files.len(),
        "every file taken survives a power cut, once each"
    );
    for f in &journal {
        let spooled = std::fs::read(intake.spool_path(f)).unwrap();
        assert_eq!(spooled.len() as u64, f.size, "{}: its durable copy is whole", f.name);
    }
}

/// sled keeps the first write error it meets and fails every later call with it: a disk
/// that fills just as a packet's record is written would leave the center refusing
/// everything until restarted. The inbox opens its database again instead, and the packet
/// goes through once there is space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_as_the_record_is_written_does_not_stop_the_center_once_space_returns() {
    let (fx, mnt, data, center, site) = center_on_lazyfs(0.0).await;
    site.seal_room("0001", 2, 60_000, 70);
    // The disk fills just as sled writes the packet's record to its log: staging and the
    // move into the store succeeded.
    mnt.full_for(Some("db"));
    let (pushing, refused) = push_noting_refusals(&site);
    until_refused(&refused, RejectReason::Unavailable).await;
    for _ in 0..100 {
        if center.inbox.reopened() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        center.inbox.reopened() > 0,
        "sled met the full disk and its database was opened again"
    );
    assert_eq!(delivered(&site), 0);
    mnt.full_for(None);
    pushing.await.unwrap().unwrap();
    assert_eq!(
        delivered(&site),
        1,
        "delivered once the disk has space, without a restart"
    );
    assert_eq!(center.inbox.len(), 1);
    center.shutdown().await;
    mnt.restore_power();
    assert_eq!(check_receipted(&site, &fx, &data), 1);
}

/// A relay's data folder fills like a center's: below its floor it takes no new packet
/// from its stations (each keeps it and sends it again), while what it already holds is
/// still forwarded and answered; the gauge and the refusal say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_its_free_space_floor_a_relay_refuses_new_packets_for_later_keeps_forwarding_what_it_holds_and_takes_them_when_space_returns(
) {
    // The center is down at first, so that the relay holds what it took.
    let center_addr = konvert_tests::free_udp_addr();
    let fx = CenterFixture::new(center_addr);
    let token = fx.issue_token("0101");
    let center_cfg = fx.register(&[(&token, "0101")]);
    let mut relay_fx = fx.enroll_relay(
        "mouo-01",
        &["0101"],
        &[],
        "127.0.0.1:0".parse().unwrap(),
        center_addr,
        None,
    );
    let (mnt, data) = data_on_lazyfs(fx.root.path(), "relay-disk", &relay_fx.cfg.data_dir);
    relay_fx.cfg.data_dir = data;
    relay_fx.cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    assert_eq!(relay_fx.cfg.min_free_percent, 5.0, "the regulations' 5 % by default");
    let relay = relay_fx.start().await;
    let metrics = relay.metrics_addr.unwrap();
    let mut school = fx.enroll("0101", center_addr);
    school.via_relay("mouo-01", relay.addr);
    let held = school.seal_room("0001", 2, 50_000, 80);
    let (pushing, refused) = push_noting_refusals(&school);
    for _ in 0..400 {
        if relay.outbox.pending().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        relay.outbox.pending().unwrap().len(),
        1,
        "the relay holds the first packet"
    );

    // Other files fill the relay's disk to 3 % free: under its floor, with room enough
    // for a packet all the same.
    let ballast = mnt.path().join("other files");
    std::fs::write(&ballast, vec![7u8; 10 << 20]).unwrap();
    leave_free(&mnt, 3.0);
    let new = school.seal_room("0002", 2, 50_000, 81);
    until_refused(&refused, RejectReason::DiskFull).await;
    assert_eq!(
        relay.outbox.pending().unwrap().len(),
        1,
        "nothing new taken below the floor"
    );
    assert!(school.outbox.get(&new.offer.packet_id, 1).unwrap().unwrap().state == OutboxState::Sealed);
    let text = konvert_devtools::demo::scrape(metrics).await.unwrap();
    let gauge = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} is not exported: {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let free = gauge("konvert_relay_disk_free_ratio");
    assert!(free < 0.05 && free > 0.0, "the gauge shows the free share: {free}");
    assert_eq!(gauge("konvert_relay_disk_free_floor_ratio"), 0.05);

    // The center comes up while the relay is still below its floor: what it holds goes on.
    let center = konvert_center::serve(&center_cfg).await.unwrap();
    for _ in 0..400 {
        if center.inbox.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        center.inbox.lookup(&held.offer.packet_id, 1).unwrap().is_some(),
        "the held packet is forwarded below the floor"
    );
    assert!(center.inbox.lookup(&new.offer.packet_id, 1).unwrap().is_none());

    // Space is freed: the push already under way delivers the new packet too, by itself.
    std::fs::remove_file(&ballast).unwrap();
    let report = pushing.await.unwrap().unwrap();
    assert_eq!(delivered(&school), 2, "{report:?}");
    assert_eq!(center.inbox.len(), 2);
    mnt.set_capacity(None);
    relay.shutdown().await;
    center.shutdown().await;
}

/// Cuts the power as `node` closes: every write it makes on the way out fails, as on a
/// machine that lost power, so it records no clean shutdown; then the power comes back.
fn close_at_a_power_cut<T: Send + 'static>(mnt: &LazyMount, node: T) {
    mnt.arm_power_cut(1);
    let closing = std::thread::spawn(move || drop(node));
    let started = std::time::Instant::now();
    while mnt.cut_at().is_none() && !closing.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(30), "the close never wrote");
        std::thread::sleep(Duration::from_millis(10));
    }
    mnt.kill_switch();
    // sled may panic on its way out when its last fsync fails: the process is dying at
    // the cut anyway, as a killed one would.
    let _ = closing.join();
    // sled's flusher lets go of its files at its next tick.
    std::thread::sleep(Duration::from_millis(600));
    mnt.restore_power();
}

/// Zeroes 4 KiB in the middle of `path`, keeping its size: blocks a power cut left
/// unwritten behind a drive that acknowledged a flush it had not made.
fn tear_inside(path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.write_all_at(&[0u8; 4096], len / 2).unwrap();
    file.sync_all().unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len(), len, "the size is right");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_envelope_torn_inside_by_a_power_cut_is_refused_at_the_next_start_by_its_sha256() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", "127.0.0.1:9".parse().unwrap());
    let (mnt, data) = data_on_lazyfs(fx.root.path(), "edge", &site.cfg.data_dir);
    let outbox = konvert_replication::Outbox::open(&data).unwrap();
    let seal = |n: &str, seed| {
        let dir = site.dir.join("scans").join(n);
        konvert_devtools::rooms::write_room(&dir, seed, 2, 60_000).unwrap();
        let packet = konvert_exam::PacketRef {
            site: site.cfg.site.clone(),
            date: site.day.parse().unwrap(),
            exam: konvert_exam::ExamKind::Ege,
            room: n.parse().unwrap(),
            kind: konvert_exam::PacketKind::Blanks,
        };
        let mut cfg = site.cfg.clone();
        cfg.data_dir = data.clone();
        konvert_edge::seal_room(
            &cfg,
            &outbox,
            &site.signer,
            &dir,
            packet,
            konvert_edge::cli::now_unix_ms(),
        )
        .unwrap()
        .entry
    };
    let torn = seal("0001", 1);
    let whole = seal("0002", 2);
    let torn_path = outbox.envelope_path(&torn);
    close_at_a_power_cut(&mnt, outbox);
    tear_inside(&torn_path);

    let outbox = konvert_replication::Outbox::open(&data).unwrap();
    let pending: Vec<_> = outbox
        .pending()
        .unwrap()
        .into_iter()
        .map(|e| e.offer.packet_id)
        .collect();
    assert_eq!(
        pending,
        vec![whole.offer.packet_id.clone()],
        "the torn envelope is not sent"
    );
    let OutboxState::Rejected { reason, detail } = outbox.get(&torn.offer.packet_id, 1).unwrap().unwrap().state else {
        panic!("the envelope torn inside is not refused")
    };
    assert_eq!(reason, RejectReason::MalformedEnvelope);
    assert!(
        detail.contains("SHA-256 differs")
            && detail.contains("0001")
            && detail.contains(&torn_path.display().to_string()),
        "says which file, what was found and which room to seal again: {detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_envelope_torn_inside_by_a_power_cut_is_named_at_the_centers_next_start_by_its_sha256() {
    let (_fx, mnt, data, center, site) = center_on_lazyfs(0.0).await;
    let torn = site.seal_room("0001", 2, 40_000, 90);
    let whole = site.seal_room("0002", 2, 40_000, 91);
    let report = site
        .spawn_push(PushOptions {
            max_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.delivered, 2);
    let torn_path = center.inbox.store_path(&torn.offer.digest);
    // The power goes as the center stops: its last writes fail, no clean shutdown.
    mnt.arm_power_cut(1);
    let stopping = tokio::spawn(center.shutdown());
    for _ in 0..3000 {
        if mnt.cut_at().is_some() || stopping.is_finished() {
            break;
        }
        // Not tokio's timer: the runtime's workers may all be blocked at the cut.
        std::thread::sleep(Duration::from_millis(10));
    }
    mnt.kill_switch();
    // sled may panic on its way out when its last fsync fails: the center is dying at the
    // cut anyway, as a killed one would.
    let _ = stopping.await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    mnt.restore_power();
    tear_inside(&torn_path);

    let inbox = konvert_replication::Inbox::open(&data).unwrap();
    let found = inbox.torn();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].packet_id, torn.offer.packet_id);
    assert!(
        found[0].detail.contains("SHA-256 differs")
            && found[0].detail.contains(&torn_path.display().to_string())
            && found[0].detail.contains("backup"),
        "says which file, what was found and what to do: {}",
        found[0].detail
    );
    assert!(inbox.lookup(&whole.offer.packet_id, 1).unwrap().is_some());
}
