//! Relays (school → checking point → municipal office → center): packets travel through
//! store-and-forward relays over real QUIC on loopback; the center stores each once and
//! the school ends with the center's own receipt. A relay cannot alter what it carries
//! nor carry a site it is not enrolled for, and a relay killed mid-packet or a center that
//! is down loses nothing and doubles nothing.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use konvert_edge::push::PushEvent;
use konvert_edge::{push, PushOptions};
use konvert_replication::driver::{self, Outcome};
use konvert_replication::inbox::SEGMENT;
use konvert_replication::{Offer, OutboxState, Receipt, RejectReason};
use konvert_tests::{free_udp_addr, stored_files, CenterFixture, SiteFixture};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn opts(max_wait: u64) -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(max_wait),
        ..PushOptions::default()
    }
}

/// The school's receipt for each of its packets: the center's, verified with its key.
fn center_receipts(fx: &CenterFixture, site: &SiteFixture) -> Vec<Receipt> {
    site.outbox
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| match e.state {
            OutboxState::Delivered { receipt } => {
                receipt.verify_for(&fx.init.receipt_public, &e.offer).unwrap();
                receipt
            }
            other => panic!("{} not delivered: {other:?}", e.offer.packet_id),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_through_a_relay_is_stored_once_and_the_school_holds_the_centers_receipt() {
    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    let center = konvert_center::serve(&fx.register(&[(&token, "0101")])).await.unwrap();
    let relay_fx = fx.enroll_relay("mouo-01", &["0101"], &[], loopback(), center.addr, None);
    let relay = relay_fx.start().await;
    let mut school = fx.enroll("0101", center.addr);
    school.via_relay("mouo-01", relay.addr);
    let a = school.seal_room("0001", 3, 40_000, 1);
    let b = school.seal_room("0002", 2, 40_000, 2);

    let report = push(&school.cfg, school.outbox.clone(), opts(30)).await.unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");

    // Stored once each, byte for byte what the school sealed.
    assert_eq!(center.inbox.len(), 2);
    assert_eq!(stored_files(&fx.center_dir()), 2);
    for e in [&a, &b] {
        let stored = std::fs::read(center.inbox.store_path(&e.offer.digest)).unwrap();
        assert_eq!(stored, std::fs::read(school.outbox.envelope_path(e)).unwrap());
    }
    // The school holds the center's receipts, for its own site, not the relay's word.
    let receipts = center_receipts(&fx, &school);
    assert_eq!(receipts.len(), 2);
    assert!(receipts.iter().all(|r| r.body.site == "0101"));
    // The relay holds the same receipts for what it forwarded, and has let go of the
    // envelopes themselves (the center holds them; `keep_delivered` is off).
    for e in relay.outbox.entries().unwrap() {
        let envelope = relay.outbox.envelope_path(&e);
        let OutboxState::Delivered { receipt } = e.state else {
            panic!("relay entry not delivered")
        };
        assert!(receipts.contains(&receipt));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while envelope.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !envelope.exists(),
            "{} kept after the center's receipt",
            envelope.display()
        );
    }
    // Offering again gets the center's receipt from the relay, and nothing moves.
    let conn = school.connect_configured().await;
    let again = driver::send_packet(
        &conn,
        a.offer.clone(),
        fx.init.receipt_public,
        &school.outbox.envelope_path(&a),
        &|_| {},
    )
    .await
    .unwrap();
    let Outcome::Delivered(again) = again else {
        panic!("a re-offer was not answered with the receipt: {again:?}")
    };
    assert!(receipts.contains(&again));
    assert_eq!(center.inbox.len(), 2);
    conn.close(0u32.into(), b"done");
    relay.shutdown().await;
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_in_a_row_bring_the_centers_receipt_back_to_the_school() {
    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    let center = konvert_center::serve(&fx.register(&[(&token, "0101")])).await.unwrap();
    // Municipal office (next to the center), then the checking point below it.
    let mouo_fx = fx.enroll_relay("mouo-01", &["0101"], &["ppr-01"], loopback(), center.addr, None);
    let mouo = mouo_fx.start().await;
    let ppr_fx = fx.enroll_relay("ppr-01", &["0101"], &[], loopback(), mouo.addr, Some("mouo-01"));
    let ppr = ppr_fx.start().await;
    let mut school = fx.enroll("0101", center.addr);
    school.via_relay("ppr-01", ppr.addr);
    let entry = school.seal_room("0001", 3, 40_000, 3);

    let report = push(&school.cfg, school.outbox.clone(), opts(30)).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(center.inbox.len(), 1);
    assert_eq!(stored_files(&fx.center_dir()), 1);
    let receipts = center_receipts(&fx, &school);
    assert_eq!(receipts[0].body.digest, entry.offer.digest);
    for relay in [&ppr, &mouo] {
        let held = relay.outbox.entries().unwrap();
        assert!(matches!(&held[..], [e] if e.state == OutboxState::Delivered { receipt: receipts[0].clone() }));
    }
    ppr.shutdown().await;
    mouo.shutdown().await;
    center.shutdown().await;
}

/// Offers `bytes` as the envelope of `offer` (with `digest`) on `conn`.
async fn offer_bytes(
    conn: &quinn::Connection,
    fx: &CenterFixture,
    offer: &Offer,
    bytes: &[u8],
    digest: [u8; 32],
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.env");
    std::fs::write(&path, bytes).unwrap();
    let offer = Offer {
        digest,
        size: bytes.len() as u64,
        ..offer.clone()
    };
    driver::send_packet(conn, offer, fx.init.receipt_public, &path, &|_| {})
        .await
        .unwrap()
}

fn refused(outcome: Outcome) -> (RejectReason, String) {
    match outcome {
        Outcome::Rejected { reason, detail } => (reason, detail),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_alter_a_packet_nor_carry_a_site_it_is_not_enrolled_for_nor_lift_the_token_binding() {
    let fx = CenterFixture::new(loopback());
    let (t1, t2) = (fx.issue_token("0101"), fx.issue_token("0102"));
    let center = konvert_center::serve(&fx.register(&[(&t1, "0101"), (&t2, "0102")]))
        .await
        .unwrap();
    let relay = fx.enroll_relay("mouo-01", &["0101"], &[], loopback(), center.addr, None);
    let school = fx.enroll("0101", center.addr);
    let other = fx.enroll("0102", center.addr);
    let entry = school.seal_room("0001", 2, 30_000, 4);
    let foreign = other.seal_room("0001", 2, 30_000, 5);
    let good = std::fs::read(school.outbox.envelope_path(&entry)).unwrap();
    // A dishonest relay, speaking with the relay's own certificate.
    let conn = relay.connect_upstream(center.addr, "center.konvert").await;

    // One byte flipped in the ciphertext, offered under the original envelope id (the
    // center checks the member's signature first, then the id)...
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let (reason, _) = refused(offer_bytes(&conn, &fx, &entry.offer, &flipped, entry.offer.digest).await);
    assert_eq!(reason, RejectReason::BadSignature);
    // ...and under an envelope id recomputed for the altered bytes: the member's signature
    // still gives it away.
    let forged_id: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &flipped)
        .as_ref()
        .try_into()
        .unwrap();
    let (reason, detail) = refused(offer_bytes(&conn, &fx, &entry.offer, &flipped, forged_id).await);
    assert_eq!(reason, RejectReason::BadSignature, "{detail}");
    assert_eq!(center.inbox.len(), 0, "nothing altered is stored");
    assert_eq!(stored_files(&fx.center_dir()), 0);

    // A packet of a site the relay is not enrolled to carry.
    let bytes = std::fs::read(other.outbox.envelope_path(&foreign)).unwrap();
    let (reason, detail) = refused(offer_bytes(&conn, &fx, &foreign.offer, &bytes, foreign.offer.digest).await);
    assert_eq!(reason, RejectReason::RelayNotEnrolledForSite);
    assert!(detail.contains("0102") && detail.contains("mouo-01"), "{detail}");
    assert_eq!(center.inbox.len(), 0);

    // A packet of a carried site signed by a token bound to another site: the signer must
    // still be bound to the envelope's site, whoever carries it.
    let room = school.dir.join("scans/0009");
    konvert_devtools::rooms::write_room(&room, 12, 2, 5_000).unwrap();
    let wrong_signer = school.seal_dir(&room, "0009", &other.signer);
    let bytes = std::fs::read(school.outbox.envelope_path(&wrong_signer)).unwrap();
    let (reason, _) = refused(offer_bytes(&conn, &fx, &wrong_signer.offer, &bytes, wrong_signer.offer.digest).await);
    assert_eq!(reason, RejectReason::TokenNotForSite);
    assert_eq!(center.inbox.len(), 0);

    // The same relay delivers the untouched packet of a site it carries.
    let Outcome::Delivered(receipt) = offer_bytes(&conn, &fx, &entry.offer, &good, entry.offer.digest).await else {
        panic!("the untouched packet was refused")
    };
    assert_eq!(receipt.body.site, "0101");
    assert_eq!(center.inbox.len(), 1);
    conn.close(0u32.into(), b"done");
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_configured_for_more_sites_than_enrolled_holds_them_and_the_center_refuses() {
    let fx = CenterFixture::new(loopback());
    let (t1, t2) = (fx.issue_token("0101"), fx.issue_token("0102"));
    let center = konvert_center::serve(&fx.register(&[(&t1, "0101"), (&t2, "0102")]))
        .await
        .unwrap();
    // Enrolled for 0101 only; its operator added 0102 to relay.toml.
    let mut relay_fx = fx.enroll_relay("mouo-01", &["0101"], &[], loopback(), center.addr, None);
    relay_fx.cfg.carry.push("0102".into());
    relay_fx.cfg.hold_wait_ms = 300;
    let relay = relay_fx.start().await;
    // A site the relay's own config does not carry is refused at the relay already.
    let _t3 = fx.issue_token("0103");
    let mut stranger = fx.enroll("0103", center.addr);
    stranger.via_relay("mouo-01", relay.addr);
    let e3 = stranger.seal_room("0001", 2, 5_000, 9);
    let conn = stranger.connect_configured().await;
    let path = stranger.outbox.envelope_path(&e3);
    let (reason, _) = refused(
        driver::send_packet(&conn, e3.offer.clone(), fx.init.receipt_public, &path, &|_| {})
            .await
            .unwrap(),
    );
    assert_eq!(reason, RejectReason::RelayNotEnrolledForSite);
    conn.close(0u32.into(), b"done");

    // 0102 goes through the relay, which holds it; the center refuses it, and the school
    // is told so while the packet stays pending.
    let mut school = fx.enroll("0102", center.addr);
    school.via_relay("mouo-01", relay.addr);
    school.seal_room("0001", 2, 30_000, 6);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let on_event = Arc::new(move |ev: PushEvent| {
        if let PushEvent::Held { detail, .. } = ev {
            let _ = tx.send(detail);
        }
    });
    let pushing = school.spawn_push(PushOptions {
        max_wait: Duration::from_secs(30),
        on_event,
        ..Default::default()
    });
    let detail = loop {
        let d = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if d.contains("relay_not_enrolled_for_site") {
            break d;
        }
    };
    pushing.abort();
    assert!(detail.contains("0102"), "{detail}");
    assert_eq!(center.inbox.len(), 0, "the center stored nothing");
    assert_eq!(school.outbox.pending().unwrap().len(), 1, "the school keeps it");
    relay.shutdown().await;
    center.shutdown().await;
}

fn relay_staged_bytes(relay_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(relay_dir.join("data/inbound/staging"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_packet_and_a_center_that_is_down_lose_nothing_and_double_nothing() {
    let center_addr = free_udp_addr();
    let fx = CenterFixture::new(center_addr);
    let token = fx.issue_token("0101");
    let center_cfg = fx.register(&[(&token, "0101")]);
    let relay_addr = free_udp_addr();
    let relay_fx = fx.enroll_relay("mouo-01", &["0101"], &[], relay_addr, center_addr, None);
    let config = relay_fx.write_config();
    let exe = env!("CARGO_BIN_EXE_konvert-test-relay");
    let start = || konvert_tests::start_listening(exe, &config);
    let mut school = fx.enroll("0101", center_addr);
    school.via_relay("mouo-01", relay_addr);
    // ~20 MB incompressible: five segments; and a small packet.
    let big = school.seal_room("0001", 5, 4_000_000, 7);
    let small = school.seal_room("0002", 2, 20_000, 8);
    assert!(big.offer.size > 2 * SEGMENT);

    // The center is down; the relay is up, and killed once it holds more than a segment
    // of the big packet.
    let mut relay = start();
    let offsets = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    let (seen, size, big_id) = (offsets.clone(), big.offer.size, big.offer.packet_id.clone());
    let on_event = Arc::new(move |ev: PushEvent| match ev {
        PushEvent::Progress { packet_id, offset, .. } if packet_id == big_id => {
            seen.lock().unwrap().push(offset);
        }
        PushEvent::Held { packet_id, .. } => {
            let _ = held_tx.send(packet_id);
        }
        _ => {}
    });
    let pushing = school.spawn_push(PushOptions {
        max_wait: Duration::from_secs(120),
        on_event,
        ..Default::default()
    });
    for _ in 0..6000 {
        if relay_staged_bytes(&relay_fx.dir) > SEGMENT + (1 << 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    relay.kill().unwrap(); // SIGKILL
    relay.wait().unwrap();
    let at_kill = relay_staged_bytes(&relay_fx.dir);
    let sent_before = offsets.lock().unwrap().len();
    assert!(at_kill > 0 && at_kill < size, "killed mid-packet: {at_kill} of {size}");
    let mut relay = start();
    let t0 = std::time::Instant::now();

    // Both packets end held at the relay while the center is down.
    let mut held = std::collections::HashSet::new();
    while held.len() < 2 {
        let id = tokio::time::timeout(Duration::from_secs(60), held_rx.recv())
            .await
            .unwrap()
            .unwrap();
        held.insert(id);
    }
    assert_eq!(school.outbox.pending().unwrap().len(), 2, "held is not delivered");

    // The center comes up: the relay forwards, the school gets the center's receipts.
    let center = konvert_center::serve(&center_cfg).await.unwrap();
    let report = pushing.await.unwrap().unwrap();
    // The restarted relay answers the school's old connection with a stateless reset
    // (keyed by its TLS key), so nothing waits out the 30 s idle timeout.
    assert!(t0.elapsed() < Duration::from_secs(25), "took {:?}", t0.elapsed());
    assert!(report.connections >= 2, "the school reconnected by itself");
    let receipts = center_receipts(&fx, &school);
    assert_eq!(receipts.len(), 2);

    // The school resumed where the relay's durable segments ended.
    let offsets = offsets.lock().unwrap().clone();
    let resume_at = offsets[sent_before..].iter().copied().min().unwrap();
    assert_eq!(resume_at % SEGMENT, 0, "resumed at a segment boundary");
    assert!(
        at_kill.saturating_sub(resume_at) <= SEGMENT,
        "at most one segment again"
    );

    // Exactly once at the center, whole; nothing left in the relay's staging.
    assert_eq!(center.inbox.len(), 2);
    assert_eq!(stored_files(&fx.center_dir()), 2);
    for e in [&big, &small] {
        let stored = std::fs::read(center.inbox.store_path(&e.offer.digest)).unwrap();
        assert_eq!(stored, std::fs::read(school.outbox.envelope_path(e)).unwrap());
    }
    assert_eq!(relay_staged_bytes(&relay_fx.dir), 0, "no staging left at the relay");
    relay.kill().unwrap();
    relay.wait().unwrap();
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_packets_verdict_reaches_its_school_through_the_relay_and_only_that_school() {
    let fx = CenterFixture::new(loopback());
    let (t1, t2) = (fx.issue_token("0101"), fx.issue_token("0102"));
    let cfg = fx.register(&[(&t1, "0101"), (&t2, "0102")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let relay_fx = fx.enroll_relay("mouo-01", &["0101", "0102"], &[], loopback(), center.addr, None);
    let relay = relay_fx.start().await;
    let mut school = fx.enroll("0101", center.addr);
    let mut other = fx.enroll("0102", center.addr);
    school.via_relay("mouo-01", relay.addr);
    other.via_relay("mouo-01", relay.addr);
    // A technical-readiness test packet, sent through the relay.
    let scans = school.dir.join("scans/test");
    konvert_devtools::rooms::write_room(&scans, 11, 2, 5_000).unwrap();
    let packet = konvert_exam::PacketRef {
        site: school.cfg.site.clone(),
        date: konvert_tests::EXAM_DAY.parse().unwrap(),
        exam: konvert_exam::ExamKind::Ege,
        room: "0000".parse().unwrap(),
        kind: konvert_exam::PacketKind::Test,
    };
    let sealed = konvert_edge::seal_room(
        &school.cfg,
        &school.outbox,
        &school.signer,
        &scans,
        packet,
        konvert_edge::cli::now_unix_ms(),
    )
    .unwrap();
    assert_eq!(
        push(&school.cfg, school.outbox.clone(), opts(30))
            .await
            .unwrap()
            .delivered,
        1
    );

    // The staff judge it at the center; the signed verdict travels back through the relay.
    let desk = konvert_center::test_packets::TestDesk::open(&cfg.data_dir).unwrap();
    let on_desk = desk.list().unwrap();
    assert_eq!(on_desk.len(), 1);
    let receipt_key = konvert_crypto::keyfile::read_signing_key(&cfg.receipt_key).unwrap();
    desk.judge(
        &on_desk[0],
        konvert_replication::Verdict::Confirmed,
        "",
        "Смирнова О. В.",
        &receipt_key,
        konvert_edge::cli::now_unix_ms(),
    )
    .unwrap();
    let fetch = konvert_edge::readiness::fetch_verdicts;
    assert_eq!(fetch(&school.cfg, &school.outbox).await.unwrap(), 1);
    let verdict = school
        .outbox
        .verdict(&sealed.entry.offer.packet_id, 1)
        .unwrap()
        .unwrap();
    assert_eq!(verdict.verdict, konvert_replication::Verdict::Confirmed);
    assert_eq!(
        fetch(&other.cfg, &other.outbox).await.unwrap(),
        0,
        "not another school's"
    );
    relay.shutdown().await;
    center.shutdown().await;
}

/// Connects as `school`'s station to whatever its config points at, saying Hello.
async fn try_connect(school: &SiteFixture) -> konvert_replication::Result<quinn::Connection> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let station = konvert_replication::pki::IssuedCert {
        cert_pem: read(&school.cfg.center.station_cert),
        key_pem: read(&school.cfg.center.station_key).into(),
    };
    let client = konvert_replication::tls::client_config(&read(&school.cfg.center.ca_cert), &station).unwrap();
    let endpoint = konvert_replication::tls::client_endpoint(client).unwrap();
    driver::connect(
        &endpoint,
        school.cfg.center.address.parse().unwrap(),
        &school.cfg.center.server_name,
        school.cfg.site.as_str(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_revoked_at_the_center_is_cut_off_at_every_relay_and_stays_cut_off_after_a_restart() {
    use konvert_center::stations::{self, StationSelector};
    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mouo_fx = fx.enroll_relay("mouo-01", &["0101"], &["ppr-01"], loopback(), center.addr, None);
    let mouo = mouo_fx.start().await;
    let ppr_fx = fx.enroll_relay("ppr-01", &["0101"], &[], loopback(), mouo.addr, Some("mouo-01"));
    let ppr = ppr_fx.start().await;
    let mut school = fx.enroll("0101", center.addr);
    school.via_relay("ppr-01", ppr.addr);
    school.seal_room("0001", 2, 40_000, 11);
    let report = push(&school.cfg, school.outbox.clone(), opts(30)).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");

    // Both relays keep the center's list (nothing revoked yet) once their forwarders are up.
    for relay in [&mouo_fx, &ppr_fx] {
        let file = relay.cfg.data_dir.join(konvert_edge::relay::REVOCATION_FILE);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !file.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(file.exists(), "relay {} kept no revocation list", relay.cfg.relay);
    }

    // The school holds a live connection to its relay; the officer revokes its station.
    let live = school.connect_configured().await;
    stations::revoke(
        &cfg,
        &StationSelector::Site("0101".into()),
        "laptop stolen",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), live.closed())
        .await
        .expect("the revoked school's connection to its relay was not closed");
    let explained = konvert_replication::tls::explain_connection_error(&closed).to_string();
    assert!(explained.contains("revoked this station's certificate"), "{explained}");
    eprintln!(
        "revoked at the center → closed at the second relay in {:?}",
        started.elapsed()
    );

    // New handshakes with the relay are refused, and the school's push says why.
    let err = try_connect(&school).await.unwrap_err().to_string();
    assert!(err.contains("revoked this station's certificate"), "{err}");
    school.seal_room("0002", 2, 40_000, 12);
    let short = PushOptions {
        max_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let err = push(&school.cfg, school.outbox.clone(), short)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("revoked this station's certificate"), "{err}");
    assert_eq!(center.inbox.len(), 1, "nothing more reached the center");

    // A relay enrolled after the revocation takes the list in force along from its
    // enrollment: pointed at an upstream that never answers, it refuses the school too.
    let fresh_fx = fx.enroll_relay("ppr-02", &["0101"], &[], loopback(), free_udp_addr(), None);
    let fresh = fresh_fx.start().await;
    school.via_relay("ppr-02", fresh.addr);
    let err = try_connect(&school).await.unwrap_err().to_string();
    assert!(err.contains("revoked this station's certificate"), "{err}");
    fresh.shutdown().await;

    // The relay kept the list: restarted while the center and the office above it are
    // down, it refuses the revoked school from its first handshake.
    ppr.shutdown().await;
    mouo.shutdown().await;
    center.shutdown().await;
    let ppr = ppr_fx.start().await;
    school.via_relay("ppr-01", ppr.addr);
    let err = try_connect(&school).await.unwrap_err().to_string();
    assert!(err.contains("revoked this station's certificate"), "{err}");
    ppr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cut_off_from_the_center_is_carried_on_a_drive_one_folder_per_site() {
    use konvert_center::reserve::{self as center_reserve, ImportRequest};
    use konvert_edge::reserve;
    let fx = CenterFixture::new(loopback());
    let (t1, t2) = (fx.issue_token("0101"), fx.issue_token("0102"));
    let cfg = fx.register(&[(&t1, "0101"), (&t2, "0102")]);
    // The municipal office's link to the center is down for good: its upstream never answers.
    let relay_fx = fx.enroll_relay("mouo-01", &["0101", "0102"], &[], loopback(), free_udp_addr(), None);
    let relay = relay_fx.start().await;
    let mut schools = Vec::new();
    for site in ["0101", "0102"] {
        let mut school = fx.enroll(site, free_udp_addr());
        school.via_relay("mouo-01", relay.addr);
        let entry = school.seal_room("0001", 2, 40_000, 21);
        let err = push(&school.cfg, school.outbox.clone(), opts(4))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("held at relay mouo-01"), "{err}");
        schools.push((school, entry));
    }
    relay.shutdown().await;

    // The relay's operator carries what it holds: one folder per site, each a site's export.
    let drive = tempfile::tempdir().unwrap();
    let relay_outbox = konvert_replication::Outbox::open(&relay_fx.cfg.outbox_dir()).unwrap();
    let exported = reserve::export_relay(&relay_outbox, drive.path(), 1).unwrap();
    let folders: Vec<_> = exported.iter().map(|(f, r)| (f.clone(), r.written.len())).collect();
    assert_eq!(
        folders,
        vec![(drive.path().join("0101"), 1), (drive.path().join("0102"), 1)]
    );
    // The center (not running) takes each folder with the same checks as the network.
    for (folder, _) in &folders {
        let request = ImportRequest::new(folder, "A. Ivanova", "relay mouo-01's drive").unwrap();
        let outcome = center_reserve::import(&cfg, &request).unwrap();
        assert_eq!(outcome.receipted(), 1, "{outcome:?}");
    }
    // The receipts come back to the relay, which marks both delivered...
    let outcomes = reserve::import_relay_receipts(&fx.init.receipt_public, &relay_outbox, drive.path()).unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, reserve::ReceiptOutcome::Delivered { .. })));
    assert!(relay_outbox.pending().unwrap().is_empty());
    drop(relay_outbox);
    // ...and each school gets the center's own receipt from the relay on its next push,
    // with the center still out of reach.
    let relay = relay_fx.start().await;
    for (school, entry) in &mut schools {
        school.via_relay("mouo-01", relay.addr);
        let report = push(&school.cfg, school.outbox.clone(), opts(10)).await.unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
        let receipts = center_receipts(&fx, school);
        assert_eq!(receipts[0].body.digest, entry.offer.digest);
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refuses_to_start_without_a_revocation_list_or_with_an_older_one_put_back() {
    use konvert_center::stations::{self, StationSelector};
    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    fx.enroll("0101", free_udp_addr());
    // Upstream never answers: the relay judges stations by the list it keeps.
    let relay_fx = fx.enroll_relay("mouo-01", &["0101"], &[], loopback(), free_udp_addr(), None);
    let kept = relay_fx.cfg.data_dir.join(konvert_edge::relay::REVOCATION_FILE);
    let before = std::fs::read(&kept).unwrap();
    assert_eq!(
        before,
        std::fs::read(&cfg.crl).unwrap(),
        "enroll-relay brings the center's list"
    );
    stations::revoke(
        &cfg,
        &StationSelector::Site("0101".into()),
        "laptop stolen",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    // The relay took the newer list (as its forwarder would from upstream) and ran with it.
    std::fs::copy(&cfg.crl, &kept).unwrap();
    relay_fx.start().await.shutdown().await;

    std::fs::write(&kept, &before).unwrap();
    let e = match konvert_edge::relay::serve(&relay_fx.cfg).await {
        Ok(_) => panic!("a restarted relay put an older revocation list in force"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("older than the list already put in force"), "{e}");
    // check-config says the same before a start is tried.
    let e = konvert_edge::relay::check_revocation_list(&relay_fx.cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("older than the list already put in force"), "{e}");

    // Deleting the record of the list in force as well does not lift the floor: the relay
    // ran here (its outbox is there), so a missing record is refused, with the way back.
    let floor = relay_fx.cfg.data_dir.join("crl-in-force.toml");
    std::fs::remove_file(&floor).unwrap();
    let e = match konvert_edge::relay::serve(&relay_fx.cfg).await {
        Ok(_) => panic!("a relay whose record of the list in force was deleted put an older list in force"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("crl-in-force.toml is missing"), "{e}");
    assert!(
        e.contains("copy the center's current list") && !e.contains("delete"),
        "{e}"
    );
    let e = konvert_edge::relay::check_revocation_list(&relay_fx.cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("crl-in-force.toml is missing"), "{e}");
    // The way back the message gives: the center's current list and its record.
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    stations::renew_crl(&cfg, time::OffsetDateTime::now_utc()).unwrap();
    std::fs::copy(&cfg.crl, &kept).unwrap();
    std::fs::copy(cfg.data_dir.join("crl-in-force.toml"), &floor).unwrap();
    relay_fx.start().await.shutdown().await;

    std::fs::remove_file(&kept).unwrap();
    let e = match konvert_edge::relay::serve(&relay_fx.cfg).await {
        Ok(_) => panic!("a relay started without a revocation list"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("no station revocation list") && e.contains("enroll-relay"),
        "{e}"
    );

    // A center without a list enrolls no relay (it would not start), and says what to do.
    std::fs::remove_file(&cfg.crl).unwrap();
    let facts = konvert_center::provision::CenterFacts {
        address: "127.0.0.1:9".into(),
        name: "center.konvert".into(),
        recipient_public: fx.recipient.public_key(),
        receipt_public: fx.init.receipt_public,
    };
    let enrollment = konvert_center::provision::RelayEnrollment {
        relay: "mouo-02".into(),
        carries: vec!["0101".into()],
        downstream_relays: vec![],
        listen: loopback(),
    };
    let out = fx.root.path().join("relays/mouo-02");
    let e = konvert_center::provision::enroll_relay(&fx.center_dir(), &enrollment, &facts, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("renew-crl"), "{e}");
    assert!(!out.join("station.pem").exists(), "nothing issued");
}
