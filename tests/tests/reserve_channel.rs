//! The reserve channel: sealed envelopes carried to the center on a drive, taken with the
//! network path's verification, receipted, and the receipts carried back — exactly once
//! across both channels, with the center stopped or serving.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use konvert_center::intake::Carried;
use konvert_center::reserve::{self, DriveOutcome, ImportRequest};
use konvert_center::CenterConfig;
use konvert_crypto::registry::TokenStatus;
use konvert_edge::cli::now_unix_ms;
use konvert_edge::reserve::{export, import_receipts, ReceiptOutcome};
use konvert_edge::{push, PushOptions};
use konvert_replication::driver::{read_message, write_message, Outcome};
use konvert_replication::inbox::SEGMENT;
use konvert_replication::reserve::{envelope_path, DriveIndex, RECEIPTS};
use konvert_replication::{Inbox, Message, OutboxState, Receipt, RejectReason};
use konvert_tests::{stored_files, CenterFixture, SiteFixture, EXAM_DAY};

/// An address nobody listens on: the network is down for these sites.
fn nowhere() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn drive(fx: &CenterFixture, name: &str) -> PathBuf {
    let d = fx.root.path().join("drives").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn import(cfg: &CenterConfig, drive: &Path) -> DriveOutcome {
    let request = ImportRequest::new(drive, "A. Ivanova", "drive in sealed bag no. 12, courier P. Petrov").unwrap();
    reserve::import(cfg, &request).unwrap()
}

/// The receipts of an outcome, in index order; panics on anything else.
fn receipts(outcome: &DriveOutcome, stored: bool) -> Vec<Receipt> {
    outcome
        .packets
        .iter()
        .map(|p| match (&p.carried, stored) {
            (Carried::Stored(r), true) | (Carried::AlreadyHeld(r), false) => r.clone(),
            (other, _) => panic!("{} v{}: {other:?}", p.packet.packet_id, p.packet.version),
        })
        .collect()
}

fn delivered(site: &SiteFixture) -> Vec<Receipt> {
    site.outbox
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| match e.state {
            OutboxState::Delivered { receipt } => receipt,
            other => panic!("{} not delivered: {other:?}", e.offer.packet_id),
        })
        .collect()
}

#[test]
fn export_import_and_receipts_back_with_the_center_stopped() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    for r in 1..=3 {
        site.seal_room(&format!("{r:04}"), 2, 5_000 + r, r as u64);
    }
    let dir = drive(&fx, "0101");

    let first = export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    assert_eq!((first.written.len(), first.already_there.len()), (3, 0));
    // Exporting again writes nothing: the drive holds the same envelopes.
    let again = export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    assert_eq!(
        (again.written.len(), again.already_there.len(), again.bytes_written),
        (0, 3, 0)
    );
    let index = DriveIndex::read(&dir).unwrap().unwrap();
    assert_eq!(index.site, "0101");
    for (p, e) in index.packets.iter().zip(site.outbox.pending().unwrap()) {
        assert_eq!(p.offer().unwrap(), e.offer);
        assert_eq!(
            std::fs::read(envelope_path(&dir, &p.file)).unwrap(),
            std::fs::read(site.outbox.envelope_path(&e)).unwrap()
        );
        assert!(site.outbox.exported(&e.offer).unwrap().is_some());
    }

    let outcome = import(&cfg, &dir);
    assert_eq!(outcome.site, "0101");
    let stored = receipts(&outcome, true);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored_files(&fx.center_dir()), 3);
    // A second import of the same drive stores nothing and gives the original receipts.
    let twice = import(&cfg, &dir);
    assert_eq!(receipts(&twice, false), stored);
    assert_eq!(stored_files(&fx.center_dir()), 3);

    let taken = import_receipts(&site.cfg, &site.outbox, &dir).unwrap();
    assert_eq!(taken.len(), 3);
    assert!(
        taken.iter().all(|o| matches!(o, ReceiptOutcome::Delivered { .. })),
        "{taken:?}"
    );
    let again = import_receipts(&site.cfg, &site.outbox, &dir).unwrap();
    assert!(
        again
            .iter()
            .all(|o| matches!(o, ReceiptOutcome::AlreadyDelivered { .. })),
        "{again:?}"
    );
    let at_edge = delivered(&site);
    assert_eq!(at_edge.len(), 3);
    let inbox = Inbox::open(&cfg.data_dir).unwrap();
    assert_eq!(inbox.len(), 3);
    for (entry, receipt) in site.outbox.entries().unwrap().iter().zip(&at_edge) {
        receipt.verify_for(&fx.init.receipt_public, &entry.offer).unwrap();
        assert_eq!(receipt.body.site, "0101");
        let record = inbox
            .lookup(&entry.offer.packet_id, entry.offer.version)
            .unwrap()
            .unwrap();
        assert_eq!(&record.receipt, receipt);
        assert!(stored.contains(receipt));
    }
    // The import and the operator's statement are in the center's audit log.
    let log = std::fs::read(cfg.data_dir.join("audit.log")).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("reserve.import") && log.contains("sealed bag no. 12"),
        "{log}"
    );
    assert!(log.contains("reserve drive, imported by A. Ivanova"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_while_the_center_serves_goes_through_the_running_service() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    site.seal_room("0001", 2, 6_000, 1);
    site.seal_room("0002", 2, 6_000, 2);
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();

    let (c, d) = (cfg.clone(), dir.clone());
    let outcome = tokio::task::spawn_blocking(move || import(&c, &d)).await.unwrap();
    let stored = receipts(&outcome, true);
    assert_eq!(center.inbox.len(), 2, "stored in the serving center's inbox");
    assert_eq!(stored_files(&fx.center_dir()), 2);
    assert_eq!(std::fs::read_dir(dir.join(RECEIPTS)).unwrap().count(), 2);

    // The network comes back before the drive does: the push gets the same receipts.
    let report = push(
        &site.cfg,
        site.outbox.clone(),
        PushOptions {
            max_wait: Duration::from_secs(30),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.delivered, 2);
    assert_eq!(delivered(&site), stored);
    let taken = import_receipts(&site.cfg, &site.outbox, &dir).unwrap();
    assert!(
        taken
            .iter()
            .all(|o| matches!(o, ReceiptOutcome::AlreadyDelivered { .. })),
        "{taken:?}"
    );
    assert_eq!(center.inbox.len(), 2);
    center.shutdown().await;
}

fn staging_files(cfg: &CenterConfig, ext: &str) -> usize {
    std::fs::read_dir(cfg.data_dir.join("staging"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_over_the_network_then_carried_on_a_drive_arrives_exactly_once() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let entry = site.seal_room("0001", 2, 2_700_000, 3);
    let size = entry.offer.size;
    assert!(size > SEGMENT + (1 << 20));

    // The network sends a little more than one segment, then fails.
    let conn = site.connect(center.addr).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    write_message(&mut send, &Message::Offer(entry.offer.clone()))
        .await
        .unwrap();
    assert_eq!(
        read_message(&mut recv).await.unwrap(),
        Some(Message::Accept { resume_at: 0 })
    );
    let bytes = std::fs::read(site.outbox.envelope_path(&entry)).unwrap();
    let sent = (SEGMENT + (512 << 10)) as usize;
    for (i, chunk) in bytes[..sent].chunks(256 << 10).enumerate() {
        let msg = Message::Data {
            offset: (i * (256 << 10)) as u64,
            bytes: chunk.to_vec(),
        };
        write_message(&mut send, &msg).await.unwrap();
    }
    for _ in 0..200 {
        if staging_files(&cfg, "held") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(staging_files(&cfg, "held"), 1, "the center holds a durable prefix");
    conn.close(0u32.into(), b"network down");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(staging_files(&cfg, "part"), 1, "the prefix waits for a resume");

    // The drive carries it whole.
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    let (c, d) = (cfg.clone(), dir.clone());
    // The center lets go of the broken network transfer a moment after the connection
    // closes; until then it answers "import again in a minute", as an operator would.
    let outcome = tokio::task::spawn_blocking(move || {
        for _ in 0..50 {
            let outcome = import(&c, &d);
            match &outcome.packets[0].carried {
                Carried::Refused {
                    reason: RejectReason::Unavailable,
                    ..
                } => std::thread::sleep(Duration::from_millis(100)),
                _ => return outcome,
            }
        }
        import(&c, &d)
    })
    .await
    .unwrap();
    let from_drive = receipts(&outcome, true).remove(0);
    assert_eq!(center.inbox.len(), 1);
    assert_eq!(stored_files(&fx.center_dir()), 1);
    assert_eq!(
        staging_files(&cfg, "part") + staging_files(&cfg, "held"),
        0,
        "staging consumed"
    );
    assert_eq!(
        std::fs::read(center.inbox.store_path(&entry.offer.digest)).unwrap(),
        bytes
    );

    // A later network offer of the same packet: the original receipt, nothing stored again.
    match site.send(center.addr, fx.init.receipt_public, &entry).await {
        Outcome::Delivered(r) => assert_eq!(r, from_drive),
        other => panic!("{other:?}"),
    }
    push(&site.cfg, site.outbox.clone(), PushOptions::default())
        .await
        .unwrap();
    let taken = import_receipts(&site.cfg, &site.outbox, &dir).unwrap();
    assert_eq!(
        taken,
        vec![ReceiptOutcome::AlreadyDelivered {
            packet_id: entry.offer.packet_id.clone(),
            version: entry.offer.version
        }]
    );
    assert_eq!(delivered(&site), vec![from_drive]);
    assert_eq!(center.inbox.len(), 1);
    assert_eq!(stored_files(&fx.center_dir()), 1);
    center.shutdown().await;
}

#[test]
fn a_tampered_envelope_or_receipt_on_the_drive_is_refused_and_changes_nothing() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    let bad = site.seal_room("0001", 2, 5_000, 1);
    let good = site.seal_room("0002", 2, 5_000, 2);
    let lost = site.seal_room("0003", 2, 5_000, 3);
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    // One envelope fell off the drive.
    std::fs::remove_file(envelope_path(&dir, &lost.file_name)).unwrap();
    // One bit flipped in the middle of the first envelope's ciphertext.
    let path = envelope_path(&dir, &bad.file_name);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let outcome = import(&cfg, &dir);
    let by_id = |id: &str| outcome.packets.iter().find(|p| p.packet.packet_id == id).unwrap();
    match &by_id(&bad.offer.packet_id).carried {
        Carried::Refused { reason, detail } => {
            assert_eq!(*reason, RejectReason::BadSignature, "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(by_id(&good.offer.packet_id).carried, Carried::Stored(_)));
    match &by_id(&lost.offer.packet_id).carried {
        Carried::Unreadable { detail } => assert!(detail.contains("cannot open"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_files(&fx.center_dir()), 1);
    assert_eq!(std::fs::read_dir(dir.join(RECEIPTS)).unwrap().count(), 1);

    // The good packet's receipt, altered on the drive (one bit of its signature).
    let receipt_file = std::fs::read_dir(dir.join(RECEIPTS))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&receipt_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&receipt_file, &bytes).unwrap();
    let taken = import_receipts(&site.cfg, &site.outbox, &dir).unwrap();
    match taken.as_slice() {
        [ReceiptOutcome::Refused { why, .. }] => assert!(why.contains("does not verify"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(site.outbox.pending().unwrap().len(), 3, "nothing marked delivered");
}

#[test]
fn an_import_nobody_takes_is_withdrawn_and_says_why() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    site.seal_room("0001", 2, 5_000, 1);
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    // Something holds the inbox, and no center serves to take the request.
    let held = Inbox::open(&cfg.data_dir).unwrap();
    let request = ImportRequest::new(&dir, "A. Ivanova", "").unwrap();
    let e = reserve::import_waiting(&cfg, &request, Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no running center took the import"), "{e}");
    let left = std::fs::read_dir(cfg.data_dir.join("reserve/requests"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the request is withdrawn");
    drop(held);
    assert!(!dir.join(RECEIPTS).exists());
    assert_eq!(site.outbox.pending().unwrap().len(), 1);
}

#[test]
fn an_export_that_fails_midway_leaves_no_index_naming_a_missing_or_partial_file() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    let first = site.seal_room("0001", 2, 5_000, 1);
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    // The next room's envelope is damaged in the outbox: the export stops at it.
    let second = site.seal_room("0002", 2, 5_000, 2);
    let path = site.outbox.envelope_path(&second);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let e = export(&site.cfg, &site.outbox, &dir, now_unix_ms())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match its envelope id"), "{e}");
    // The drive still holds the first export's index, naming only whole files.
    let index = DriveIndex::read(&dir).unwrap().unwrap();
    assert_eq!(index.packets.len(), 1);
    assert_eq!(index.packets[0].offer().unwrap(), first.offer);
    let names: Vec<String> = std::fs::read_dir(dir.join("envelopes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![first.file_name.clone()], "no partial file left");
    // A site's drive folder is its own.
    fx.issue_token("0202");
    let other = fx.enroll("0202", nowhere());
    other.seal_room("0001", 1, 1_000, 9);
    let e = export(&other.cfg, &other.outbox, &dir, now_unix_ms())
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds site 0101's export"), "{e}");
}

#[test]
fn a_token_blocked_by_the_time_of_import_refuses_what_it_sealed_before() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    // Sealed (and exported) while the token was good.
    let entry = site.seal_small("0001", &site.signer, EXAM_DAY, now_unix_ms());
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    // Lost on the way to the center.
    fx.publish(|body| {
        body.set_status(&token.token_id, TokenStatus::Lost, None, now_unix_ms())
            .unwrap();
    });

    let outcome = import(&cfg, &dir);
    match &outcome.packets[0].carried {
        Carried::Refused { reason, detail } => {
            assert_eq!(*reason, RejectReason::TokenBlocked, "{detail}");
            assert!(detail.contains("TK-0101"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_files(&fx.center_dir()), 0);
    assert!(!dir.join(RECEIPTS).exists());
    assert_eq!(site.outbox.pending().unwrap(), vec![entry]);
}

#[test]
fn a_drive_from_a_site_whose_every_station_is_revoked_is_refused_until_a_new_one_is_enrolled() {
    use konvert_center::stations::{self, StationSelector};
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", nowhere());
    let entry = site.seal_room("0001", 2, 5_000, 1);
    let dir = drive(&fx, "0101");
    export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();
    // The site's laptop is stolen: its station certificate is revoked before the drive
    // reaches the center.
    stations::revoke(
        &cfg,
        &StationSelector::Site("0101".into()),
        "laptop stolen",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();

    let outcome = import(&cfg, &dir);
    match &outcome.packets[0].carried {
        Carried::Refused { reason, detail } => {
            assert_eq!(*reason, RejectReason::StationRevoked, "{detail}");
            assert!(
                detail.contains("laptop stolen") && detail.contains("enroll-station --site 0101"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_files(&fx.center_dir()), 0);
    assert!(!dir.join(RECEIPTS).exists());
    let log = String::from_utf8_lossy(&std::fs::read(cfg.data_dir.join("audit.log")).unwrap()).into_owned();
    assert!(
        log.contains("station_revoked: every station certificate of site 0101"),
        "{log}"
    );

    // The officers enroll a new station for the site: the same drive is taken.
    stations::record_issued(
        &cfg.station_index(),
        &konvert_replication::pki::Serial::random().unwrap(),
        "0101",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let outcome = import(&cfg, &dir);
    assert!(matches!(outcome.packets[0].carried, Carried::Stored(_)), "{outcome:?}");
    assert_eq!(outcome.packets[0].packet.packet_id, entry.offer.packet_id);
}
