//! A hostile reserve drive: links, FIFOs, device nodes and growing files where envelopes,
//! receipts and folders should be. Nothing is written outside the drive, nothing but a
//! regular file is read, no import hangs, and a later import still goes through.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use konvert_center::intake::Carried;
use konvert_center::reserve::{self, DriveOutcome, ImportRequest};
use konvert_center::CenterConfig;
use konvert_edge::cli::now_unix_ms;
use konvert_edge::reserve::{export, export_relay, import_receipts, import_relay_receipts};
use konvert_replication::reserve::{envelope_path, DriveIndex, ENVELOPES, RECEIPTS};
use konvert_replication::{OutboxEntry, RejectReason};
use konvert_tests::{stored_files, CenterFixture, SiteFixture};

fn nowhere() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn drive(fx: &CenterFixture, name: &str) -> PathBuf {
    let d = fx.root.path().join("drives").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn import(cfg: &CenterConfig, drive: &Path) -> konvert_center::Result<DriveOutcome> {
    let request = ImportRequest::new(drive, "A. Ivanova", "sealed bag no. 7").unwrap();
    reserve::import(cfg, &request)
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

fn unreadable(outcome: &DriveOutcome, entry: &OutboxEntry) -> String {
    let p = outcome
        .packets
        .iter()
        .find(|p| p.packet.packet_id == entry.offer.packet_id)
        .unwrap();
    match &p.carried {
        Carried::Unreadable { detail } => detail.clone(),
        other => panic!("{other:?}"),
    }
}

/// A site with `rooms` sealed rooms exported to a drive.
fn exported(fx: &CenterFixture, rooms: u64) -> (CenterConfig, SiteFixture, Vec<OutboxEntry>, PathBuf) {
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    let entries = (1..=rooms)
        .map(|r| site.seal_room(&format!("{r:04}"), 1, 3_000, r))
        .collect();
    let dir = drive(fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    (cfg, site, entries, dir)
}

#[test]
fn envelopes_that_are_links_fifos_or_devices_are_refused_unread_and_the_rest_taken() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, e, dir) = exported(&fx, 5);
    let outside = fx.root.path().join("outside.env");
    std::fs::copy(envelope_path(&dir, &e[0].file_name), &outside).unwrap();
    // 0: a link to a real copy of the envelope; 1: a link to /dev/zero; 2: a FIFO;
    // 3: a character device node (root only), else a link to /dev/urandom; 4: plain.
    let replace = |i: usize| {
        let p = envelope_path(&dir, &e[i].file_name);
        std::fs::remove_file(&p).unwrap();
        p
    };
    symlink(&outside, replace(0)).unwrap();
    symlink("/dev/zero", replace(1)).unwrap();
    mkfifo(&replace(2));
    let p3 = replace(3);
    let device = rustix::fs::mknodat(
        rustix::fs::CWD,
        &p3,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o644),
        rustix::fs::makedev(1, 5),
    )
    .is_ok();
    if !device {
        symlink("/dev/urandom", &p3).unwrap();
    }

    let started = Instant::now();
    let outcome = import(&cfg, &dir).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no wait on the FIFO or the devices"
    );
    for i in [0, 1] {
        let d = unreadable(&outcome, &e[i]);
        assert!(d.contains("symbolic link"), "{d}");
    }
    let d = unreadable(&outcome, &e[2]);
    assert!(d.contains("FIFO"), "{d}");
    let d = unreadable(&outcome, &e[3]);
    assert!(
        d.contains(if device { "character device" } else { "symbolic link" }),
        "{d}"
    );
    assert!(
        matches!(outcome.packets[4].carried, Carried::Stored(_)),
        "{:?}",
        outcome.packets[4]
    );
    assert_eq!(stored_files(&fx.center_dir()), 1);
    // Nothing of /dev/zero reached staging.
    let staged: u64 = std::fs::read_dir(cfg.data_dir.join("staging"))
        .unwrap()
        .flatten()
        .map(|f| f.metadata().unwrap().len())
        .sum();
    assert_eq!(staged, 0);
}

#[test]
fn an_envelope_longer_than_its_index_says_is_refused_before_it_is_read() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, e, dir) = exported(&fx, 1);
    let p = envelope_path(&dir, &e[0].file_name);
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 1 << 20]).unwrap();
    let outcome = import(&cfg, &dir).unwrap();
    match &outcome.packets[0].carried {
        Carried::Refused { reason, detail } => {
            assert_eq!(*reason, RejectReason::DigestMismatch);
            assert!(detail.contains("longer than the"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_envelopes_folder_that_is_a_link_is_refused_whole() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, _e, dir) = exported(&fx, 2);
    let elsewhere = fx.root.path().join("elsewhere");
    std::fs::rename(dir.join(ENVELOPES), &elsewhere).unwrap();
    symlink(&elsewhere, dir.join(ENVELOPES)).unwrap();
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(e.contains("symbolic link") && e.contains(ENVELOPES), "{e}");
    assert_eq!(stored_files(&fx.center_dir()), 0);
}

#[test]
fn receipts_are_never_written_through_a_link() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, site, e, dir) = exported(&fx, 1);
    let victim = fx.root.path().join("victim.txt");
    std::fs::write(&victim, b"not yours").unwrap();
    let receipts = dir.join(RECEIPTS);
    std::fs::create_dir(&receipts).unwrap();
    let stem = e[0].file_name.strip_suffix(".env").unwrap();
    symlink(&victim, receipts.join(format!("{stem}.receipt.part"))).unwrap();
    let outcome = import(&cfg, &dir).unwrap();
    assert!(matches!(outcome.packets[0].carried, Carried::Stored(_)));
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"not yours",
        "nothing written through the link"
    );
    let written = receipts.join(format!("{stem}.receipt"));
    assert!(std::fs::symlink_metadata(&written).unwrap().is_file());
    assert_eq!(import_receipts(&site.cfg, &site.outbox, &dir).unwrap().len(), 1);

    // A receipts folder that is a link: the import refuses to write there, and says so.
    let elsewhere = fx.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::remove_dir_all(&receipts).unwrap();
    symlink(&elsewhere, &receipts).unwrap();
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // …and the site does not read receipts through it either.
    let e = import_receipts(&site.cfg, &site.outbox, &dir).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
}

#[test]
fn a_site_export_writes_nothing_through_links_on_the_drive() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    let entry = site.seal_room("0001", 1, 3_000, 1);
    let dir = drive(&fx, "0101");
    std::fs::create_dir(dir.join(ENVELOPES)).unwrap();
    let victim = fx.root.path().join("victim.txt");
    std::fs::write(&victim, b"not yours").unwrap();
    // Links planted at the envelope's part file and at its name.
    symlink(&victim, dir.join(ENVELOPES).join(format!("{}.part", entry.file_name))).unwrap();
    symlink(&victim, dir.join(ENVELOPES).join(&entry.file_name)).unwrap();
    let report = export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    assert_eq!(report.written.len(), 1, "a link is not 'already there'");
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    let p = envelope_path(&dir, &entry.file_name);
    assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
    assert_eq!(
        std::fs::read(&p).unwrap(),
        std::fs::read(site.outbox.envelope_path(&entry)).unwrap()
    );

    // A FIFO where the envelope was: the export neither hangs on it nor writes into it.
    std::fs::remove_file(&p).unwrap();
    mkfifo(&p);
    let started = Instant::now();
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(std::fs::symlink_metadata(&p).unwrap().is_file());

    // A drive folder that does not exist yet is made, as before.
    let fresh = fx.root.path().join("fresh/0101");
    assert_eq!(
        export(&site.cfg, &site.outbox, &fresh, now_unix_ms())
            .unwrap()
            .written
            .len(),
        1
    );

    // An envelopes folder that is a link is refused.
    let other = drive(&fx, "other");
    let elsewhere = fx.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, other.join(ENVELOPES)).unwrap();
    let e = export(&site.cfg, &site.outbox, &other, now_unix_ms())
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_relays_site_folders_are_never_reached_through_links() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    site.seal_room("0001", 1, 3_000, 1);
    let dir = drive(&fx, "relay");
    let elsewhere = fx.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, dir.join("0101")).unwrap();
    // The site's outbox stands in for a relay's: it holds site 0101's packets.
    let e = export_relay(&site.outbox, &dir, now_unix_ms()).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // Receipts from a site folder that is a link are not read.
    std::fs::remove_file(dir.join("0101")).unwrap();
    export_relay(&site.outbox, &dir, now_unix_ms()).unwrap();
    std::fs::rename(dir.join("0101"), elsewhere.join("0101")).unwrap();
    symlink(elsewhere.join("0101"), dir.join("0101")).unwrap();
    let taken = import_relay_receipts(&fx.init.receipt_public, &site.outbox, &dir).unwrap();
    assert!(taken.is_empty(), "{taken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_on_one_drive_does_not_stop_the_serving_center_taking_the_next() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let first = site.seal_room("0001", 1, 3_000, 1);
    let hostile = drive(&fx, "hostile");
    export(&site.cfg, &site.outbox, &hostile, now_unix_ms()).unwrap();
    let p = envelope_path(&hostile, &first.file_name);
    std::fs::remove_file(&p).unwrap();
    mkfifo(&p);
    let (c, d) = (cfg.clone(), hostile.clone());
    let outcome = tokio::task::spawn_blocking(move || import(&c, &d))
        .await
        .unwrap()
        .unwrap();
    assert!(unreadable(&outcome, &first).contains("FIFO"));

    site.seal_room("0002", 1, 3_000, 2);
    let good = drive(&fx, "good");
    std::fs::remove_file(&p).unwrap();
    std::fs::copy(site.outbox.envelope_path(&first), &p).unwrap();
    export(&site.cfg, &site.outbox, &good, now_unix_ms()).unwrap();
    let (c, d) = (cfg.clone(), good.clone());
    let outcome = tokio::task::spawn_blocking(move || import(&c, &d))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.receipted(), 2, "{outcome:?}");
    assert_eq!(center.inbox.len(), 2);
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stuck_in_the_serving_center_does_not_hold_up_the_next_one() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    // A request that is a FIFO nobody writes: once it hung the service's reader for ever
    // (and with it every later import); now it is refused at once, as no regular file, and
    // answered with a result, while each request is taken on its own thread anyway.
    let requests = cfg.data_dir.join("reserve/requests");
    mkfifo(&requests.join("0-stuck.req"));

    let site = fx.enroll("0101", center.addr);
    site.seal_room("0001", 1, 3_000, 1);
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    let (c, d) = (cfg.clone(), dir.clone());
    let outcome = tokio::task::spawn_blocking(move || import(&c, &d)).await.unwrap();

    let outcome = outcome.unwrap();
    assert_eq!(outcome.receipted(), 1, "{outcome:?}");
    let result = cfg.data_dir.join("reserve/results/0-stuck.res");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !result.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(result.exists());
    center.shutdown().await;
}

/// The drive's index, changed by `edit` and written back.
fn edit_index(dir: &Path, edit: impl FnOnce(&mut DriveIndex)) {
    let mut index = DriveIndex::read(dir).unwrap().unwrap();
    edit(&mut index);
    index.write(dir).unwrap();
}

#[test]
fn an_index_naming_one_file_many_times_is_refused_whole_before_anything_is_read() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, _e, dir) = exported(&fx, 1);
    edit_index(&dir, |index| {
        let one = index.packets[0].clone();
        index.packets = vec![one; 30];
    });
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(e.contains("more than once") && e.contains("nothing taken"), "{e}");
    assert_eq!(stored_files(&fx.center_dir()), 0);
}

#[test]
fn a_large_file_that_is_no_envelope_is_refused_after_its_first_bytes() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, _e, dir) = exported(&fx, 1);
    // 512 MiB of zeros (sparse): staged in full it would take seconds and the disk space.
    let size = 512u64 << 20;
    let fake = "0101-2026-06-01-ege-0099-blanks.v1.env";
    std::fs::File::create(dir.join(ENVELOPES).join(fake))
        .unwrap()
        .set_len(size)
        .unwrap();
    edit_index(&dir, |index| {
        let mut p = index.packets[0].clone();
        p.file = fake.into();
        p.packet_id = "0101-2026-06-01-ege-0099-blanks".into();
        p.version = 1;
        p.size = size;
        index.packets.push(p);
    });
    let started = Instant::now();
    let outcome = import(&cfg, &dir).unwrap();
    let took = started.elapsed();
    let fake = outcome.packets.iter().find(|p| p.packet.file == fake).unwrap();
    match &fake.carried {
        Carried::Refused { reason, detail } => {
            assert_eq!(*reason, RejectReason::MalformedEnvelope);
            assert!(
                detail.contains("not a konvert envelope") && detail.contains("read no further"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(outcome.packets[0].carried, Carried::Stored(_)),
        "{:?}",
        outcome.packets[0]
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn an_index_with_a_forged_site_or_packet_id_is_refused_whole_and_printed_escaped() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, _e, dir) = exported(&fx, 2);
    let forged = "0101\n  stored  FAKE v9\u{1b}[2J";
    edit_index(&dir, |index| index.packets[1].packet_id = forged.into());
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(
        e.contains("packet id") && e.contains("nothing on the drive was taken"),
        "{e}"
    );
    assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e:?}");
    // Another site's packet id on this site's drive.
    edit_index(&dir, |index| {
        index.packets[1].packet_id = "0202-2026-06-01-ege-0001-blanks".into()
    });
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(e.contains("not a packet id of site 0101"), "{e}");
    edit_index(&dir, |index| {
        index.packets[1].packet_id = index.packets[0].packet_id.replace("ege", "EGE");
        index.site = "../x\n".into();
    });
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(e.contains("its site"), "{e}");
    assert!(!e.contains('\n'), "{e:?}");
    assert_eq!(stored_files(&fx.center_dir()), 0, "nothing stored from a forged index");
    let audit = std::fs::read(fx.center_dir().join(konvert_center::service::AUDIT_LOG)).unwrap_or_default();
    assert!(
        !audit.windows(4).any(|w| w == b"../x"),
        "the forged site is not in the audit log"
    );
}

#[test]
fn a_receipts_folder_that_is_a_link_refuses_the_drive_before_anything_is_stored() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (cfg, _site, _e, dir) = exported(&fx, 2);
    let elsewhere = fx.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, dir.join(RECEIPTS)).unwrap();
    let e = import(&cfg, &dir).unwrap_err().to_string();
    assert!(
        e.contains("is a symbolic link; a drive's folders must be real folders"),
        "{e}"
    );
    assert_eq!(
        stored_files(&fx.center_dir()),
        0,
        "nothing stored the operator is not told of"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
