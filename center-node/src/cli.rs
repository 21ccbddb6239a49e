//! The `konvert-center` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{AllowedMember, CenterConfig};
use crate::intake::now_ms;
use crate::preview;
use crate::provision::{self, CenterFacts};
use crate::test_packets::TestDesk;
use crate::{service, Result};
use konvert_replication::Verdict;

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
    /// Technical-readiness test packets: list, preview, confirm or reject (works while
    /// the center serves).
    TestPackets {
        /// What to do.
        #[command(subcommand)]
        action: TestPacketAction,
    },
}

/// What to do with test packets.
#[derive(Debug, Subcommand)]
pub enum TestPacketAction {
    /// List the test packets and their verdicts.
    List {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Open the test packets with the loader's decryption key and write an HTML page with
    /// a thumbnail and the quality facts of every page.
    Preview {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The center's decryption key (the offline loader's).
        #[arg(long)]
        key: PathBuf,
        /// Folder for index.html, thumbnails and the opened scans.
        #[arg(long)]
        out: PathBuf,
        /// Only this packet (envelope id or packet id); default: every packet not yet judged.
        #[arg(long)]
        packet: Option<String>,
        /// Include packets already judged.
        #[arg(long)]
        all: bool,
    },
    /// Confirm a test packet: print and scan quality are fit for the exam.
    Confirm {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// Envelope id, or packet id (newest version unless --version).
        #[arg(long)]
        packet: String,
        /// The packet version, with a packet id.
        #[arg(long)]
        version: Option<u32>,
        /// Who judged (name as on the readiness protocol).
        #[arg(long)]
        by: String,
        /// An optional note for the site.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reject a test packet; the site fixes what the reason says and sends a new one.
    Reject {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// Envelope id, or packet id (newest version unless --version).
        #[arg(long)]
        packet: String,
        /// The packet version, with a packet id.
        #[arg(long)]
        version: Option<u32>,
        /// Who judged.
        #[arg(long)]
        by: String,
        /// What is wrong, in words the site can act on.
        #[arg(long)]
        reason: String,
    },
}

fn test_packets(action: TestPacketAction) -> Result<()> {
    match action {
        TestPacketAction::List { config } => {
            let cfg = CenterConfig::load(&config)?;
            let packets = TestDesk::open(&cfg.data_dir)?.list()?;
            println!("{} test packet(s)", packets.len());
            for p in &packets {
                let r = &p.record;
                let state = match p.judged() {
                    Some(v) if v.reason.is_empty() => format!("{} by {}", v.verdict, v.judged_by),
                    Some(v) => format!("{} by {}: {}", v.verdict, v.judged_by, v.reason),
                    None => "waiting for a verdict".into(),
                };
                println!(
                    "  site {:<6} {:<40} v{:<3} {:>10} bytes  envelope {}…  {state}",
                    r.site,
                    r.packet_id,
                    r.version,
                    r.bytes,
                    &r.envelope_id[..16]
                );
            }
        }
        TestPacketAction::Preview {
            config,
            key,
            out,
            packet,
            all,
        } => {
            let cfg = CenterConfig::load(&config)?;
            let desk = TestDesk::open(&cfg.data_dir)?;
            let packets = match packet {
                Some(p) => vec![desk.find(&p, None)?],
                None => desk
                    .list()?
                    .into_iter()
                    .filter(|p| all || p.verdict.is_none())
                    .collect(),
            };
            let recipient = konvert_crypto::keyfile::read_recipient_key(&key)?;
            let members = crate::intake::members(&cfg)?;
            let (index, previews) = preview::render_previews(&cfg.data_dir, &packets, &recipient, &members, &out)?;
            for p in &previews {
                let r = &p.packet.record;
                match &p.pages {
                    Ok(pages) => println!(
                        "  {} v{} (site {}): {} page(s), {} with a quality problem",
                        r.packet_id,
                        r.version,
                        r.site,
                        pages.len(),
                        p.problem_pages()
                    ),
                    Err(e) => println!("  {} v{} (site {}): cannot open: {e}", r.packet_id, r.version, r.site),
                }
            }
            println!("preview of {} test packet(s): {}", previews.len(), index.display());
        }
        TestPacketAction::Confirm {
            config,
            packet,
            version,
            by,
            note,
        } => judge(&config, &packet, version, Verdict::Confirmed, &note, &by)?,
        TestPacketAction::Reject {
            config,
            packet,
            version,
            by,
            reason,
        } => judge(&config, &packet, version, Verdict::Rejected, &reason, &by)?,
    }
    Ok(())
}

fn judge(
    config: &std::path::Path,
    packet: &str,
    version: Option<u32>,
    verdict: Verdict,
    reason: &str,
    by: &str,
) -> Result<()> {
    let cfg = CenterConfig::load(config)?;
    let desk = TestDesk::open(&cfg.data_dir)?;
    let found = desk.find(packet, version)?;
    let key = konvert_crypto::keyfile::read_signing_key(&cfg.receipt_key)?;
    desk.judge(&found, verdict, reason, by, &key, now_ms())?;
    println!(
        "{} v{} (site {}) {verdict}; the site sees the verdict when its station next connects",
        found.record.packet_id, found.record.version, found.record.site
    );
    Ok(())
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
            let crl = crate::revocation::load_crl(&cfg)?;
            println!(
                "{}: ok — center {}, listen {}, {} member key(s)",
                config.display(),
                cfg.name,
                cfg.listen,
                cfg.members.len()
            );
            let state = if crl.is_expired(time::OffsetDateTime::now_utc()) {
                "EXPIRED: every station is refused; run `konvert keys renew-crl`"
            } else {
                "in force"
            };
            println!(
                "  station revocation list: {} revoked, valid until {} ({state}); {}",
                crl.revoked.len(),
                crl.next_update,
                if cfg.ca_key.is_some() {
                    "the center re-signs it before it expires"
                } else {
                    "no ca_key: the officers must renew it in time"
                }
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
                    "  {:<48} v{:<3} {:>12} bytes  site {}  signer {}{}",
                    b.packet_id,
                    b.version,
                    b.bytes,
                    b.site,
                    r.signer,
                    if r.test_packet { "  (test packet)" } else { "" }
                );
            }
        }
        CenterCommand::TestPackets { action } => test_packets(action)?,
    }
    Ok(())
}
