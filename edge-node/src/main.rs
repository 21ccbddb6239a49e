//! `konvert-edge`: the exam site's node.

use std::process::ExitCode;

use clap::Parser;
use konvert_edge::cli::{run, EdgeCommand};

/// konvert's exam-site node: seals room packets and sends them to the regional center.
#[derive(Debug, Parser)]
#[command(name = "konvert-edge", version)]
struct Cli {
    #[command(subcommand)]
    command: EdgeCommand,
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
            eprintln!("konvert-edge: {e}");
            ExitCode::FAILURE
        }
    }
}
