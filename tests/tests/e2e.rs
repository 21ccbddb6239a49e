//! End to end over real QUIC with mutual TLS on loopback, real sled files, real keys.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use konvert_crypto::token::TokenFile;
use konvert_edge::push::PushEvent;
use konvert_edge::{push, PushOptions};
use konvert_replication::driver::{self, Outcome};
use konvert_replication::{pki, tls, Offer, OutboxState, RejectReason};
use konvert_tests::{stored_files, CenterFixture};

fn opts(secs: u64) -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(secs),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_several_packets_each_stored_once_and_receipted() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let sites = ["0101", "0202", "0303"];
    let tokens: Vec<TokenFile> = sites.iter().map(|s| fx.issue_token(s)).collect();
    let cfg = fx.register(&tokens.iter().zip(sites).collect::<Vec<_>>());
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut edges = Vec::new();
    for (i, s) in sites.iter().enumerate() {
        let site = fx.enroll(s, center.addr);
        for r in 0..4 {
            site.seal_room(&format!("{:04}", r + 1), 3, 70_000 + r * 1000, (i * 10 + r) as u64);
        }
        edges.push(site);
    }
    let mut tasks = Vec::new();
    for e in &edges {
        let (cfg, outbox) = (e.cfg.clone(), e.outbox.clone());
        tasks.push(tokio::spawn(async move { push(&cfg, outbox, opts(60)).await }));
    }
    for t in tasks {
        let report = t.await.unwrap().unwrap();
        assert_eq!(report.delivered, 4);
        assert!(report.rejected.is_empty());
    }
    assert_eq!(center.inbox.len(), 12);
    assert_eq!(stored_files(&fx.center_dir()), 12);
    let receipt_key = fx.init.receipt_public;
    for e in &edges {
        for entry in e.outbox.entries().unwrap() {
            let OutboxState::Delivered { receipt } = &entry.state else {
                panic!("{} not delivered", entry.offer.packet_id)
            };
            receipt.verify_for(&receipt_key, &entry.offer).unwrap();
            assert_eq!(receipt.body.site, e.cfg.site.as_str());
            let stored = center
                .inbox
                .lookup(&entry.offer.packet_id, entry.offer.version)
                .unwrap()
                .unwrap();
            assert_eq!(&stored.receipt, receipt);
            // The store holds exactly the bytes the edge sealed, still encrypted.
            let at_center = std::fs::read(center.inbox.store_path(&entry.offer.digest)).unwrap();
            assert_eq!(at_center, std::fs::read(e.outbox.envelope_path(&entry)).unwrap());
        }
    }
    // The metrics endpoint speaks Prometheus text format with what happened.
    let text = konvert_devtools::demo::scrape(center.metrics_addr.unwrap())
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE konvert_delivery_latency_seconds histogram"),
        "{text}"
    );
    assert_eq!(latency_count(&text), 12, "{text}");
    assert!(
        text.contains("konvert_packets_received_total{site=\"0202\"} 4"),
        "{text}"
    );
    center.shutdown().await;
}

/// Sends `bytes` as an envelope under `template`'s offer, with the size adjusted (as a misbehaving edge would).
async fn offer_raw(
    site: &konvert_tests::SiteFixture,
    addr: std::net::SocketAddr,
    receipt_key: konvert_crypto::VerifyingKey,
    template: &Offer,
    bytes: &[u8],
    tag: &str,
) -> Outcome {
    let path = site.dir.join(format!("tampered-{tag}.env"));
    std::fs::write(&path, bytes).unwrap();
    let mut offer = template.clone();
    offer.size = bytes.len() as u64;
    // The digest is the original envelope's id: the center judges the bytes themselves.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let station = pki::IssuedCert {
        cert_pem: read(&site.cfg.center.station_cert),
        key_pem: read(&site.cfg.center.station_key).into(),
    };
    let endpoint =
        tls::client_endpoint(tls::client_config(&read(&site.cfg.center.ca_cert), &station).unwrap()).unwrap();
    let conn = driver::connect(&endpoint, addr, "center.konvert", site.cfg.site.as_str())
        .await
        .unwrap();
    driver::send_packet(&conn, offer, receipt_key, &path, &|_| {})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_truncated_and_unknown_signer_envelopes_are_rejected_and_nothing_is_stored() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    // Three pages of ~100 KB: several 64 KiB chunks.
    let entry = site.seal_room("0001", 3, 100_000, 1);
    let good = std::fs::read(site.outbox.envelope_path(&entry)).unwrap();
    let key = fx.init.receipt_public;
    let n = good.len();
    let header_at = 30; // inside the header, after the fixed prefix
    let cases: Vec<(&str, Vec<u8>, &[RejectReason])> = vec![
        ("magic", flip(&good, 0), &[RejectReason::MalformedEnvelope]),
        (
            "header",
            flip(&good, header_at),
            &[RejectReason::MalformedEnvelope, RejectReason::BadSignature],
        ),
        ("first-chunk", flip(&good, n / 4), &[RejectReason::BadSignature]),
        ("middle-chunk", flip(&good, n / 2), &[RejectReason::BadSignature]),
        ("last-chunk", flip(&good, n - 70), &[RejectReason::BadSignature]),
        ("signature", flip(&good, n - 1), &[RejectReason::BadSignature]),
        (
            "truncated",
            good[..n - 1000].to_vec(),
            &[RejectReason::MalformedEnvelope, RejectReason::BadSignature],
        ),
        (
            "truncated-to-header",
            good[..40].to_vec(),
            &[RejectReason::MalformedEnvelope],
        ),
        (
            "extended",
            [good.as_slice(), &[0u8; 17]].concat(),
            &[RejectReason::MalformedEnvelope, RejectReason::BadSignature],
        ),
    ];
    for (tag, bytes, expected) in cases {
        match offer_raw(&site, center.addr, key, &entry.offer, &bytes, tag).await {
            Outcome::Rejected { reason, detail } => {
                assert!(
                    expected.contains(&reason),
                    "{tag}: got {reason:?} ({detail}), expected one of {expected:?}"
                )
            }
            Outcome::Delivered(_) => panic!("{tag}: a damaged envelope was accepted"),
            Outcome::Held { .. } => panic!("{tag}: the center is no relay"),
        }
        assert_eq!(center.inbox.len(), 0, "{tag}: something was stored");
    }
    // A member key the center does not know.
    let stranger = konvert_crypto::SigningKey::generate().unwrap();
    let room = site.dir.join("scans/0002");
    konvert_devtools::rooms::write_room(&room, 9, 2, 10_000).unwrap();
    let foreign = site.seal_dir(&room, "0002", &stranger);
    let bytes = std::fs::read(site.outbox.envelope_path(&foreign)).unwrap();
    match offer_raw(&site, center.addr, key, &foreign.offer, &bytes, "stranger").await {
        Outcome::Rejected { reason, .. } => assert_eq!(reason, RejectReason::UnknownSigner),
        Outcome::Delivered(_) => panic!("an unknown signer was accepted"),
        Outcome::Held { .. } => panic!("the center is no relay"),
    }
    assert_eq!(center.inbox.len(), 0);
    assert_eq!(stored_files(&fx.center_dir()), 0);
    // The center keeps serving: the good packet still goes through. The stranger's stays
    // in the outbox, retried, until the officers register its token (or the wait ends),
    // and the operator is told why in plain words.
    let err = push(&site.cfg, site.outbox.clone(), opts(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(RejectReason::UnknownSigner.plain_words()), "{err}");
    assert_eq!(center.inbox.len(), 1);
    assert_eq!(site.outbox.pending().unwrap().len(), 1);
    let text = konvert_devtools::demo::scrape(center.metrics_addr.unwrap())
        .await
        .unwrap();
    assert!(
        text.contains("konvert_packets_rejected_total{reason=\"bad_signature\"}"),
        "{text}"
    );
    assert!(
        text.contains("konvert_packets_rejected_total{reason=\"unknown_signer\"}"),
        "{text}"
    );
    center.shutdown().await;
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x40;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_push_gets_already_have_with_the_original_receipt_and_the_store_is_unchanged() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    for r in 0..3 {
        site.seal_room(&format!("{:04}", r + 1), 2, 50_000, r);
    }
    assert_eq!(
        push(&site.cfg, site.outbox.clone(), opts(30)).await.unwrap().delivered,
        3
    );
    let before = stored_files(&fx.center_dir());
    for entry in site.outbox.entries().unwrap() {
        let OutboxState::Delivered { receipt: original } = &entry.state else {
            panic!("not delivered")
        };
        let bytes = std::fs::read(site.outbox.envelope_path(&entry)).unwrap();
        match offer_raw(
            &site,
            center.addr,
            fx.init.receipt_public,
            &entry.offer,
            &bytes,
            "again",
        )
        .await
        {
            Outcome::Delivered(receipt) => {
                assert_eq!(&receipt, original, "AlreadyHave must carry the original receipt")
            }
            Outcome::Rejected { reason, .. } => panic!("re-push refused: {reason:?}"),
            Outcome::Held { .. } => panic!("the center is no relay"),
        }
    }
    assert_eq!(center.inbox.len(), 3);
    assert_eq!(stored_files(&fx.center_dir()), before);
    let text = konvert_devtools::demo::scrape(center.metrics_addr.unwrap())
        .await
        .unwrap();
    assert!(text.contains("konvert_packets_duplicate_total 3"), "{text}");
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_without_a_valid_certificate_cannot_deliver() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    site.seal_room("0001", 1, 10_000, 1);

    // A station certificate from another CA.
    let rogue = pki::Ca::generate("rogue CA").unwrap().issue_station("0101").unwrap();
    std::fs::write(&site.cfg.center.station_cert, &rogue.cert_pem).unwrap();
    std::fs::write(&site.cfg.center.station_key, rogue.key_pem.as_bytes()).unwrap();
    let err = push(&site.cfg, site.outbox.clone(), opts(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not delivered"), "{err}");
    assert!(
        err.contains("not signed by the center's CA"),
        "the operator is told why: {err}"
    );

    // A valid certificate for another site cannot speak for this one.
    let ca = pki::Ca::from_pem(
        &std::fs::read_to_string(fx.center_dir().join("pki/ca.pem")).unwrap(),
        &std::fs::read_to_string(fx.center_dir().join("pki/ca.key")).unwrap(),
    )
    .unwrap();
    let other = ca.issue_station("0999").unwrap();
    std::fs::write(&site.cfg.center.station_cert, &other.cert_pem).unwrap();
    std::fs::write(&site.cfg.center.station_key, other.key_pem.as_bytes()).unwrap();
    assert!(push(&site.cfg, site.outbox.clone(), opts(2)).await.is_err());
    assert_eq!(center.inbox.len(), 0);

    // The center keeps serving a proper station.
    let proper = ca.issue_station("0101").unwrap();
    std::fs::write(&site.cfg.center.station_cert, &proper.cert_pem).unwrap();
    std::fs::write(&site.cfg.center.station_key, proper.key_pem.as_bytes()).unwrap();
    assert_eq!(
        push(&site.cfg, site.outbox.clone(), opts(30)).await.unwrap().delivered,
        1
    );
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_killed_mid_transfer_and_restarted_everything_arrives_exactly_once() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let fx = CenterFixture::new(addr);
    let token = fx.issue_token("0101");
    fx.register(&[(&token, "0101")]);
    let site = fx.enroll("0101", addr);
    let packets = 12;
    for r in 0..packets {
        site.seal_room(&format!("{:04}", r + 1), 4, 500_000, r as u64);
    }
    let exe = env!("CARGO_BIN_EXE_konvert-test-center");
    let start = || konvert_tests::start_listening(exe, &fx.init.config_path);
    let mut center = start();
    // Kill the center once a few packets are receipted, while others are mid-transfer.
    let delivered = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let d2 = delivered.clone();
    let on_event = Arc::new(move |ev: PushEvent| {
        if let PushEvent::Delivered { .. } = ev {
            if d2.fetch_add(1, Ordering::Relaxed) + 1 == 3 {
                let _ = tx.send(());
            }
        }
    });
    let pushing = site.spawn_push(PushOptions {
        max_wait: Duration::from_secs(90),
        on_event,
        ..Default::default()
    });
    rx.recv().await.unwrap();
    center.kill().unwrap(); // SIGKILL: no graceful anything
    center.wait().unwrap();
    let delivered_before = site
        .outbox
        .entries()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.state, OutboxState::Delivered { .. }))
        .count();
    assert!(delivered_before < packets, "the kill came too late to test anything");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut center = start();
    let report = pushing.await.unwrap().unwrap();
    assert!(report.connections >= 2, "the edge must have reconnected by itself");
    center.kill().unwrap();
    center.wait().unwrap();

    let inbox = konvert_replication::Inbox::open(&fx.center_dir().join("data")).unwrap();
    assert_eq!(inbox.len(), packets);
    assert_eq!(stored_files(&fx.center_dir()), packets);
    for entry in site.outbox.entries().unwrap() {
        let OutboxState::Delivered { receipt } = &entry.state else {
            panic!("{} not delivered", entry.offer.packet_id)
        };
        receipt.verify_for(&fx.init.receipt_public, &entry.offer).unwrap();
        let stored = inbox
            .lookup(&entry.offer.packet_id, entry.offer.version)
            .unwrap()
            .unwrap();
        assert_eq!(&stored.receipt, receipt);
        assert_eq!(
            std::fs::read(inbox.store_path(&entry.offer.digest)).unwrap(),
            std::fs::read(site.outbox.envelope_path(&entry)).unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_delivers_every_packet_with_verified_receipts() {
    let opts = konvert_devtools::demo::DemoOptions {
        rooms: 2,
        participants: 3,
        ..Default::default()
    };
    let report = konvert_devtools::demo::run(&opts, false).await.unwrap();
    // 3 sites × 2 rooms × (forms + blanks).
    assert_eq!(report.packets, 12);
    assert_eq!(report.stored, 12);
    assert_eq!(report.receipts_verified, 12);
    assert_eq!(report.latencies.len(), 12);
    // The loader decrypted every stored packet but the compromised token's (site 0303:
    // 2 rooms × forms + blanks), which stay sealed for review.
    assert_eq!((report.unpacked, report.held_for_review), (8, 4));
    // The site whose room lost a blank got the loader's remark and answered it with a
    // version 2, which was loaded.
    assert!(report.remark_answered_by_v2, "{:?}", report.said);
    assert!(report.pages_processed > 0);
    // Plus the readiness round's test packet, and that version 2: delivered like the rest.
    let text = &report.metrics_text;
    assert_eq!(latency_count(text), 14, "{text}");
    assert!(text.contains("konvert_test_packets_received_total 1"), "{text}");
    assert!(
        !report.dir.exists(),
        "the temporary demo folder is removed without --keep"
    );
    // Nothing it said points into the folder it removed (the preview page was named once).
    let dir = report.dir.display().to_string();
    for line in &report.said {
        assert!(!line.contains(&dir) && !line.contains("index.html"), "{line}");
    }
    assert!(
        report.said.iter().any(|l| l.contains("kept with --keep")),
        "{:?}",
        report.said
    );
}

/// Deliveries the latency histogram counted, over every site.
fn latency_count(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("konvert_delivery_latency_seconds_count{site="))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}
