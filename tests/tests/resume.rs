//! Resume mid-packet: a center or an edge killed with SIGKILL in the middle of a large
//! packet loses nothing the center made durable, and the edge sends only the rest — at
//! most one segment plus one stream window again.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use konvert_edge::push::PushEvent;
use konvert_edge::PushOptions;
use konvert_replication::frame::DATA_CHUNK;
use konvert_replication::inbox::SEGMENT;
use konvert_replication::tls::STREAM_WINDOW;
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
    let start = || konvert_tests::start_listening(exe, &fx.init.config_path);
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
    let pushing = site.spawn_push(PushOptions {
        max_wait: Duration::from_secs(120),
        on_event,
        ..Default::default()
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
    // What the edge had handed to the connection may be ahead of what the center made
    // durable by less than a segment, plus one stream window in flight, plus the one chunk
    // the center was writing when it died.
    let handed_before_kill = offsets[..sent_before].iter().copied().max().unwrap();
    let bound = SEGMENT + u64::from(STREAM_WINDOW) + DATA_CHUNK as u64;
    assert!(
        handed_before_kill - resume_at <= bound,
        "handed {handed_before_kill} to the connection, resumed at {resume_at}: more than {bound} again"
    );
    eprintln!(
        "packet {size} bytes; center had {received_before_kill} when killed, the edge had handed \
         {handed_before_kill}; resumed at {resume_at}; sent again {} bytes (segment {SEGMENT} + stream window {STREAM_WINDOW})",
        handed_before_kill - resume_at
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

/// The edge's side of the same promise: an edge process killed with SIGKILL mid-packet
/// and started again resumes where the center's durable segments end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_mid_packet_resumes_from_the_centers_durable_length() {
    use std::io::BufRead;
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let entry = site.seal_room("0001", 8, 4_000_000, 9);
    let (size, envelope) = (entry.offer.size, site.outbox.envelope_path(&entry));
    let (toml, data_dir) = (site.dir.join("site.toml"), site.cfg.data_dir.clone());
    drop(site); // the edge process opens the outbox itself

    let exe = env!("CARGO_BIN_EXE_konvert-test-edge");
    let spawn = || {
        std::process::Command::new(exe)
            .arg(&toml)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Offsets the edge handed to the connection, read on a blocking thread.
    let offsets = |child: &mut std::process::Child, stop_past: Option<u64>| {
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut seen = Vec::new();
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(offset) = line.strip_prefix("progress ").and_then(|r| r.split(' ').next()) {
                seen.push(offset.parse::<u64>().unwrap());
                if stop_past.is_some_and(|half| seen[seen.len() - 1] > half) {
                    break;
                }
            }
        }
        seen
    };
    let mut edge = spawn();
    let first = tokio::task::block_in_place(|| offsets(&mut edge, Some(size / 2)));
    edge.kill().unwrap(); // SIGKILL
    edge.wait().unwrap();
    let handed_before_kill = *first.last().unwrap();

    // Wait until the center has noticed the broken stream and kept what it made durable.
    let mut tries = 0;
    while center.inbox.is_empty() && staged_bytes(&fx.center_dir()) == 0 && tries < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tries += 1;
    }
    let mut edge = spawn();
    let second = tokio::task::block_in_place(|| offsets(&mut edge, None));
    assert!(edge.wait().unwrap().success(), "the restarted edge delivered");
    let resume_at = *second.first().unwrap();
    assert!(resume_at > 0, "the restarted edge resumed instead of starting over");
    assert_eq!(resume_at % SEGMENT, 0, "resumed at a segment boundary");
    let bound = SEGMENT + u64::from(STREAM_WINDOW) + DATA_CHUNK as u64;
    assert!(
        handed_before_kill.saturating_sub(resume_at) <= bound,
        "handed {handed_before_kill}, resumed at {resume_at}: more than {bound} again"
    );
    eprintln!(
        "packet {size} bytes; edge had handed {handed_before_kill} to the connection when killed; \
         resumed at {resume_at}; sent again {} bytes",
        handed_before_kill.saturating_sub(resume_at)
    );
    assert_eq!(center.inbox.len(), 1);
    assert_eq!(stored_files(&fx.center_dir()), 1);
    let stored = std::fs::read(center.inbox.store_path(&entry.offer.digest)).unwrap();
    assert_eq!(stored, std::fs::read(&envelope).unwrap());
    center.shutdown().await;
    let outbox = konvert_replication::Outbox::open(&data_dir).unwrap();
    let OutboxState::Delivered { receipt } = &outbox.entries().unwrap()[0].state else {
        panic!("not delivered")
    };
    receipt.verify_for(&fx.init.receipt_public, &entry.offer).unwrap();
}
