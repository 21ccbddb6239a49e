//! `konvert-center federal …` and `konvert-center mirror …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use konvert_mirror::{Node, Schedule};
use konvert_replication::service::{sd_notify, StopSignals};

use crate::mirror::config::{FederalConfig, RegionMirrorConfig};
use crate::mirror::metrics::NodeMetrics;
use crate::mirror::node::NoHooks;
use crate::mirror::region::{Exchanged, RegionMirror};
use crate::mirror::{federal, region};
use crate::{Error, Result};

/// The federal node's commands.
#[derive(Debug, Subcommand)]
pub enum FederalAction {
    /// Create a federal node: its CA, TLS certificate, mirror signing key, federal.toml.
    Init {
        /// Folder for the new node.
        #[arg(long)]
        dir: PathBuf,
        /// Its name in its TLS certificate; regions connect to this name.
        #[arg(long, default_value = "federal.konvert")]
        name: String,
        /// QUIC listen address.
        #[arg(long, default_value = "0.0.0.0:4500")]
        listen: SocketAddr,
        /// The federal records on PostgreSQL (postgresql://user@host/db).
        #[arg(long)]
        records_url: String,
    },
    /// Enroll a region: issue its certificate, take its mirror public key (its mirror.pub),
    /// and write what the region needs into --out (its mirror folder's pki/).
    EnrollRegion {
        /// federal.toml
        #[arg(long)]
        config: PathBuf,
        /// The region's code, 1–99.
        #[arg(long)]
        region: u8,
        /// The region's mirror.pub (from `konvert-center mirror init`).
        #[arg(long)]
        mirror_pub: PathBuf,
        /// Where the region's files go.
        #[arg(long)]
        out: PathBuf,
        /// Enroll a region enrolled before again: take its (new) mirror key, issue a new
        /// certificate, overwrite the files in --out.
        #[arg(long)]
        replace: bool,
    },
    /// Revoke a region: its connections are refused from the federal node's next start,
    /// whatever certificate they show (what it sent stays in the records; enrolling it
    /// again with --replace lifts this).
    RevokeRegion {
        /// federal.toml
        #[arg(long)]
        config: PathBuf,
        /// The region's code, 1–99.
        #[arg(long)]
        region: u8,
    },
    /// Take the regions' exchanges until stopped (Ctrl-C or SIGTERM).
    Serve {
        /// federal.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Check federal.toml and say what is wrong.
    CheckConfig {
        /// federal.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// The lag per region, kind and direction.
    Status {
        /// federal.toml
        #[arg(long)]
        config: PathBuf,
        /// The figures as JSON, for a program.
        #[arg(long)]
        json: bool,
    },
}

/// A region's mirror commands.
#[derive(Debug, Subcommand)]
pub enum MirrorAction {
    /// Create the region's mirror folder: its signing key, mirror.pub for the federal
    /// node, mirror.toml.
    Init {
        /// Folder for the region's mirror.
        #[arg(long)]
        dir: PathBuf,
        /// The region's code, 1–99.
        #[arg(long)]
        region: u8,
        /// The region's records on PostgreSQL.
        #[arg(long)]
        records_url: String,
        /// The federal node's address, host:port.
        #[arg(long)]
        federal: String,
        /// The federal node's name in its certificate.
        #[arg(long, default_value = "federal.konvert")]
        federal_name: String,
        /// The region's IANA time zone, which the schedule's period dates are in.
        #[arg(long, default_value = "Europe/Moscow")]
        time_zone: String,
    },
    /// Exchange with the federal node at every interval and at once when an exam is
    /// closed, until stopped.
    Run {
        /// mirror.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// One exchange now; fails, saying what is left, unless everything was receipted.
    Sync {
        /// mirror.toml
        #[arg(long)]
        config: PathBuf,
        /// Seconds to wait (default: sync_timeout_secs of mirror.toml).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// The lag per kind and direction.
    Status {
        /// mirror.toml
        #[arg(long)]
        config: PathBuf,
        /// The figures as JSON, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Check mirror.toml and say what is wrong.
    CheckConfig {
        /// mirror.toml
        #[arg(long)]
        config: PathBuf,
    },
}

/// Runs a federal command.
pub async fn federal(action: FederalAction) -> Result<()> {
    match action {
        FederalAction::Init {
            dir,
            name,
            listen,
            records_url,
        } => {
            let path = federal::init(&dir, &name, listen, &records_url)?;
            println!("federal node created: {}", path.display());
            println!(
                "  enroll each region: konvert-center federal enroll-region --config {} …",
                path.display()
            );
        }
        FederalAction::EnrollRegion {
            config,
            region,
            mirror_pub,
            out,
            replace,
        } => {
            federal::enroll_region(&config, region, &mirror_pub, &out, replace)?;
            println!("region {region:02} enrolled; its files are in {}", out.display());
            println!("  hand them to the region (its mirror folder's pki/); restart the federal node to take it");
        }
        FederalAction::RevokeRegion { config, region } => {
            if federal::revoke_region(&config, region)? {
                println!("region {region:02} revoked in {}", config.display());
                println!("  restart the federal node to refuse it; `enroll-region --replace` issues a new certificate");
            } else {
                return Err(crate::Error::Config {
                    path: config,
                    message: format!("region {region:02} is not enrolled here, or revoked already; nothing changed"),
                });
            }
        }
        FederalAction::Serve { config } => {
            let cfg = FederalConfig::load(&config)?;
            for warning in cfg.exposed_secrets(&config) {
                tracing::warn!("{warning}");
            }
            let schedule = cfg.schedule(&config)?;
            let mut signals = StopSignals::install()?;
            let metrics = NodeMetrics::new()?;
            let setup = federal::setup(&cfg, metrics.hooks())?;
            let running = federal::serve(&cfg, setup).await?;
            metrics.spawn_observer(cfg.records_url.clone(), Node::Federal, schedule, running.node.waker());
            if let Some(addr) = cfg.metrics_listen {
                let bound = metrics.serve(addr).await?;
                println!("metrics: http://{bound}/metrics");
            }
            println!(
                "federal node serving on {} ({} region(s){})",
                running.addr,
                cfg.regions.iter().filter(|r| !r.revoked).count(),
                revoked_note(&cfg)
            );
            sd_notify("READY=1");
            let signal = signals.recv().await;
            tracing::info!(signal, "stopping the federal node");
            sd_notify("STOPPING=1");
            running.stop().await;
        }
        FederalAction::Status { config, json } => {
            let cfg = FederalConfig::load(&config)?;
            let schedule = cfg.schedule(&config)?;
            print!(
                "{}",
                status_text(cfg.records_url, Node::Federal, &schedule, json).await?
            );
        }
        FederalAction::CheckConfig { config } => {
            let cfg = FederalConfig::load(&config)?;
            crate::mirror::identity::federal_server_config(&cfg)?;
            let schedule = cfg.schedule(&config)?;
            println!(
                "{}: ok — federal node {}, listen {}, {} region(s){}; lag measured against every {} now ({})",
                config.display(),
                cfg.name,
                cfg.listen,
                cfg.regions.iter().filter(|r| !r.revoked).count(),
                revoked_note(&cfg),
                crate::mirror_status::human_duration(schedule.interval_at(crate::intake::now_ms())),
                schedule.time_zone()
            );
            for warning in cfg.exposed_secrets(&config) {
                println!("  warning: {warning}");
            }
            for code in cfg.unpinned() {
                println!(
                    "  note: region {code:02} was enrolled before certificates were pinned, so any certificate of the \
                     federal CA for it is taken; enroll it again with `konvert-center federal enroll-region --replace`"
                );
            }
        }
    }
    Ok(())
}

/// ", and region(s) 05, 77 revoked" when some are.
fn revoked_note(cfg: &FederalConfig) -> String {
    let revoked: Vec<String> = cfg
        .regions
        .iter()
        .filter(|r| r.revoked)
        .map(|r| format!("{:02}", r.code))
        .collect();
    if revoked.is_empty() {
        String::new()
    } else {
        format!(", and region(s) {} revoked", revoked.join(", "))
    }
}

/// The status table (or its JSON) of node `me` (`mirror status`, `federal status`) at
/// this moment.
async fn status_text(records_url: String, me: Node, schedule: &Schedule, json: bool) -> Result<String> {
    let status = tokio::task::spawn_blocking(move || -> Result<_> {
        let records = Arc::new(konvert_records::PgRecords::connect(&records_url)?);
        Ok(konvert_records::PgMirror::open(records, me)?.status()?)
    })
    .await
    .map_err(|e| Error::Control(e.to_string()))??;
    let now = crate::intake::now_ms();
    Ok(if json {
        format!("{:#}\n", crate::mirror_status::render_json(&status, schedule, now))
    } else {
        crate::mirror_status::render(&status, schedule, now)
    })
}

/// Runs a region's mirror command.
pub async fn mirror(action: MirrorAction) -> Result<()> {
    match action {
        MirrorAction::Init {
            dir,
            region,
            records_url,
            federal,
            federal_name,
            time_zone,
        } => {
            let zone = konvert_mirror::ScheduleConfig {
                time_zone,
                ..Default::default()
            };
            // Checked before anything is written, so a typo leaves no half-made folder.
            Schedule::from_config(&zone).map_err(|e| Error::Control(format!("--time-zone: {e}")))?;
            let path = region::init(&dir, region, &records_url, &federal, &federal_name)?;
            let mut cfg = RegionMirrorConfig::read(&path)?;
            cfg.schedule = zone;
            cfg.save(&path)?;
            println!("region {region:02} mirror created: {}", path.display());
            println!(
                "  send {} to the federal node; put the files it returns into {}",
                dir.join("mirror.pub").display(),
                dir.join("pki").display()
            );
        }
        MirrorAction::Run { config } => {
            let cfg = RegionMirrorConfig::load(&config)?;
            for warning in cfg.exposed_secrets(&config) {
                tracing::warn!("{warning}");
            }
            let schedule = cfg.schedule(&config)?;
            let mut signals = StopSignals::install()?;
            let metrics = NodeMetrics::new()?;
            let setup = region::setup(&cfg, metrics.hooks())?;
            let (url, me, listen) = (cfg.records_url.clone(), Node::Region(cfg.region), cfg.metrics_listen);
            let mirror = RegionMirror::start(cfg, setup).await?;
            metrics.spawn_observer(url, me, schedule.clone(), mirror.node().waker());
            if let Some(addr) = listen {
                let bound = metrics.serve(addr).await?;
                println!("metrics: http://{bound}/metrics");
            }
            sd_notify("READY=1");
            tokio::select! {
                r = mirror.run(&schedule) => r?,
                signal = signals.recv() => tracing::info!(signal, "stopping the region's mirror"),
            }
        }
        MirrorAction::Sync { config, timeout } => {
            let cfg = RegionMirrorConfig::load(&config)?;
            let timeout = Duration::from_secs(timeout.unwrap_or(cfg.sync_timeout_secs));
            let setup = region::setup(&cfg, Arc::new(NoHooks))?;
            let region = cfg.region;
            let records_url = cfg.records_url.clone();
            let mirror = match RegionMirror::start(cfg, setup).await {
                Ok(mirror) => mirror,
                // A `mirror run` drives this database: it exchanges at once when woken.
                Err(Error::Records(busy @ konvert_records::Error::MirrorBusy { .. })) => {
                    tracing::debug!(%busy, "a mirror process runs; waking it");
                    tokio::task::spawn_blocking(move || -> Result<()> {
                        let records = konvert_records::PgRecords::connect(&records_url)?;
                        Ok(konvert_records::mirror_outbox::wake_driver(&records)?)
                    })
                    .await
                    .map_err(|e| Error::Control(format!("waking the mirror process failed: {e}")))??;
                    println!(
                        "region {region:02}: a `konvert-center mirror run` drives this database; it was asked to \
                         exchange now — `konvert-center mirror status` shows what it did"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            match mirror.exchange(timeout).await {
                Exchanged::Done => println!("region {region:02}: exchange with the federal node done, nothing left"),
                Exchanged::Left(left) => {
                    return Err(Error::Control(format!(
                        "region {region:02}: the exchange with the federal node left something: {}; \
                         run `konvert-center mirror sync` again, and if it stays, see `konvert-center mirror status` \
                         and the federal node's log",
                        left.join("; ")
                    )))
                }
            }
        }
        MirrorAction::Status { config, json } => {
            let cfg = RegionMirrorConfig::load(&config)?;
            let schedule = cfg.schedule(&config)?;
            print!(
                "{}",
                status_text(cfg.records_url, Node::Region(cfg.region), &schedule, json).await?
            );
        }
        MirrorAction::CheckConfig { config } => {
            let cfg = RegionMirrorConfig::load(&config)?;
            crate::mirror::identity::region_client_config(&cfg)?;
            let schedule = cfg.schedule(&config)?;
            let now = crate::intake::now_ms();
            println!(
                "{}: ok — region {:02}, federal node {} at {}; exchange every {} now ({})",
                config.display(),
                cfg.region,
                cfg.federal_name,
                cfg.federal_address,
                crate::mirror_status::human_duration(schedule.interval_at(now)),
                schedule.time_zone()
            );
            for warning in cfg.exposed_secrets(&config) {
                println!("  warning: {warning}");
            }
        }
    }
    Ok(())
}
