//! Delivery over a bad network, through the UDP impairment proxy: loss, delay, jitter,
//! reordering, duplication and a blackout, with a fixed seed. Every packet still arrives
//! exactly once with a verified receipt.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use konvert_devtools::impair::{ImpairProxy, Impairment};
use konvert_edge::{push, PushOptions};
use konvert_replication::OutboxState;
use konvert_tests::{stored_files, CenterFixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_arrive_once_through_loss_delay_reordering_duplication_and_a_blackout() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    // 50 ms round trip, 2 % loss each way, some jitter, reordering and duplicates, and the
    // path going dark for 1.5 s early in the transfer.
    let bad = Impairment {
        loss: 0.02,
        delay: Duration::from_millis(25),
        jitter: Duration::from_millis(5),
        reorder: 0.01,
        duplicate: 0.01,
        rate_bps: Some(40_000_000),
        blackouts: vec![(Duration::from_millis(1500), Duration::from_millis(3000))],
    };
    let proxy = ImpairProxy::start(center.addr, bad.clone(), bad, 7).await.unwrap();
    let site = fx.enroll("0101", proxy.addr);
    let packets = 3;
    for r in 0..packets {
        site.seal_room(&format!("{:04}", r + 1), 3, 600_000, r as u64);
    }
    let report = push(
        &site.cfg,
        site.outbox.clone(),
        PushOptions {
            max_wait: Duration::from_secs(120),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.delivered, packets);
    assert_eq!(center.inbox.len(), packets);
    assert_eq!(stored_files(&fx.center_dir()), packets);
    for e in site.outbox.entries().unwrap() {
        let OutboxState::Delivered { receipt } = &e.state else {
            panic!("{:?}", e.state)
        };
        receipt.verify_for(&fx.init.receipt_public, &e.offer).unwrap();
    }
    let s = &proxy.stats;
    let (dropped, received) = (
        s.dropped[0].load(Ordering::Relaxed),
        s.received[0].load(Ordering::Relaxed),
    );
    assert!(dropped > 0, "the proxy really dropped datagrams");
    eprintln!(
        "edge → center: {received} datagrams, {dropped} dropped; {:.1} MB in {:.1} s",
        report.delivered_bytes as f64 / 1e6,
        report.elapsed.as_secs_f64()
    );
    center.shutdown().await;
}
