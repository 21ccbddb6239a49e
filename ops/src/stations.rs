//! `konvert keys enroll-station | revoke-station | stations | renew-crl`: the officers'
//! commands for station certificates. The work is the center's (`konvert_center::stations`
//! and `provision`); a running center enforces a new revocation list within a second.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use konvert_center::config::CenterConfig;
use konvert_center::provision::{self, CenterFacts};
use konvert_center::stations::{self, StationIndex, StationRecord, StationSelector};
use konvert_replication::pki::{Serial, VerifiedCrl};
use time::OffsetDateTime;

/// Station certificate commands.
#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// Issue a station certificate for a site and write a ready site folder.
    EnrollStation {
        /// The center's folder (made by `konvert-center init`).
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
        /// The site sends through this relay: `--address` is then the relay's, and the
        /// station checks the relay's certificate (`<relay>.relay.konvert`).
        #[arg(long)]
        via_relay: Option<String>,
        /// Write over a station's files already in the output folder (their certificate
        /// stays valid until revoked; its serial is printed).
        #[arg(long)]
        force: bool,
    },
    /// Enroll a relay (checking point, municipal office): a station certificate for its
    /// own id upstream, a server certificate for the stations downstream, and the sites it
    /// may carry, which the center enforces. Writes a ready relay folder with relay.toml.
    EnrollRelay {
        /// The center's folder (made by `konvert-center init`).
        #[arg(long)]
        center: PathBuf,
        /// The relay's id, e.g. mouo-01 (not a site code).
        #[arg(long)]
        relay: String,
        /// A site the relay may carry (repeat for each).
        #[arg(long = "carry", required = true)]
        carries: Vec<String>,
        /// A relay downstream of this one whose packets it takes (repeat for each).
        #[arg(long = "downstream-relay")]
        downstream_relays: Vec<String>,
        /// Where the relay listens for downstream stations, e.g. 0.0.0.0:4433.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Where the relay forwards to: the center's address, or the next relay's.
        #[arg(long)]
        address: String,
        /// The next relay's id when it forwards to a relay rather than the center.
        #[arg(long)]
        upstream_relay: Option<String>,
        /// Output folder to hand to the relay's operator.
        #[arg(long)]
        out: PathBuf,
        /// Write over a station's files already in the output folder (their certificate
        /// stays valid until revoked; its serial is printed).
        #[arg(long)]
        force: bool,
    },
    /// Revoke station certificates: the running center refuses them and closes their
    /// connections at once. Final.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["site", "serial"])))]
    RevokeStation {
        /// The center's folder.
        #[arg(long)]
        center: PathBuf,
        /// Revoke every valid certificate of this site.
        #[arg(long)]
        site: Option<String>,
        /// Revoke the certificate with this serial number (hex, as `stations` shows it).
        #[arg(long)]
        serial: Option<String>,
        /// Why (recorded in the station index).
        #[arg(long, default_value = "")]
        reason: String,
        /// Do not ask before revoking.
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the station certificates the center's CA issued.
    Stations {
        /// The center's folder.
        #[arg(long)]
        center: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a fresh revocation list with the same revoked certificates (before the old one
    /// expires; a center without the CA key needs this every few days).
    RenewCrl {
        /// The center's folder.
        #[arg(long)]
        center: PathBuf,
    },
}

/// Names the station whose files `--force` wrote over, and how to revoke its certificate.
fn print_replaced(center: &Path, replaced: Option<&provision::ExistingStation>) {
    let Some(old) = replaced else { return };
    println!("  replaced the files of {old} in that folder");
    if let Some(serial) = &old.serial {
        println!(
            "  that certificate is still valid; if no station uses it any more: \
             konvert keys revoke-station --center {} --serial {serial}",
            center.display()
        );
    }
}

fn center_config(center: &Path) -> anyhow::Result<CenterConfig> {
    let path = center.join("center.toml");
    CenterConfig::load(&path).with_context(|| format!("{} is not a center folder", center.display()))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

fn record_json(r: &StationRecord) -> serde_json::Value {
    serde_json::json!({
        "serial": r.serial.to_string(),
        "site": r.site,
        "issued_at_unix": r.issued_at,
        "revoked_at_unix": r.revoked_at,
        "reason": r.reason,
        "carries": r.carries,
        "status": if r.is_revoked() { "revoked" } else { "valid" },
    })
}

fn crl_json(crl: &VerifiedCrl) -> serde_json::Value {
    serde_json::json!({
        "revoked": crl.revoked.len(),
        "this_update_unix": crl.this_update.unix_timestamp(),
        "next_update_unix": crl.next_update.unix_timestamp(),
    })
}

fn record_line(r: &StationRecord) -> String {
    let state = match r.revoked_at {
        Some(at) if r.reason.is_empty() => format!("REVOKED {}", utc(at)),
        Some(at) => format!("REVOKED {}: {}", utc(at), r.reason),
        None => "valid".into(),
    };
    let issued = if r.issued_at == 0 { "?".into() } else { utc(r.issued_at) };
    if !r.carries.is_empty() {
        return format!(
            "  relay {:<6} serial {}  issued {issued}  {state}  carries {}",
            r.site,
            r.serial,
            r.carries.join(", ")
        );
    }
    format!("  site {:<6} serial {}  issued {issued}  {state}", r.site, r.serial)
}

fn confirm_revoke(chosen: &[StationRecord], answer: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::io::stdin().is_terminal(),
        "revoking {} station certificate(s) is final; confirm with --yes",
        chosen.len()
    );
    println!("Revoking is final: these station certificates will never connect again, and their");
    println!("live connections to a running center are closed at once:");
    for r in chosen {
        println!("{}", record_line(r));
    }
    println!("Type {answer} to confirm:");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    anyhow::ensure!(
        line.trim().eq_ignore_ascii_case(answer),
        "not confirmed; nothing was changed"
    );
    Ok(())
}

/// Runs one station command.
pub fn run(cmd: StationCommand) -> anyhow::Result<()> {
    match cmd {
        StationCommand::EnrollStation {
            center,
            site,
            address,
            out,
            via_relay,
            force,
        } => {
            let cfg = center_config(&center)?;
            let name = match &via_relay {
                Some(relay) => konvert_replication::pki::relay_dns_name(relay)?,
                None => cfg.name.clone(),
            };
            let facts = CenterFacts::read(&center, &address, &name)?;
            let (path, replaced) = provision::enroll_station_replacing(&center, &site, &facts, &out, force)?;
            let cert = std::fs::read_to_string(out.join("station.pem"))?;
            println!("station for site {site} enrolled: {}", path.display());
            println!("  certificate serial {}", Serial::of_cert_pem(&cert)?);
            print_replaced(&center, replaced.as_ref());
            println!("  add the member token as member.token in that folder, then hand it to the site");
        }
        StationCommand::EnrollRelay {
            center,
            relay,
            carries,
            downstream_relays,
            listen,
            address,
            upstream_relay,
            out,
            force,
        } => {
            let cfg = center_config(&center)?;
            let name = match &upstream_relay {
                Some(up) => konvert_replication::pki::relay_dns_name(up)?,
                None => cfg.name.clone(),
            };
            let facts = CenterFacts::read(&center, &address, &name)?;
            let enrollment = provision::RelayEnrollment {
                relay: relay.clone(),
                carries: carries.clone(),
                downstream_relays,
                listen,
            };
            let (path, replaced) = provision::enroll_relay_replacing(&center, &enrollment, &facts, &out, force)?;
            let cert = std::fs::read_to_string(out.join("station.pem"))?;
            println!(
                "relay {relay} enrolled to carry {}: {}",
                carries.join(", "),
                path.display()
            );
            println!("  certificate serial {}", Serial::of_cert_pem(&cert)?);
            print_replaced(&center, replaced.as_ref());
            println!(
                "  its sites' stations connect to it with server_name = \"{}\" \
                 (`konvert keys enroll-station --via-relay {relay}`)",
                konvert_replication::pki::relay_dns_name(&relay)?
            );
        }
        StationCommand::RevokeStation {
            center,
            site,
            serial,
            reason,
            yes,
            json,
        } => {
            let cfg = center_config(&center)?;
            let (selector, answer) = match (site, serial) {
                (Some(site), _) => (StationSelector::Site(site.clone()), site),
                (None, Some(serial)) => {
                    let s: Serial = serial.parse()?;
                    let answer = s.to_string();
                    (StationSelector::Serial(s), answer)
                }
                (None, None) => anyhow::bail!("give --site or --serial"),
            };
            let chosen = StationIndex::load(&cfg.station_index())?.select(&selector)?;
            if !yes {
                confirm_revoke(&chosen, &answer)?;
            }
            let done = stations::revoke(&cfg, &selector, &reason, OffsetDateTime::now_utc())?;
            if json {
                let revoked: Vec<_> = done.stations.iter().map(record_json).collect();
                println!(
                    "{}",
                    serde_json::json!({ "revoked": revoked, "crl": crl_json(&done.crl) })
                );
            } else {
                println!("{} station certificate(s) revoked:", done.stations.len());
                for r in &done.stations {
                    println!("{}", record_line(r));
                }
                println!(
                    "revocation list {} written ({} revoked, valid until {}); a running center enforces it within a second",
                    cfg.crl.display(),
                    done.crl.revoked.len(),
                    utc(done.crl.next_update.unix_timestamp())
                );
            }
        }
        StationCommand::Stations { center, json } => {
            let cfg = center_config(&center)?;
            let index = StationIndex::load(&cfg.station_index())?;
            let crl = konvert_center::revocation::load_crl(&cfg);
            if json {
                let list: Vec<_> = index.stations.iter().map(record_json).collect();
                let crl = match &crl {
                    Ok(c) => crl_json(c),
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
                println!("{}", serde_json::json!({ "stations": list, "crl": crl }));
            } else {
                let revoked = index.stations.iter().filter(|r| r.is_revoked()).count();
                println!("{} station certificate(s), {revoked} revoked", index.stations.len());
                for r in &index.stations {
                    println!("{}", record_line(r));
                }
                match crl {
                    Ok(c) => println!(
                        "revocation list: {} revoked, valid until {}",
                        c.revoked.len(),
                        utc(c.next_update.unix_timestamp())
                    ),
                    Err(e) => println!("revocation list: {e}"),
                }
            }
        }
        StationCommand::RenewCrl { center } => {
            let cfg = center_config(&center)?;
            let crl = stations::renew_crl(&cfg, OffsetDateTime::now_utc())?;
            println!(
                "revocation list {} signed: {} revoked, valid until {}",
                cfg.crl.display(),
                crl.revoked.len(),
                utc(crl.next_update.unix_timestamp())
            );
        }
    }
    Ok(())
}
