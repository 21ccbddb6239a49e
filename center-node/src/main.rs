//! `konvert-center`: the regional center's node.

use std::process::ExitCode;

use clap::Parser;
use konvert_center::cli::{run, CenterCommand};

/// konvert's regional center node: receives sealed exam scans from exam sites.
#[derive(Debug, Parser)]
#[command(name = "konvert-center", version)]
struct Cli {
    #[command(subcommand)]
    command: CenterCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KONVERT_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("konvert-center: {e}");
            ExitCode::FAILURE
        }
    }
}
