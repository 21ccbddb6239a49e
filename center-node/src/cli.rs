//! The `konvert-center` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::preview;
use crate::provision::{self, CenterFacts};
use crate::registry::CenterRegistry;
use crate::reserve::{self, DriveOutcome, ImportRequest};
use crate::review::ReviewDesk;
use crate::test_packets::TestDesk;
use crate::{service, Result};
use konvert_crypto::registry::RegistryStore;
use konvert_replication::service::{sd_notify, StopSignals};
use konvert_replication::Verdict;

/// `konvert-center` commands.
#[derive(Debug, Subcommand)]
pub enum CenterCommand {
    /// Create a new center: CA, certificate, receipt key, center.toml (the decryption key
    /// is born on the loader's workstation: `loader new-key`).
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
        /// Write over a station's files already in the output folder (their certificate
        /// stays valid until revoked; its serial is printed).
        #[arg(long)]
        force: bool,
    },
    /// The key registry: import the officers' newest one (the running center takes it
    /// within a second and passes it on to every connected station), or show it.
    Registry {
        /// What to do.
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// The loader's key on center specialists' tokens.
    Loader {
        /// What to do.
        #[command(subcommand)]
        action: LoaderAction,
    },
    /// Stored packets flagged for review because their signer's token was blocked.
    Review {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Packets received after their site's 23:59 on the exam day: list them, or decide
    /// whether the late version or the on-time one is processed (recorded in the audit
    /// log). Runs against the data folder with no center serving it (as the loader does).
    Late {
        /// What to do.
        #[command(subcommand)]
        action: LateAction,
    },
    /// Check center.toml and say what is wrong.
    CheckConfig {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Receive packets until stopped (Ctrl-C or SIGTERM: packets in flight get 20 s to
    /// finish, the rest resume later). Tells systemd when ready (Type=notify).
    Serve {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Reserve channel: take the sealed envelopes a site carried on a drive (written by
    /// `konvert-edge export`), verified exactly as over the network, and write the
    /// center's receipts back to the drive. Works whether or not the center is serving.
    Import {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The drive folder.
        drive: PathBuf,
        /// Who imports the drive (recorded in the audit log).
        #[arg(long)]
        operator: String,
        /// The operator's statement: how the drive came, its seal, the courier (recorded).
        #[arg(long, default_value = "")]
        statement: String,
    },
    /// List what the center holds (asks the serving center if there is one).
    Status {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Technical-readiness test packets: list, preview, confirm or reject (works while
    /// the center serves).
    TestPackets {
        /// What to do.
        #[command(subcommand)]
        action: TestPacketAction,
    },
    /// Take the public half of the center's decryption key (the file `loader new-key`
    /// wrote on the loader's workstation): stations enrolled from now on seal to it. The
    /// receiver never holds the key itself.
    SetCenterKey {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The public half's file (one line of 64 hex digits).
        #[arg(long)]
        file: PathBuf,
    },
    /// Copy the center's data folder (inbox, store, desks, audit log) into a new or empty
    /// folder, with a signed manifest; works while the center serves (after each shift).
    Backup {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The backup folder (new or empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Bring a backup back into the data folder center.toml names, every file checked
    /// against the manifest first; never while a center serves it.
    Restore {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The backup folder.
        #[arg(long)]
        from: PathBuf,
        /// Move a data folder that holds anything aside (kept, renamed) and restore in its place.
        #[arg(long)]
        replace: bool,
    },
    /// The day's new envelopes to the loader's workstation on a drive.
    Envelopes {
        /// What to do.
        #[command(subcommand)]
        action: crate::envelope_drive::EnvelopeAction,
    },
    /// The exam days' plans: import one, show them, issue a site's seating plan.
    Plan {
        /// What to do.
        #[command(subcommand)]
        action: crate::plan_cli::PlanAction,
    },
    /// The loader's answers to packets ("loaded" or remarks): import them from a drive,
    /// list them with which remarks are open.
    Answers {
        /// What to do.
        #[command(subcommand)]
        action: crate::answers_cli::AnswersAction,
    },
    /// The federal node (ФИС), a role of this binary: init, enroll-region, serve,
    /// check-config.
    Federal {
        /// What to do.
        #[command(subcommand)]
        action: crate::mirror::cli::FederalAction,
    },
    /// This region's mirror of its records with the federal node: init, run, sync,
    /// status, check-config.
    Mirror {
        /// What to do.
        #[command(subcommand)]
        action: crate::mirror::cli::MirrorAction,
    },
    /// Retention on the loader's workstation: the table, what goes today (a dry run unless
    /// --apply), holds.
    Retention {
        /// What to do.
        #[command(subcommand)]
        action: crate::retention::cli::RetentionAction,
    },
}

/// What to do with the key registry.
#[derive(Debug, Subcommand)]
pub enum RegistryAction {
    /// Check a published registry (registry.bin from `konvert keys publish`) against the
    /// officers' authority and put it where the center takes it.
    Import {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The published registry file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Show the registry the center holds.
    Show {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
}

/// What to do with the loader's key.
#[derive(Debug, Subcommand)]
pub enum LoaderAction {
    /// Create the center's decryption key on this (the loader's) workstation, in memory,
    /// wrapped at once to the tokens of at least two issued specialists held by two
    /// different people (each token file's PIN is asked); writes only the wrapped copies and
    /// the key's public half, which the staff carry to the receiver and the officers. Also
    /// for a key rotation.
    NewKey(crate::loader_cli::NewKeyArgs),
    /// Make this loader workstation's own signing key (0600, keys/workstation.key beside
    /// center.toml unless --out) and name it in center.toml: it signs the workstation's
    /// backups and its audit logs' checkpoints, since it holds only the receipt public key.
    /// Keep the key as the officers prescribe: a backup it signed is restored with it.
    WorkstationKey {
        /// The loader workstation's center.toml.
        #[arg(long)]
        config: PathBuf,
        /// Where the key goes (relative to center.toml's folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Give another issued specialist's token the center key: a specialist who holds it
    /// logs in, the key is unwrapped into memory and wrapped for the new token.
    WrapKey(crate::loader_cli::WrapKeyArgs),
    /// Decrypt the stored exam packets into OUT/<site>/<packet id>/v<version>/ (scan files
    /// and packet.json) for processing, after the specialist's PIN; run it again to take
    /// what arrived since. Runs on the loader's workstation against the center's data
    /// folder (a copy, or with the center stopped).
    Unpack {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The center specialist's login.
        #[command(flatten)]
        specialist: crate::specialist::SpecialistLogin,
        /// Where the packets go.
        #[arg(long)]
        out: PathBuf,
        /// Only this site's packets.
        #[arg(long)]
        site: Option<String>,
        /// Only this packet id.
        #[arg(long)]
        packet: Option<String>,
        /// Also packets flagged for review (their signer's token was blocked soon after);
        /// their packet.json carries the flag.
        #[arg(long)]
        include_flagged: bool,
    },
    /// Processing: plan, process, queue, verify, findings, experts-done, close.
    #[command(flatten)]
    Processing(crate::processing::cli::ProcessingAction),
    /// The loader's answers to packets: sign them and export them for the receiver.
    Answers {
        /// What to do.
        #[command(subcommand)]
        action: crate::answers_cli::LoaderAnswersAction,
    },
}

/// What to do with late packets.
#[derive(Debug, Subcommand)]
pub enum LateAction {
    /// List the late packets and the decisions made on them.
    List {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decide on one late packet version: `take` processes it (it becomes the newest
    /// version for the loader), `keep-on-time` keeps the on-time version. Final.
    Decide {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The packet id.
        #[arg(long)]
        packet: String,
        /// The late version.
        #[arg(long)]
        version: u32,
        /// What to do with it.
        #[arg(long, value_enum)]
        choice: crate::late::LateChoice,
        /// Who decides (recorded in the audit log).
        #[arg(long)]
        operator: String,
        /// Why (recorded in the audit log), e.g. the site's act on the delay.
        #[arg(long)]
        reason: String,
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
    /// Open the test packets with the loader's key (after the specialist's PIN) and write
    /// an HTML page with a thumbnail and the quality facts of every page. Each opening goes
    /// into the audit log of the data folder it reads: run it on the loader's copy, not
    /// beside a center serving from that folder.
    Preview {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The center specialist's login.
        #[command(flatten)]
        specialist: crate::specialist::SpecialistLogin,
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
            specialist,
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
            let registry = held_registry(&cfg, &config)?;
            let audit = crate::loader_audit::LoaderAudit::open(&cfg)?;
            let (by, keys) = crate::specialist::login_as(&registry, &specialist, &config_dir(&config))?;
            audit.login(&by, &keys, "preview test packets")?;
            let (index, previews) = preview::render_previews_with(&cfg.data_dir, &packets, &keys, &registry, &out)?;
            audit.previewed(&by, &previews)?;
            audit.finish();
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
            preview::all_opened(&previews)?;
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

fn registry(action: RegistryAction) -> Result<()> {
    match action {
        RegistryAction::Import { config, file } => {
            let cfg = CenterConfig::load(&config)?;
            let center = CenterRegistry::open(&cfg, now_ms(), None)?;
            let body = center.check_file(&file, now_ms())?;
            let bytes = std::fs::read(&file).map_err(crate::Error::file(&file))?;
            if let Some(dir) = cfg.registry.parent() {
                std::fs::create_dir_all(dir).map_err(crate::Error::file(dir))?;
            }
            konvert_crypto::keyfile::write_atomic(&cfg.registry, &bytes, 0o644)?;
            println!(
                "key registry v{} imported ({} token(s), valid for {:.1} more hours); \
                 a running center takes it within a second",
                body.version,
                body.tokens.len(),
                body.expires_at_unix_ms.saturating_sub(now_ms()) as f64 / 3_600_000.0
            );
        }
        RegistryAction::Show { config } => {
            let cfg = CenterConfig::load(&config)?;
            match RegistryStore::open(&cfg.data_dir)?.last_known()? {
                None => println!("no key registry taken yet"),
                Some(body) => {
                    let state = if now_ms() < body.expires_at_unix_ms {
                        "in force"
                    } else {
                        "EXPIRED"
                    };
                    println!(
                        "key registry v{} {state}; {} token(s):",
                        body.version,
                        body.tokens.len()
                    );
                    for t in &body.tokens {
                        println!(
                            "  {:<14} {:<20} {:<28} sites {:<12} days {}",
                            t.token_id,
                            t.status.as_str(),
                            t.person,
                            t.sites.join(","),
                            t.dates.join(",")
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// A path given on the command line, relative to center.toml's folder when relative.
/// The folder of center.toml, which relative paths in commands start from.
fn config_dir(config: &std::path::Path) -> PathBuf {
    config.parent().unwrap_or(std::path::Path::new(".")).to_owned()
}

pub(crate) fn held_registry(
    cfg: &CenterConfig,
    config: &std::path::Path,
) -> Result<konvert_crypto::registry::RegistryBody> {
    crate::registry::held(cfg, now_ms())?.ok_or_else(|| crate::Error::Config {
        path: config.to_owned(),
        message: "the center holds no key registry; import the officers' registry first".into(),
    })
}

fn loader_command(action: LoaderAction) -> Result<()> {
    match action {
        LoaderAction::Processing(action) => crate::processing::cli::run(action)?,
        LoaderAction::Answers { action } => crate::answers_cli::loader_answers(action)?,
        LoaderAction::Unpack {
            config,
            specialist,
            out,
            site,
            packet,
            include_flagged,
        } => {
            let cfg = CenterConfig::load(&config)?;
            let registry = held_registry(&cfg, &config)?;
            let (by, keys) = crate::specialist::login_as(&registry, &specialist, &config_dir(&config))?;
            let inbox = konvert_replication::Inbox::open(&cfg.data_dir).map_err(|e| crate::Error::Loader {
                what: e.to_string(),
                hint: "the loader reads the center's data folder while no center serves it: copy the folder to the \
                       loader's workstation (or stop the center) and point --config at the copy",
            })?;
            let filter = crate::unpack::Filter {
                site,
                packet,
                include_flagged,
            };
            let audit = crate::loader_audit::LoaderAudit::open(&cfg)?;
            audit.login(&by, &keys, &format!("unpack into {}", out.display()))?;
            let report = crate::unpack::unpack(&cfg.data_dir, &inbox, &keys, &registry, &filter, &out)?;
            audit.unpacked(&by, &report)?;
            audit.finish();
            for (dir, bytes) in &report.unpacked {
                println!("  {} ({:.1} MB of scans)", dir.display(), *bytes as f64 / 1e6);
            }
            for (packet, why) in &report.failed {
                println!("  {packet}: cannot open: {why}");
            }
            if !report.held_for_review.is_empty() {
                println!(
                    "  held for review (`konvert-center review`; --include-flagged to unpack them): {}",
                    report.held_for_review.join(", ")
                );
            }
            if !report.held_late.is_empty() {
                println!(
                    "  LATE, held back until an operator decides (`konvert-center late`; the on-time version \
                     stays the one unpacked): {}",
                    report.held_late.join(", ")
                );
            }
            println!(
                "{} packet(s) unpacked into {}; {} already there; {} older version(s) left sealed; {} held for review; {} failed",
                report.unpacked.len(),
                out.display(),
                report.already,
                report.superseded,
                report.held_for_review.len(),
                report.failed.len()
            );
            if !report.failed.is_empty() {
                return Err(crate::Error::Loader {
                    what: format!("{} packet(s) could not be opened", report.failed.len()),
                    hint: "see each one above; the rest are unpacked, and nothing in the store changed",
                });
            }
        }
        LoaderAction::NewKey(args) => crate::loader_cli::new_key(args)?,
        LoaderAction::WorkstationKey { config, out } => {
            let made = crate::workstation_key::make(&config, out.as_deref())?;
            println!(
                "workstation key written to {} (0600) and named in {}\npublic key (write it in the shift log): {}\n\
                 keep the key as the officers prescribe: a backup taken on this workstation is restored with it",
                made.path.display(),
                config.display(),
                made.public
            );
        }
        LoaderAction::WrapKey(args) => crate::loader_cli::wrap_key(args)?,
    }
    Ok(())
}

fn print_import(drive: &std::path::Path, outcome: &DriveOutcome) -> Result<()> {
    use crate::intake::Carried;
    use konvert_replication::logging::printable;
    use konvert_replication::RejectReason;
    // Everything below but the operator's own path came from the drive: checked by the
    // import, and escaped here too, so no drive can write lines or escape codes here.
    let drive_shown = drive.display().to_string();
    let drive_shown = printable(&drive_shown);
    let site = printable(&outcome.site);
    println!(
        "drive {drive_shown} from site {site}: {} packet(s)",
        outcome.packets.len()
    );
    let (mut stored, mut held, mut refused) = (0, 0, 0);
    for p in &outcome.packets {
        let what = format!("{} v{}", printable(&p.packet.packet_id), p.packet.version);
        match &p.carried {
            Carried::Stored(_) => {
                stored += 1;
                println!("  stored         {what}");
            }
            Carried::AlreadyHeld(_) => {
                held += 1;
                println!("  already held   {what} (its original receipt)");
            }
            Carried::Refused { reason, detail } => {
                refused += 1;
                // A drive is not sent again by itself: the site exports again.
                let words = match reason {
                    RejectReason::DigestMismatch => {
                        "the envelope on the drive differs from what its index names (damaged or altered); \
                         export it again at the site onto a fresh drive"
                    }
                    other => other.plain_words(),
                };
                println!("  REFUSED        {what}: {words} ({})", printable(detail));
            }
            Carried::Unreadable { detail } => {
                refused += 1;
                println!(
                    "  NOT READ       {what}: {}; nothing changed — check the drive and import again",
                    printable(detail)
                );
            }
        }
    }
    let receipts = drive.join(konvert_replication::reserve::RECEIPTS).display().to_string();
    println!(
        "{stored} stored, {held} already held, {refused} not taken; {} receipt(s) written to {}",
        stored + held,
        printable(&receipts)
    );
    println!(
        "next: take the drive back to site {site} and run `konvert-edge import-receipts --config site.toml {drive_shown}`"
    );
    if refused > 0 {
        return Err(crate::Error::Reserve(format!(
            "{refused} packet(s) on the drive were not taken"
        )));
    }
    Ok(())
}

/// The inbox for a command that changes or reads what the receiver holds, refused beside
/// a serving center with what to do.
fn offline_inbox(cfg: &CenterConfig) -> Result<konvert_replication::Inbox> {
    konvert_replication::Inbox::open(&cfg.data_dir).map_err(|e| crate::Error::Loader {
        what: e.to_string(),
        hint: "this reads the center's data folder while no center serves it: copy the folder to the \
               loader's workstation (or stop the center) and point --config at the copy",
    })
}

fn late_command(action: LateAction) -> Result<()> {
    match action {
        LateAction::List { config, json } => {
            let cfg = CenterConfig::load(&config)?;
            let inbox = offline_inbox(&cfg)?;
            let late = crate::late::list(&cfg.data_dir, &inbox)?;
            if json {
                let rows: Vec<serde_json::Value> = late
                    .iter()
                    .map(|(r, d)| {
                        let b = &r.receipt.body;
                        serde_json::json!({
                            "packet_id": b.packet_id,
                            "version": b.version,
                            "site": b.site,
                            "envelope_id": hex::encode(b.digest),
                            "received_at_unix_ms": b.received_at_unix_ms,
                            "decision": d,
                        })
                    })
                    .collect();
                let text = serde_json::to_string_pretty(&rows).map_err(|e| crate::Error::Metrics(e.to_string()))?;
                println!("{text}");
                return Ok(());
            }
            println!("{} late packet(s)", late.len());
            for (r, d) in &late {
                let b = &r.receipt.body;
                let decided = match d {
                    Some(d) => format!("{} by {} ({})", d.choice.as_str(), d.operator, d.reason),
                    None => "held back: undecided (`konvert-center late decide`)".into(),
                };
                println!("  {} v{} site {} — {decided}", b.packet_id, b.version, b.site);
            }
        }
        LateAction::Decide {
            config,
            packet,
            version,
            choice,
            operator,
            reason,
        } => {
            let cfg = CenterConfig::load(&config)?;
            let inbox = offline_inbox(&cfg)?;
            let d = crate::late::decide(&cfg, &inbox, &packet, version, choice, &operator, &reason, now_ms())?;
            println!(
                "{} v{}: {} — recorded in the audit log; the loader follows it on its next run",
                d.packet_id,
                d.version,
                d.choice.as_str()
            );
        }
    }
    Ok(())
}

fn review(config: &std::path::Path, json: bool) -> Result<()> {
    let cfg = CenterConfig::load(config)?;
    let flags = ReviewDesk::open(&cfg.data_dir)?.list()?;
    if json {
        let text = serde_json::to_string_pretty(&flags).map_err(|e| crate::Error::Metrics(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    println!("{} packet(s) flagged for review", flags.len());
    for f in &flags {
        println!(
            "  {} v{} site {} — token {} ({}) {} in registry v{}",
            f.packet_id, f.version, f.site, f.token_id, f.person, f.status, f.registry_version
        );
    }
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
            println!("  receipt key (edges verify receipts): {}", init.receipt_public);
            println!(
                "  no decryption key here: the specialists create it on the loader's workstation \
                 (`konvert-center loader new-key`), and this receiver takes its public half \
                 (`konvert-center set-center-key`)"
            );
        }
        CenterCommand::EnrollStation {
            center,
            site,
            address,
            out,
            force,
        } => {
            let cfg = CenterConfig::load(&center.join("center.toml"))?;
            let facts = CenterFacts::read(&center, &address, &cfg.name)?;
            let (path, replaced) = provision::enroll_station_replacing(&center, &site, &facts, &out, force)?;
            println!("station for site {site} enrolled: {}", path.display());
            if let Some(old) = replaced {
                println!(
                    "  replaced the files of {old} in that folder; its certificate stays valid \
                     until revoked (konvert keys revoke-station)"
                );
            }
            println!("  add the member token as member.token in that folder, then hand it to the site");
        }
        CenterCommand::Registry { action } => registry(action)?,
        CenterCommand::Federal { action } => crate::mirror::cli::federal(action).await?,
        CenterCommand::Mirror { action } => crate::mirror::cli::mirror(action).await?,
        CenterCommand::Review { config, json } => review(&config, json)?,
        CenterCommand::Late { action } => late_command(action)?,
        CenterCommand::Loader { action } => loader_command(action)?,
        CenterCommand::CheckConfig { config } => {
            let cfg = CenterConfig::load(&config)?;
            cfg.check_serving().map_err(|message| crate::Error::Config {
                path: config.clone(),
                message,
            })?;
            let crl = crate::revocation::load_crl(&cfg)?;
            crate::revocation::check_floor(&cfg, &crl, crate::revocation::data_has_state(&cfg))?;
            println!("{}: ok — center {}, listen {}", config.display(), cfg.name, cfg.listen);
            if !cfg.authority.is_file() && !cfg.data_dir.join("registry/trust.bin").is_file() {
                println!(
                    "  warning: no officers' authority at {}; copy authority.toml there before serving",
                    cfg.authority.display()
                );
            }
            if !cfg.registry.is_file() {
                println!(
                    "  warning: no key registry at {}; every packet is refused until one is imported \
                     (konvert-center registry import)",
                    cfg.registry.display()
                );
            }
            let dir = config_dir(&config);
            if !dir.join(provision::RECIPIENT_PUB).is_file() {
                println!(
                    "  warning: no center key yet, so no station can be enrolled: the specialists create it on the \
                     loader's workstation (`konvert-center loader new-key`), then `konvert-center set-center-key`"
                );
            }
            // A bare decryption key left by an older `init`: it must not stay on the receiver.
            let bare = dir.join("loader/recipient.key");
            if bare.exists() {
                println!(
                    "  warning: {} is a bare decryption key on the receiver: make a new key with \
                     `konvert-center loader new-key` on the loader's workstation, rotate to it \
                     (`konvert keys rotate-center-key`), and destroy this file with `konvert keys retire-center-keys \
                     --key-file` once its grace period is over",
                    bare.display()
                );
            }
            // Private keys others can read: the center's TLS key, the receipt key, the CA key.
            let secrets = [
                ("the center's TLS key (key)", Some(&cfg.key)),
                ("the receipt key (receipt_key)", Some(&cfg.receipt_key)),
                ("the station CA's key (ca_key)", cfg.ca_key.as_ref()),
                (
                    "the loader workstation's key (workstation_key)",
                    cfg.workstation_key.as_ref(),
                ),
            ];
            for (what, path) in secrets.into_iter().filter_map(|(w, p)| Some((w, p?))) {
                if let Some(w) = konvert_replication::tls::exposed_warning(what, path) {
                    println!("  warning: {w}");
                }
            }
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
            // Installed before anything starts: a SIGTERM during start-up is not lost.
            let mut stop = StopSignals::install()?;
            let center = service::serve(&cfg).await?;
            println!("center {} listening on {}", cfg.name, center.addr);
            if let Some(m) = center.metrics_addr {
                println!("metrics on http://{m}/metrics");
            }
            sd_notify(&format!("READY=1\nSTATUS=receiving on {}", center.addr));
            let signal = stop.recv().await;
            sd_notify("STOPPING=1");
            tracing::info!(
                signal,
                in_flight = center.packets_in_flight(),
                "stopping: no new connections or streams; packets in flight may finish"
            );
            let unfinished = center.shutdown().await;
            tracing::info!(
                signal,
                unfinished,
                "center stopped; packets still arriving stay in staging and resume at the next connection"
            );
        }
        CenterCommand::Status { config, json } => {
            let cfg = CenterConfig::load(&config)?;
            let request = if json { "status --json" } else { "status" };
            if let Some(answer) = crate::control::ask_center(&cfg.data_dir, request) {
                print!("{}", answer?);
                return Ok(());
            }
            let inbox = konvert_replication::Inbox::open(&cfg.data_dir)?;
            print!("{}", crate::control::status(&inbox, json)?);
        }
        CenterCommand::TestPackets { action } => test_packets(action)?,
        CenterCommand::SetCenterKey { config, file } => {
            CenterConfig::load(&config)?;
            let key = crate::center_key::read_public(&file)?;
            let path = provision::install_recipient_key(&config_dir(&config), &key)?;
            println!(
                "center key {} taken ({}): stations enrolled from now on seal to it; the officers publish it \
                 in the key registry (`konvert keys init-authority --center-key`, or `rotate-center-key`), \
                 which stations follow",
                key.key_id(),
                path.display()
            );
        }
        CenterCommand::Backup { config, to } => {
            tokio::task::spawn_blocking(move || crate::backup::backup_command(&config, &to))
                .await
                .map_err(|e| crate::Error::Backup(format!("the backup stopped: {e}")))??
        }
        CenterCommand::Restore { config, from, replace } => crate::backup::restore_command(&config, &from, replace)?,
        CenterCommand::Envelopes { action } => crate::envelope_drive::command(action)?,
        CenterCommand::Plan { action } => crate::plan_cli::plan_command(action)?,
        CenterCommand::Answers { action } => crate::answers_cli::answers_command(action)?,
        CenterCommand::Retention { action } => crate::retention::cli::command(action)?,
        CenterCommand::Import {
            config,
            drive,
            operator,
            statement,
        } => {
            let cfg = CenterConfig::load(&config)?;
            let request = ImportRequest::new(&drive, &operator, &statement)?;
            let outcome = tokio::task::spawn_blocking(move || reserve::import(&cfg, &request))
                .await
                .map_err(|e| crate::Error::Reserve(format!("the import stopped: {e}")))??;
            print_import(&drive, &outcome)?;
        }
    }
    Ok(())
}
