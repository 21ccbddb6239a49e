//! `konvert`: the demo, benchmarks, key commands, and the edge and center commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use konvert_center::cli::CenterCommand;
use konvert_devtools::bench::{self, TransferBench};
use konvert_devtools::bench_network::NetworkBench;
use konvert_devtools::bench_replication::{self, Source};
use konvert_devtools::demo::{self, DemoOptions};
use konvert_edge::cli::EdgeCommand;
use konvert_ops::keys::KeysCommand;

/// konvert moves the day's exam scans from exam sites to the regional center, sealed,
/// before 23:59 local time.
#[derive(Debug, Parser)]
#[command(name = "konvert", version)]
struct Cli {
    /// Log lines as `text` or `json` (one object a line). The filter is RUST_LOG (or its
    /// older name KONVERT_LOG), e.g. RUST_LOG=debug.
    #[arg(long, global = true, default_value = "text")]
    log_format: konvert_replication::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a center and three exam sites on this machine over real QUIC and report.
    Demo {
        /// Keep the demo folder to look at afterwards.
        #[arg(long)]
        keep: bool,
        /// Use this folder (kept) instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rooms per site.
        #[arg(long, default_value_t = 4)]
        rooms: usize,
    },
    /// Benchmarks: with no subcommand, the replication table (each figure a ratio from the same run).
    Bench(BenchArgs),
    /// The regional center's commands (as `konvert-center`).
    #[command(subcommand)]
    Center(CenterCommand),
    /// The exam site's commands (as `konvert-edge`).
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Security officers' key commands.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Simulations in virtual time.
    #[command(subcommand)]
    Simulate(SimulateCommand),
}

#[derive(Debug, Subcommand)]
enum SimulateCommand {
    /// A region's exam day: sites missing 23:59 under a FIFO baseline and under konvert's
    /// scheduler and broker, with the feasibility bound.
    Region {
        /// Which scenario: region (one time zone), zones (three time zones, the center's main
        /// link down, reserve channel), or all (2,500 and 16,000 a day, and zones at 16,000).
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Participants a day (ignored by "all").
        #[arg(long, default_value_t = 16_000)]
        participants: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Override the center's ingress, Mbit/s.
        #[arg(long)]
        center_mbit: Option<f64>,
        /// Override the reserve channel's rate while the center's main link is down, Mbit/s.
        #[arg(long)]
        reserve_mbit: Option<f64>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Leave out the per-site tables.
        #[arg(long)]
        summary: bool,
    },
}

/// What `konvert simulate region` was asked.
#[derive(Debug)]
struct RegionArgs {
    scenario: String,
    participants: u32,
    seed: u64,
    center_mbit: Option<f64>,
    reserve_mbit: Option<f64>,
    json: bool,
    summary: bool,
}

fn simulate_region(a: RegionArgs) -> anyhow::Result<()> {
    let RegionArgs {
        scenario,
        participants,
        seed,
        center_mbit,
        reserve_mbit,
        json,
        summary,
    } = a;
    use konvert_devtools::simulate::{self, Scenario};
    let mut scenarios = match scenario.as_str() {
        "all" => Scenario::presets(),
        "region" => vec![Scenario::region(participants)],
        "zones" => vec![Scenario::zones_reserve(participants)],
        other => anyhow::bail!("unknown scenario {other:?}: use region, zones or all"),
    };
    let mut reports = Vec::new();
    for s in &mut scenarios {
        s.seed = seed;
        if let Some(m) = center_mbit {
            s.center_mbit = m;
        }
        if let (Some(m), Some(r)) = (reserve_mbit, &mut s.center_reserve) {
            r.mbit = m;
        }
        let r = simulate::run(s)?;
        if !json {
            simulate::print_table(&r, !summary);
            println!();
        }
        reports.push(r);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    table: TableArgs,
}

/// `konvert bench` / `konvert bench replication`.
#[derive(Debug, Clone, clap::Args)]
struct TableArgs {
    /// A fast smoke run: smaller transfers, the same rows.
    #[arg(long)]
    quick: bool,
    /// Only these rows' sources (repeat or comma-separate); default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Source>,
    /// Work folder (kept) instead of temporary ones under /tmp.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The replication table: konvert vs rsync and the disk, kill -9 of the center, peak RSS.
    Replication(TableArgs),
    /// Recognition: pages per second on one core (G4 TIFF, PNG) and accuracy on degraded pages.
    Recognition {
        /// Degraded pages per format (clean sets are a fifth of it).
        #[arg(long, default_value_t = 1000)]
        pages: usize,
    },
    /// The loader's processing of a sample day (decrypt, verify, recognize, register),
    /// projected to 16,000 participants, and decrypt + verify against raw ring.
    Process {
        /// Participants in the sample day.
        #[arg(long, default_value_t = 1000)]
        participants: usize,
        /// Participants per room.
        #[arg(long, default_value_t = 15)]
        per_room: usize,
    },
    /// Signature checks at the center: Ed25519 verifications/s and registry decisions/s.
    Signatures {
        /// Signatures to verify.
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        /// Tokens in the registry.
        #[arg(long, default_value_t = 5_000)]
        tokens: usize,
    },
    /// A room through the real `day` loop: last page in the hot folder → sealed envelopes.
    Day {
        /// Participants seated and present in the room.
        #[arg(long, default_value_t = 30)]
        participants: usize,
        /// The intake's settle time, ms (site.toml's [day] settle_ms).
        #[arg(long, default_value_t = 1500)]
        settle_ms: u64,
        /// Quiet time before a complete room is sealed, s ([day] quiet_seconds).
        #[arg(long, default_value_t = 0)]
        quiet_seconds: u64,
    },
    /// The `day` process's CPU: with an empty hot folder, and while it takes a room.
    DayCpu {
        /// Seconds to watch the idle day.
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
        /// Participants in the room taken after the idle spell.
        #[arg(long, default_value_t = 30)]
        participants: usize,
        /// Measure this `konvert-edge` binary (e.g. an older build) instead of this one.
        #[arg(long)]
        edge_bin: Option<PathBuf>,
    },
    /// Packets of random data, sealed, sent over QUIC to a center process, fsynced, receipted.
    Transfer {
        /// Number of packets.
        #[arg(long, default_value_t = 300)]
        packets: usize,
        /// Megabytes of scan data per packet.
        #[arg(long, default_value_t = 3.0)]
        size_mb: f64,
        /// Packets in flight.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Sealing stations working at once (a site seals rooms in parallel).
        #[arg(long, default_value_t = 2)]
        sealers: usize,
    },
    /// konvert's transport alone: mutual-TLS QUIC on loopback with konvert's settings, no
    /// disk, no sealing — what bounds any packet transfer on this machine.
    Quic {
        /// Megabytes to move.
        #[arg(long, default_value_t = 900)]
        mb: u64,
        /// Streams at once.
        #[arg(long, default_value_t = 4)]
        streams: usize,
    },
    /// The federal node applying a country's exam day (signed batches from every region)
    /// into PostgreSQL, against a plain COPY of the same rows in the same run.
    Mirror {
        /// Regions sending their day.
        #[arg(long, default_value_t = konvert_devtools::bench_mirror::COUNTRY_REGIONS)]
        regions: u8,
        /// Results per region.
        #[arg(long, default_value_t = konvert_devtools::bench_mirror::REGION_PARTICIPANTS)]
        participants: usize,
        /// Bytes of one result row.
        #[arg(long, default_value_t = 320)]
        row_bytes: usize,
        /// Most rows in a region's batch (default: the sender's default).
        #[arg(long)]
        batch_rows: Option<usize>,
        /// Most payload KiB in a region's batch (default: the sender's default).
        #[arg(long)]
        batch_kib: Option<usize>,
    },
    /// Goodput over bad links: a tbf-shaped veth between two network namespaces (needs
    /// root; says "skipped" otherwise), and the impairment proxy at 2 % loss, 50 ms RTT.
    Network {
        /// 8 MB per transfer instead of 128 MB.
        #[arg(long)]
        quick: bool,
        /// Packets in flight.
        #[arg(long)]
        parallel: Option<usize>,
        /// Link rate, Mbit/s.
        #[arg(long, default_value_t = 20)]
        rate_mbit: u64,
    },
    /// The mirror's lag: one region's closed exam to the federal node over QUIC, through
    /// the impairment proxy at 2 Mbit/s with 2 % loss each way, against T = x·m/v, and the
    /// same over a clean loopback (needs PostgreSQL 15's initdb and pg_ctl).
    MirrorLag {
        /// Participants in the closed exam (a quick run: 2000).
        #[arg(long, default_value_t = 16_000)]
        participants: usize,
        /// Payload bytes of one participant's result row.
        #[arg(long, default_value_t = 450)]
        row_bytes: usize,
        /// One-way delay of the poor link, ms.
        #[arg(long, default_value_t = 25)]
        delay_ms: u64,
    },
}

fn mb(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.0} MB", b as f64 / 1e6))
        .unwrap_or_else(|| "n/a".into())
}

async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Demo { keep, dir, rooms } => {
            let opts = DemoOptions {
                keep,
                dir,
                rooms,
                ..Default::default()
            };
            demo::run(&opts, true).await?;
        }
        Command::Bench(BenchArgs { command: None, table })
        | Command::Bench(BenchArgs {
            command: Some(BenchCommand::Replication(table)),
            ..
        }) => {
            let opts = bench_replication::Options {
                quick: table.quick,
                dir: table.dir,
                only: table.only,
            };
            println!(
                "konvert bench{}: one run, each figure against a reference measured in the same run",
                if opts.quick { " --quick (smoke sizes)" } else { "" }
            );
            let t = bench_replication::run(&opts).await;
            print!("{}", t.render());
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Recognition { pages }),
            ..
        }) => {
            tokio::task::block_in_place(|| konvert_devtools::bench_recognition::run(pages))?;
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Process { participants, per_room }),
            ..
        }) => {
            let b = konvert_devtools::bench_process::ProcessBench { participants, per_room };
            tokio::task::block_in_place(|| konvert_devtools::bench_process::run(&b))?;
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Signatures { count, tokens }),
            ..
        }) => {
            tokio::task::block_in_place(|| konvert_devtools::bench_signatures::run(count, tokens))?;
        }
        Command::Bench(BenchArgs {
            command:
                Some(BenchCommand::Day {
                    participants,
                    settle_ms,
                    quiet_seconds,
                }),
            ..
        }) => {
            konvert_devtools::bench_day::run(participants, settle_ms, quiet_seconds).await?;
        }
        Command::Bench(BenchArgs {
            command:
                Some(BenchCommand::DayCpu {
                    idle_seconds,
                    participants,
                    edge_bin,
                }),
            ..
        }) => {
            let b = konvert_devtools::bench_day_cpu::DayCpuBench {
                idle: Duration::from_secs(idle_seconds),
                participants,
                edge_bin,
            };
            tokio::task::block_in_place(|| konvert_devtools::bench_day_cpu::run(&b))?;
        }
        Command::Bench(BenchArgs {
            command:
                Some(BenchCommand::Transfer {
                    packets,
                    size_mb,
                    parallel,
                    sealers,
                }),
            ..
        }) => {
            let sealers = sealers.max(1);
            let b = TransferBench {
                packets,
                packet_bytes: (size_mb * 1e6) as usize,
                parallel,
                sealers,
                dir: None,
            };
            println!(
                "bench transfer: {packets} packets × {size_mb} MB, {sealers} sealing, {parallel} in flight, center in its own process"
            );
            let f = bench::transfer(&b).await?;
            let mbytes = f.bytes as f64 / 1e6;
            let seal = mbytes / f.seal.as_secs_f64().max(1e-9);
            let e2e = mbytes / f.total.as_secs_f64().max(1e-9);
            println!("| figure | value |");
            println!("|---|---|");
            println!("| envelope bytes | {mbytes:.1} MB |");
            println!(
                "| sealing (sign + encrypt + fsync), concurrent with pushing | {seal:.0} MB/s ({:.2} s) |",
                f.seal.as_secs_f64()
            );
            println!(
                "| end to end: first seal → last signed receipt | {e2e:.0} MB/s ({:.2} s) |",
                f.total.as_secs_f64()
            );
            println!(
                "| edge peak RSS (incl. test-data generation) | {} |",
                mb(f.edge_peak_rss)
            );
            println!("| center peak RSS | {} |", mb(f.center_peak_rss));
            if let Some(cpu) = f.cpu {
                println!(
                    "| machine busy, edge and center together | {:.2} of {} cores ({:.1} core-s, {:.1} ns per envelope byte) |",
                    cpu.busy_cores,
                    cpu.cores,
                    cpu.core_seconds,
                    cpu.core_seconds * 1e9 / (f.bytes.max(1) as f64)
                );
            }
            println!("(`konvert bench` compares with rsync over ssh --fsync measured in the same run)");
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Quic { mb, streams }),
            ..
        }) => {
            let f = konvert_devtools::bench_quic::run(mb.max(1) * 1_000_000, streams).await?;
            println!(
                "bench quic: {:.0} MB over {streams} streams, mutual-TLS QUIC on loopback, no disk, no sealing",
                f.bytes as f64 / 1e6
            );
            println!("| figure | value |");
            println!("|---|---|");
            println!("| payload | {:.0} MB/s ({:.2} s) |", f.mbps(), f.elapsed.as_secs_f64());
            if let Some(cpu) = f.cpu {
                println!(
                    "| machine busy | {:.2} of {} cores ({:.1} core-s, {:.1} ns per byte) |",
                    cpu.busy_cores,
                    cpu.cores,
                    cpu.core_seconds,
                    cpu.core_seconds * 1e9 / (f.bytes.max(1) as f64)
                );
            }
        }
        Command::Bench(BenchArgs {
            command:
                Some(BenchCommand::Network {
                    quick,
                    parallel,
                    rate_mbit,
                }),
            ..
        }) => {
            let mut b = if quick {
                NetworkBench::quick()
            } else {
                NetworkBench::full()
            };
            b.rate_bps = rate_mbit * 1_000_000;
            if let Some(p) = parallel {
                b.parallel = p;
            }
            konvert_devtools::bench_network::run(&b).await?;
        }
        Command::Bench(BenchArgs {
            command:
                Some(BenchCommand::Mirror {
                    regions,
                    participants,
                    row_bytes,
                    batch_rows,
                    batch_kib,
                }),
            ..
        }) => {
            let d = konvert_devtools::bench_mirror::MirrorBench::default();
            let b = konvert_devtools::bench_mirror::MirrorBench {
                regions,
                participants,
                row_bytes,
                batch_rows: batch_rows.unwrap_or(d.batch_rows),
                batch_bytes: batch_kib.map_or(d.batch_bytes, |k| k.saturating_mul(1024)),
            };
            println!(
                "konvert bench mirror: {regions} region(s) × {participants} results into the federal node's PostgreSQL, \
                 against COPY in the same run"
            );
            let figures = tokio::task::block_in_place(|| konvert_devtools::bench_mirror::run(&b));
            print!("{}", konvert_devtools::bench_mirror::rows(&b, &figures).render());
            figures?;
        }
        Command::Bench(BenchArgs {
            command:
                Some(BenchCommand::MirrorLag {
                    participants,
                    row_bytes,
                    delay_ms,
                }),
            ..
        }) => {
            let b = konvert_devtools::bench_mirror_lag::MirrorLagBench {
                participants,
                row_bytes,
                delay: std::time::Duration::from_millis(delay_ms),
                ..Default::default()
            };
            println!("{}", konvert_devtools::bench_mirror_lag::run(&b).await?.report());
        }
        Command::Center(cmd) => konvert_center::cli::run(cmd).await?,
        Command::Edge(cmd) => konvert_edge::cli::run(cmd).await?,
        Command::Keys(cmd) => konvert_ops::keys::run(cmd)?,
        Command::Simulate(SimulateCommand::Region {
            scenario,
            participants,
            seed,
            center_mbit,
            reserve_mbit,
            json,
            summary,
        }) => {
            let args = RegionArgs {
                scenario,
                participants,
                seed,
                center_mbit,
                reserve_mbit,
                json,
                summary,
            };
            tokio::task::block_in_place(|| simulate_region(args))?
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    konvert_replication::logging::exit_quietly_on_closed_stdout();
    konvert_replication::logging::init(cli.log_format, "warn");
    let result = run(cli.command).await;
    // A benchmark running this binary as a child learns its peak memory this way.
    if std::env::var_os(konvert_devtools::bench_rss::REPORT_PEAK_RSS_ENV).is_some() {
        if let Some(peak) = konvert_devtools::stats::peak_rss_bytes(std::process::id()) {
            eprintln!("peak_rss_bytes={peak}");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("konvert: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
