//! Resume mid-packet: a center killed with SIGKILL in the middle of a large packet keeps
//! what it made durable, and the edge sends only the rest — at most one segment again.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use konvert_edge::push::PushEvent;
use konvert_edge::{push, PushOptions};
use konvert_replication::inbox::SEGMENT;
use konvert_replication::OutboxState;
use konvert_tests::{stored_files, CenterFixture};

fn staged_bytes(center_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(center_dir.join("data/staging"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_center_killed_mid_packet_resumes_losing_at_most_one_segment() {
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
    // One packet of ~48 MB of incompressible pages: twelve segments.
    let entry = site.seal_room("0001", 12, 4_000_000, 5);
    let size = entry.offer.size;
    assert!(size > 10 * SEGMENT);

    let exe = env!("CARGO_BIN_EXE_konvert-test-center");
    let start = || {
        let mut child = std::process::Command::new(exe)
            .arg(&fx.init.config_path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert!(line.contains("listening"), "{line}");
        child
    };
    let mut center = start();
    // Progress offsets, in order; the center is killed once the edge is past half.
    let offsets = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = offsets.clone();
    let on_event = Arc::new(move |ev: PushEvent| {
        if let PushEvent::Progress { offset, .. } = ev {
            seen.lock().unwrap().push(offset);
            if offset > size / 2 {
                let _ = tx.send(());
            }
        }
    });
    let (cfg, outbox) = (site.cfg.clone(), site.outbox.clone());
    let pushing = tokio::spawn(async move {
        push(
            &cfg,
            outbox,
            PushOptions {
                max_wait: Duration::from_secs(120),
                on_event,
                more_coming: None,
            },
        )
        .await
    });
    rx.recv().await.unwrap();
    center.kill().unwrap(); // SIGKILL
    center.wait().unwrap();
    let received_before_kill = staged_bytes(&fx.center_dir());
    let sent_before = offsets.lock().unwrap().len();
    assert!(
        received_before_kill > SEGMENT && received_before_kill < size,
        "the kill must land mid-packet: {received_before_kill} of {size}"
    );
    let mut center = start();
    let report = pushing.await.unwrap().unwrap();
    assert!(report.connections >= 2, "the edge reconnected by itself");
    center.kill().unwrap();
    center.wait().unwrap();

    // The second attempt started where the center's durable segments ended: at a segment
    // boundary, and no more than one segment before what the center had received.
    let offsets = offsets.lock().unwrap();
    let resume_at = offsets[sent_before..].iter().copied().min().unwrap();
    assert_eq!(resume_at % SEGMENT, 0, "resumed at a segment boundary");
    assert!(resume_at > 0, "something was resumed");
    assert!(
        received_before_kill - resume_at <= SEGMENT,
        "received {received_before_kill} before the kill, resumed at {resume_at}: more than one segment ({SEGMENT}) again"
    );
    eprintln!(
        "packet {size} bytes; center had {received_before_kill} when killed; resumed at {resume_at}; \
         sent again {} bytes (segment {SEGMENT})",
        received_before_kill - resume_at
    );
    // Exactly once, whole and verified.
    let inbox = konvert_replication::Inbox::open(&fx.center_dir().join("data")).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(stored_files(&fx.center_dir()), 1);
    assert_eq!(staged_bytes(&fx.center_dir()), 0, "no staging left behind");
    let stored = std::fs::read(inbox.store_path(&entry.offer.digest)).unwrap();
    assert_eq!(stored, std::fs::read(site.outbox.envelope_path(&entry)).unwrap());
    let entries = site.outbox.entries().unwrap();
    let OutboxState::Delivered { receipt } = &entries[0].state else {
        panic!("not delivered: {:?}", entries[0].state)
    };
    receipt.verify_for(&fx.init.receipt_public, &entry.offer).unwrap();
}
