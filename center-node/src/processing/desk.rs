//! The people's side of processing: the verification queue and its verdicts (a verifier,
//! and a senior verifier for what a verifier passes on, 002:8071–8105), the marks that
//! expert checking is done, and closing the exam (002:7437–7453). Every decision is
//! recorded with who took it, in which role, in the records and the loader's audit log.

use std::collections::BTreeSet;

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_exam::DayPlan;
use konvert_records::mirror_outbox::{self, Mirrored};
use konvert_records::{Decision, DecisionKind, ExamDay, PageKey, PageOutcome, PageStage, Records, Role, Verdict};

use super::Resolution;
use crate::{Error, Result};

/// The audit log's word for a human decision in processing.
pub const PROCESS_DECISION: &str = "process-decision";

fn refuse(what: String, hint: &'static str) -> Error {
    Error::Loader { what, hint }
}

/// The pages waiting for a person: the verifiers' queue, then the senior verifiers'.
pub fn queue(records: &dyn Records) -> Result<Vec<PageOutcome>> {
    let mut q: Vec<PageOutcome> = records
        .outcomes()?
        .into_iter()
        .filter(|o| {
            matches!(
                o.stage,
                PageStage::AwaitingVerifier | PageStage::AwaitingSenior | PageStage::Blocked
            )
        })
        .collect();
    q.sort_by_key(|o| (matches!(o.stage, PageStage::AwaitingSenior), o.key));
    Ok(q)
}

#[allow(clippy::too_many_arguments)] // The decision, who took it, and what the log says of it.
fn audited(
    records: &dyn Records,
    audit: &AuditLog,
    by: &str,
    role: Role,
    now_unix_ms: u64,
    kind: DecisionKind,
    subject: &str,
    detail: &str,
) -> Result<Decision> {
    logged(audit, by, role, subject, detail)?;
    Ok(records.decide(by, role, now_unix_ms, kind)?)
}

/// Refuses a name of a person acting (`--by`) that is empty, over 200 characters or has
/// control characters: it goes into the audit log and to ФИС as given.
pub(crate) fn check_name(by: &str) -> Result<()> {
    if by.trim().is_empty() || by.chars().count() > 200 || by.chars().any(char::is_control) {
        return Err(refuse(
            format!("{by:?} is not a name"),
            "give the name of the person deciding (--by), as the shift list has it",
        ));
    }
    Ok(())
}

/// Checks the decider's name and logs the decision: a decision not in the log is not taken.
fn logged(audit: &AuditLog, by: &str, role: Role, subject: &str, detail: &str) -> Result<()> {
    check_name(by)?;
    // The log first: a decision not in the log is not taken.
    audit.append(
        &format!("{} {by}", role.as_str()),
        AuditAction::Other(PROCESS_DECISION.to_owned()),
        subject,
        detail,
    )?;
    Ok(())
}

/// A verifier's (or senior verifier's) verdict on a queued page.
pub fn verify(
    records: &dyn Records,
    audit: &AuditLog,
    page: PageKey,
    verdict: Verdict,
    by: &str,
    role: Role,
    now_unix_ms: u64,
) -> Result<Decision> {
    let outcome = records.outcomes()?.into_iter().find(|o| o.key == page).ok_or_else(|| {
        refuse(
            format!("page {page} is not registered"),
            "take the page key from `konvert-center loader queue`",
        )
    })?;
    match (&outcome.stage, role) {
        (PageStage::AwaitingVerifier, Role::Verifier | Role::SeniorVerifier) => {}
        (PageStage::AwaitingSenior, Role::SeniorVerifier) => {}
        (PageStage::AwaitingSenior, _) => {
            return Err(refuse(
                format!("page {page} was passed to a senior verifier"),
                "a senior verifier decides it (--role senior-verifier)",
            ))
        }
        (_, Role::Verifier | Role::SeniorVerifier) => {
            return Err(refuse(
                format!(
                    "page {page} is not in the verification queue ({})",
                    super::stage_name(&outcome.stage)
                ),
                "only pages in `konvert-center loader queue` are verified; run processing if it should be",
            ))
        }
        _ => {
            return Err(refuse(
                "only a verifier or a senior verifier verifies pages".into(),
                "use --role verifier or --role senior-verifier",
            ))
        }
    }
    if verdict == Verdict::ToSenior && role == Role::SeniorVerifier {
        return Err(refuse(
            "a senior verifier decides; there is no one to pass the page to".into(),
            "say what the page is, or that it is unreadable",
        ));
    }
    let detail = match &verdict {
        Verdict::Is(id) => format!("is {id}"),
        Verdict::Unreadable => "unreadable: quarantine".into(),
        Verdict::ToSenior => "passed to a senior verifier".into(),
    };
    audited(
        records,
        audit,
        by,
        role,
        now_unix_ms,
        DecisionKind::Verify { page, verdict },
        &format!("page {page} ({})", outcome.what),
        &detail,
    )
}

/// A senior verifier's or the project administrator's reconciliation of a finding (the
/// marks against the site's acts, 002:7183–7188: step 5 of the chain is theirs).
pub fn reconcile(
    records: &dyn Records,
    audit: &AuditLog,
    finding: &str,
    note: &str,
    by: &str,
    role: Role,
    now_unix_ms: u64,
) -> Result<Decision> {
    if !matches!(role, Role::SeniorVerifier | Role::Administrator) {
        return Err(refuse(
            "only a senior verifier or the project administrator reconciles findings".into(),
            "use --role senior-verifier or --role administrator",
        ));
    }
    if note.trim().is_empty() || note.chars().count() > 1000 {
        return Err(refuse(
            "say what was found (--note), in at most 1000 characters".into(),
            "e.g. --note \"ППЭ-21 of the room lists the participant; the blank's box was not crossed\"",
        ));
    }
    let known = records.findings()?.into_iter().find(|f| f.finding.id == finding);
    match known.map(|f| f.finding.kind) {
        None => {
            return Err(refuse(
                format!("there is no finding {finding:?}"),
                "copy the id from `konvert-center loader findings`",
            ))
        }
        Some(konvert_records::FindingKind::MarksDisagree { .. }) => {}
        Some(_) => {
            return Err(refuse(
                format!("finding {finding:?} is not one a person reconciles"),
                "only a removal or early-finish mark that disagrees with the site's act is reconciled; \
                 the others resolve when what they ask for arrives (a rescan, a form, a verifier's verdict)",
            ))
        }
    }
    audited(
        records,
        audit,
        by,
        role,
        now_unix_ms,
        DecisionKind::Reconcile {
            finding: finding.to_owned(),
            note: note.to_owned(),
        },
        &format!("finding {finding}"),
        note,
    )
}

/// An audio operator's decision on a recording of a KIM duplicate group (002:7393–7401).
pub fn decide_recording(
    records: &dyn Records,
    audit: &AuditLog,
    recording: PageKey,
    choice: konvert_records::AudioChoice,
    by: &str,
    now_unix_ms: u64,
) -> Result<Decision> {
    let outcome = records.outcomes()?.into_iter().find(|o| o.key == recording);
    match outcome.map(|o| o.stage) {
        Some(PageStage::Blocked) => {}
        Some(stage) => {
            return Err(refuse(
                format!("recording {recording} is not blocked ({})", super::stage_name(&stage)),
                "only recordings of a KIM duplicate group wait for a decision (`konvert-center loader queue`)",
            ))
        }
        None => {
            return Err(refuse(
                format!("recording {recording} is not registered"),
                "take the key from `konvert-center loader queue`",
            ))
        }
    }
    if let konvert_records::AudioChoice::Renumber(kim) = &choice {
        kim.parse::<konvert_exam::KimNumber>()?;
    }
    let detail = match &choice {
        konvert_records::AudioChoice::Admit => "admitted to processing".to_owned(),
        konvert_records::AudioChoice::Annul => "annulled".to_owned(),
        konvert_records::AudioChoice::Renumber(k) => format!("renumbered to KIM {k}"),
    };
    audited(
        records,
        audit,
        by,
        Role::AudioOperator,
        now_unix_ms,
        DecisionKind::Audio { recording, choice },
        &format!("recording {recording}"),
        &detail,
    )
}

/// Records that expert checking of `day` is complete.
pub fn expert_checking_done(
    records: &dyn Records,
    audit: &AuditLog,
    day: ExamDay,
    by: &str,
    now_unix_ms: u64,
) -> Result<Decision> {
    audited(
        records,
        audit,
        by,
        Role::Administrator,
        now_unix_ms,
        DecisionKind::ExpertCheckingDone { day },
        &format!("exam {day}"),
        "expert checking complete",
    )
}

/// Whether `day` is closed.
pub fn is_closed(decisions: &[Decision], day: ExamDay) -> bool {
    decisions
        .iter()
        .any(|d| matches!(d.kind, DecisionKind::Close { day: d2 } if d2 == day))
}

/// What keeps `day` from being closed, in words; empty when it may be closed.
/// `nobody_sat` is the project administrator's statement that nobody sat the exam anywhere
/// in the region (002:7453): the rooms' forms are then not awaited, but it is refused
/// while any blank is registered for the day.
pub fn close_blockers(
    plan: &DayPlan,
    resolution: &Resolution,
    decisions: &[Decision],
    nobody_sat: bool,
) -> Vec<String> {
    let day = ExamDay {
        date: plan.date,
        exam: plan.exam,
    };
    let mut out = Vec::new();
    let rooms: Vec<_> = resolution.rooms.iter().filter(|r| r.day == day).collect();
    let anyone = rooms.iter().any(|r| r.wrote > 0);
    if nobody_sat && anyone {
        out.push("blanks are registered for this day: someone sat the exam, so every room's forms are needed".into());
    }
    // Without the statement, nothing received is not evidence that nobody sat.
    let forms_needed = !nobody_sat || anyone;
    let planned: BTreeSet<(&str, &str)> = plan.rooms.iter().map(|r| (r.site.as_str(), r.code.as_str())).collect();
    for r in &rooms {
        let planned_room = planned.contains(&(r.site.as_str(), r.room.as_str()));
        if forms_needed && planned_room {
            if !r.has_12_04 {
                out.push(format!("site {} room {}: ППЭ-12-04МАШ is not scanned", r.site, r.room));
            }
            if !r.has_summary {
                out.push(format!(
                    "site {} room {}: {} is not scanned",
                    r.site,
                    r.room,
                    r.summary.code()
                ));
            }
        }
        if r.waiting > 0 {
            out.push(format!(
                "site {} room {}: {} pages are not processed (waiting for forms or a verifier)",
                r.site, r.room, r.waiting
            ));
        }
    }
    if forms_needed {
        for s in &plan.sites {
            if !resolution.sites_with_18.contains(&(day, s.code.as_str().to_owned())) {
                out.push(format!("site {}: ППЭ-18МАШ is not scanned", s.code));
            }
        }
    }
    // The marks against the acts (002:7437–7447): every disagreement reconciled by a person.
    let reconciled: BTreeSet<&str> = decisions
        .iter()
        .filter_map(|d| match &d.kind {
            DecisionKind::Reconcile { finding, .. } => Some(finding.as_str()),
            _ => None,
        })
        .collect();
    for f in resolution.findings.iter().filter(|f| f.day == day) {
        if let konvert_records::FindingKind::MarksDisagree { detail, .. } = &f.kind {
            if !reconciled.contains(f.id.as_str()) {
                out.push(format!(
                    "site {} room {}: {detail} — not reconciled (`konvert-center loader reconcile {}`)",
                    f.site,
                    f.room.as_ref().map_or("-", |r| r.as_str()),
                    f.id
                ));
            }
        }
    }
    if plan.expert_checking
        && !decisions
            .iter()
            .any(|d| matches!(d.kind, DecisionKind::ExpertCheckingDone { day: d2 } if d2 == day))
    {
        out.push("expert checking is not marked complete (`konvert-center loader experts-done`)".into());
    }
    out
}

/// Closes `day` if nothing blocks it; otherwise says what is missing. With the records on
/// PostgreSQL (`pg`, the same records as `records`), the Close decision and the day's
/// results rows for ФИС are written in one transaction, and the mirror is woken to send
/// them at once (002:7451); only participants of the day's plan get a row.
#[allow(clippy::too_many_arguments)] // The day, the decider, and where the records are.
pub fn close(
    records: &dyn Records,
    pg: Option<&konvert_records::PgRecords>,
    audit: &AuditLog,
    day: ExamDay,
    resolution: &Resolution,
    nobody_sat: bool,
    by: &str,
    now_unix_ms: u64,
) -> Result<(Decision, Mirrored)> {
    let plan = records
        .plans()?
        .into_iter()
        .find(|p| p.date == day.date && p.exam == day.exam)
        .ok_or_else(|| {
            refuse(
                format!("no plan of {day} is imported"),
                "import the exam day's plan (`konvert-center loader import-plan`) first",
            )
        })?;
    let decisions = records.decisions()?;
    if is_closed(&decisions, day) {
        return Err(refuse(format!("exam {day} is already closed"), "nothing to do"));
    }
    let blockers = close_blockers(&plan, resolution, &decisions, nobody_sat);
    if !blockers.is_empty() {
        return Err(refuse(
            format!("exam {day} cannot be closed yet:\n  - {}", blockers.join("\n  - ")),
            "process what is missing (or get the site to send it), then close again",
        ));
    }
    let role = Role::Administrator;
    logged(
        audit,
        by,
        role,
        &format!("exam {day}"),
        if nobody_sat {
            "closed: nobody sat the exam in the region (002:7453)"
        } else {
            "closed; results wait for the mirror to ФИС"
        },
    )?;
    let Some(pg) = pg else {
        let decision = records.decide(by, role, now_unix_ms, DecisionKind::Close { day })?;
        return Ok((decision, Mirrored::default()));
    };
    let (rows, unplanned_pages) = mirror_outbox::results_of(&plan, &records.outcomes()?, &records.pages()?);
    let (decision, mut mirrored) = mirror_outbox::close_day(pg, by, role, now_unix_ms, day, rows)?;
    mirrored.left_out += unplanned_pages;
    Ok((decision, mirrored))
}

/// Records a site's ППЭ-14-01 counts, entered when its paper arrives (days later,
/// 002:7092); it never gates loading, the day's reconciliation or closing.
pub fn hand_over(
    records: &dyn Records,
    audit: &AuditLog,
    day: ExamDay,
    act: konvert_records::HandOverAct,
    by: &str,
    now_unix_ms: u64,
) -> Result<Decision> {
    if act
        .materials
        .iter()
        .any(|(title, _)| title.trim().is_empty() || title.chars().count() > 200)
    {
        return Err(refuse(
            "a material of the act has no name or a name over 200 characters".into(),
            "name each material as the act does, e.g. --material \"Бланк регистрации=30\"",
        ));
    }
    let detail = format!(
        "{} safe bags; {}",
        act.safe_bags,
        act.materials
            .iter()
            .map(|(t, n)| format!("{t}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let subject = format!("ППЭ-14-01 of site {} for {day}", act.site);
    audited(
        records,
        audit,
        by,
        Role::Administrator,
        now_unix_ms,
        DecisionKind::HandOver { day, act },
        &subject,
        &detail,
    )
}

/// The site's ППЭ-14-01 against what was registered: one line per material whose count
/// differs from the blanks of that kind registered for the site (duplicates, quarantined
/// pages and pages of other exams not counted). Materials that name no blank kind are
/// listed as not reconciled by konvert.
pub fn reconcile_hand_over(act: &konvert_records::HandOverAct, day: ExamDay, outcomes: &[PageOutcome]) -> Vec<String> {
    use konvert_records::FinalState;
    let mut out = Vec::new();
    for (title, declared) in &act.materials {
        let Some(kind) = konvert_exam::BlankKind::ALL.into_iter().find(|k| k.title() == title) else {
            out.push(format!(
                "{title}: {declared} on the act; not a blank kind konvert counts"
            ));
            continue;
        };
        let prefix = format!("{} ", kind.title());
        let registered = outcomes
            .iter()
            .filter(|o| o.day == day && o.site == act.site && o.what.starts_with(&prefix))
            .filter(|o| {
                matches!(
                    o.stage,
                    PageStage::Final(FinalState::Registered | FinalState::Withheld { .. })
                )
            })
            .count();
        if registered as u64 != u64::from(*declared) {
            out.push(format!("{title}: {declared} on the act, {registered} registered"));
        }
    }
    out
}
