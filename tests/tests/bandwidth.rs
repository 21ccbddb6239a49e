//! Bandwidth over real QUIC: the center's broker splits its ingress so the site with the
//! least slack goes first and hands a freed share on; an edge paces to its own link and
//! to the center's share; and a site sends its forms before its blanks.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use konvert_edge::cli::now_unix_ms;
use konvert_edge::push::PushEvent;
use konvert_edge::{push, seal_room, PushOptions};
use konvert_exam::{ExamKind, PacketKind, PacketRef};
use konvert_replication::driver;
use konvert_replication::schedule::DeadlineRisk;
use konvert_replication::{OutboxEntry, Share, SiteStatus};
use konvert_tests::{CenterFixture, SiteFixture, EXAM_DAY};

const GB: u64 = 1_000_000_000;

fn status(backlog_bytes: u64, deadline_unix_ms: u64) -> SiteStatus {
    SiteStatus {
        backlog_bytes,
        expected_bytes: 0,
        goodput_bytes_per_s: 0,
        link_bytes_per_s: 12_500_000,
        deadline_unix_ms,
        eta_unix_ms: 0,
        risk: DeadlineRisk::OnTrack,
        at_unix_ms: now_unix_ms(),
    }
}

/// Runs a site's bandwidth stream reporting `report`, keeping every share it is sent.
fn watch_shares(conn: quinn::Connection, report: SiteStatus) -> (Arc<Mutex<Vec<Share>>>, tokio::task::JoinHandle<()>) {
    let shares = Arc::new(Mutex::new(Vec::new()));
    let kept = shares.clone();
    let task = tokio::spawn(async move {
        let _ = driver::exchange_bandwidth(
            &conn,
            Arc::new(move || report.clone()),
            Arc::new(move |s| kept.lock().unwrap().push(s)),
        )
        .await;
    });
    (shares, task)
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn last_rate(shares: &Mutex<Vec<Share>>) -> Option<u64> {
    shares.lock().unwrap().last().map(|s| s.rate_bytes_per_s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_serves_the_least_slack_first_and_hands_a_freed_share_on() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (a, b) = (fx.issue_token("0101"), fx.issue_token("0202"));
    let mut cfg = fx.register(&[(&a, "0101"), (&b, "0202")]);
    cfg.ingress_mbit = Some(4.0); // 500,000 bytes/s for the whole region
    let capacity = 500_000;
    let center = konvert_center::serve(&cfg).await.unwrap();
    let (urgent, relaxed) = (fx.enroll("0101", center.addr), fx.enroll("0202", center.addr));
    let now = now_unix_ms();
    // Each has 1 GB to send; one must be through within the hour, the other has ten.
    let (u_shares, u_task) = watch_shares(urgent.connect(center.addr).await, status(GB, now + 3_600_000));
    let (r_shares, r_task) = watch_shares(relaxed.connect(center.addr).await, status(GB, now + 36_000_000));
    until("both sites to hold a share from one plan", || {
        center.metrics.site_share.with_label_values(&["0101"]).get() > 0
            && last_rate(&r_shares).is_some()
            && last_rate(&u_shares).is_some()
            && last_rate(&u_shares).unwrap() + last_rate(&r_shares).unwrap() >= capacity * 9 / 10
    })
    .await;
    let (u, r) = (last_rate(&u_shares).unwrap(), last_rate(&r_shares).unwrap());
    assert!(u + r <= capacity, "shares {u} + {r} exceed the capacity {capacity}");
    assert!(
        u >= capacity * 9 / 10,
        "the site an hour from its deadline gets the ingress: {u} of {capacity} (the other {r})"
    );
    let risk = u_shares.lock().unwrap().last().unwrap().risk;
    assert_ne!(
        risk,
        DeadlineRisk::OnTrack,
        "1 GB at 0.5 MB/s in an hour is not on track"
    );
    let text = center.metrics.render().unwrap();
    assert!(
        text.contains("konvert_site_share_bytes_per_second{site=\"0101\"}"),
        "{text}"
    );
    assert!(text.contains("konvert_site_deadline_risk{site=\"0101\"}"), "{text}");

    // The urgent site leaves: its share goes to the other at the next plan.
    u_task.abort();
    until("the freed share to reach the other site", || {
        last_rate(&r_shares).is_some_and(|r| r >= capacity * 9 / 10)
    })
    .await;
    r_task.abort();
    center.shutdown().await;
}

/// Seals a room of `pages` × `page_bytes` as `kind`.
fn seal_kind(site: &SiteFixture, room: &str, kind: PacketKind, pages: usize, page_bytes: usize) -> OutboxEntry {
    // Incompressible pages, so the envelope is as large as the scans.
    let dir = site.dir.join("scans").join(format!("{room}-{kind:?}"));
    for p in 0..pages {
        let name = format!("page_{:04}.tif", p + 1);
        konvert_devtools::rooms::write_random_file(&dir, &name, kind as u64 * 100 + p as u64, page_bytes).unwrap();
    }
    let packet = PacketRef {
        site: site.cfg.site.clone(),
        date: EXAM_DAY.parse().unwrap(),
        exam: ExamKind::Ege,
        room: room.parse().unwrap(),
        kind,
    };
    seal_room(&site.cfg, &site.outbox, &site.signer, &dir, packet, now_unix_ms())
        .unwrap()
        .entry
}

/// What a push reported.
struct Pushed {
    elapsed: Duration,
    /// Packet ids in the order their receipts came.
    delivered: Vec<String>,
    /// Shares the center gave, bytes per second.
    shares: Vec<u64>,
    /// (backlog, ETA, deadline) of every schedule report.
    schedule: Vec<(u64, Option<u64>, Option<u64>)>,
}

/// Pushes and records what the push reported.
async fn push_recording(site: &SiteFixture, cfg: &konvert_edge::SiteConfig) -> Pushed {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let shares = Arc::new(Mutex::new(Vec::new()));
    let schedule = Arc::new(Mutex::new(Vec::new()));
    let (d, s, sc) = (delivered.clone(), shares.clone(), schedule.clone());
    let on_event = Arc::new(move |ev: PushEvent| match ev {
        PushEvent::Delivered { packet_id, .. } => d.lock().unwrap().push(packet_id),
        PushEvent::Share { rate_bytes_per_s, .. } => s.lock().unwrap().push(rate_bytes_per_s),
        PushEvent::Schedule {
            backlog_bytes,
            eta_unix_ms,
            deadline_unix_ms,
            ..
        } => sc.lock().unwrap().push((backlog_bytes, eta_unix_ms, deadline_unix_ms)),
        _ => {}
    });
    let started = Instant::now();
    let report = push(
        cfg,
        site.outbox.clone(),
        PushOptions {
            max_wait: Duration::from_secs(60),
            on_event,
            more_coming: None,
            expected: None,
        },
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let delivered = delivered.lock().unwrap().clone();
    let shares = shares.lock().unwrap().clone();
    let schedule = schedule.lock().unwrap().clone();
    Pushed {
        elapsed,
        delivered,
        shares,
        schedule,
    }
}

/// The least time `bytes` can take through a token bucket of `rate` whose burst is at most
/// a data chunk more than a quarter second of rate.
fn paced_floor(bytes: u64, rate: u64) -> Duration {
    let burst = (rate / 4).max(konvert_replication::frame::DATA_CHUNK as u64);
    Duration::from_secs_f64(bytes.saturating_sub(burst) as f64 / rate as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_paces_to_its_own_link_and_sends_forms_before_blanks() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let cfg = fx.register(&[(&token, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    // Blanks sealed first, the room's forms last: the forms still go first.
    let blanks = seal_kind(&site, "0001", PacketKind::Blanks, 2, 1_000_000);
    let forms = seal_kind(&site, "0001", PacketKind::Forms, 1, 600_000);
    let mut edge = site.cfg.clone();
    edge.push.link_mbit = Some(8.0); // 1,000,000 bytes/s
    edge.push.parallel = 1;
    let pushed = push_recording(&site, &edge).await;
    let elapsed = pushed.elapsed;
    assert_eq!(
        pushed.delivered,
        vec![forms.offer.packet_id.clone(), blanks.offer.packet_id.clone()]
    );
    let bytes = forms.offer.size + blanks.offer.size;
    // The operator was told where the whole backlog stands against its 23:59.
    let (backlog, eta, deadline) = pushed.schedule[0];
    assert_eq!(backlog, bytes, "the first report counts both packets");
    assert!(
        eta.is_some(),
        "an ETA from the configured link speed before any measurement"
    );
    assert_eq!(deadline, Some(forms.offer.deadline_unix_ms));
    let floor = paced_floor(bytes, 1_000_000);
    assert!(
        elapsed >= floor,
        "{bytes} bytes in {elapsed:?}: faster than the 8 Mbit/s link allows ({floor:?})"
    );
    eprintln!("{bytes} bytes paced to 8 Mbit/s in {elapsed:.2?} (floor {floor:.2?})");
    center.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_obeys_the_centers_share() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let mut cfg = fx.register(&[(&token, "0101")]);
    cfg.ingress_mbit = Some(8.0); // the whole center: 1,000,000 bytes/s
    let center = konvert_center::serve(&cfg).await.unwrap();
    let site = fx.enroll("0101", center.addr);
    let entry = seal_kind(&site, "0001", PacketKind::Blanks, 3, 1_000_000);
    let Pushed {
        elapsed,
        delivered: order,
        shares,
        ..
    } = push_recording(&site, &site.cfg).await;
    assert_eq!(order, vec![entry.offer.packet_id.clone()]);
    assert!(!shares.is_empty(), "the edge was given a share");
    assert!(
        shares.iter().all(|r| *r <= 1_000_000),
        "shares within the capacity: {shares:?}"
    );
    let floor = paced_floor(entry.offer.size, 1_000_000);
    assert!(
        elapsed >= floor,
        "{} bytes in {elapsed:?}: faster than the center's share allows ({floor:?})",
        entry.offer.size
    );
    eprintln!(
        "{} bytes at the center's share in {elapsed:.2?} (floor {floor:.2?}; shares {shares:?})",
        entry.offer.size
    );
    center.shutdown().await;
}
