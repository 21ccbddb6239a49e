//! Technical-readiness test packets end to end: a site scans printed test blanks, seals
//! and sends them as a test packet over real QUIC; the center keeps it off processing,
//! the loader opens it for a preview with real thumbnails and recognition, the staff
//! judge it, and the signed verdict travels back to that site and only that site.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use konvert_center::preview::render_previews;
use konvert_center::test_packets::TestDesk;
use konvert_crypto::keyfile;
use konvert_edge::intake::scan_recognizer;
use konvert_edge::readiness::{fetch_verdicts, seal_test_packet, test_statuses, TestRequest};
use konvert_edge::{push, PushOptions};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{ExamKind, PageIdentity, RoomId};
use konvert_replication::{OutboxState, Verdict};
use konvert_tests::CenterFixture;

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    }
}

/// Writes a readiness test set (the room forms and one participant's full set) into
/// `dir`: G4 TIFF at 300 dpi, plus one PNG page scanned at a too-low 150 dpi.
fn scan_test_blanks(site: &konvert_exam::SiteId, dir: &std::path::Path) -> Vec<PageIdentity> {
    let room = RoomId::new("0000").unwrap();
    let date = "2026-05-25".parse().unwrap();
    let plan = synthetic_plan(site, date, ExamKind::Ege, &[(&room, 1)], 9_000_000);
    let pages = room_pages(&plan, &room, 0);
    let job = |format, dpi| ScanJob {
        format,
        pages_per_file: 8,
        degrade: false,
        dpi,
        seed: 5,
    };
    write_pages(&pages[..pages.len() - 1], dir, "test", job(ScanFormat::TiffG4, 300)).unwrap();
    write_pages(&pages[pages.len() - 1..], dir, "low", job(ScanFormat::Png, 150)).unwrap();
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_packet_is_previewed_judged_and_its_verdict_reaches_only_its_site() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let tokens = [fx.issue_token("0101"), fx.issue_token("0202")];
    let cfg = fx.register_days(
        &[(&tokens[0], "0101"), (&tokens[1], "0202")],
        &["2026-05-25", konvert_tests::EXAM_DAY],
    );
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let other = fx.enroll("0202", center.addr);

    // The site scans its test blanks and sends them as a test packet, by the same path
    // as exam packets; an exam packet goes along to show the center tells them apart.
    let scans = site.dir.join("test-scans");
    let expected = scan_test_blanks(&site.cfg.site, &scans);
    let request = TestRequest {
        scans: &scans,
        date: "2026-05-25".parse().unwrap(),
        exam: ExamKind::Ege,
    };
    let recognizer = scan_recognizer(Duration::from_millis(1500));
    let now = konvert_edge::cli::now_unix_ms();
    let test = seal_test_packet(&site.cfg, &site.outbox, &site.signer, &request, &recognizer, now).unwrap();
    assert_eq!(test.pages.len(), expected.len());
    assert!(test.pages.iter().all(|p| p.identity().is_some()), "{:?}", test.pages);
    assert!(test.sealed.entry.offer.packet_id.ends_with("-0000-test"));
    let exam_packet = site.seal_room("0007", 2, 50_000, 1);
    let report = push(&site.cfg, site.outbox.clone(), opts()).await.unwrap();
    assert_eq!(report.delivered, 2);

    // The center stored both, flagged the test packet as never to be processed, and put
    // only the test packet on the desk.
    let offer = test.sealed.entry.offer.clone();
    assert!(center.inbox.lookup(&offer.packet_id, 1).unwrap().unwrap().test_packet);
    assert!(
        !center
            .inbox
            .lookup(&exam_packet.offer.packet_id, 1)
            .unwrap()
            .unwrap()
            .test_packet
    );
    let desk = TestDesk::open(&cfg.data_dir).unwrap();
    let on_desk = desk.list().unwrap();
    assert_eq!(on_desk.len(), 1);
    assert_eq!(on_desk[0].record.envelope_id, hex::encode(offer.digest));
    assert_eq!(on_desk[0].record.site, "0101");

    // The loader opens it with the center's decryption key: one real PNG thumbnail per
    // page, each page recognized, the 150 dpi page called out.
    let out = fx.root.path().join("preview");
    let recipient = fx.loader_key();
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    let (index, previews) = render_previews(&cfg.data_dir, &on_desk, &recipient, &registry, &out).unwrap();
    let pages = previews[0].pages.as_ref().unwrap();
    assert_eq!(pages.len(), expected.len());
    let mut read: Vec<String> = pages.iter().map(|p| p.barcode.clone().unwrap()).collect();
    let mut wanted: Vec<String> = expected.iter().map(|id| id.to_string()).collect();
    read.sort();
    wanted.sort();
    assert_eq!(read, wanted);
    for page in pages {
        let thumb = image::open(out.join(&page.thumbnail)).unwrap();
        assert_eq!(thumb.width(), 480);
    }
    let low: Vec<_> = pages.iter().filter(|p| !p.problems.is_empty()).collect();
    assert_eq!(low.len(), 1, "{pages:?}");
    assert!(low[0].problems[0].contains("150 dpi"), "{:?}", low[0].problems);
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(html.contains(&offer.packet_id) && html.contains("150 dpi") && html.contains("<img src="));
    konvert_center::preview::all_opened(&previews).unwrap();

    // The exam packet's envelope copied over the test packet's in the store: the preview
    // refuses it, and the command fails with the refusal (it does not exit 0).
    let stored = konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &offer.digest);
    let kept = fx.root.path().join("kept.env");
    std::fs::copy(&stored, &kept).unwrap();
    let exam_stored = konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &exam_packet.offer.digest);
    std::fs::copy(&exam_stored, &stored).unwrap();
    let swapped_out = fx.root.path().join("preview-swapped");
    let (_, swapped) = render_previews(&cfg.data_dir, &on_desk, &recipient, &registry, &swapped_out).unwrap();
    let why = swapped[0].pages.as_ref().unwrap_err();
    assert!(why.contains("is not the received packet"), "{why}");
    let failed = konvert_center::preview::all_opened(&swapped).unwrap_err().to_string();
    assert!(
        failed.contains("1 of 1 test packet(s) could not be opened") && failed.contains(&offer.packet_id),
        "{failed}"
    );
    // A FIFO in its place is refused at once rather than hanging the preview.
    std::fs::remove_file(&stored).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&stored)
        .status()
        .unwrap()
        .success());
    let (data_dir, desk_list, key, body, fifo_out) = (
        cfg.data_dir.clone(),
        on_desk.clone(),
        fx.loader_key(),
        registry.clone(),
        fx.root.path().join("preview-fifo"),
    );
    let job = tokio::task::spawn_blocking(move || {
        render_previews(&data_dir, &desk_list, &key, &body, &fifo_out).map(|(_, p)| p)
    });
    let fifo = tokio::time::timeout(Duration::from_secs(20), job)
        .await
        .expect("the preview hung on a FIFO")
        .unwrap()
        .unwrap();
    let why = fifo[0].pages.as_ref().unwrap_err();
    assert!(why.contains("FIFO"), "{why}");
    std::fs::remove_file(&stored).unwrap();
    std::fs::rename(&kept, &stored).unwrap();

    // No verdict yet.
    assert_eq!(fetch_verdicts(&site.cfg, &site.outbox).await.unwrap(), 0);
    let status = test_statuses(&site.outbox).unwrap();
    assert_eq!(status.len(), 1);
    assert!(
        status[0].to_string().contains("waiting for the center's verdict"),
        "{}",
        status[0]
    );

    // The staff reject it; the verdict reaches the site, verified and bound to its packet.
    let receipt_key = keyfile::read_signing_key(&cfg.receipt_key).unwrap();
    let reason = "page low-0001.png scanned at 150 dpi; set the scanner to 300 dpi";
    desk.judge(
        &on_desk[0],
        Verdict::Rejected,
        reason,
        "Смирнова О. В.",
        &receipt_key,
        now,
    )
    .unwrap();
    assert_eq!(fetch_verdicts(&site.cfg, &site.outbox).await.unwrap(), 1);
    assert_eq!(fetch_verdicts(&site.cfg, &site.outbox).await.unwrap(), 0, "kept once");
    let verdict = site.outbox.verdict(&offer.packet_id, 1).unwrap().unwrap();
    assert_eq!((verdict.verdict, verdict.reason.as_str()), (Verdict::Rejected, reason));
    let shown = test_statuses(&site.outbox).unwrap()[0].to_string();
    assert!(shown.contains("REJECTED") && shown.contains("300 dpi"), "{shown}");
    // Another site hears nothing of it.
    assert_eq!(fetch_verdicts(&other.cfg, &other.outbox).await.unwrap(), 0);

    // A verdict file altered on the center's disk does not verify at the site: the fetch
    // fails and the site keeps what it had.
    let verdict_file = cfg
        .data_dir
        .join("test-packets")
        .join(format!("{}.verdict", hex::encode(offer.digest)));
    let good = std::fs::read(&verdict_file).unwrap();
    let mut bad = good.clone();
    let at = bad.windows(4).position(|w| w == b"page").unwrap();
    bad[at] = b'P';
    std::fs::write(&verdict_file, &bad).unwrap();
    let err = fetch_verdicts(&site.cfg, &site.outbox).await.unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");
    assert_eq!(
        site.outbox.verdict(&offer.packet_id, 1).unwrap().unwrap().reason,
        reason
    );
    std::fs::write(&verdict_file, &good).unwrap();

    // The site rescans at 300 dpi and sends version 2; the staff confirm it.
    std::fs::remove_dir_all(&scans).unwrap();
    let room = RoomId::new("0000").unwrap();
    let plan = synthetic_plan(&site.cfg.site, request.date, ExamKind::Ege, &[(&room, 1)], 9_000_000);
    let job = ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file: 8,
        degrade: false,
        dpi: 300,
        seed: 6,
    };
    write_pages(&room_pages(&plan, &room, 0), &scans, "test", job).unwrap();
    let v2 = seal_test_packet(&site.cfg, &site.outbox, &site.signer, &request, &recognizer, now).unwrap();
    assert_eq!(v2.sealed.entry.offer.version, 2);
    push(&site.cfg, site.outbox.clone(), opts()).await.unwrap();
    let newest = desk.find(&offer.packet_id, None).unwrap();
    assert_eq!(newest.record.version, 2);
    desk.judge(&newest, Verdict::Confirmed, "", "Смирнова О. В.", &receipt_key, now + 1)
        .unwrap();
    assert_eq!(fetch_verdicts(&site.cfg, &site.outbox).await.unwrap(), 1);
    let all = test_statuses(&site.outbox).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[1].to_string().contains("CONFIRMED"), "{}", all[1]);
    assert!(matches!(all[1].entry.state, OutboxState::Delivered { .. }));
    center.shutdown().await;
}
