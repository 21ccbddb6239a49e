//! `konvert`: the demo, benchmarks, key commands, and the edge and center commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use konvert_center::cli::CenterCommand;
use konvert_edge::cli::EdgeCommand;
use konvert_ops::bench::{self, TransferBench};
use konvert_ops::bench_network::NetworkBench;
use konvert_ops::demo::{self, DemoOptions};
use konvert_ops::keys::KeysCommand;

/// konvert moves the day's exam scans from exam sites to the regional center, sealed,
/// before 23:59 local time.
#[derive(Debug, Parser)]
#[command(name = "konvert", version)]
struct Cli {
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
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The regional center's commands (as `konvert-center`).
    #[command(subcommand)]
    Center(CenterCommand),
    /// The exam site's commands (as `konvert-edge`).
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Security officers' key commands.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Recognition: pages per second on one core (G4 TIFF, PNG) and accuracy on degraded pages.
    Recognition {
        /// Degraded pages per format (clean sets are a fifth of it).
        #[arg(long, default_value_t = 1000)]
        pages: usize,
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
    /// Goodput over bad links: a tbf-shaped veth between two network namespaces (needs
    /// root; says "skipped" otherwise), and the impairment proxy at 2 % loss, 50 ms RTT.
    Network {
        /// 8 MB per transfer instead of 32 MB.
        #[arg(long)]
        quick: bool,
        /// Packets in flight.
        #[arg(long)]
        parallel: Option<usize>,
        /// Link rate, Mbit/s.
        #[arg(long, default_value_t = 20)]
        rate_mbit: u64,
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
        Command::Bench(BenchCommand::Recognition { pages }) => {
            tokio::task::block_in_place(|| konvert_ops::bench_recognition::run(pages))?;
        }
        Command::Bench(BenchCommand::Signatures { count, tokens }) => {
            tokio::task::block_in_place(|| konvert_ops::bench_signatures::run(count, tokens))?;
        }
        Command::Bench(BenchCommand::Day {
            participants,
            settle_ms,
            quiet_seconds,
        }) => {
            konvert_ops::bench_day::run(participants, settle_ms, quiet_seconds).await?;
        }
        Command::Bench(BenchCommand::Transfer {
            packets,
            size_mb,
            parallel,
            sealers,
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
                "| vs rsync over ssh with --fsync (issue's reference, 100 MB/s) | {:.2}× |",
                e2e / 100.0
            );
            println!(
                "| edge peak RSS (incl. test-data generation) | {} |",
                mb(f.edge_peak_rss)
            );
            println!("| center peak RSS | {} |", mb(f.center_peak_rss));
        }
        Command::Bench(BenchCommand::Network {
            quick,
            parallel,
            rate_mbit,
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
            konvert_ops::bench_network::run(&b).await?;
        }
        Command::Center(cmd) => konvert_center::cli::run(cmd).await?,
        Command::Edge(cmd) => konvert_edge::cli::run(cmd).await?,
        Command::Keys(cmd) => konvert_ops::keys::run(cmd)?,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KONVERT_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("konvert: {e:#}");
            ExitCode::FAILURE
        }
    }
}
