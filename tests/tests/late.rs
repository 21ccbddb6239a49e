//! A packet received after its site's 23:59 on the exam day (by the center's clock) is
//! stored and receipted — the data is not lost — but never wins silently: its record and
//! the center's metrics and audit log say late, the loader holds it back and keeps
//! unpacking the on-time version, until an operator decides (recorded in the audit log).

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use konvert_center::late::{self, LateChoice};
use konvert_center::unpack::{unpack, Filter};
use konvert_crypto::keyfile;
use konvert_edge::cli::now_unix_ms;
use konvert_edge::{push, PushOptions};
use konvert_exam::SiteZone;
use konvert_replication::Inbox;
use konvert_tests::CenterFixture;

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..PushOptions::default()
    }
}

/// The zone where the exam day's 23:59 comes last (UTC−12), and the one where it came
/// first (UTC+14): the same exam day is still on in the one and long over in the other.
const STILL_ON: &str = "Etc/GMT+12";
const LONG_OVER: &str = "Etc/GMT-14";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_rescan_is_receipted_flagged_and_held_back_and_the_on_time_version_stays_until_an_operator_decides() {
    // The exam day: today where it is still on, at least two minutes before its 23:59.
    let still_on = SiteZone::new(STILL_ON).unwrap();
    let mut day = still_on.local_date(now_unix_ms() as i64).unwrap();
    if still_on.deadline_unix_ms(day).unwrap() - (now_unix_ms() as i64) < 120_000 {
        tokio::time::sleep(Duration::from_secs(180)).await;
        day = still_on.local_date(now_unix_ms() as i64).unwrap();
    }
    let day = day.to_string();

    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let mut cfg = fx.register_days(&[(&token, "0101")], &[&day]);
    cfg.site_time_zones
        .insert("0101".into(), SiteZone::new(STILL_ON).unwrap());
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut site = fx.enroll("0101", center.addr);
    // Not held for the regulations' transfer windows of this test's exam day.
    site.cfg.push.windows = false;

    // Version 1 arrives on time.
    let room = site.dir.join("scans/0001");
    konvert_devtools::rooms::write_room(&room, 1, 2, 10_000).unwrap();
    let on_time = site.seal_as(&room, "0001", &site.signer, &day, now_unix_ms());
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let record = center.inbox.lookup(&on_time.offer.packet_id, 1).unwrap().unwrap();
    assert!(!record.late);
    center.shutdown().await;

    // A corrected rescan, version 2, arrives when the site's exam day is long over.
    cfg.site_time_zones
        .insert("0101".into(), SiteZone::new(LONG_OVER).unwrap());
    let center = konvert_center::serve(&cfg).await.unwrap();
    site.cfg.center.address = center.addr.to_string();
    let rescan = site.dir.join("rescan/0001");
    konvert_devtools::rooms::write_room(&rescan, 2, 2, 12_000).unwrap();
    let late_one = site.seal_as(&rescan, "0001", &site.signer, &day, now_unix_ms());
    assert_eq!(late_one.offer.version, 2);
    // Stored and receipted: the site stops resending, nothing is lost.
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let record = center.inbox.lookup(&late_one.offer.packet_id, 2).unwrap().unwrap();
    assert!(record.late, "the record says late");
    let metrics = center.metrics.render().unwrap();
    assert!(
        metrics.contains("konvert_packets_late_total{site=\"0101\"} 1"),
        "{metrics}"
    );
    center.shutdown().await;

    // The loader keeps unpacking the on-time version and holds the late one back.
    let inbox = Inbox::open(&cfg.data_dir).unwrap();
    let keys = [fx.loader_key()];
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    let out = fx.root.path().join("unpacked");
    let run = || unpack(&cfg.data_dir, &inbox, &keys, &registry, &Filter::default(), &out).unwrap();
    let report = run();
    let packet_dir = out.join("0101").join(&on_time.offer.packet_id);
    assert_eq!(report.unpacked.len(), 1, "{report:?}");
    assert_eq!(report.unpacked[0].0, packet_dir.join("v1"));
    assert_eq!(report.held_late, vec![format!("{} v2", late_one.offer.packet_id)]);
    assert!(!packet_dir.join("v2").exists());
    let listed = late::list(&cfg.data_dir, &inbox).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].1.is_none(), "undecided");

    // The operator takes the late version: recorded, and the loader follows it.
    let refused = late::decide(
        &cfg,
        &inbox,
        &on_time.offer.packet_id,
        1,
        LateChoice::Take,
        "A. Ivanova",
        "x",
        1,
    );
    assert!(refused.is_err(), "an on-time version has nothing to decide");
    let decision = late::decide(
        &cfg,
        &inbox,
        &late_one.offer.packet_id,
        2,
        LateChoice::Take,
        "A. Ivanova",
        "the site's act no. 7: the scanner failed at 23:40",
        now_unix_ms(),
    )
    .unwrap();
    assert_eq!(decision.choice, LateChoice::Take);
    let again = late::decide(
        &cfg,
        &inbox,
        &late_one.offer.packet_id,
        2,
        LateChoice::KeepOnTime,
        "B. Petrov",
        "changed my mind",
        now_unix_ms(),
    );
    assert!(again.is_err(), "a decision stands once made");
    let report = run();
    assert_eq!(report.unpacked.len(), 1, "{report:?}");
    assert_eq!(report.unpacked[0].0, packet_dir.join("v2"));
    assert!(report.held_late.is_empty());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(packet_dir.join("v2/packet.json")).unwrap()).unwrap();
    assert_eq!(json["late"], true);
    assert_eq!(json["late_decision"]["choice"], "take");
    assert_eq!(json["late_decision"]["operator"], "A. Ivanova");
    // Digests in packet.json are hex, as everywhere else.
    let sha = json["manifest"]["files"][0]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64, "{sha}");
    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
    let v1: serde_json::Value =
        serde_json::from_slice(&std::fs::read(packet_dir.join("v1/packet.json")).unwrap()).unwrap();
    assert_eq!(v1["late"], false);

    // The late arrival and the decision are in the center's audit log, which verifies.
    let log_path = cfg.data_dir.join("audit.log");
    let log = std::fs::read(&log_path).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("LATE: received"), "the accept entry says late");
    assert!(text.contains(late::LATE_DECISION) && text.contains("the scanner failed at 23:40"));
    let head = konvert_crypto::audit::read_head(&konvert_crypto::audit::head_path(&log_path)).unwrap();
    let receipt_key = keyfile::read_signing_key(&cfg.receipt_key).unwrap().verifying_key();
    let verdict = konvert_crypto::audit::verify(&log, head.as_ref(), &[receipt_key]);
    assert!(verdict.is_intact(), "{verdict:?}");
}

#[test]
fn a_drive_imported_after_the_exam_day_is_late_whatever_sealing_time_the_envelope_claims() {
    use konvert_center::intake::Carried;
    use konvert_center::reserve::{self, ImportRequest};

    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    // Nobody listens here: the site carries its packet on a drive.
    let site = fx.enroll("0101", "127.0.0.1:9".parse().unwrap());
    // Sealed, the envelope claims, at noon of the exam day (2026-06-01, Moscow).
    let noon = 1_780_304_400_000;
    let entry = site.seal_small("0001", &site.signer, konvert_tests::EXAM_DAY, noon);
    let dir = fx.root.path().join("drive");
    std::fs::create_dir_all(&dir).unwrap();
    konvert_edge::reserve::export(&site.cfg, &site.outbox, &dir, now_unix_ms()).unwrap();

    let request = ImportRequest::new(&dir, "A. Ivanova", "drive in sealed bag no. 12").unwrap();
    let outcome = reserve::import(&cfg, &request).unwrap();
    assert!(matches!(outcome.packets[0].carried, Carried::Stored(_)), "{outcome:?}");
    let inbox = Inbox::open(&cfg.data_dir).unwrap();
    let record = inbox.lookup(&entry.offer.packet_id, 1).unwrap().unwrap();
    assert_eq!(record.sealed_at_unix_ms, noon, "the claim is recorded");
    assert!(record.late, "judged by the time of import, not by the claim");
}
