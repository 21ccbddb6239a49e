//! The `konvert-edge` command line.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use konvert_crypto::MemberSigner;
use konvert_exam::{ExamDate, ExamKind, PacketKind, PacketRef, RoomId};
use konvert_replication::Outbox;

use crate::config::SiteConfig;
use crate::day::{run_day, DayOptions};
use crate::deadline::DeadlineStatus;
use crate::intake::{scan_recognizer, Intake};
use crate::push::{push, PushEvent, PushOptions};
use crate::readiness::{fetch_verdicts, seal_test_packet, test_statuses, TestRequest};

use crate::reserve;
use crate::rooms::{seal_day_room, SealDesk};
use crate::seal::{seal_room, MemberToken};
use crate::{Error, Result};
use konvert_crypto::registry::{AuthorityFile, RegistryStore, SignedRegistry};

/// `konvert-edge` commands.
#[derive(Debug, Subcommand)]
pub enum EdgeCommand {
    /// Seal a room's folder of scans into the outbox (asks for the member's PIN).
    Seal {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// The folder with the room's scan files.
        #[arg(long)]
        room_dir: PathBuf,
        /// Room code, e.g. 0012.
        #[arg(long)]
        room: RoomId,
        /// Exam day, YYYY-MM-DD.
        #[arg(long)]
        date: ExamDate,
        /// Exam: ege, oge, gve, essay.
        #[arg(long, default_value = "ege")]
        exam: ExamKind,
        /// What the packet holds: forms, blanks, journal, audio, test.
        #[arg(long, default_value = "blanks")]
        kind: PacketKind,
        /// Read the PIN from this environment variable instead of asking (automation only).
        #[arg(long)]
        pin_env: Option<String>,
    },
    /// Send every sealed packet to the center and wait for receipts.
    Push {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Give up after this many seconds without delivering everything.
        #[arg(long, default_value_t = 3600)]
        max_wait: u64,
    },
    /// Reserve channel: write every sealed packet without a receipt to a drive folder, for
    /// the center's `konvert-center import`. With a relay.toml (the relay stopped): what
    /// the relay holds, one folder per site under the drive folder.
    Export {
        /// site.toml (or relay.toml)
        #[arg(long)]
        config: PathBuf,
        /// The drive folder (one per site).
        #[arg(long)]
        to: PathBuf,
    },
    /// Reserve channel: take the center's receipts from a drive folder after its import.
    ImportReceipts {
        /// site.toml (or relay.toml)
        #[arg(long)]
        config: PathBuf,
        /// The drive folder.
        drive: PathBuf,
    },
    /// Show what is sealed, delivered or refused (asks a running `day` if there is one).
    Status {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the exam day: take scans from the hot folder, check and seal rooms, push.
    Day {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Exit once everything is sealed and delivered and nothing new came for this many seconds.
        #[arg(long)]
        until_idle: Option<u64>,
        /// Seal only; do not push.
        #[arg(long)]
        no_push: bool,
        /// Read the PIN from this environment variable instead of asking (automation only).
        #[arg(long)]
        pin_env: Option<String>,
    },
    /// Take what the hot folder holds and print each room's completeness (beside a
    /// running `day`: what the day has taken).
    Check {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Only this room.
        #[arg(long)]
        room: Option<RoomId>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record how many were present in a room, from its ППЭ-13-02МАШ (beside a running
    /// `day`: the day records it).
    Attendance {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Room code.
        #[arg(long)]
        room: RoomId,
        /// Participants present.
        #[arg(long)]
        present: u32,
    },
    /// Seal a room taken from the hot folder (an incomplete room needs --override).
    SealRoom {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Room code.
        #[arg(long)]
        room: RoomId,
        /// Why the room must go despite its discrepancies; recorded in the signed manifest.
        #[arg(long = "override")]
        override_reason: Option<String>,
        /// Read the PIN from this environment variable instead of asking (automation only).
        #[arg(long)]
        pin_env: Option<String>,
    },
    /// Technical readiness: seal the scans of the printed test blanks as a test packet,
    /// send it, and wait for the center's verdict on print and scan quality.
    TestPacket {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// The folder with the scanned test blanks.
        #[arg(long)]
        scans: PathBuf,
        /// The exam day being prepared for, YYYY-MM-DD (default: today at the site).
        #[arg(long)]
        date: Option<ExamDate>,
        /// Exam: ege, oge, gve, essay.
        #[arg(long, default_value = "ege")]
        exam: ExamKind,
        /// Seal only; send later with `push`.
        #[arg(long)]
        no_push: bool,
        /// After sending, wait up to this many seconds for the center's verdict.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// Read the PIN from this environment variable instead of asking (automation only).
        #[arg(long)]
        pin_env: Option<String>,
    },
    /// Fetch the center's verdicts on this site's test packets and list them.
    TestVerdicts {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Show what is kept without asking the center.
        #[arg(long)]
        offline: bool,
    },
    /// Fetch the center's answers to this site's packets ("loaded", or remarks with what
    /// to do) and list them (beside a running `day`, which fetches them itself, use
    /// `status`).
    Answers {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// Show what is kept without asking the center.
        #[arg(long)]
        offline: bool,
    },
    /// The key registry at this station: anchor it in the officers' authority, import a
    /// registry carried on a drive, and show the one in force.
    Registry {
        /// site.toml
        #[arg(long)]
        config: PathBuf,
        /// The officers' authority.toml, to anchor a new station's trust (once).
        #[arg(long)]
        anchor: Option<PathBuf>,
        /// A published registry file (registry-vN.bin) to take.
        #[arg(long)]
        import: Option<PathBuf>,
    },
    /// Write a drill exam day for rehearsals and readiness checks: a seating plan and each
    /// room's scans (real images with real barcodes: forms, then every present
    /// participant's blanks), as a scanner would drop them. Never for a real exam day.
    Drill {
        /// The folder to write plan.toml and scans/<room>/ into (must not hold a plan yet).
        #[arg(long)]
        out: PathBuf,
        /// The site code, e.g. 0101.
        #[arg(long)]
        site: konvert_exam::SiteId,
        /// Exam day, YYYY-MM-DD.
        #[arg(long)]
        date: ExamDate,
        /// Exam: ege, oge, gve, essay.
        #[arg(long, default_value = "ege")]
        exam: ExamKind,
        /// A room code (repeat for each room).
        #[arg(long = "room", required = true)]
        rooms: Vec<RoomId>,
        /// Participants seated in each room.
        #[arg(long, default_value_t = 15)]
        participants: usize,
        /// Participants of each room who did not come (their blanks are not scanned).
        #[arg(long, default_value_t = 1)]
        absent: usize,
        /// Pages per TIFF file, as a sheet-fed scanner batches them.
        #[arg(long, default_value_t = 8)]
        pages_per_file: usize,
        /// Write one grayscale PNG per page instead of multi-page G4 TIFFs.
        #[arg(long)]
        png: bool,
        /// Degrade the pages (rotation, skew, speckle, blur) as worn scanners do.
        #[arg(long)]
        degrade: bool,
        /// Seed of the handwriting and the degradation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Check site.toml (or a relay's relay.toml) and say what is wrong.
    CheckConfig {
        /// site.toml or relay.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a relay: take sealed packets from downstream stations, hold them durably and
    /// forward them to the next relay or the center; the center's receipts travel back.
    Relay {
        /// relay.toml
        #[arg(long)]
        config: PathBuf,
    },
}

/// Whether a config file is a relay's (it names `relay = ...`) rather than a site's.
fn is_relay_config(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("relay"))
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn read_pin(token: &MemberToken, pin_env: Option<&str>) -> Result<zeroize::Zeroizing<String>> {
    if let Some(var) = pin_env {
        return konvert_crypto::token::pin_from_env(var)
            .ok_or_else(|| Error::Push(format!("environment variable {var} with the PIN is not set")));
    }
    let prompt = format!("PIN for {}: ", token.describe());
    // rpassword asks on /dev/tty: without a controlling terminal (a script, a service)
    // opening it fails with "No such device or address", which says nothing about a PIN.
    rpassword::prompt_password(prompt)
        .map(zeroize::Zeroizing::new)
        .map_err(|cause| Error::PinNeeded {
            token: token.describe(),
            cause,
        })
}

fn unlock(cfg: &SiteConfig, pin_env: Option<&str>) -> Result<Box<dyn MemberSigner>> {
    let token = MemberToken::open(cfg)?;
    let pin = read_pin(&token, pin_env)?;
    token.unlock(&pin)
}

fn open_intake(cfg: &SiteConfig) -> Result<(konvert_exam::SeatingPlan, Intake)> {
    Ok((cfg.day()?.plan()?, Intake::for_day(cfg)?))
}

/// One pass over the hot folder: files seen now are taken once they have settled; a
/// file still being written is left for the next pass and said so.
fn take_settled(intake: &mut Intake, settle_ms: u64) -> Result<()> {
    intake.poll(now_unix_ms())?;
    std::thread::sleep(Duration::from_millis(settle_ms + 50));
    for e in intake.poll(now_unix_ms())? {
        println!("{}", crate::day::event_line(&e));
    }
    for (name, problem) in intake.settling() {
        match problem {
            Some(p) => println!(
                "{name}: does not read to its end yet ({p}); if it stays so it is taken flagged \
                 for a manual check — run again in a moment"
            ),
            None => println!("{name} is still being written; run again in a moment"),
        }
    }
    Ok(())
}

/// The outbox, for the reserve channel's commands: only one process holds it, so a running
/// `day` takes them as its own commands and a running `push` must stop first.
fn open_outbox_for_drive(cfg: &SiteConfig) -> Result<Outbox> {
    Outbox::open(&cfg.data_dir).map_err(|e| {
        Error::Push(format!(
            "{e}. In a running `konvert-edge day`, type `export DIR` or `receipts DIR` there instead; \
             otherwise stop `push` first and run this again"
        ))
    })
}

/// A stopped relay's outbox, for the reserve channel.
fn open_relay_outbox(cfg: &crate::relay::RelayConfig) -> Result<Outbox> {
    Outbox::open(&cfg.outbox_dir()).map_err(|e| {
        Error::Push(format!(
            "{e}. Stop `konvert-edge relay` first (what it holds stays), then run this again"
        ))
    })
}

/// Says what a receipts import did; an error if a receipt did not verify.
fn receipts_done(outcomes: &[reserve::ReceiptOutcome], pending: usize) -> Result<()> {
    let (summary, refused) = reserve::receipts_summary(outcomes, pending);
    println!("{summary}");
    if refused > 0 {
        return Err(Error::Push(format!(
            "{refused} receipt file(s) on the drive did not verify; ask the center to import the drive again"
        )));
    }
    Ok(())
}

/// Runs one command.
pub async fn run(cmd: EdgeCommand) -> Result<()> {
    match cmd {
        EdgeCommand::Seal {
            config,
            room_dir,
            room,
            date,
            exam,
            kind,
            pin_env,
        } => {
            let cfg = SiteConfig::load(&config)?;
            crate::seal::check_room_files(&room_dir, kind)?;
            let token = MemberToken::open(&cfg)?;
            let pin = read_pin(&token, pin_env.as_deref())?;
            let signer = token.unlock(&pin)?;
            drop(pin);
            let outbox = Outbox::open(&cfg.data_dir)?;
            let packet = PacketRef {
                site: cfg.site.clone(),
                date,
                exam,
                room,
                kind,
            };
            let sealed = seal_room(&cfg, &outbox, &*signer, &room_dir, packet, now_unix_ms())?;
            println!(
                "sealed {} v{}: {} files, {:.1} MB of scans → {:.1} MB envelope, signed by token {}",
                sealed.entry.offer.packet_id,
                sealed.entry.offer.version,
                sealed.files,
                sealed.scan_bytes as f64 / 1e6,
                sealed.entry.offer.size as f64 / 1e6,
                token.token_id()
            );
        }
        EdgeCommand::Push { config, max_wait } => {
            let cfg = SiteConfig::load(&config)?;
            let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
            let pending = outbox.pending()?;
            let total: u64 = pending.iter().map(|e| e.offer.size).sum();
            if pending.is_empty() {
                println!("nothing to send: every sealed packet has a receipt");
                return Ok(());
            }
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            // The earliest deadline among what is waiting: 23:59 local of its exam day.
            let deadline_ms = pending
                .iter()
                .map(|e| e.offer.deadline_unix_ms)
                .filter(|d| *d > 0)
                .min();
            if let Some(d) = deadline_ms {
                let status = DeadlineStatus::at(now_unix_ms() as i64, d as i64, total, 0.0);
                println!(
                    "{} packet(s), {:.1} MB to send; {status}",
                    pending.len(),
                    total as f64 / 1e6
                );
            }
            let sent = Arc::new(Mutex::new(std::collections::HashMap::<String, u64>::new()));
            let b = bar.clone();
            let warned = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let on_event = Arc::new(move |ev: PushEvent| match ev {
                PushEvent::Progress { packet_id, offset, .. } => {
                    if let Ok(mut m) = sent.lock() {
                        m.insert(packet_id, offset);
                        b.set_position(m.values().sum());
                    }
                }
                // The scheduler's view: the whole backlog at the measured goodput (EWMA),
                // against the earliest 23:59 in it.
                PushEvent::Schedule {
                    eta_unix_ms,
                    deadline_unix_ms,
                    ..
                } => {
                    if let Some(d) = deadline_unix_ms.or(deadline_ms) {
                        let now = now_unix_ms() as i64;
                        let status = DeadlineStatus {
                            left_ms: d as i64 - now,
                            eta_ms: eta_unix_ms.map(|e| e as i64 - now),
                        };
                        if status.at_risk() && !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            b.println(format!("  {status}"));
                        }
                        b.set_message(status.to_string());
                    }
                }
                PushEvent::Delivered { packet_id, .. } => b.println(format!("  receipt ✓ {packet_id}")),
                PushEvent::Rejected { packet_id, reason, .. } => {
                    b.println(format!("  refused ✗ {packet_id}: {}", reason.plain_words()))
                }
                PushEvent::Retrying { error, in_seconds } => {
                    b.set_message(format!("not delivered yet: {error}; retry in {in_seconds:.0} s"))
                }
                PushEvent::Registry { version } => b.println(format!("  key registry v{version} in force")),
                PushEvent::Revocations { revoked, .. } => {
                    b.println(format!("  station revocation list in force ({revoked} revoked)"))
                }
                PushEvent::Held { packet_id, relay, .. } => b.println(format!(
                    "  held at relay {relay} ⧗ {packet_id}: waiting for the center's receipt, will ask again"
                )),
                PushEvent::Share { rate_bytes_per_s, risk } => {
                    if risk != konvert_replication::schedule::DeadlineRisk::OnTrack {
                        b.println(format!(
                            "  ⚠ the center sees this site's deadline {}: {:.1} Mbit/s given to it now",
                            risk.as_str().replace('_', " "),
                            rate_bytes_per_s as f64 * 8.0 / 1e6
                        ))
                    }
                }
                PushEvent::Connected => b.set_message("connected"),
            });
            let opts = PushOptions {
                max_wait: Duration::from_secs(max_wait),
                on_event,
                more_coming: None,
                expected: None,
            };
            let report = push(&cfg, outbox, opts).await;
            bar.finish_and_clear();
            let report = report?;
            println!(
                "{} packet(s) delivered with verified receipts ({:.1} MB in {:.1} s), {} refused",
                report.delivered,
                report.delivered_bytes as f64 / 1e6,
                report.elapsed.as_secs_f64(),
                report.rejected.len()
            );
            for (id, reason, detail) in &report.rejected {
                println!("  {id}: {} ({detail})", reason.plain_words());
            }
            if !report.rejected.is_empty() {
                return Err(Error::Push(format!(
                    "{} packet(s) refused by the center",
                    report.rejected.len()
                )));
            }
        }
        EdgeCommand::Export { config, to } if is_relay_config(&config) => {
            let cfg = crate::relay::RelayConfig::load(&config)?;
            let outbox = open_relay_outbox(&cfg)?;
            let done = reserve::export_relay(&outbox, &to, now_unix_ms())?;
            if done.is_empty() {
                println!("nothing to export: the relay holds no packet without the center's receipt");
            }
            let back_here = format!(
                "`konvert-edge import-receipts --config {} {}`",
                config.display(),
                to.display()
            );
            for (folder, report) in &done {
                println!("{}", reserve::export_summary(report, folder, &back_here));
            }
            if !done.is_empty() {
                println!("at the center, import each site's folder: konvert-center import --operator NAME <folder>");
            }
        }
        EdgeCommand::ImportReceipts { config, drive } if is_relay_config(&config) => {
            let cfg = crate::relay::RelayConfig::load(&config)?;
            let outbox = open_relay_outbox(&cfg)?;
            let outcomes = reserve::import_relay_receipts(&cfg.receipt_key()?, &outbox, &drive)?;
            receipts_done(&outcomes, outbox.pending()?.len())?;
        }
        EdgeCommand::Export { config, to } => {
            let cfg = SiteConfig::load(&config)?;
            let outbox = open_outbox_for_drive(&cfg)?;
            let report = reserve::export(&cfg, &outbox, &to, now_unix_ms())?;
            let back_here = format!(
                "`konvert-edge import-receipts --config {} {}`",
                config.display(),
                to.display()
            );
            println!("{}", reserve::export_summary(&report, &to, &back_here));
        }
        EdgeCommand::ImportReceipts { config, drive } => {
            let cfg = SiteConfig::load(&config)?;
            let outbox = open_outbox_for_drive(&cfg)?;
            let outcomes = reserve::import_receipts(&cfg, &outbox, &drive)?;
            receipts_done(&outcomes, outbox.pending()?.len())?;
        }
        EdgeCommand::Status { config, json } => {
            let cfg = SiteConfig::load(&config)?;
            let request = if json { "status --json" } else { "status" };
            if let Some(answer) = crate::inspect::ask_day(&cfg.data_dir, request) {
                print!("{}", answer?);
                return Ok(());
            }
            let outbox = Outbox::open(&cfg.data_dir)?;
            let journal = crate::intake::Journal::open(&cfg.data_dir).ok();
            print!("{}", crate::inspect::status(&cfg, &outbox, journal.as_ref(), json)?);
        }
        EdgeCommand::Day {
            config,
            until_idle,
            no_push,
            pin_env,
        } => {
            let cfg = SiteConfig::load(&config)?;
            cfg.day()?;
            let signer = unlock(&cfg, pin_env.as_deref())?;
            let opts = DayOptions {
                until_idle: until_idle.map(Duration::from_secs),
                push: !no_push,
            };
            run_day(cfg, signer, opts).await?;
        }
        EdgeCommand::Check { config, room, json } => {
            let cfg = SiteConfig::load(&config)?;
            let mut request = "check".to_owned();
            if let Some(r) = &room {
                request.push_str(&format!(" {r}"));
            }
            if json {
                request.push_str(" --json");
            }
            if let Some(answer) = crate::inspect::ask_day(&cfg.data_dir, &request) {
                print!("{}", answer?);
                return Ok(());
            }
            let (plan, mut intake) = open_intake(&cfg)?;
            if json {
                // JSON is for scripts: only the report on stdout.
                intake.poll(now_unix_ms())?;
                std::thread::sleep(Duration::from_millis(cfg.day()?.settle_ms + 50));
                intake.poll(now_unix_ms())?;
            } else {
                take_settled(&mut intake, cfg.day()?.settle_ms)?;
            }
            print!(
                "{}",
                crate::inspect::check(&cfg, &plan, intake.journal(), room.as_ref(), json)?
            );
        }
        EdgeCommand::Attendance { config, room, present } => {
            let cfg = SiteConfig::load(&config)?;
            if let Some(answer) = crate::inspect::ask_day(&cfg.data_dir, &format!("attendance {room} {present}")) {
                print!("{}", answer?);
                return Ok(());
            }
            let (plan, intake) = open_intake(&cfg)?;
            print!(
                "{}",
                crate::inspect::attendance(&plan, intake.journal(), &room, present)?
            );
        }
        EdgeCommand::SealRoom {
            config,
            room,
            override_reason,
            pin_env,
        } => {
            let cfg = SiteConfig::load(&config)?;
            let (plan, mut intake) = open_intake(&cfg)?;
            take_settled(&mut intake, cfg.day()?.settle_ms)?;
            let signer = unlock(&cfg, pin_env.as_deref())?;
            let outbox = Outbox::open(&cfg.data_dir)?;
            intake.journal().reconcile(&outbox)?;
            let desk = SealDesk {
                cfg: &cfg,
                outbox: &outbox,
                signer: &*signer,
                plan: &plan,
                intake: &intake,
            };
            let done = seal_day_room(&desk, &room, override_reason.as_deref(), now_unix_ms())?;
            if done.is_empty() {
                println!("room {room}: already sealed as it is");
            }
            for s in done {
                println!("{s}");
            }
        }
        EdgeCommand::TestPacket {
            config,
            scans,
            date,
            exam,
            no_push,
            wait,
            pin_env,
        } => {
            let cfg = SiteConfig::load(&config)?;
            let signer = unlock(&cfg, pin_env.as_deref())?;
            let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
            let date = match date {
                Some(d) => d,
                None => cfg.time_zone.local_date(now_unix_ms() as i64)?,
            };
            let request = TestRequest {
                scans: &scans,
                date,
                exam,
            };
            let recognizer = scan_recognizer(cfg.page_budget());
            let test = seal_test_packet(&cfg, &outbox, &*signer, &request, &recognizer, now_unix_ms())?;
            drop(signer);
            for page in &test.pages {
                match &page.status {
                    konvert_exam::PageStatus::Read(id) => println!("  {}: {id}", page.location()),
                    konvert_exam::PageStatus::Unreadable { reason } => {
                        println!("  {}: barcode NOT read — {reason}", page.location())
                    }
                }
            }
            let unread = test.pages.iter().filter(|p| p.identity().is_none()).count();
            println!(
                "{} — {} page(s), {unread} without a readable barcode",
                test.sealed,
                test.pages.len()
            );
            if no_push {
                println!("not sent (--no-push); send it with `konvert-edge push`");
                return Ok(());
            }
            let report = push(&cfg, outbox.clone(), PushOptions::default()).await?;
            for (id, reason, _) in &report.rejected {
                println!("{id}: refused — {}", reason.plain_words());
            }
            println!("delivered; the center's staff now judge print and scan quality");
            let offer = test.sealed.entry.offer.clone();
            let until = std::time::Instant::now() + Duration::from_secs(wait);
            loop {
                fetch_verdicts(&cfg, &outbox).await?;
                if outbox.verdict(&offer.packet_id, offer.version)?.is_some() || std::time::Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            match test_statuses(&outbox)?.into_iter().find(|s| s.entry.offer == offer) {
                Some(status) if status.verdict.is_some() => println!("{status}"),
                _ => println!("no verdict yet; see it later with `konvert-edge test-verdicts`"),
            }
        }
        EdgeCommand::Answers { config, offline } => {
            let cfg = SiteConfig::load(&config)?;
            let outbox = Outbox::open(&cfg.data_dir)?;
            if !offline {
                // The center out of reach is no reason to hide what the site already holds.
                match crate::answers::fetch_notices(&cfg, &outbox).await {
                    Ok(kept) => println!("{} new answer(s) from the center", kept.answers.len()),
                    Err(e) => {
                        println!("the center cannot be reached now ({e}); the answers this station already holds:")
                    }
                }
            }
            let journal = crate::intake::Journal::open(&cfg.data_dir).ok();
            let names = crate::answers::LocalNames::of(journal.as_ref());
            match crate::answers::status_text(&outbox.answers()?, &names) {
                t if t.is_empty() => println!("no answers from the center yet"),
                t => print!("{t}"),
            }
        }
        EdgeCommand::TestVerdicts { config, offline } => {
            let cfg = SiteConfig::load(&config)?;
            let outbox = Outbox::open(&cfg.data_dir)?;
            if !offline {
                let new = fetch_verdicts(&cfg, &outbox).await?;
                println!("{new} new verdict(s) from the center");
            }
            let all = test_statuses(&outbox)?;
            if all.is_empty() {
                println!("no test packets sent from this station");
            }
            for status in all {
                println!("  {status}");
            }
        }
        EdgeCommand::Registry { config, anchor, import } => {
            let cfg = SiteConfig::load(&config)?;
            let store = RegistryStore::open(&cfg.data_dir)?;
            if let Some(path) = anchor {
                let text =
                    konvert_crypto::keyfile::read_text_bounded(&path, konvert_crypto::keyfile::MAX_CONFIG_BYTES)?;
                let file: AuthorityFile = toml::from_str(&text).map_err(|e| Error::Config {
                    path: path.clone(),
                    message: format!("not an authority file: {}", konvert_replication::toml_error(&e, &text)),
                })?;
                store.anchor(file.authority()?)?;
                println!(
                    "trust anchored: {} officer(s), {} signature(s) needed",
                    file.officers.len(),
                    file.threshold
                );
            }
            if let Some(path) = import {
                let bytes = konvert_crypto::keyfile::read_bounded(&path, 16 * 1024 * 1024)?;
                let signed = SignedRegistry::from_bytes(&bytes)?;
                let body = store.offer(&signed, now_unix_ms())?;
                println!("registry v{} taken", body.version);
            }
            match store.current(now_unix_ms())? {
                Some(body) => {
                    let site = cfg.site.as_str();
                    let ours = body.tokens.iter().filter(|t| t.sites.iter().any(|s| s == site));
                    println!(
                        "registry v{} in force; {} token(s), of them for site {site}:",
                        body.version,
                        body.tokens.len()
                    );
                    for t in ours {
                        println!(
                            "  {:<12} {:<28} {} ({})",
                            t.token_id,
                            t.person,
                            t.status,
                            t.status.russian()
                        );
                    }
                }
                None => println!("no registry yet"),
            }
        }
        EdgeCommand::Drill {
            out,
            site,
            date,
            exam,
            rooms,
            participants,
            absent,
            pages_per_file,
            png,
            degrade,
            seed,
        } => drill(
            &out,
            &crate::drill::DrillRequest {
                site,
                date,
                exam,
                rooms: rooms.into_iter().map(|r| (r, participants)).collect(),
                absent,
                pages_per_file,
                format: if png {
                    konvert_exam::scan::ScanFormat::Png
                } else {
                    konvert_exam::scan::ScanFormat::TiffG4
                },
                degrade,
                seed,
            },
        )?,
        EdgeCommand::CheckConfig { config } if is_relay_config(&config) => {
            let cfg = crate::relay::RelayConfig::load(&config)?;
            let mut warnings = cfg.link()?.check_identity()?;
            warnings.extend(konvert_replication::tls::exposed_warning(
                "the relay's server key",
                &cfg.server_key,
            ));
            // The relay does not start without a current station revocation list.
            let crl = crate::relay::check_revocation_list(&cfg)?;
            println!(
                "{}: ok — relay {}, carries {}, listens on {}, forwards to {} ({})",
                config.display(),
                cfg.relay,
                cfg.carry.join(", "),
                cfg.listen,
                cfg.upstream.address,
                cfg.upstream.server_name
            );
            print_warnings(&warnings);
            println!(
                "  free-space floor: {} % of the data folder's disk kept free (min_free_percent)",
                cfg.min_free_percent
            );
            println!(
                "  station revocation list: {} revoked, valid until {}",
                crl.revoked.len(),
                crl.next_update
            );
        }
        EdgeCommand::Relay { config } => {
            let cfg = crate::relay::RelayConfig::load(&config)?;
            // Installed before anything starts: a SIGTERM during start-up is not lost.
            let mut stop = konvert_replication::service::StopSignals::install()?;
            let relay = crate::relay::serve(&cfg).await?;
            println!(
                "relay {} listening on {}, carrying {}; forwarding to {}",
                cfg.relay,
                relay.addr,
                cfg.carry.join(", "),
                cfg.upstream.address
            );
            konvert_replication::service::sd_notify(&format!("READY=1\nSTATUS=relaying on {}", relay.addr));
            let signal = stop.recv().await;
            konvert_replication::service::sd_notify("STOPPING=1");
            tracing::info!(
                signal,
                "stopping: no new connections or streams; packets arriving may finish"
            );
            let unfinished = relay.shutdown().await;
            tracing::info!(
                signal,
                unfinished,
                "relay stopped; what it holds stays for the next start, packets still arriving resume"
            );
            println!("relay stopped by {signal}");
        }
        EdgeCommand::CheckConfig { config } => {
            let cfg = SiteConfig::load(&config)?;
            let warnings = check_site_files(&cfg)?;
            println!(
                "{}: ok — site {}, center {} ({})",
                config.display(),
                cfg.site,
                cfg.center.address,
                cfg.center.server_name
            );
            print_warnings(&warnings);
        }
    }
    Ok(())
}

/// Writes a drill day and says how to use it.
fn drill(out: &std::path::Path, req: &crate::drill::DrillRequest) -> Result<()> {
    let day = crate::drill::write_drill(out, req)?;
    println!(
        "drill for site {} ({} {}): seating plan {} — for rehearsals only",
        req.site,
        req.exam.code(),
        req.date,
        day.plan.display()
    );
    for r in &day.rooms {
        println!(
            "  room {}: {} seated, {} present · {} pages in {} files in {}",
            r.room,
            r.seated,
            r.present,
            r.pages,
            r.files,
            r.scans.display()
        );
    }
    println!(
        "  seal a room: konvert-edge seal --room-dir {} …; or rehearse the day: plan.toml as [day] \
         seating_plan, copy the scans into the hot folder, and enter the attendance (present)",
        day.rooms
            .first()
            .map_or_else(String::new, |r| r.scans.display().to_string())
    );
    Ok(())
}

/// What `check-config` checks beyond loading: the station's certificate and key as a
/// handshake would, and the member's token file; returns warnings (secrets others can read).
fn check_site_files(cfg: &SiteConfig) -> Result<Vec<String>> {
    let mut warnings = crate::push::Link::of_site(cfg)?.check_identity()?;
    if let Some(token) = &cfg.token {
        if !token.is_file() {
            return Err(Error::Config {
                path: token.clone(),
                message: format!(
                    "token = {} does not exist; copy the member's token file there (the officers issue it \
                     with `konvert keys issue-token`), or fix the path in site.toml",
                    token.display()
                ),
            });
        }
        warnings.extend(konvert_replication::tls::exposed_warning(
            "the member token file",
            token,
        ));
    }
    Ok(warnings)
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        println!("  warning: {w}");
    }
}
