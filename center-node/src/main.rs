//! `konvert-center`: the regional center's node.

use std::process::ExitCode;

use clap::Parser;
use konvert_center::cli::{run, CenterCommand};

/// konvert's regional center node: receives sealed exam scans from exam sites.
#[derive(Debug, Parser)]
#[command(name = "konvert-center", version)]
struct Cli {
    /// Log lines as `text` or `json` (one object a line). The filter is RUST_LOG (or its
    /// older name KONVERT_LOG), e.g. RUST_LOG=debug.
    #[arg(long, global = true, default_value = "text")]
    log_format: konvert_replication::logging::LogFormat,
    #[command(subcommand)]
    command: CenterCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    konvert_replication::logging::exit_quietly_on_closed_stdout();
    konvert_replication::logging::init(cli.log_format, "info");
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("konvert-center: {e}");
            ExitCode::FAILURE
        }
    }
}
