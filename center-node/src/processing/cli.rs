//! `konvert-center loader …` commands of processing, in the order the staff work: import
//! the day's plan, process (register, recognize, verify what is sure), work the
//! verification queue, read the findings, mark expert checking done, close.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use konvert_exam::{BlankId, ExamDate, ExamKind, FormId, PageIdentity};
use konvert_records::{ExamDay, FindingRecord, PageKey, Records, Role, SledRecords, Verdict};

use super::{desk, process, records_db, stage_name, Workplace};
use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::{Error, Result};

/// Processing on the loader's workstation.
#[derive(Debug, Subcommand)]
pub enum ProcessingAction {
    /// Import the exam day's plan into the records (the same file the receiver imports).
    ImportPlan {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The plan file.
        plan: PathBuf,
    },
    /// Register every packet version not yet registered (decrypt, recognize), then verify
    /// what can be, give final states, make findings and answers. Run it after every
    /// batch of arrivals; running it again changes nothing.
    Process {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The center specialist's login.
        #[command(flatten)]
        specialist: crate::specialist::SpecialistLogin,
        /// Keep running: look for new packets and decisions every this many seconds
        /// (recognition in the background); stop with Ctrl-C — a stop at any moment
        /// loses nothing.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
    },
    /// The verification queue: pages the recognizer was unsure of, then those passed to
    /// a senior verifier.
    Queue {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A verifier's verdict on a queued page (recorded with who and in which role).
    Verify {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The page key, as `queue` prints it.
        page: String,
        /// What the page is: a blank's 13 digits, or a form's code `FORM|SITE|ROOM|DATE`.
        #[arg(long = "is", conflicts_with_all = ["unreadable", "to_senior"])]
        is: Option<String>,
        /// The barcode cannot be read by a person either: the page is quarantined.
        #[arg(long)]
        unreadable: bool,
        /// Pass the page to a senior verifier.
        #[arg(long)]
        to_senior: bool,
        /// Who decides.
        #[arg(long)]
        by: String,
        /// In which role.
        #[arg(long, value_enum, default_value = "verifier")]
        role: VerifierRole,
    },
    /// What processing found: duplicates, missing blanks, participants against the plan,
    /// unreadable pages, packets that did not open…
    Findings {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// Only findings that still hold.
        #[arg(long)]
        open: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one page's image (as PNG) from the sealed envelope in the store, for an
    /// appeal: the envelope is checked and opened again after the specialist's PIN.
    PageImage {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The center specialist's login.
        #[command(flatten)]
        specialist: crate::specialist::SpecialistLogin,
        /// The page key.
        page: String,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Enter a site's ППЭ-14-01 when its paper arrives, and reconcile it with what was
    /// registered for the site (never gates loading or closing).
    HandOver {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The exam day.
        #[command(flatten)]
        day: DayArgs,
        /// The site.
        #[arg(long)]
        site: String,
        /// Safe bags handed over.
        #[arg(long)]
        safe_bags: u32,
        /// A material and its count as the act lists it, e.g. "Бланк регистрации=30" (repeat).
        #[arg(long = "material")]
        materials: Vec<String>,
        /// Who entered it.
        #[arg(long)]
        by: String,
    },
    /// The lists the regulations ask for: participants whose results are withheld, for
    /// the exam commission (002:6838, 7461), and presumed-empty answer pages, for two
    /// experts to view (002:7371–7373).
    Lists {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reconcile a finding (a removal or early-finish mark against the site's act): a
    /// senior verifier or the project administrator says what they found.
    Reconcile {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The finding's id, as `findings` prints it.
        finding: String,
        /// What was found.
        #[arg(long)]
        note: String,
        /// Who.
        #[arg(long)]
        by: String,
        /// In which role.
        #[arg(long, value_enum, default_value = "senior-verifier")]
        role: ReconcilerRole,
    },
    /// An audio operator admits, annuls or renumbers a recording of a KIM duplicate group.
    Recording {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The recording's key, as `queue` prints it.
        recording: String,
        /// Admit it to processing.
        #[arg(long, conflicts_with_all = ["annul", "renumber"])]
        admit: bool,
        /// Annul it.
        #[arg(long, conflicts_with = "renumber")]
        annul: bool,
        /// Give it this KIM number instead.
        #[arg(long)]
        renumber: Option<String>,
        /// Who (the audio operator).
        #[arg(long)]
        by: String,
    },
    /// Mark expert checking of an exam day complete (closing waits for it where the
    /// plan says the exam has expert checking).
    ExpertsDone {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The exam day.
        #[command(flatten)]
        day: DayArgs,
        /// Who (the project administrator).
        #[arg(long)]
        by: String,
    },
    /// Close an exam day: refused, with what is missing, until every room's forms and
    /// pages are processed, every site's ППЭ-18МАШ is scanned and expert checking (if any)
    /// is marked done.
    Close {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// Nobody sat the exam anywhere in the region (002:7453): close without the rooms'
        /// forms (refused if any blank is registered for the day).
        #[arg(long)]
        nobody_sat: bool,
        /// The exam day.
        #[command(flatten)]
        day: DayArgs,
        /// Who (the project administrator).
        #[arg(long)]
        by: String,
    },
    /// Enter an appeal decision for ФИС (needs the records on PostgreSQL with the mirror).
    Appeal {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The exam day.
        #[command(flatten)]
        day: DayArgs,
        /// The participant's code.
        #[arg(long)]
        participant: String,
        /// Procedural or on scores.
        #[arg(long, value_enum)]
        kind: super::for_fis::AppealKindArg,
        /// The commission's decision.
        #[arg(long, value_enum)]
        outcome: super::for_fis::AppealOutcomeArg,
        /// An appeal document's image file (repeat); it goes by its SHA-256.
        #[arg(long = "document", required = true)]
        documents: Vec<PathBuf>,
        /// Who enters it.
        #[arg(long)]
        by: String,
    },
    /// Enter a re-check ordered by the regional authority, with its result, for ФИС.
    Recheck {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The exam day.
        #[command(flatten)]
        day: DayArgs,
        /// The participant's code.
        #[arg(long)]
        participant: String,
        /// A changed task score, TASK=SCORE (repeat; none: unchanged).
        #[arg(long = "score", value_parser = super::for_fis::parse_score)]
        scores: Vec<konvert_records::mirror_rows::TaskScore>,
        /// The protocol's and the ГЭК decision's image files (repeat).
        #[arg(long = "document")]
        documents: Vec<PathBuf>,
        /// Who enters it.
        #[arg(long)]
        by: String,
    },
    /// Enter a personal-data correction for ФИС.
    Correction {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The participant's code.
        #[arg(long)]
        participant: String,
        /// Which personal-data field (surname, name, patronymic, document-series, …).
        #[arg(long, value_enum)]
        field: super::for_fis::CorrectionField,
        /// The corrected value.
        #[arg(long)]
        value: String,
        /// The correction protocol's image files (repeat).
        #[arg(long = "document")]
        documents: Vec<PathBuf>,
        /// Who enters it.
        #[arg(long)]
        by: String,
    },
    /// Write the token certificate data ФИС sent, for the security officers to review
    /// against their registry (`konvert keys review-certificates`); changes no registry.
    TokenCertificates {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The file to write (TOML).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Who reconciles, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReconcilerRole {
    /// Оператор станции старшего верификатора.
    SeniorVerifier,
    /// Администратор проекта.
    Administrator,
}

/// Where the loader works: its center.toml and its records.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordsAt {
    /// center.toml (the loader's copy)
    #[arg(long)]
    pub config: PathBuf,
    /// The records' folder (default: center.toml's `records`, itself by default `records/` beside it;
    /// backups take that one, not this).
    #[arg(long)]
    pub records: Option<PathBuf>,
}

/// An exam day on the command line.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DayArgs {
    /// The exam day, YYYY-MM-DD.
    #[arg(long)]
    pub date: ExamDate,
    /// The exam: ege, oge, gve, essay.
    #[arg(long)]
    pub exam: ExamKind,
}

/// A verifier's role on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VerifierRole {
    /// Оператор станции верификации.
    Verifier,
    /// Оператор станции старшего верификатора.
    SeniorVerifier,
}

pub(crate) fn place(config: &Path, records: Option<PathBuf>) -> Result<(CenterConfig, Workplace)> {
    let cfg = CenterConfig::load(config)?;
    let base = config.parent().unwrap_or(Path::new(".")).to_owned();
    let records_dir = records.map_or_else(|| cfg.records.clone(), |r| base.join(r));
    let place = Workplace {
        data_dir: cfg.data_dir.clone(),
        records_dir,
        records_url: cfg.records_url.clone(),
        checkpoint_key: crate::workstation_key::local_signing_key_file(&cfg)?,
    };
    Ok((cfg, place))
}

/// Makes the records' folder (mode 0700: the records hold personal data) for the
/// commands that start records: `import-plan` and `process`.
fn start_records(place: &Workplace) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &place.records_dir;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::file(dir))?;
    }
    match &place.records_url {
        // Connecting brings the schema to this build's version.
        Some(url) => drop(konvert_records::PgRecords::connect(url)?),
        None => drop(SledRecords::open(&records_db(dir))?),
    }
    Ok(())
}

/// Opens the records; only `import-plan` and `process` start them, so that a mistyped
/// `--records` is an error, not an empty queue.
fn open_records(place: &Workplace) -> Result<Box<dyn Records>> {
    place.open_records()
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Loader {
        what: format!("cannot write JSON: {e}"),
        hint: "report this as a bug",
    })?;
    println!("{text}");
    Ok(())
}

fn parse_identity(text: &str) -> Result<PageIdentity> {
    if text.contains('|') {
        Ok(PageIdentity::Form(text.parse::<FormId>()?))
    } else {
        Ok(PageIdentity::Blank(text.parse::<BlankId>()?))
    }
}

/// Runs a processing command.
pub fn run(action: ProcessingAction) -> Result<()> {
    match action {
        ProcessingAction::ImportPlan {
            at: RecordsAt { config, records },
            plan,
        } => {
            let (_, place) = place(&config, records)?;
            // The receiver's reading: the same checks, and errors that name the plan file.
            let (day_plan, reading) = crate::plans::read_plan_file(&plan)?;
            start_records(&place)?;
            let records = open_records(&place)?;
            let records = &*records;
            let day = ExamDay {
                date: day_plan.date,
                exam: day_plan.exam,
            };
            if desk::is_closed(&records.decisions()?, day) {
                return Err(Error::Loader {
                    what: format!("exam {day} is closed; its plan is not replaced"),
                    hint: "a closed exam's records stand as they were closed",
                });
            }
            let mirrored = match &place.records_url {
                Some(url) => Some(konvert_records::mirror_outbox::import_plan(
                    &konvert_records::PgRecords::connect(url)?,
                    &day_plan,
                )?),
                None => {
                    records.put_plan(&day_plan)?;
                    None
                }
            };
            place.audit()?.append(
                "loader",
                konvert_crypto::audit::AuditAction::Other("plan-import".into()),
                &format!("{} {}", day_plan.date, day_plan.exam.code()),
                &format!(
                    "{} sites, {} rooms, {} participants; {} without consent left out",
                    day_plan.sites.len(),
                    day_plan.rooms.len(),
                    day_plan.participants.len(),
                    reading.without_consent
                ),
            )?;
            println!(
                "plan of {} {} imported: {} sites, {} rooms, {} participants",
                day_plan.date,
                day_plan.exam.code(),
                day_plan.sites.len(),
                day_plan.rooms.len(),
                day_plan.participants.len()
            );
            if reading.without_consent > 0 {
                println!(
                    "{} participant(s) without consent to personal-data processing were left out unread: their blanks stay on paper",
                    reading.without_consent
                );
            }
            if let Some(m) = mirrored {
                print_mirrored(&m, true, "planning rows");
            }
        }
        ProcessingAction::Process {
            at: RecordsAt { config, records },
            specialist,
            watch,
        } => {
            let (cfg, place) = place(&config, records)?;
            let (registry, keys) = login(&cfg, &config, &specialist)?;
            let who = login_name(&specialist);
            let open_inbox = || {
                konvert_replication::Inbox::open(&cfg.data_dir).map_err(|e| Error::Loader {
                    what: e.to_string(),
                    hint: "the loader reads its copy of the center's data folder while no center serves it",
                })
            };
            let Some(every) = watch else {
                let report = process(
                    &place,
                    &open_inbox()?,
                    &*open_records(&place)?,
                    &keys,
                    &registry,
                    &who,
                    now_ms(),
                )?;
                return print_report(&report);
            };
            // In the background: a run whenever the store or the decisions grew. The
            // store and the records are held only during a run, so that drive imports
            // and verifiers' commands get them in between.
            let every = std::time::Duration::from_secs(every.max(1));
            let mut seen = None;
            loop {
                {
                    let (inbox, records) = (open_inbox()?, open_records(&place)?);
                    let records = &*records;
                    // A new plan counts too: its day's packets can be checked now.
                    let plans = postcard::to_allocvec(&records.plans()?).map_err(|e| Error::Loader {
                        what: format!("cannot encode the plans: {e}"),
                        hint: "report this as a bug",
                    })?;
                    let now = (
                        inbox.len(),
                        records.decisions()?.len(),
                        ring::digest::digest(&ring::digest::SHA256, &plans).as_ref().to_vec(),
                    );
                    if seen.as_ref() != Some(&now) {
                        let report = process(&place, &inbox, records, &keys, &registry, &who, now_ms())?;
                        if let Err(e) = print_report(&report) {
                            eprintln!("{e}");
                        }
                        seen = Some(now);
                    }
                }
                std::thread::sleep(every);
            }
        }
        ProcessingAction::Queue {
            at: RecordsAt { config, records },
            json,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let queue = desk::queue(records)?;
            if json {
                let rows: Vec<_> = queue
                    .iter()
                    .map(|o| {
                        serde_json::json!({
                            "page": full_key(&o.key),
                            "stage": stage_name(&o.stage),
                            "site": o.site,
                            "room": o.room.as_str(),
                            "what": o.what,
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            if queue.is_empty() {
                println!("the verification queue is empty");
            }
            for o in &queue {
                println!(
                    "{}  {}  site {} room {}  {}",
                    full_key(&o.key),
                    stage_name(&o.stage),
                    o.site,
                    o.room,
                    o.what
                );
            }
        }
        ProcessingAction::Verify {
            at: RecordsAt { config, records },
            page,
            is,
            unreadable,
            to_senior,
            by,
            role,
        } => {
            let (_, place) = place(&config, records)?;
            let key = page_key(&page)?;
            let verdict = match (is, unreadable, to_senior) {
                (Some(text), false, false) => Verdict::Is(parse_identity(&text)?),
                (None, true, false) => Verdict::Unreadable,
                (None, false, true) => Verdict::ToSenior,
                _ => {
                    return Err(Error::Loader {
                        what: "say one thing about the page".into(),
                        hint: "give exactly one of --is <barcode>, --unreadable, --to-senior",
                    })
                }
            };
            let role = match role {
                VerifierRole::Verifier => Role::Verifier,
                VerifierRole::SeniorVerifier => Role::SeniorVerifier,
            };
            let records = open_records(&place)?;
            let records = &*records;
            let d = desk::verify(records, &place.audit()?, key, verdict, &by, role, now_ms())?;
            println!(
                "decision {} recorded ({} {}); run `konvert-center loader process` to apply it",
                d.seq,
                role.as_str(),
                by
            );
        }
        ProcessingAction::Findings {
            at: RecordsAt { config, records },
            open,
            json,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let all: Vec<FindingRecord> = records
                .findings()?
                .into_iter()
                .filter(|f| !open || f.resolved_at_unix_ms.is_none())
                .collect();
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "id": f.finding.id,
                            "open": f.resolved_at_unix_ms.is_none(),
                            "first_seen_unix_ms": f.first_seen_unix_ms,
                            "resolved_at_unix_ms": f.resolved_at_unix_ms,
                            "day": f.finding.day.to_string(),
                            "site": f.finding.site,
                            "room": f.finding.room.as_ref().map(|r| r.as_str()),
                            "participant": f.finding.participant,
                            "packet": f.finding.packet.map(hex::encode),
                            "page": f.finding.page.map(|k| full_key(&k)),
                            "what": super::findings::describe(&f.finding),
                            "kind": f.finding.kind,
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            if all.is_empty() {
                println!("no findings");
            }
            for f in &all {
                let state = if f.resolved_at_unix_ms.is_some() {
                    "resolved"
                } else {
                    "open"
                };
                println!("{state:8} {}  {}", f.finding.id, super::findings::describe(&f.finding));
            }
        }
        ProcessingAction::PageImage {
            at: RecordsAt { config, records },
            specialist,
            page,
            out,
        } => {
            let (cfg, place) = place(&config, records)?;
            let key = page_key(&page)?;
            let folder = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !folder.is_dir() || out.exists() {
                return Err(Error::Loader {
                    what: format!(
                        "cannot write {}: its folder does not exist, or the file does",
                        out.display()
                    ),
                    hint: "give a new file in an existing folder (--out); nothing was opened",
                });
            }
            let records = open_records(&place)?;
            let records = &*records;
            let packet = records
                .packets()?
                .into_iter()
                .find(|p| p.envelope == key.envelope)
                .ok_or_else(|| Error::Loader {
                    what: format!("no registered packet holds page {page}"),
                    hint: "run `konvert-center loader process` first, or check the key",
                })?;
            // The image store first: the envelope may be gone by retention.
            if let Some(entry) = records.pages()?.into_iter().find(|p| p.key == key) {
                let held = records.images()?.into_iter().find(|i| i.sha256 == entry.file_sha256);
                if let Some(image) = held.filter(|i| i.deleted.is_none()) {
                    let store = crate::image_store::ImageStore::open(&place.records_dir)?;
                    let bytes = store.read(&image.sha256, image.bytes)?;
                    super::register::write_page_png(&bytes, &key, &entry.file_name, &out)?;
                    place.audit()?.append(
                        &format!("specialist {}", login_name(&specialist)),
                        konvert_crypto::audit::AuditAction::Other("page-image".into()),
                        &format!("page {page}"),
                        &format!("{} v{}: from the image store", packet.packet_id, packet.version),
                    )?;
                    println!(
                        "page {page} of {} v{} written to {} (from the image store)",
                        packet.packet_id,
                        packet.version,
                        out.display()
                    );
                    return Ok(());
                }
            }
            let (registry, keys) = login(&cfg, &config, &specialist)?;
            let inbox = konvert_replication::Inbox::open(&cfg.data_dir)?;
            let record = inbox
                .lookup(&packet.packet_id, packet.version)?
                .ok_or_else(|| Error::Loader {
                    what: format!(
                        "{} v{} is registered but not in the store",
                        packet.packet_id, packet.version
                    ),
                    hint: "restore the center's data folder from the last backup",
                })?;
            place.audit()?.append(
                &format!("specialist {}", login_name(&specialist)),
                konvert_crypto::audit::AuditAction::Other("page-image".into()),
                &format!("page {page}"),
                &format!("{} v{} opened for one page image", packet.packet_id, packet.version),
            )?;
            let trusted = |id: &konvert_crypto::KeyId| crate::registry::CenterRegistry::token_key(&registry, id);
            super::register::page_image(&place.data_dir, &record, &keys, &trusted, &place.scratch(), &key, &out)?;
            println!(
                "page {page} of {} v{} written to {}",
                packet.packet_id,
                packet.version,
                out.display()
            );
        }
        ProcessingAction::HandOver {
            at: RecordsAt { config, records },
            day: DayArgs { date, exam },
            site,
            safe_bags,
            materials,
            by,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let day = ExamDay { date, exam };
            let materials = materials
                .iter()
                .map(|m| {
                    let (title, n) = m.rsplit_once('=').ok_or_else(|| Error::Loader {
                        what: format!("--material {m:?} has no count"),
                        hint: "write it as TITLE=COUNT, e.g. \"Бланк регистрации=30\"",
                    })?;
                    let n: u32 = n.trim().parse().map_err(|_| Error::Loader {
                        what: format!("--material {m:?}: {n:?} is not a count"),
                        hint: "write it as TITLE=COUNT with a whole number",
                    })?;
                    Ok((title.trim().to_owned(), n))
                })
                .collect::<Result<Vec<_>>>()?;
            let act = konvert_records::HandOverAct {
                site: site.clone(),
                safe_bags,
                materials,
            };
            desk::hand_over(records, &place.audit()?, day, act.clone(), &by, now_ms())?;
            let differences = desk::reconcile_hand_over(&act, day, &records.outcomes()?);
            if differences.is_empty() {
                println!("ППЭ-14-01 of site {site} entered; its counts agree with what was registered");
            } else {
                println!("ППЭ-14-01 of site {site} entered; it differs from what was registered:");
                for d in differences {
                    println!("  - {d}");
                }
            }
        }
        ProcessingAction::Lists {
            at: RecordsAt { config, records },
            json,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let outcomes = records.outcomes()?;
            let withheld: Vec<_> = outcomes
                .iter()
                .filter_map(|o| match &o.stage {
                    konvert_records::PageStage::Final(konvert_records::FinalState::Withheld { reason }) => {
                        Some((o, reason))
                    }
                    _ => None,
                })
                .collect();
            let empty: Vec<_> = outcomes.iter().filter(|o| o.presumed_empty).collect();
            if json {
                let row = |o: &konvert_records::PageOutcome| {
                    serde_json::json!({
                        "page": full_key(&o.key),
                        "day": o.day.to_string(),
                        "site": o.site,
                        "room": o.room.as_str(),
                        "participant": o.participant,
                        "what": o.what,
                    })
                };
                return print_json(&serde_json::json!({
                    "withheld": withheld.iter().map(|(o, reason)| {
                        let mut r = row(o);
                        r["reason"] = serde_json::Value::String((*reason).clone());
                        r
                    }).collect::<Vec<_>>(),
                    "presumed_empty": empty.iter().map(|o| row(o)).collect::<Vec<_>>(),
                }));
            }
            println!("For the exam commission — results withheld ({} pages):", withheld.len());
            for (o, reason) in &withheld {
                println!("  {} site {} room {}: {} — {reason}", o.day, o.site, o.room, o.what);
            }
            println!("For two experts — presumed-empty answer pages ({}):", empty.len());
            for o in &empty {
                println!(
                    "  {} site {} room {}: {} ({})",
                    o.day,
                    o.site,
                    o.room,
                    o.what,
                    full_key(&o.key)
                );
            }
        }
        ProcessingAction::Reconcile {
            at: RecordsAt { config, records },
            finding,
            note,
            by,
            role,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let role = match role {
                ReconcilerRole::SeniorVerifier => Role::SeniorVerifier,
                ReconcilerRole::Administrator => Role::Administrator,
            };
            let d = desk::reconcile(records, &place.audit()?, &finding, &note, &by, role, now_ms())?;
            println!(
                "finding {finding} reconciled (decision {}, {} {by})",
                d.seq,
                role.as_str()
            );
        }
        ProcessingAction::Recording {
            at: RecordsAt { config, records },
            recording,
            admit,
            annul,
            renumber,
            by,
        } => {
            let (_, place) = place(&config, records)?;
            let key = page_key(&recording)?;
            let choice = match (admit, annul, renumber) {
                (true, false, None) => konvert_records::AudioChoice::Admit,
                (false, true, None) => konvert_records::AudioChoice::Annul,
                (false, false, Some(kim)) => konvert_records::AudioChoice::Renumber(kim),
                _ => {
                    return Err(Error::Loader {
                        what: "say one thing about the recording".into(),
                        hint: "give exactly one of --admit, --annul, --renumber <KIM>",
                    })
                }
            };
            let records = open_records(&place)?;
            let records = &*records;
            let d = desk::decide_recording(records, &place.audit()?, key, choice, &by, now_ms())?;
            println!(
                "decision {} recorded (audio operator {by}); run `konvert-center loader process` to apply it",
                d.seq
            );
        }
        ProcessingAction::ExpertsDone {
            at: RecordsAt { config, records },
            day: DayArgs { date, exam },
            by,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let day = ExamDay { date, exam };
            if !records.plans()?.iter().any(|p| p.date == date && p.exam == exam) {
                return Err(Error::Loader {
                    what: format!("no plan of {day} is imported"),
                    hint: "check --date and --exam; import the day's plan first (`konvert-center loader import-plan`)",
                });
            }
            if desk::is_closed(&records.decisions()?, day) {
                return Err(Error::Loader {
                    what: format!("exam {day} is already closed"),
                    hint: "nothing to do",
                });
            }
            desk::expert_checking_done(records, &place.audit()?, day, &by, now_ms())?;
            println!("expert checking of {day} marked complete by {by}");
        }
        ProcessingAction::Close {
            at: RecordsAt { config, records },
            nobody_sat,
            day: DayArgs { date, exam },
            by,
        } => {
            let (_, place) = place(&config, records)?;
            let records = open_records(&place)?;
            let records = &*records;
            let day = ExamDay { date, exam };
            let resolution = super::resolve(
                &records.plans()?,
                &records.packets()?,
                &records.pages()?,
                &records.decisions()?,
            );
            let pg = place
                .records_url
                .as_deref()
                .map(konvert_records::PgRecords::connect)
                .transpose()?;
            let (_, mirrored) = desk::close(
                records,
                pg.as_ref(),
                &place.audit()?,
                day,
                &resolution,
                nobody_sat,
                &by,
                now_ms(),
            )?;
            println!("exam {day} closed by {by}");
            print_mirrored(&mirrored, pg.is_some(), "results of participants");
        }
        ProcessingAction::Appeal {
            at: RecordsAt { config, records },
            day: DayArgs { date, exam },
            participant,
            kind,
            outcome,
            documents,
            by,
        } => {
            let (_, place) = place(&config, records)?;
            let day = ExamDay { date, exam };
            super::for_fis::appeal(&place, day, &participant, kind, outcome, &documents, &by, now_ms())?;
        }
        ProcessingAction::Recheck {
            at: RecordsAt { config, records },
            day: DayArgs { date, exam },
            participant,
            scores,
            documents,
            by,
        } => {
            let (_, place) = place(&config, records)?;
            super::for_fis::recheck(&place, ExamDay { date, exam }, &participant, scores, &documents, &by)?;
        }
        ProcessingAction::TokenCertificates {
            at: RecordsAt { config, records },
            out,
        } => {
            let (_, place) = place(&config, records)?;
            super::for_fis::export_certificates(&place, &out)?;
        }
        ProcessingAction::Correction {
            at: RecordsAt { config, records },
            participant,
            field,
            value,
            documents,
            by,
        } => {
            let (_, place) = place(&config, records)?;
            super::for_fis::correction(&place, &participant, field, &value, &documents, &by)?;
        }
    }
    Ok(())
}

/// Says what a change put in the mirror's outbox for ФИС, or that there is no mirror.
fn print_mirrored(m: &konvert_records::mirror_outbox::Mirrored, on_postgres: bool, what: &str) {
    if !on_postgres {
        println!("the records are on sled: there is no mirror to ФИС (it needs `records_url` in center.toml)");
    } else if !m.mirror {
        println!("no mirror is set up for these records: nothing was queued for ФИС");
    } else {
        println!("{} {what} queued for ФИС", m.rows);
        if m.left_out > 0 {
            println!(
                "{} left out: not of a participant in the stored plan (consent allow-list, R18)",
                m.left_out
            );
        }
    }
}

/// The registry the center holds and the center keys the specialist opens, after the PIN.
fn login(
    cfg: &CenterConfig,
    config: &Path,
    specialist: &crate::specialist::SpecialistLogin,
) -> Result<(
    konvert_crypto::registry::RegistryBody,
    Vec<konvert_crypto::RecipientSecretKey>,
)> {
    let registry = crate::cli::held_registry(cfg, config)?;
    let base = config.parent().unwrap_or(Path::new("."));
    let keys = crate::specialist::login_all(&registry, specialist, base)?;
    Ok((registry, keys))
}

/// A page (or recording) key as `queue` and `findings --json` print it.
fn page_key(text: &str) -> Result<PageKey> {
    text.parse().map_err(|what| Error::Loader {
        what,
        hint: "copy the key from `konvert-center loader queue` or `findings --json`",
    })
}

/// Prints what a processing run did; an error if some versions could not be registered.
fn print_report(report: &super::ProcessReport) -> Result<()> {
    for (name, pages) in &report.registered {
        println!("  registered {name}: {pages} pages");
    }
    for (name, why) in &report.failed {
        println!("  {name}: not registered now (tried again next run): {why}");
    }
    for name in &report.held {
        println!("  held back: {name}");
    }
    let stages: Vec<String> = report.stages.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "{} packet version(s) registered now, {} before; pages: {}",
        report.registered.len(),
        report.already,
        if stages.is_empty() {
            "none".into()
        } else {
            stages.join(", ")
        }
    );
    println!(
        "{} new finding(s); {} answer(s) for sites new or changed; {} page(s) in the verification queue",
        report.new_findings.len(),
        report.answers_changed.len(),
        report.stages.get("awaiting-verifier").copied().unwrap_or(0)
            + report.stages.get("awaiting-senior").copied().unwrap_or(0)
    );
    for day in &report.without_plan {
        println!(
            "  WARNING: packets of {day} are registered but no plan of that day is imported: nothing of them is \
             checked or answered until it is (`konvert-center loader import-plan`)"
        );
    }
    if !report.failed.is_empty() {
        return Err(Error::Loader {
            what: format!("{} packet version(s) could not be registered", report.failed.len()),
            hint: "see each one above; everything else is registered — fix the cause and run again",
        });
    }
    Ok(())
}

/// The specialist as the audit log names them: the token file or hardware token label.
fn login_name(login: &crate::specialist::SpecialistLogin) -> String {
    login
        .token
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| login.pkcs11_token.clone())
        .unwrap_or_default()
}

/// The page key with the full envelope id, as `verify` takes it.
pub fn full_key(key: &PageKey) -> String {
    format!("{}:{}:{}", hex::encode(key.envelope), key.file, key.page + 1)
}
