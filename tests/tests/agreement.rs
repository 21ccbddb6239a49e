//! Every party names the same packet: the loader opens a stored envelope only if its bytes
//! are the receipted ones and its header and signed description name the record's packet;
//! the center and every relay refuse an envelope whose packet id its signed description
//! does not derive, so a member of one site cannot take another site's packet id first.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use konvert_center::unpack::{unpack, Filter};
use konvert_crypto::envelope::{self, SealRequest};
use konvert_edge::{push, PushOptions};
use konvert_exam::{ExamKind, PacketKind, PacketRef};
use konvert_replication::driver::{self, Outcome};
use konvert_replication::{Inbox, Offer, RejectReason};
use konvert_tests::{on_time_day, stored_files, CenterFixture, SiteFixture, EXAM_DAY, LAST_ZONE};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..PushOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_envelope_copied_over_another_is_refused_by_the_loader_and_nothing_of_it_is_written() {
    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    // Packets that arrive on time (a late one is held back from the loader: tests/tests/late.rs).
    let day = on_time_day();
    let mut cfg = fx.register_days(&[(&token, "0101")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut site = fx.enroll("0101", center.addr);
    site.seal_for(&day);
    let first = site.seal_room("0001", 2, 20_000, 1);
    let second = site.seal_room("0002", 2, 20_000, 2);
    let third = site.seal_room("0003", 2, 20_000, 3);
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 3);

    // The issue's reproduction: `cp data/store/36/36a8….env data/store/8c/8cf2….env`.
    let from = Inbox::stored_envelope(&cfg.data_dir, &first.offer.digest);
    let over = Inbox::stored_envelope(&cfg.data_dir, &second.offer.digest);
    std::fs::copy(&from, &over).unwrap();

    let keys = [fx.loader_key()];
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    let out = fx.root.path().join("unpacked");
    let report = unpack(&cfg.data_dir, &center.inbox, &keys, &registry, &Filter::default(), &out).unwrap();

    // Rooms 0001 and 0003 open; room 0002's record names bytes the store no longer holds.
    assert_eq!(report.unpacked.len(), 2, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let (which, why) = &report.failed[0];
    assert!(which.starts_with(&second.offer.packet_id), "{which}");
    assert!(why.contains("is not the receipted packet"), "{why}");
    assert!(
        why.contains(&hex::encode(first.offer.digest)),
        "names the bytes found: {why}"
    );
    assert!(
        why.contains(&hex::encode(second.offer.digest)),
        "names the bytes receipted: {why}"
    );
    assert!(
        !out.join("0101").join(&second.offer.packet_id).exists(),
        "nothing is written for the swapped packet"
    );
    for entry in [&first, &third] {
        let json = out.join("0101").join(&entry.offer.packet_id).join("v1/packet.json");
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_eq!(record["envelope_id"], hex::encode(entry.offer.digest));
    }

    // Damage after the receipt is the store's, not the site's: a flipped byte and a cut
    // file are named as such, with the receipted envelope id, for every way of opening.
    let third_path = Inbox::stored_envelope(&cfg.data_dir, &third.offer.digest);
    let sound = std::fs::read(&third_path).unwrap();
    let mut flipped = sound.clone();
    flipped[sound.len() / 2] ^= 1;
    for (damaged, found) in [
        (flipped, "envelope id"),
        (sound[..sound.len() - 1000].to_vec(), "bytes"),
    ] {
        std::fs::write(&third_path, &damaged).unwrap();
        let out = fx.root.path().join(format!("damaged-{}", damaged.len()));
        let report = unpack(&cfg.data_dir, &center.inbox, &keys, &registry, &Filter::default(), &out).unwrap();
        let (_, why) = report
            .failed
            .iter()
            .find(|(which, _)| which.starts_with(&third.offer.packet_id))
            .unwrap();
        assert!(why.contains("store was altered") && why.contains(found), "{why}");
        assert!(why.contains(&hex::encode(third.offer.digest)), "{why}");
        let record = center.inbox.lookup(&third.offer.packet_id, 1).unwrap().unwrap();
        let claim = konvert_center::unpack::receipted(&record.receipt.body);
        let trusted = |id: &konvert_crypto::KeyId| konvert_center::registry::CenterRegistry::token_key(&registry, id);
        let in_memory = konvert_center::unpack::open_stored_in_memory(&cfg.data_dir, &claim, &keys, &trusted);
        let why = in_memory.err().unwrap().to_string();
        assert!(why.contains("store was altered") && why.contains(found), "{why}");
    }
    center.shutdown().await;
}

/// Seals `payload` as `signer_site`'s member would, under another `packet_id`: the header
/// names `packet_id` and the sender's own site, the signed description the sender's own
/// room (which its token may sign for). Returns the file and its offer.
fn crafted(
    site: &SiteFixture,
    fx: &CenterFixture,
    packet_id: &str,
    dir: &std::path::Path,
) -> (std::path::PathBuf, Offer) {
    let own = PacketRef {
        site: site.cfg.site.clone(),
        date: EXAM_DAY.parse().unwrap(),
        exam: ExamKind::Ege,
        room: "0001".parse().unwrap(),
        kind: PacketKind::Blanks,
    };
    // Encoded as the edge encodes it (edge-node/src/seal.rs).
    let metadata = postcard::to_allocvec(&own).unwrap();
    let recipients = [fx.recipient.public_key()];
    let now = konvert_edge::cli::now_unix_ms();
    let request = SealRequest {
        packet_id,
        version: 1,
        sender_site: site.cfg.site.as_str(),
        sealed_at_unix_ms: now,
        metadata: &metadata,
        recipients: &recipients,
    };
    let path = dir.join("crafted.env");
    let out = std::fs::File::create(&path).unwrap();
    let summary = envelope::seal(&request, &site.signer, &b"scans of room 0001"[..], out).unwrap();
    let offer = Offer {
        packet_id: packet_id.to_owned(),
        version: 1,
        size: summary.envelope_bytes,
        digest: summary.digest,
        priority: PacketKind::Blanks.priority(),
        sealed_at_unix_ms: now,
        deadline_unix_ms: now + 3_600_000,
    };
    (path, offer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_store_another_sites_packet_id_first_at_the_center_nor_through_a_relay() {
    let fx = CenterFixture::new(loopback());
    let (ta, tb) = (fx.issue_token("0101"), fx.issue_token("0202"));
    let cfg = fx.register(&[(&ta, "0101"), (&tb, "0202")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut a = fx.enroll("0101", center.addr);
    let b = fx.enroll("0202", center.addr);
    // Site 0202's real packet, sealed but not yet delivered.
    let real = b.seal_room("0001", 2, 20_000, 7);
    let theirs = real.offer.packet_id.clone();
    assert!(theirs.starts_with("0202-"), "{theirs}");

    // Site 0101's member seals a packet under 0202's id, signed and bound to 0101.
    let dir = tempfile::tempdir().unwrap();
    let (path, offer) = crafted(&a, &fx, &theirs, dir.path());
    let conn = a.connect(center.addr).await;
    let outcome = driver::send_packet(&conn, offer.clone(), fx.init.receipt_public, &path, &|_| {})
        .await
        .unwrap();
    conn.close(0u32.into(), b"done");
    match outcome {
        Outcome::Rejected { reason, detail } => {
            assert_eq!(reason, RejectReason::PacketRefMismatch, "{detail}");
            assert!(detail.contains("0101-2026-06-01-ege-0001-blanks"), "{detail}");
        }
        other => panic!("the crafted envelope was not refused: {other:?}"),
    }
    assert_eq!(center.inbox.len(), 0);
    assert_eq!(stored_files(&fx.center_dir()), 0);
    // Counted under its own reason, apart from an offer that names another version.
    let refused = |reason: RejectReason| {
        center
            .metrics
            .packets_rejected
            .with_label_values(&[reason.as_str()])
            .get()
    };
    assert_eq!(refused(RejectReason::PacketRefMismatch), 1);
    assert_eq!(refused(RejectReason::PacketMismatch), 0);
    assert!(RejectReason::PacketRefMismatch
        .plain_words()
        .contains("signed packet reference"));

    // Through a relay that carries both sites, the relay itself refuses it.
    let relay_fx = fx.enroll_relay("mouo-01", &["0101", "0202"], &[], loopback(), center.addr, None);
    let relay = relay_fx.start().await;
    a.via_relay("mouo-01", relay.addr);
    let conn = a.connect_configured().await;
    let outcome = driver::send_packet(&conn, offer, fx.init.receipt_public, &path, &|_| {})
        .await
        .unwrap();
    conn.close(0u32.into(), b"done");
    match outcome {
        Outcome::Rejected { reason, detail } => assert_eq!(reason, RejectReason::PacketRefMismatch, "{detail}"),
        other => panic!("the relay did not refuse the crafted envelope: {other:?}"),
    }

    // Site 0202's own packet is then delivered, not refused as a conflict.
    match b.send(center.addr, fx.init.receipt_public, &real).await {
        Outcome::Delivered(receipt) => assert_eq!(receipt.body.site, "0202"),
        other => panic!("the real packet was not delivered: {other:?}"),
    }
    assert_eq!(center.inbox.len(), 1);
    relay.shutdown().await;
    center.shutdown().await;
}

#[test]
fn a_drive_entry_naming_another_version_than_its_envelope_is_refused_for_that_reason() {
    use konvert_center::intake::Carried;
    use konvert_center::reserve::{self, ImportRequest};
    use konvert_replication::reserve::DriveIndex;

    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    // Nobody listens here: the site carries its packets on a drive.
    let site = fx.enroll("0101", "127.0.0.1:9".parse().unwrap());
    let entry = site.seal_room("0001", 2, 5_000, 1);
    let dir = fx.root.path().join("drive");
    std::fs::create_dir_all(&dir).unwrap();
    konvert_edge::reserve::export(&site.cfg, &site.outbox, &dir, konvert_edge::cli::now_unix_ms()).unwrap();
    // The index says version 2 of the packet whose envelope is version 1.
    let mut index = DriveIndex::read(&dir).unwrap().unwrap();
    index.packets[0].version = 2;
    index.write(&dir).unwrap();

    let request = ImportRequest::new(&dir, "A. Ivanova", "drive in sealed bag no. 12").unwrap();
    let outcome = reserve::import(&cfg, &request).unwrap();
    match &outcome.packets[0].carried {
        Carried::Refused { reason, detail } => {
            assert_eq!(*reason, RejectReason::PacketMismatch, "{detail}");
            assert!(
                detail.contains(&format!("{} v1", entry.offer.packet_id)) && detail.contains("v2 was offered"),
                "{detail}"
            );
            assert!(
                !reason.plain_words().contains("another site"),
                "{}",
                reason.plain_words()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stored_files(&fx.center_dir()), 0);
}
