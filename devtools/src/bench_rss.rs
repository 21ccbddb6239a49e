//! The memory rows: the edge's peak RSS sending one large packet (the edge in its own
//! process, so the figure is the edge's alone), and the center's with many stations
//! connected and sending at once.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::now_unix_ms;
use anyhow::Context;
use konvert_crypto::token::TokenFile;
use konvert_edge::push::PushEvent;
use konvert_edge::{push, seal_room, PushOptions};
use konvert_replication::Outbox;

use crate::bench::{Rig, BENCH_PIN};
use crate::bench_replication::{work_dir, Options};
use crate::bench_table::{Row, RowsResult};
use crate::rooms::write_random_file;

/// The edge row.
pub const ROW_EDGE: (&str, &str) = ("edge peak RSS sending one large packet", "≤ 100 MB");
/// The center row.
pub const ROW_CENTER: (&str, &str) = ("center peak RSS, many stations sending at once", "≤ 250 MB");

/// Set in a `konvert` process's environment, it prints `peak_rss_bytes=<n>` to stderr as
/// it exits (see main.rs): how the benchmark learns a child's peak.
pub const REPORT_PEAK_RSS_ENV: &str = "KONVERT_REPORT_PEAK_RSS";
const PIN_ENV: &str = "KONVERT_BENCH_PIN";

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Runs `konvert <args>` as a child and returns its peak RSS as it reported it at exit.
fn peak_of_child(args: &[&std::ffi::OsStr]) -> anyhow::Result<u64> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .env(REPORT_PEAK_RSS_ENV, "1")
        .env(PIN_ENV, BENCH_PIN)
        .stdin(Stdio::null())
        .output()
        .context("running a konvert child process")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "`konvert {}` failed: {}",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
        stderr.trim()
    );
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_bytes=")?.trim().parse().ok())
        .context("the child did not report its peak RSS")
}

/// One packet of 2 GB (quick: 200 MB): sealed by `konvert edge seal`, then sent by
/// `konvert edge push`, each its own process; the figure is the push's peak RSS.
pub async fn edge(opts: &Options) -> RowsResult {
    let size: usize = if opts.quick { 200_000_000 } else { 2_000_000_000 };
    let (_temp, root) = work_dir(opts, "edge-rss")?;
    let rig = Rig::new(&root, false)?;
    let room_dir = root.join("scans/0001");
    tokio::task::block_in_place(|| write_random_file(&room_dir, "scan.bin", 7, size))?;
    let config = rig.site_toml.as_os_str();
    let seal_peak = tokio::task::block_in_place(|| {
        peak_of_child(&[
            "edge".as_ref(),
            "seal".as_ref(),
            "--config".as_ref(),
            config,
            "--room-dir".as_ref(),
            room_dir.as_os_str(),
            "--room".as_ref(),
            "0001".as_ref(),
            "--date".as_ref(),
            "2026-06-01".as_ref(),
            "--pin-env".as_ref(),
            PIN_ENV.as_ref(),
        ])
    })
    .context("sealing")?;
    // The scans are not needed any more: free the disk before the center stores its copy.
    std::fs::remove_dir_all(&room_dir)?;
    let center = rig.start_center()?;
    let started = Instant::now();
    let push_peak = tokio::task::block_in_place(|| {
        peak_of_child(&[
            "edge".as_ref(),
            "push".as_ref(),
            "--config".as_ref(),
            config,
            "--max-wait".as_ref(),
            "900".as_ref(),
        ])
    })
    .context("pushing")?;
    let took = started.elapsed();
    let center_peak = center.peak_rss();
    drop(center);
    Ok(vec![Row::measured(
        ROW_EDGE.0,
        ROW_EDGE.1,
        format!("{:.0} MB", mb(push_peak)),
        Some(push_peak <= 100_000_000),
        format!(
            "one {:.1} GB packet; `konvert edge push` in its own process (VmHWM at exit), {:.0} MB/s; \
             sealing it (`konvert edge seal`, own process): {:.0} MB; the center receiving it: {}",
            size as f64 / 1e9,
            size as f64 / 1e6 / took.as_secs_f64().max(1e-9),
            mb(seal_peak),
            center_peak.map_or("n/a".into(), |b| format!("{:.0} MB", mb(b)))
        ),
    )])
}

/// The center's `konvert_station_connections` gauge, from its `/metrics`.
fn open_connections(metrics: SocketAddr) -> anyhow::Result<u64> {
    let mut s = std::net::TcpStream::connect_timeout(&metrics, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.take(1 << 20).read_to_string(&mut body)?;
    body.lines()
        .find_map(|l| {
            l.strip_prefix("konvert_station_connections ")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|v| v as u64)
        .context("no konvert_station_connections in the center's /metrics")
}

/// 100 stations (quick: 20), each its own QUIC connection from this process, each sending
/// one 3 MB packet; all stay connected until every packet is receipted.
pub async fn center(opts: &Options) -> RowsResult {
    let (stations, packet_bytes) = if opts.quick { (20, 3_000_000) } else { (100, 3_000_000) };
    let (_temp, root) = work_dir(opts, "center-rss")?;
    let rig = Rig::new(&root, true)?;
    let metrics = rig.metrics.context("the rig has no metrics address")?;
    let signer = Arc::new(TokenFile::read(rig.cfg.token_file()?)?.unlock(BENCH_PIN)?);
    // One identity (station 0101) for every connection: the center serves several
    // connections of a station at once; each has its own outbox and room.
    let mut sites = Vec::new();
    for i in 0..stations {
        let room = format!("{:04}", i + 1);
        let mut cfg = rig.cfg.clone();
        cfg.data_dir = root.join("stations").join(&room);
        let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
        let dir = root.join("scans").join(&room);
        write_random_file(&dir, "scan.bin", 2000 + i as u64, packet_bytes)?;
        let packet = rig.packet(&room)?;
        let (c, o, s) = (cfg.clone(), outbox.clone(), signer.clone());
        tokio::task::spawn_blocking(move || seal_room(&c, &o, &*s, &dir, packet, now_unix_ms())).await??;
        sites.push((cfg, outbox));
    }
    let mut center = rig.start_center()?;
    let more = Arc::new(AtomicBool::new(true));
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut pushes = tokio::task::JoinSet::new();
    for (cfg, outbox) in sites {
        let d = delivered.clone();
        let opts = PushOptions {
            max_wait: Duration::from_secs(600),
            on_event: Arc::new(move |ev| {
                if let PushEvent::Delivered { .. } = ev {
                    d.fetch_add(1, Ordering::Relaxed);
                }
            }),
            more_coming: Some(more.clone()),
            expected: None,
        };
        pushes.spawn(async move { push(&cfg, outbox, opts).await });
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut most_open = 0;
    while delivered.load(Ordering::Relaxed) < stations {
        if let Ok(n) = tokio::task::spawn_blocking(move || open_connections(metrics)).await? {
            most_open = most_open.max(n);
        }
        if Instant::now() > deadline || !center.is_running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Ok(n) = tokio::task::spawn_blocking(move || open_connections(metrics)).await? {
        most_open = most_open.max(n);
    }
    anyhow::ensure!(center.is_running(), "the center process ended during the run");
    let center_peak = center.peak_rss();
    more.store(false, Ordering::Release);
    let mut failed = Vec::new();
    while let Some(r) = pushes.join_next().await {
        if let Err(e) = r? {
            failed.push(e.to_string());
        }
    }
    drop(center);
    let got = delivered.load(Ordering::Relaxed);
    anyhow::ensure!(
        got == stations && failed.is_empty(),
        "{got} of {stations} packets receipted; {} pushes failed: {}",
        failed.len(),
        failed.first().map_or("", String::as_str)
    );
    let peak = center_peak.context("cannot read the center's peak RSS from /proc")?;
    Ok(vec![Row::measured(
        ROW_CENTER.0,
        ROW_CENTER.1,
        format!("{:.0} MB", mb(peak)),
        Some(peak <= 250_000_000),
        format!(
            "{stations} QUIC connections from one process (one station identity), each sending one {:.0} MB packet, \
             all kept open until every receipt came; the center's konvert_station_connections reached {most_open}",
            packet_bytes as f64 / 1e6
        ),
    )])
}
