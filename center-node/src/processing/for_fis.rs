//! What the region's appeals and corrections desk (ПО «Станция апелляций и коррекций»)
//! enters for ФИС: appeal decisions with their documents' images (`002:7479`, `7543`),
//! re-checks ordered by the regional authority (`002:7587–7619`) and personal-data
//! corrections (`002:7647`, `7657`). Each is written with its mirror row in one transaction
//! and audited; the documents go by the SHA-256 of their image files (the image store keeps
//! the files). They need the records on PostgreSQL with the region's mirror set up: on
//! sled there is no mirror, and the command says so.

use std::io::Read;
use std::path::{Path, PathBuf};

use konvert_crypto::audit::AuditAction;
use konvert_records::mirror_outbox;
use konvert_records::mirror_rows::{
    AppealDecisionRow, AppealKind, AppealOutcome, CorrectionRow, ImageRef, MirrorRow, RecheckRow, TaskScore,
};
use konvert_records::ExamDay;

use super::Workplace;
use crate::{Error, Result};

/// The audit log's word for a record entered for ФИС.
pub const FOR_FIS: &str = "record-for-fis";

/// The largest document image read (a scanned A4 page at 600 dpi is well under).
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// Which appeal, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AppealKindArg {
    /// On a breach of the procedure (ППЭ-02).
    Procedural,
    /// Disagreement with the scores (2-АП).
    Scores,
}

/// The commission's decision, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AppealOutcomeArg {
    /// Upheld (удовлетворена).
    Upheld,
    /// Rejected (отклонена).
    Rejected,
}

/// The SHA-256 reference of each document image file.
pub fn document_refs(files: &[PathBuf]) -> Result<Vec<ImageRef>> {
    files.iter().map(|f| document_ref(f)).collect()
}

fn document_ref(file: &Path) -> Result<ImageRef> {
    // Never through a symbolic link, never waiting on a FIFO, never a device (D3/D4/D17).
    let f = konvert_replication::drive::open_regular(file).map_err(Error::file(file))?;
    let too_big = || Error::Loader {
        what: format!("{} is empty or larger than 256 MiB", file.display()),
        hint: "give the scanned image of the document (PNG, TIFF, PDF)",
    };
    let len = f.metadata().map_err(Error::file(file))?.len();
    if len == 0 || len > MAX_DOCUMENT_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    f.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::file(file))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES || bytes.is_empty() {
        return Err(too_big());
    }
    Ok(ImageRef::of_bytes(&bytes))
}

fn pg(place: &Workplace, what: &str) -> Result<konvert_records::PgRecords> {
    match &place.records_url {
        Some(url) => Ok(konvert_records::PgRecords::connect(url)?),
        None => Err(Error::Loader {
            what: format!("{what} goes to ФИС through the mirror, and these records are on sled, which has none"),
            hint:
                "put the regional records on PostgreSQL (`records_url` in center.toml) and set up the region's mirror",
        }),
    }
}

/// Enters `row` for ФИS, audited as `by` did it.
fn enter(place: &Workplace, by: &str, what: &str, subject: &str, row: MirrorRow) -> Result<()> {
    super::desk::check_name(by)?;
    let records = pg(place, what)?;
    // Nothing about someone outside the plan goes anywhere, the log included (R18).
    if !mirror_outbox::in_plan(&records, row.day(), subject)? {
        return Err(konvert_records::Error::NotPlanned { what: what.to_owned() }.into());
    }
    // The log first: a record not in the log is not entered.
    place.audit()?.append(
        &format!("administrator {by}"),
        AuditAction::Other(FOR_FIS.to_owned()),
        subject,
        what,
    )?;
    let seq = mirror_outbox::record(&records, row)?;
    println!("{what} for participant {subject} entered; row {seq} queued for ФИС");
    Ok(())
}

/// An appeal decision.
#[allow(clippy::too_many_arguments)] // What the commission's protocol says, and who enters it.
pub fn appeal(
    place: &Workplace,
    day: ExamDay,
    participant: &str,
    kind: AppealKindArg,
    outcome: AppealOutcomeArg,
    documents: &[PathBuf],
    by: &str,
    now_unix_ms: u64,
) -> Result<()> {
    let row = MirrorRow::AppealDecision(AppealDecisionRow {
        day,
        participant: participant.to_owned(),
        kind: match kind {
            AppealKindArg::Procedural => AppealKind::Procedural,
            AppealKindArg::Scores => AppealKind::Scores,
        },
        outcome: match outcome {
            AppealOutcomeArg::Upheld => AppealOutcome::Upheld,
            AppealOutcomeArg::Rejected => AppealOutcome::Rejected,
        },
        documents: document_refs(documents)?,
        decided_at_unix_ms: now_unix_ms,
    });
    enter(place, by, &format!("appeal decision on {day}"), participant, row)
}

/// The highest task number a re-check names (no КИМ has this many tasks).
pub const MAX_TASK: u32 = 99;

/// The highest score one task can get (the largest task maximum of any КИМ is well under).
pub const MAX_TASK_SCORE: u32 = 50;

/// A task's score on the command line: `TASK=SCORE`, the task 1–[`MAX_TASK`], the score
/// 0–[`MAX_TASK_SCORE`].
pub fn parse_score(text: &str) -> std::result::Result<TaskScore, String> {
    let (task, score) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not TASK=SCORE, e.g. 19=2"))?;
    let task: u32 = task
        .trim()
        .parse()
        .ok()
        .filter(|t| (1..=MAX_TASK).contains(t))
        .ok_or_else(|| format!("{text:?}: the task is a number from 1 to {MAX_TASK}, e.g. 19=2"))?;
    let score: u32 = score
        .trim()
        .parse()
        .ok()
        .filter(|s| *s <= MAX_TASK_SCORE)
        .ok_or_else(|| format!("{text:?}: the score is a whole number from 0 to {MAX_TASK_SCORE}"))?;
    Ok(TaskScore {
        task: task.to_string(),
        score,
    })
}

/// A regional re-check's result.
pub fn recheck(
    place: &Workplace,
    day: ExamDay,
    participant: &str,
    scores: Vec<TaskScore>,
    documents: &[PathBuf],
    by: &str,
) -> Result<()> {
    let mut tasks = std::collections::BTreeSet::new();
    if let Some(twice) = scores.iter().find(|s| !tasks.insert(&s.task)) {
        return Err(Error::Loader {
            what: format!("task {} is given twice", twice.task),
            hint: "give each changed task once (--score TASK=SCORE)",
        });
    }
    let row = MirrorRow::RegionalRecheck(RecheckRow {
        day,
        participant: participant.to_owned(),
        scores,
        documents: document_refs(documents)?,
    });
    enter(place, by, &format!("re-check on {day}"), participant, row)
}

/// Which personal data a correction changes: the participant's name and identity
/// document (`002:7647`), and what registration holds beside them (`002:7657`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CorrectionField {
    /// Фамилия.
    Surname,
    /// Имя.
    Name,
    /// Отчество.
    Patronymic,
    /// The identity document's kind.
    DocumentType,
    /// The identity document's series.
    DocumentSeries,
    /// The identity document's number.
    DocumentNumber,
    /// Дата рождения.
    BirthDate,
    /// Пол.
    Sex,
}

impl CorrectionField {
    /// The field's name as stored and sent to ФИС.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionField::Surname => "surname",
            CorrectionField::Name => "name",
            CorrectionField::Patronymic => "patronymic",
            CorrectionField::DocumentType => "document-type",
            CorrectionField::DocumentSeries => "document-series",
            CorrectionField::DocumentNumber => "document-number",
            CorrectionField::BirthDate => "birth-date",
            CorrectionField::Sex => "sex",
        }
    }
}

/// The longest corrected value (a surname, a document number … is far shorter).
const MAX_VALUE_CHARS: usize = 200;

/// Refuses a corrected value that is empty, too long or has control characters: it is
/// stored and sent to ФИС as given.
pub fn check_value(value: &str) -> Result<()> {
    if value.trim().is_empty() || value.chars().count() > MAX_VALUE_CHARS || value.chars().any(char::is_control) {
        return Err(Error::Loader {
            what: format!("{value:?} is not a corrected value: empty, over {MAX_VALUE_CHARS} characters or with control characters"),
            hint: "give the corrected value as the correction protocol has it, on one line (--value)",
        });
    }
    Ok(())
}

/// A personal-data correction.
pub fn correction(
    place: &Workplace,
    participant: &str,
    field: CorrectionField,
    value: &str,
    documents: &[PathBuf],
    by: &str,
) -> Result<()> {
    check_value(value)?;
    super::desk::check_name(by)?;
    let field = field.as_str();
    let row = MirrorRow::PersonalDataCorrection(CorrectionRow {
        participant: participant.to_owned(),
        field: field.to_owned(),
        value: value.to_owned(),
        documents: document_refs(documents)?,
    });
    enter(place, by, &format!("correction of {field}"), participant, row)
}

/// Writes the token certificate data ФИС sent to this region to `out`, for the security
/// officers to review against their registry (`konvert keys review-certificates`); the
/// registry itself is never touched here. Returns how many certificates.
pub fn export_certificates(place: &Workplace, out: &Path) -> Result<usize> {
    let records = pg(place, "token certificate data")?;
    let Some(region) = mirror_outbox::mirror_region(&records, "exporting token certificate data")? else {
        return Err(Error::Loader {
            what: "no mirror is set up for these records: nothing came from ФИС".into(),
            hint: "set up the region's mirror; certificate data come with its exchanges",
        });
    };
    let import = mirror_outbox::token_certificates(&records, region)?;
    let text = toml::to_string(&import).map_err(|e| Error::Loader {
        what: format!("cannot write the certificates: {e}"),
        hint: "report this as a bug",
    })?;
    konvert_crypto::keyfile::write_atomic(out, text.as_bytes(), 0o600)?;
    println!(
        "{} token certificate(s) from ФИС written to {} for the security officers' review",
        import.certificates.len(),
        out.display()
    );
    Ok(import.certificates.len())
}

#[cfg(test)]
#[path = "for_fis_tests.rs"]
mod tests;
