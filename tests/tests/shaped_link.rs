//! Delivery over a real shaped link: the center (a separate process) and the edge each in
//! a network namespace of their own, joined by a veth shaped with tbf at 8 Mbit/s both
//! ways. Every packet arrives with a verified receipt, no faster than the link allows,
//! and the packets in flight take turns on the link rather than finishing together.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2; where namespaces are not
//! permitted the test prints "SKIPPED: <reason>" to stderr and returns without asserting.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use konvert_devtools::netns::{LinkSpec, ShapedLink, Side};
use konvert_edge::push::PushEvent;
use konvert_edge::{push, PushOptions};
use konvert_replication::OutboxState;
use konvert_tests::{stored_files, CenterFixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_cross_a_tbf_shaped_link_between_namespaces_no_faster_than_its_rate() {
    let spec = LinkSpec::at_rate(8_000_000);
    let link = match ShapedLink::create(spec).unwrap() {
        Ok(link) => link,
        Err(skip) => {
            eprintln!("SKIPPED: shaped_link needs network namespaces: {}", skip.0);
            return;
        }
    };
    let addr = link.center_addr(4433);
    let fx = CenterFixture::new(addr);
    let token = fx.issue_token("0101");
    fx.register(&[(&token, "0101")]);
    let _center = link
        .spawn_center(env!("CARGO_BIN_EXE_konvert-test-center"), [&fx.init.config_path])
        .unwrap();
    let site = fx.enroll("0101", addr);
    let packets = 3;
    for r in 0..packets {
        site.seal_room(&format!("{:04}", r + 1), 2, 500_000, r as u64);
    }

    // When each packet was receipted, from the push's start.
    let delivered = Arc::new(Mutex::new(Vec::<(String, Duration)>::new()));
    let seen = delivered.clone();
    let started = Instant::now();
    let on_event = Arc::new(move |ev: PushEvent| {
        if let PushEvent::Delivered { packet_id, .. } = ev {
            seen.lock().unwrap().push((packet_id, started.elapsed()));
        }
    });
    let (cfg, outbox) = (site.cfg.clone(), site.outbox.clone());
    let report = link
        .run_in(Side::Edge, move || async move {
            push(
                &cfg,
                outbox,
                PushOptions {
                    max_wait: Duration::from_secs(60),
                    on_event,
                    ..Default::default()
                },
            )
            .await
        })
        .await
        .unwrap()
        .unwrap();

    assert_eq!(report.delivered, packets);
    assert_eq!(stored_files(&fx.center_dir()), packets);
    for e in site.outbox.entries().unwrap() {
        let OutboxState::Delivered { receipt } = &e.state else {
            panic!("{:?}", e.state)
        };
        receipt.verify_for(&fx.init.receipt_public, &e.offer).unwrap();
    }
    // The data really crossed the shaped veth, and the shaping held it back.
    let bytes = report.delivered_bytes;
    let edge = link.qdisc_stats(Side::Edge).unwrap();
    assert!(edge.sent_bytes >= bytes, "{edge:?} for {bytes} envelope bytes");
    assert!(edge.overlimits > 0, "tbf never made a packet wait: {edge:?}");
    // At most rate × t + one bucket can cross, so the transfer cannot have been faster
    // than this; on an unshaped veth 3 MB take a few milliseconds.
    let floor =
        Duration::from_secs_f64(bytes.saturating_sub(u64::from(spec.burst_bytes)) as f64 * 8.0 / spec.rate_bps as f64);
    assert!(
        report.elapsed >= floor,
        "{bytes} bytes in {:?}: faster than the link's {floor:?}",
        report.elapsed
    );
    // All three were in flight at once (push.parallel is 4), yet they took turns: rooms
    // arrive in order, the first well before the end. Shared evenly, all three would
    // finish together in the last moments.
    let delivered = delivered.lock().unwrap().clone();
    let order: Vec<&str> = delivered.iter().map(|(id, _)| id.as_str()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "receipted in the order they were sent");
    let first = delivered[0].1;
    assert!(
        first < report.elapsed.mul_f64(0.6),
        "the first room was receipted at {first:?} of {:?}",
        report.elapsed
    );
    eprintln!(
        "{:.1} MB in {:.2} s over {} Mbit/s (floor {:.2} s); edge tbf: {edge:?}",
        bytes as f64 / 1e6,
        report.elapsed.as_secs_f64(),
        spec.rate_bps / 1_000_000,
        floor.as_secs_f64()
    );
    eprintln!("receipted at {delivered:?}");
}
