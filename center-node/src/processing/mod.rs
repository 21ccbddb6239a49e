//! Processing on the loader's offline workstation, after the receiver stored the packets:
//! every packet version is registered as it is loaded, in any order; every page is
//! recognized; pages are verified room by room once the room's forms are in; each page
//! reaches one final state; findings are made once; every packet version is answered
//! "loaded" or with remarks. The results go to the regional records ([`Records`]), every
//! run and every decision to the loader's audit log.
//!
//! A run can be killed at any point and run again: a packet version is registered whole
//! or not at all, and everything after registration is derived from the records
//! ([`resolve`]), so a repeated run changes nothing.

pub mod cli;
pub mod desk;
pub mod findings;
pub mod for_fis;
pub mod register;
pub mod resolve;

use std::path::{Path, PathBuf};

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::{KeyId, RecipientSecretKey, VerifyingKey};
use konvert_records::{PageStage, Records};
use konvert_replication::{Inbox, PacketAnswer};

use crate::registry::CenterRegistry;
use crate::review::ReviewDesk;
use crate::unpack::{processable, Filter};
use crate::Result;

pub use resolve::{resolve, Resolution, RoomState};

/// The loader's audit log, in the records' folder: the loader's segment has no network
/// path to the receiver's log.
pub const LOADER_AUDIT_LOG: &str = "loader-audit.log";

/// The audit log's word for processing.
pub const PROCESS_RUN: &str = "process-run";
/// The data folder's audit log's word for an anchor of the loader's audit log.
pub const RECORDS_ANCHOR: &str = "loader.records-anchor";
/// The audit log's word for registering (decrypting) a packet version.
pub const PACKET_REGISTER: &str = "packet-register";
/// The audit log's word for opening a registered packet version again to keep its images.
pub const PACKET_KEEP_IMAGES: &str = "packet-keep-images";

/// What one processing run did.
#[derive(Debug, Default)]
pub struct ProcessReport {
    /// Packet versions registered now: packet id and version, pages.
    pub registered: Vec<(String, u32)>,
    /// Packet versions registered by an earlier run.
    pub already: usize,
    /// Versions held back: late and undecided, or flagged for review.
    pub held: Vec<String>,
    /// Versions that could not be registered now (tried again next run): what, why.
    pub failed: Vec<(String, String)>,
    /// Pages by stage name.
    pub stages: std::collections::BTreeMap<&'static str, usize>,
    /// Findings first made by this run.
    pub new_findings: Vec<String>,
    /// Answers that are new or changed (they travel to the sites).
    pub answers_changed: Vec<PacketAnswer>,
    /// Exam days with registered packets but no plan imported: nothing of them is
    /// checked or answered until the plan is.
    pub without_plan: Vec<String>,
    /// The resolution the run left.
    pub resolution: Resolution,
    /// Scan files newly held in the image store for the records.
    pub images_kept: usize,
}

/// Where the loader works: the receiver's data folder (a copy), the records, a scratch
/// folder for scans in clear.
#[derive(Debug, Clone)]
pub struct Workplace {
    /// The center's data folder (the loader's copy of the store).
    pub data_dir: PathBuf,
    /// The records' folder.
    pub records_dir: PathBuf,
    /// The regional records on PostgreSQL (center.toml's `records_url`); `None`: on sled
    /// in `records_dir`.
    pub records_url: Option<String>,
    /// The key file that signs the loader audit log's checkpoints (the workstation key);
    /// `None` leaves them unsigned.
    pub checkpoint_key: Option<PathBuf>,
}

impl Workplace {
    /// Opens the regional records where center.toml keeps them: PostgreSQL when it names
    /// `records_url`, else sled in the records' folder (which must exist: only the commands
    /// that start records make it, so that a mistyped `--records` is an error).
    pub fn open_records(&self) -> Result<Box<dyn Records>> {
        if let Some(url) = &self.records_url {
            return Ok(Box::new(konvert_records::PgRecords::connect(url)?));
        }
        let db = records_db(&self.records_dir);
        if !db.is_dir() {
            return Err(crate::Error::Loader {
                what: format!("there are no records at {}", self.records_dir.display()),
                hint: "check --records (relative to center.toml's folder) or center.toml's `records`; records start \
                       with `konvert-center loader import-plan` or `loader process`",
            });
        }
        Ok(Box::new(konvert_records::SledRecords::open(&db)?))
    }

    /// The scratch folder for scans in clear while a packet is recognized.
    pub fn scratch(&self) -> PathBuf {
        self.records_dir.join("scratch")
    }

    /// Opens the loader's audit log.
    pub fn audit(&self) -> Result<AuditLog> {
        Ok(AuditLog::open(
            &self.records_dir.join(LOADER_AUDIT_LOG),
            self.key()?,
            64,
        )?)
    }

    fn key(&self) -> Result<Option<konvert_crypto::SigningKey>> {
        match &self.checkpoint_key {
            Some(path) => Ok(Some(konvert_crypto::keyfile::read_signing_key(path)?)),
            None => Ok(None),
        }
    }

    /// Signs a checkpoint of the loader's audit log `audit` and writes its anchor into the
    /// audit log of the data folder (the one decryptions by `loader unpack` and key wraps
    /// go to), so that neither log can be cut back alone. Nothing without a key.
    pub fn anchor(&self, audit: &AuditLog) -> Result<()> {
        let Some(checkpoint) = audit.checkpoint()? else {
            return Ok(());
        };
        // A log has one writer: a center serving this folder writes its own.
        if crate::control::ask_center(&self.data_dir, "status").is_some() {
            tracing::warn!(
                data_dir = %self.data_dir.display(),
                "a center serves this data folder: the loader's audit log is not anchored in its log"
            );
            return Ok(());
        }
        let anchor = konvert_crypto::audit::AuditAnchor::of(&checkpoint);
        let center = AuditLog::open(
            &self.data_dir.join(crate::service::AUDIT_LOG),
            self.key()?,
            crate::service::AUDIT_CHECKPOINT_EVERY,
        )?;
        center.append(
            "konvert-center loader",
            AuditAction::Other(RECORDS_ANCHOR.to_owned()),
            &anchor.to_line(),
            &format!("the loader's audit log {} up to here", audit.path().display()),
        )?;
        Ok(())
    }
}

/// The stage's short name.
pub fn stage_name(stage: &PageStage) -> &'static str {
    match stage {
        PageStage::AwaitingPlan => "awaiting-plan",
        PageStage::AwaitingForms => "awaiting-forms",
        PageStage::AwaitingVerifier => "awaiting-verifier",
        PageStage::AwaitingSenior => "awaiting-senior",
        PageStage::Blocked => "blocked-kim-group",
        PageStage::Final(s) => s.name(),
    }
}

/// Registers what is new in the store and resolves everything; `who` is the specialist
/// whose keys open the packets (for the audit log).
#[allow(clippy::too_many_arguments)] // Where, what with, who and when.
pub fn process(
    place: &Workplace,
    inbox: &Inbox,
    records: &dyn Records,
    keys: &[RecipientSecretKey],
    registry: &RegistryBody,
    who: &str,
    now_unix_ms: u64,
) -> Result<ProcessReport> {
    let trusted = |id: &KeyId| -> Option<VerifyingKey> { CenterRegistry::token_key(registry, id) };
    let audit = place.audit()?;
    let mut report = ProcessReport::default();
    let images = crate::image_store::ImageStore::open(&place.records_dir)?;
    let plans_now = records.plans()?;
    let keeper = crate::image_keep::ImageKeeper {
        store: &images,
        plans: &plans_now,
        now_unix_ms,
    };
    let chosen = processable(&place.data_dir, inbox, &Filter::default())?;
    report.held = chosen.held_late;
    let flagged: std::collections::BTreeSet<String> = ReviewDesk::open(&place.data_dir)?
        .list()?
        .into_iter()
        .map(|f| f.envelope_id)
        .collect();
    for r in &chosen.versions {
        let b = &r.receipt.body;
        let name = format!("{} v{}", b.packet_id, b.version);
        if records.is_registered(&b.digest)? {
            report.already += 1;
            continue;
        }
        if flagged.contains(&hex::encode(b.digest)) {
            report.held.push(format!("{name} (flagged for review)"));
            continue;
        }
        // The decryption is in the log before it happens.
        audit.append(
            &format!("specialist {who}"),
            AuditAction::Other(PACKET_REGISTER.to_owned()),
            &format!("{name} {}", hex::encode(b.digest)),
            "decrypt, recognize and register",
        )?;
        match register::register(
            &place.data_dir,
            r,
            keys,
            &trusted,
            &place.scratch(),
            now_unix_ms,
            Some(&keeper),
        ) {
            Ok(done) => {
                // The images first: a registered page's kept image is always held.
                report.images_kept += records.hold_images(&done.images)?;
                records.register(&done.packet, &done.pages)?;
                report
                    .registered
                    .push((name, u32::try_from(done.pages.len()).unwrap_or(u32::MAX)));
            }
            Err(e) => report.failed.push((name, e.to_string())),
        }
    }
    keep_missing_images(
        place,
        &chosen.versions,
        records,
        keys,
        &trusted,
        &keeper,
        who,
        &audit,
        &mut report,
    )?;
    let (plans, packets) = (records.plans()?, records.packets()?);
    let resolution = resolve(&plans, &packets, &records.pages()?, &records.decisions()?);
    let planned: std::collections::BTreeSet<(konvert_exam::ExamDate, konvert_exam::ExamKind)> =
        plans.iter().map(|p| (p.date, p.exam)).collect();
    let unplanned: std::collections::BTreeSet<String> = packets
        .iter()
        .filter(|p| !planned.contains(&(p.day.date, p.day.exam)))
        .map(|p| p.day.to_string())
        .collect();
    report.without_plan = unplanned.into_iter().collect();
    records.put_outcomes(&resolution.outcomes)?;
    report.new_findings = records.put_findings(&resolution.findings, now_unix_ms)?;
    // A version a newer one replaced keeps the remarks it was answered with: the site
    // acted on them, and "loaded" would misstate it (the newer version is what loaded).
    let given: std::collections::BTreeMap<[u8; 32], PacketAnswer> =
        records.answers()?.into_iter().map(|a| (a.digest, a)).collect();
    for answer in &resolution.answers {
        if resolution.superseded.contains(&answer.digest)
            && given.get(&answer.digest).is_some_and(|a| !a.remarks().is_empty())
        {
            continue;
        }
        let answer = PacketAnswer {
            answered_at_unix_ms: now_unix_ms,
            ..answer.clone()
        };
        if records.put_answer(&answer)? {
            report.answers_changed.push(answer);
        }
    }
    for o in &resolution.outcomes {
        *report.stages.entry(stage_name(&o.stage)).or_default() += 1;
    }
    audit.append(
        &format!("specialist {who}"),
        AuditAction::Other(PROCESS_RUN.to_owned()),
        &format!("{} registered, {} already", report.registered.len(), report.already),
        &format!(
            "{} pages; {} new findings; {} answers changed; {} failed",
            resolution.outcomes.len(),
            report.new_findings.len(),
            report.answers_changed.len(),
            report.failed.len()
        ),
    )?;
    place.anchor(&audit)?;
    report.resolution = resolution;
    Ok(report)
}

/// Keeps the images the rule keeps now but the store lacks, for packet versions registered
/// before (their day's plan came later, or a run stopped between registering and keeping):
/// each such envelope is opened again, which the audit log says first.
#[allow(clippy::too_many_arguments)] // Where, what with, who, and the run's report.
fn keep_missing_images(
    place: &Workplace,
    stored: &[konvert_replication::InboxRecord],
    records: &dyn Records,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    keeper: &crate::image_keep::ImageKeeper<'_>,
    who: &str,
    audit: &AuditLog,
    report: &mut ProcessReport,
) -> Result<()> {
    let keeper = crate::image_keep::ImageKeeper {
        plans: &records.plans()?,
        ..*keeper
    };
    let deleted: std::collections::HashSet<[u8; 32]> = records
        .images()?
        .into_iter()
        .filter(|i| i.deleted.is_some())
        .map(|i| i.sha256)
        .collect();
    let mut pages: std::collections::BTreeMap<[u8; 32], Vec<konvert_records::PageEntry>> =
        std::collections::BTreeMap::new();
    for p in records.pages()? {
        pages.entry(p.key.envelope).or_default().push(p);
    }
    let by_digest: std::collections::BTreeMap<[u8; 32], &konvert_replication::InboxRecord> =
        stored.iter().map(|r| (r.receipt.body.digest, r)).collect();
    for packet in records.packets()? {
        let Some(pages) = pages.get(&packet.envelope) else {
            continue;
        };
        if keeper.missing(&packet, pages, &deleted).is_empty() {
            continue;
        }
        // A retired envelope is gone: what it held is what the store holds.
        let Some(record) = by_digest.get(&packet.envelope) else {
            continue;
        };
        let name = format!("{} v{}", packet.packet_id, packet.version);
        audit.append(
            &format!("specialist {who}"),
            AuditAction::Other(PACKET_KEEP_IMAGES.to_owned()),
            &format!("{name} {}", hex::encode(packet.envelope)),
            "decrypt again to keep the page images the records keep",
        )?;
        match register::keep_from_envelope(
            &place.data_dir,
            record,
            keys,
            trusted,
            &place.scratch(),
            &keeper,
            &packet,
            pages,
        ) {
            Ok(kept) => report.images_kept += records.hold_images(&kept)?,
            Err(e) => report
                .failed
                .push((name, format!("its page images were not kept: {e}"))),
        }
    }
    Ok(())
}

/// The records' folder's database.
pub fn records_db(records_dir: &Path) -> PathBuf {
    records_dir.join("records.sled")
}
