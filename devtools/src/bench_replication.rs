//! `konvert bench`: one table of replication figures, each a ratio or an amount taken in
//! the same run (this machine's speed varies from run to run, a ratio much less).
//!
//! Each [`Source`] gives one or more rows. To add a row: add a variant, its measures in
//! [`Source::measures`], and its function in [`run_source`]; a source that fails or cannot
//! run on this machine turns into "not measured: <reason>" rows, never a made-up figure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::bench::{self, TransferBench, TransferFigures};
use crate::bench_floor::{CpuFloor, ROW_FLOOR};
use crate::bench_table::{Row, RowsResult, Table};
use crate::rsync_ssh::{self, LoopbackSshd, RSYNC_WITH_FSYNC};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// A fast smoke run: smaller sizes, same rows.
    pub quick: bool,
    /// Work folder (default: a temporary one under /tmp).
    pub dir: Option<PathBuf>,
    /// Only these sources (default: all).
    pub only: Vec<Source>,
}

/// A source of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// konvert on loopback against rsync over ssh with --fsync, and against the disk.
    Loopback,
    /// kill -9 of the center at random moments during a transfer.
    KillCenter,
    /// The edge's peak RSS sending one large packet.
    EdgeRss,
    /// The center's peak RSS with many stations connected at once.
    CenterRss,
    /// A 20 Mbit/s link shaped with netns + tbf (needs root; `bench network`'s row).
    ShapedLink,
    /// Through the impairment proxy at 2 % loss (`bench network`'s row).
    LossProxy,
    /// Extension point: a region's exam day simulated.
    RegionDay,
    /// The center's monitoring page for 68 sites and 2,000 rooms.
    MonitorPage,
}

/// The loopback vs rsync row.
pub const ROW_RSYNC: (&str, &str) = ("konvert ÷ rsync over ssh --fsync, loopback, same files", "≥ 2.5×");
/// The shaped-link row.
pub const ROW_SHAPED: (&str, &str) = (
    "konvert goodput on a 20 Mbit/s link (netns + veth + tbf) ÷ link rate",
    "≥ 95 %",
);
/// The lossy-link row.
pub const ROW_LOSSY: (&str, &str) = (
    "konvert goodput through the proxy at 2 % loss each way, 50 ms RTT ÷ same path without loss",
    "≥ 80 %",
);
/// The region-day rows (one per scenario).
pub const ROW_REGION: (&str, &str) = (
    "region exam day in virtual time: sites missing 23:59, FIFO / konvert",
    "konvert misses none where feasible",
);
/// The transport-alone row.
pub const ROW_TRANSPORT: (&str, &str) = (
    "— its transport alone (mutual-TLS QUIC on loopback, no disk, no sealing) ÷ rsync",
    "",
);
/// The disk row.
pub const ROW_DISK: (&str, &str) = (
    "konvert ÷ this disk's fsync'd write speed (the faster of 1 and 4 writers)",
    "",
);

/// The loopback source's rows, in order.
const LOOPBACK_ROWS: &[(&str, &str)] = &[ROW_RSYNC, ROW_TRANSPORT, ROW_FLOOR, ROW_DISK];

impl Source {
    /// Every source, in table order.
    pub const ALL: [Source; 8] = [
        Source::Loopback,
        Source::KillCenter,
        Source::EdgeRss,
        Source::CenterRss,
        Source::ShapedLink,
        Source::LossProxy,
        Source::RegionDay,
        Source::MonitorPage,
    ];

    /// The rows this source gives: (measure, goal).
    pub fn measures(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Source::Loopback => LOOPBACK_ROWS,
            Source::KillCenter => &[crate::bench_kill::ROW_RESENT, crate::bench_kill::ROW_LOSS],
            Source::EdgeRss => &[crate::bench_rss::ROW_EDGE],
            Source::CenterRss => &[crate::bench_rss::ROW_CENTER],
            Source::ShapedLink => &[ROW_SHAPED],
            Source::LossProxy => &[ROW_LOSSY],
            Source::RegionDay => &[ROW_REGION],
            Source::MonitorPage => &[crate::bench_monitor::ROW_MONITOR],
        }
    }
}

/// Runs the sources asked for and returns the table.
pub async fn run(opts: &Options) -> Table {
    let mut table = Table::new();
    let sources: Vec<Source> = if opts.only.is_empty() {
        Source::ALL.to_vec()
    } else {
        Source::ALL.into_iter().filter(|s| opts.only.contains(s)).collect()
    };
    for source in sources {
        eprintln!("bench: {source:?} …");
        let started = Instant::now();
        run_source(source, opts, &mut table).await;
        eprintln!("bench: {source:?} done in {:.0} s", started.elapsed().as_secs_f64());
    }
    table
}

/// The work folder for one source: under `opts.dir` if given, else a fresh temporary one.
pub(crate) fn work_dir(opts: &Options, name: &str) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match &opts.dir {
        Some(d) => {
            let p = d.join(name);
            std::fs::create_dir_all(&p)?;
            Ok((None, p))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(&format!("konvert-bench-{name}-"))
                .tempdir()?;
            let p = t.path().to_owned();
            Ok((Some(t), p))
        }
    }
}

async fn run_source(source: Source, opts: &Options, table: &mut Table) {
    let measures = source.measures();
    match source {
        Source::Loopback => loopback(opts, table).await,
        Source::KillCenter => table.add(measures, crate::bench_kill::run(opts).await),
        Source::EdgeRss => table.add(measures, crate::bench_rss::edge(opts).await),
        Source::CenterRss => table.add(measures, crate::bench_rss::center(opts).await),
        Source::ShapedLink => table.add(measures, shaped_link(opts).await),
        Source::LossProxy => table.add(measures, lossy_link(opts).await),
        Source::RegionDay => table.add(measures, region_day(opts)),
        Source::MonitorPage => table.add(measures, crate::bench_monitor::run()),
    }
}

/// The region-day simulation (`konvert simulate region`): every scenario, FIFO against
/// konvert's scheduler and broker, with the feasibility bound.
fn region_day(opts: &Options) -> RowsResult {
    use crate::simulate::{self, Scenario};
    let scenarios = if opts.quick {
        vec![Scenario::region(2_500), Scenario::zones_reserve(2_500)]
    } else {
        vec![
            Scenario::region(2_500),
            Scenario::region(16_000),
            Scenario::zones_reserve(16_000),
        ]
    };
    let mut rows = Vec::new();
    for s in &scenarios {
        let r = simulate::run(s)?;
        let met = r.konvert.sites_missing_feasible == 0;
        rows.push(Row::measured(
            format!("{} — {}", ROW_REGION.0, r.scenario.name),
            ROW_REGION.1,
            format!("{} / {}", r.fifo.sites_missing, r.konvert.sites_missing),
            Some(met),
            format!(
                "{} sites, {:.1} GB, bound: {}; forms p95 {:.0} s / {:.0} s; simulated in {:.1} s",
                r.site_count,
                r.total_bytes as f64 / 1e9,
                if r.feasible { "feasible" } else { "not feasible" },
                r.fifo.forms_latency_p95_s,
                r.konvert.forms_latency_p95_s,
                r.wall_ms as f64 / 1000.0
            ),
        ));
    }
    Ok(rows)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// One konvert transfer, then rsync of the same scan files, the transport alone, the
/// design's CPU floor and the disk's own fsync'd write speed, in the same folder and run.
async fn loopback(opts: &Options, table: &mut Table) {
    let (packets, packet_bytes) = if opts.quick { (40, 3_000_000) } else { (300, 3_000_000) };
    let result: anyhow::Result<(PathBuf, Option<tempfile::TempDir>, TransferFigures)> = async {
        let (temp, root) = work_dir(opts, "loopback")?;
        let b = TransferBench {
            packets,
            packet_bytes,
            parallel: PARALLEL,
            sealers: 2,
            dir: Some(root.clone()),
        };
        let f = bench::transfer(&b).await.context("konvert transfer")?;
        Ok((root, temp, f))
    }
    .await;
    let (root, _temp, konvert) = match result {
        Ok(r) => r,
        Err(e) => {
            table.add(LOOPBACK_ROWS, Err(e));
            return;
        }
    };
    let scan_bytes = (packets * packet_bytes) as u64;
    let konvert_mbps = mbps(scan_bytes, konvert.total);
    let what = format!(
        "{packets} × {:.0} MB random, sealed, sent, fsynced, receipted: konvert {konvert_mbps:.0} MB/s ({:.1} s, \
         the last seal done at {:.1} s)",
        packet_bytes as f64 / 1e6,
        konvert.total.as_secs_f64(),
        konvert.seal.as_secs_f64()
    );
    let rsync = tokio::task::block_in_place(|| rsync_row(&root, scan_bytes, &konvert, &what));
    let rsync_took = rsync.as_ref().ok().map(|(_, took)| *took);
    table.add(&[ROW_RSYNC], rsync.map(|(rows, _)| rows));
    let transport = transport_row(scan_bytes, rsync_took).await;
    let transport_cpu = transport.as_ref().ok().and_then(|(_, cpu)| *cpu);
    table.add(&[ROW_TRANSPORT], transport.map(|(rows, _)| rows));
    let disk =
        tokio::task::block_in_place(|| disk_row(&root.join("center"), packets, packet_bytes, PARALLEL, konvert_mbps));
    let disk_cpu = disk.as_ref().ok().and_then(|(_, cpu)| *cpu);
    let floor = (|| -> RowsResult {
        let rsync_took = rsync_took.context("rsync was not measured, so there is nothing to compare with")?;
        let transport = transport_cpu.context("the transport's CPU was not measured (no /proc/stat)")?;
        let write = disk_cpu.context("the disk probe's CPU was not measured (no /proc/stat)")?;
        let floor = CpuFloor {
            bytes: scan_bytes,
            cores: transport.cores,
            transport_core_s: transport.core_seconds,
            sha256_per_s: tokio::task::block_in_place(crate::bench_floor::sha256_speed),
            aes_gcm_per_s: tokio::task::block_in_place(crate::bench_floor::aes_gcm_speed)
                .context("ring refused an AES-256-GCM key")?,
            fsynced_write_core_s: write,
        };
        Ok(vec![floor.row(rsync_took, konvert.total)])
    })();
    table.add(&[ROW_FLOOR], floor);
    table.add(&[ROW_DISK], disk.map(|(rows, _)| rows));
}

/// Packets in flight in the loopback transfer, and writers in the disk probe.
const PARALLEL: usize = 4;

/// The rsync row, and how long rsync took.
fn rsync_row(
    root: &Path,
    scan_bytes: u64,
    konvert: &TransferFigures,
    what: &str,
) -> anyhow::Result<(Vec<Row>, Duration)> {
    let tools = rsync_ssh::ensure_tools()?;
    let version = rsync_ssh::rsync_version(&tools)?;
    let fsync = version >= RSYNC_WITH_FSYNC;
    let ssh_dir = root.join("sshd");
    std::fs::create_dir_all(&ssh_dir)?;
    let sshd = LoopbackSshd::start(&tools, &ssh_dir)?;
    let dest = root.join("rsync-dest");
    let cpu_at_start = crate::stats::MachineCpu::now();
    let started = Instant::now();
    sshd.rsync(&tools, &root.join("scans"), &dest, fsync)?;
    if !fsync {
        // Without --fsync the files may still be in the page cache: `sync -f` flushes the
        // filesystem, as close as an older rsync gets.
        let status = std::process::Command::new("sync").arg("-f").arg(&dest).status()?;
        anyhow::ensure!(status.success(), "sync -f {} failed", dest.display());
    }
    let took = started.elapsed();
    let rsync_cpu = crate::stats::MachineCpu::since(cpu_at_start);
    drop(sshd);
    let _ = std::fs::remove_dir_all(&dest);
    let rsync_mbps = mbps(scan_bytes, took);
    let ratio = mbps(scan_bytes, konvert.total) / rsync_mbps;
    let how = if fsync {
        format!("rsync {}.{}.{} -a --fsync", version.0, version.1, version.2)
    } else {
        format!(
            "rsync {}.{}.{} has no --fsync (needs 3.2.4): rsync -a, then sync -f, timed together",
            version.0, version.1, version.2
        )
    };
    let row = Row::measured(
        ROW_RSYNC.0,
        ROW_RSYNC.1,
        format!("{ratio:.2}×"),
        Some(ratio >= 2.5),
        format!(
            "{what}; {how} over ssh to its own sshd on 127.0.0.1: {rsync_mbps:.0} MB/s ({:.1} s){}",
            took.as_secs_f64(),
            cpu_bound(konvert, rsync_cpu, took)
        ),
    );
    Ok((vec![row], took))
}

/// The transport alone over the same bytes, against rsync's time in the same run: the
/// ceiling of any transfer built on it here. Also gives how busy the machine was.
async fn transport_row(
    bytes: u64,
    rsync_took: Option<Duration>,
) -> anyhow::Result<(Vec<Row>, Option<crate::stats::CpuSpan>)> {
    let rsync_took = rsync_took.context("rsync was not measured, so there is nothing to compare with")?;
    let f = crate::bench_quic::run(bytes, PARALLEL).await?;
    let ratio = f.mbps() / mbps(bytes, rsync_took);
    let cpu = f
        .cpu
        .map(|c| {
            format!(
                ", {:.2} of {} cores busy ({:.1} core-s)",
                c.busy_cores, c.cores, c.core_seconds
            )
        })
        .unwrap_or_default();
    let offload = match f.offload {
        Some((gso, gro)) => {
            format!("; quinn sends up to {gso} datagrams per system call (GSO) and takes {gro} per receive (GRO)")
        }
        None => String::new(),
    };
    let row = Row::measured(
        ROW_TRANSPORT.0,
        ROW_TRANSPORT.1,
        format!("{ratio:.2}×"),
        None,
        format!(
            "{:.0} MB in {PARALLEL} streams, `konvert bench quic`: {:.0} MB/s{cpu}{offload}; the transfer above adds \
             reading the scans, sealing (AES-256-GCM, SHA-256), the outbox, the center's SHA-256 check, writes and \
             fsyncs",
            bytes as f64 / 1e6,
            f.mbps(),
        ),
    );
    Ok((vec![row], f.cpu))
}

/// How busy the machine was in each run, and the most konvert could gain over rsync at its
/// own CPU cost: where both keep every core busy, the ratio is a matter of CPU per byte.
fn cpu_bound(konvert: &TransferFigures, rsync: Option<crate::stats::CpuSpan>, rsync_took: Duration) -> String {
    let (Some(k), Some(r)) = (konvert.cpu, rsync) else {
        return String::new();
    };
    let fastest_konvert = k.core_seconds / k.cores as f64;
    format!(
        "; machine busy: konvert {:.2} of {} cores ({:.1} core-s), rsync {:.2} of {} ({:.1} core-s); \
         with every core busy at its CPU cost, konvert would be {:.2}× rsync",
        k.busy_cores,
        k.cores,
        k.core_seconds,
        r.busy_cores,
        r.cores,
        r.core_seconds,
        rsync_took.as_secs_f64() / fastest_konvert.max(1e-9)
    )
}

/// Writes `files` files of `file_bytes` each into a folder under `dir`, each fsynced, as
/// the center does with what it receives, from `writers` threads at once (the center
/// writes every packet in flight at once, and a disk with several queues takes parallel
/// fsyncs much faster than one after another).
/// Returns the time taken and how busy the machine was meanwhile.
pub fn fsync_write_speed(
    dir: &Path,
    files: usize,
    file_bytes: usize,
    writers: usize,
) -> anyhow::Result<(Duration, Option<crate::stats::CpuSpan>)> {
    use rand::RngCore;
    use std::io::Write;
    let probe = dir.join("disk-probe");
    std::fs::create_dir_all(&probe)?;
    let mut data = vec![0u8; file_bytes];
    rand::thread_rng().fill_bytes(&mut data);
    let writers = writers.clamp(1, files.max(1));
    let write = |first: usize| -> std::io::Result<()> {
        let mut data = data.clone();
        for i in (first..files).step_by(writers) {
            let mut f = std::fs::File::create(probe.join(format!("{i:05}.bin")))?;
            // A different first byte per file, so no layer below can share blocks.
            data[0] = i as u8;
            f.write_all(&data)?;
            f.sync_all()?;
        }
        Ok(())
    };
    let cpu_at_start = crate::stats::MachineCpu::now();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers).map(|w| scope.spawn(move || write(w))).collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a disk writer panicked")))
        })
    })?;
    std::fs::File::open(&probe)?.sync_all()?;
    let took = started.elapsed();
    let cpu = crate::stats::MachineCpu::since(cpu_at_start);
    std::fs::remove_dir_all(&probe)?;
    Ok((took, cpu))
}

/// The disk row, and the fewest core-seconds one fsync'd write of the bytes took.
fn disk_row(
    center_dir: &Path,
    files: usize,
    file_bytes: usize,
    writers: usize,
    konvert_mbps: f64,
) -> anyhow::Result<(Vec<Row>, Option<f64>)> {
    let bytes = (files * file_bytes) as u64;
    let (serial_took, serial_cpu) = fsync_write_speed(center_dir, files, file_bytes, 1)?;
    let (parallel_took, parallel_cpu) = fsync_write_speed(center_dir, files, file_bytes, writers)?;
    let (serial, parallel) = (mbps(bytes, serial_took), mbps(bytes, parallel_took));
    let fraction = konvert_mbps / serial.max(parallel);
    let write_core_s = match (serial_cpu, parallel_cpu) {
        (Some(a), Some(b)) => Some(a.core_seconds.min(b.core_seconds)),
        _ => None,
    };
    let row = Row::measured(
        ROW_DISK.0,
        ROW_DISK.1,
        format!("{:.0} %", fraction * 100.0),
        None,
        format!(
            "the same {:.0} MB as {files} files of {:.0} MB, each fsynced, in the center's folder: \
             {serial:.0} MB/s one file after another, {parallel:.0} MB/s from {writers} writers at once{}",
            bytes as f64 / 1e6,
            file_bytes as f64 / 1e6,
            write_core_s
                .map(|c| format!(", the fewer core-s of the two: {c:.1}"))
                .unwrap_or_default()
        ),
    );
    Ok((vec![row], write_core_s))
}

fn network_bench(opts: &Options) -> crate::bench_network::NetworkBench {
    if opts.quick {
        crate::bench_network::NetworkBench::quick()
    } else {
        crate::bench_network::NetworkBench::full()
    }
}

/// `bench network`'s shaped-link figure as a row; "not measured" where namespaces are not allowed.
async fn shaped_link(opts: &Options) -> RowsResult {
    let b = network_bench(opts);
    let f = match crate::bench_network::shaped_link_goodput(&b).await? {
        Ok(f) => f,
        Err(skip) => return Ok(vec![Row::not_measured(ROW_SHAPED.0, ROW_SHAPED.1, skip.0)]),
    };
    let ratio = f.goodput_ratio();
    Ok(vec![Row::measured(
        ROW_SHAPED.0,
        ROW_SHAPED.1,
        format!("{:.1} %", ratio * 100.0),
        Some(ratio >= 0.95),
        format!(
            "{:.0} MB in {:.1} s, {:.2} Mbit/s; link busy {:.1} % of the time, envelope bytes per wire byte {:.1} % \
             (headers and AEAD tags at MTU 1500)",
            f.run.bytes as f64 / 1e6,
            f.run.elapsed.as_secs_f64(),
            f.run.goodput_bps() / 1e6,
            f.link_utilization() * 100.0,
            f.wire_efficiency() * 100.0
        ),
    )])
}

/// `bench network`'s lossy-link figure as a row.
async fn lossy_link(opts: &Options) -> RowsResult {
    let b = network_bench(opts);
    let f = crate::bench_network::lossy_link_goodput(&b, 0.02, Duration::from_millis(50)).await?;
    let ratio = f.ratio();
    Ok(vec![Row::measured(
        ROW_LOSSY.0,
        ROW_LOSSY.1,
        format!("{:.1} %", ratio * 100.0),
        Some(ratio >= 0.80),
        format!(
            "{:.0} MB capped at {:.0} Mbit/s: {:.2} Mbit/s with loss, {:.2} without; {} of {} datagrams dropped edge → center",
            f.lossy.bytes as f64 / 1e6,
            f.rate_bps as f64 / 1e6,
            f.lossy.goodput_bps() / 1e6,
            f.clean.goodput_bps() / 1e6,
            f.dropped_up.0,
            f.dropped_up.1
        ),
    )])
}
