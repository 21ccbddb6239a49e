//! The `konvert-center` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{AllowedMember, CenterConfig};
use crate::provision::{self, CenterFacts};
use crate::{service, Result};

/// `konvert-center` commands.
#[derive(Debug, Subcommand)]
pub enum CenterCommand {
    /// Create a new center: CA, certificate, receipt and recipient keys, center.toml.
    Init {
        /// Folder for the new center.
        #[arg(long)]
        dir: PathBuf,
        /// The center's name in its TLS certificate; edges connect to this name.
        #[arg(long, default_value = "center.konvert")]
        name: String,
        /// QUIC listen address.
        #[arg(long, default_value = "0.0.0.0:4433")]
        listen: SocketAddr,
        /// Prometheus /metrics listen address.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics: SocketAddr,
    },
    /// Issue a station certificate for a site and write a ready site folder.
    EnrollStation {
        /// The center's folder (made by `init`).
        #[arg(long)]
        center: PathBuf,
        /// The site code, e.g. 0101.
        #[arg(long)]
        site: String,
        /// The address the site connects to, e.g. rcoi.example:4433.
        #[arg(long)]
        address: String,
        /// Output folder to hand to the site.
        #[arg(long)]
        out: PathBuf,
    },
    /// Allow a member's token key to sign (until the key registry replaces this list).
    AllowMember {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// Who holds the token.
        #[arg(long)]
        name: String,
        /// The token's public key (64 hex digits).
        #[arg(long)]
        key: String,
        /// Sites the member may sign for (repeatable); none means any.
        #[arg(long)]
        site: Vec<String>,
    },
    /// Check center.toml and say what is wrong.
    CheckConfig {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Receive packets until stopped (Ctrl-C).
    Serve {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// List what the center holds.
    Status {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs one command.
pub async fn run(cmd: CenterCommand) -> Result<()> {
    match cmd {
        CenterCommand::Init {
            dir,
            name,
            listen,
            metrics,
        } => {
            let init = provision::init_center(&dir, &name, listen, Some(metrics))?;
            println!("center created: {}", init.config_path.display());
            println!("  recipient key (edges seal to it): {}", init.recipient_public);
            println!("  receipt key (edges verify receipts): {}", init.receipt_public);
            println!(
                "  decryption key for the offline loader: {} — move it off this machine",
                init.recipient_key_path.display()
            );
        }
        CenterCommand::EnrollStation {
            center,
            site,
            address,
            out,
        } => {
            let cfg = CenterConfig::load(&center.join("center.toml"))?;
            let facts = CenterFacts::read(&center, &address, &cfg.name)?;
            let path = provision::enroll_station(&center, &site, &facts, &out)?;
            println!("station for site {site} enrolled: {}", path.display());
            println!("  add the member token as member.token in that folder, then hand it to the site");
        }
        CenterCommand::AllowMember {
            config,
            name,
            key,
            site,
        } => {
            // Edit the file as written, so relative paths stay relative.
            let text = std::fs::read_to_string(&config).map_err(crate::Error::file(&config))?;
            let mut raw: CenterConfig = toml::from_str(&text).map_err(|e| crate::Error::Config {
                path: config.clone(),
                message: e.to_string(),
            })?;
            let member = AllowedMember { name, key, sites: site };
            member.verifying_key()?;
            raw.members.push(member);
            raw.save(&config)?;
            println!("{} member key(s) allowed", raw.members.len());
        }
        CenterCommand::CheckConfig { config } => {
            let cfg = CenterConfig::load(&config)?;
            println!(
                "{}: ok — center {}, listen {}, {} member key(s)",
                config.display(),
                cfg.name,
                cfg.listen,
                cfg.members.len()
            );
        }
        CenterCommand::Serve { config } => {
            let cfg = CenterConfig::load(&config)?;
            let center = service::serve(&cfg).await?;
            println!("center {} listening on {}", cfg.name, center.addr);
            if let Some(m) = center.metrics_addr {
                println!("metrics on http://{m}/metrics");
            }
            tokio::signal::ctrl_c().await?;
            center.shutdown().await;
        }
        CenterCommand::Status { config } => {
            let cfg = CenterConfig::load(&config)?;
            let inbox = konvert_replication::Inbox::open(&cfg.data_dir)?;
            let mut records = inbox.records()?;
            records.sort_by(|a, b| {
                a.receipt
                    .body
                    .received_at_unix_ms
                    .cmp(&b.receipt.body.received_at_unix_ms)
            });
            println!("{} packet version(s) stored", records.len());
            for r in records {
                let b = &r.receipt.body;
                println!(
                    "  {:<48} v{:<3} {:>12} bytes  site {}  signer {}",
                    b.packet_id, b.version, b.bytes, b.site, r.signer
                );
            }
        }
    }
    Ok(())
}
