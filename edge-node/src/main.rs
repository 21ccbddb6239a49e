//! `konvert-edge`: the exam site's node.

use std::process::ExitCode;

use clap::Parser;
use konvert_edge::cli::{run, EdgeCommand};

/// konvert's exam-site node: seals room packets and sends them to the regional center.
#[derive(Debug, Parser)]
#[command(name = "konvert-edge", version)]
struct Cli {
    /// Log lines as `text` or `json` (one object a line). The filter is RUST_LOG (or its
    /// older name KONVERT_LOG), e.g. RUST_LOG=debug.
    #[arg(long, global = true, default_value = "text")]
    log_format: konvert_replication::logging::LogFormat,
    #[command(subcommand)]
    command: EdgeCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    konvert_replication::logging::exit_quietly_on_closed_stdout();
    konvert_replication::logging::init(cli.log_format, "warn");
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("konvert-edge: {e}");
            ExitCode::FAILURE
        }
    }
}
