//! `konvert-center retention …`: the table, the sweep (a dry run unless `--apply`), holds.

use clap::Subcommand;
use konvert_exam::ExamDate;
use konvert_records::{ExamDay, HoldReason, HoldTarget, NewHold, Release};

use crate::intake::now_ms;
use crate::processing::cli::{place, RecordsAt};
use crate::{Error, Result};

/// Retention of the records, the page images and the transport envelopes.
#[derive(Debug, Subcommand)]
pub enum RetentionAction {
    /// Print the retention table with where the regulations say so.
    Table,
    /// List what retention deletes today and why each stored envelope stays. Nothing is
    /// deleted without --apply; with it, exactly what the list shows goes, each deletion in
    /// the loader's audit log.
    Sweep {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// Delete what the list shows.
        #[arg(long, requires = "by")]
        apply: bool,
        /// Who runs retention (recorded with every deletion).
        #[arg(long)]
        by: Option<String>,
        /// List what would go on this later day instead of today (never with --apply).
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "apply")]
        as_of: Option<ExamDate>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Place a hold: an appeal, a removal, an annulment or an investigation keeps every
    /// record, image and envelope it touches until released.
    Hold {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// Why.
        #[arg(long, value_enum)]
        reason: HoldReasonArg,
        /// What it keeps.
        #[command(flatten)]
        target: TargetArgs,
        /// Who places it.
        #[arg(long)]
        by: String,
        /// The case: an appeal's number, a decision of the commission.
        #[arg(long)]
        note: String,
        /// Place it even though nothing in the records matches it yet (a packet not yet
        /// loaded).
        #[arg(long)]
        force: bool,
    },
    /// Release a hold (it stays listed, released).
    Release {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// The hold's number, as `holds` lists it.
        id: u64,
        /// Who releases it.
        #[arg(long)]
        by: String,
        /// Why: the appeal decided, the investigation closed.
        #[arg(long)]
        note: String,
    },
    /// List the holds.
    Holds {
        /// The loader's center.toml and records.
        #[command(flatten)]
        at: RecordsAt,
        /// Released ones too.
        #[arg(long)]
        all: bool,
    },
}

/// A hold's reason on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HoldReasonArg {
    /// An appeal.
    Appeal,
    /// A removal from the exam.
    Removal,
    /// An annulment.
    Annulment,
    /// An investigation.
    Investigation,
}

impl From<HoldReasonArg> for HoldReason {
    fn from(r: HoldReasonArg) -> Self {
        match r {
            HoldReasonArg::Appeal => HoldReason::Appeal,
            HoldReasonArg::Removal => HoldReason::Removal,
            HoldReasonArg::Annulment => HoldReason::Annulment,
            HoldReasonArg::Investigation => HoldReason::Investigation,
        }
    }
}

/// What a hold keeps, on the command line: exactly one of them.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A packet version, by its envelope id (64 hex digits, as `loader findings` shows).
    #[arg(long)]
    pub packet: Option<String>,
    /// A participant, by code in the records.
    #[arg(long)]
    pub participant: Option<String>,
    /// A whole exam day, YYYY-MM-DD (with --exam).
    #[arg(long, requires = "exam")]
    pub date: Option<ExamDate>,
    /// The exam of --date.
    #[arg(long, requires = "date")]
    pub exam: Option<konvert_exam::ExamKind>,
}

impl TargetArgs {
    fn target(self) -> Result<HoldTarget> {
        if let Some(p) = self.packet {
            let envelope = hex::decode(&p)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| Error::Loader {
                    what: format!("{p:?} is not an envelope id"),
                    hint: "give the 64 hex digits of the packet version's envelope id",
                })?;
            return Ok(HoldTarget::Packet(envelope));
        }
        if let Some(code) = self.participant {
            check_text(
                "--participant",
                &code,
                64,
                "give the participant's code as the records have it",
            )?;
            return Ok(HoldTarget::Participant(code));
        }
        match (self.date, self.exam) {
            (Some(date), Some(exam)) => Ok(HoldTarget::Day(ExamDay { date, exam })),
            _ => Err(Error::Loader {
                what: "a hold names nothing".into(),
                hint: "give --packet, --participant, or --date with --exam",
            }),
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Loader {
        what: format!("cannot write JSON: {e}"),
        hint: "report this as a bug",
    })?;
    println!("{text}");
    Ok(())
}

fn print_sweep(s: &super::Sweep, applied: bool) {
    let verb = if applied { "deleted" } else { "would delete" };
    println!("retention on {}:", s.today);
    for i in &s.images {
        println!("  image    {} ({} bytes) — {}", i.sha256, i.bytes, i.why);
    }
    for e in &s.envelopes {
        println!("  envelope {} v{} site {} — {}", e.packet_id, e.version, e.site, e.why);
    }
    for e in &s.kept {
        println!("  keeps    {} v{} site {} — {}", e.packet_id, e.version, e.site, e.why);
    }
    for h in &s.holds {
        println!("  hold {}  {} {} by {}: {}", h.id, h.reason, h.target, h.by, h.note);
    }
    if !s.damaged.is_empty() {
        println!(
            "  WARNING {} image(s) the records keep are missing or damaged in the image store (their envelopes stay): \
             run `konvert-center loader process` to keep them again, or restore the records' folder: {}",
            s.damaged.len(),
            s.damaged.join(", ")
        );
    }
    if s.records_due > 0 {
        println!(
            "  {} packet version(s) are past the records' ten years; their rows in the records stay (this command \
             deletes images and envelopes only)",
            s.records_due
        );
    }
    println!(
        "{verb}: {} image(s), {} envelope(s); {} envelope(s) stay; receipts and inbox records always stay",
        s.images.len(),
        s.envelopes.len(),
        s.kept.len()
    );
    let would_delete = !s.images.is_empty() || !s.envelopes.is_empty();
    if !applied && would_delete {
        println!("this was a dry run: nothing was deleted; run again with --apply --by <name> to delete exactly this");
    }
}

/// Refuses a text that is empty, over `max` characters or has control characters: what
/// retention is told goes into the audit log and the holds' list as given.
fn check_text(arg: &str, text: &str, max: usize, hint: &'static str) -> Result<()> {
    if text.trim().is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(Error::Loader {
            what: format!("{arg} {text:?} is empty, over {max} characters or has control characters"),
            hint,
        });
    }
    Ok(())
}

/// Runs a `retention` command.
pub fn command(action: RetentionAction) -> Result<()> {
    match action {
        RetentionAction::Table => {
            for row in super::table::TABLE {
                println!("{}\n    kept: {}\n    source: {}", row.what, row.kept, row.source);
            }
        }
        RetentionAction::Sweep {
            at: RecordsAt { config, records },
            apply,
            by,
            as_of,
            json,
        } => {
            let (cfg, place) = place(&config, records)?;
            let records = place.open_records()?;
            let today = cfg.time_zone.local_date(i64::try_from(now_ms()).unwrap_or(i64::MAX))?;
            if let Some(day) = as_of.filter(|d| *d < today) {
                return Err(Error::Loader {
                    what: format!("--as-of {day} is before today ({today})"),
                    hint: "a sweep lists what goes today or later; give today or a later day",
                });
            }
            if apply {
                let by = by.unwrap_or_default();
                crate::processing::desk::check_name(&by)?;
                let done = super::apply(&place, &*records, &cfg.time_zone, today, &by, now_ms())?;
                if json {
                    return print_json(&done);
                }
                print_sweep(&done.sweep, true);
            } else {
                let s = super::sweep(&place, &*records, &cfg.time_zone, as_of.unwrap_or(today))?;
                if json {
                    return print_json(&s);
                }
                print_sweep(&s, false);
            }
        }
        RetentionAction::Hold {
            at: RecordsAt { config, records },
            reason,
            target,
            by,
            note,
            force,
        } => {
            crate::processing::desk::check_name(&by)?;
            check_text(
                "--note",
                &note,
                500,
                "give the case on one line: an appeal's number, a decision",
            )?;
            let target = target.target()?;
            let (_, place) = place(&config, records)?;
            let records = place.open_records()?;
            if !super::hold_matches(&*records, &target)? {
                if !force {
                    return Err(Error::Loader {
                        what: format!("a hold on {target} matches nothing in these records: it would keep nothing"),
                        hint: "check the envelope id, participant code or day; give --force to place it before the records have it",
                    });
                }
                eprintln!("warning: {target} matches nothing in these records yet; the hold keeps what comes under it");
            }
            let hold = NewHold {
                reason: reason.into(),
                target,
                by: by.clone(),
                at_unix_ms: now_ms(),
                note,
            };
            // In the log before it takes effect, as every decision.
            let audit = place.audit()?;
            audit.append(
                &format!("retention {by}"),
                konvert_crypto::audit::AuditAction::Other(super::HOLD.into()),
                &format!("{} {}", hold.reason, hold.target),
                &hold.note,
            )?;
            let hold = records.add_hold(hold)?;
            place.anchor(&audit)?;
            println!(
                "hold {} placed: {} keeps {} and everything it touches until released",
                hold.id, hold.reason, hold.target
            );
        }
        RetentionAction::Release {
            at: RecordsAt { config, records },
            id,
            by,
            note,
        } => {
            crate::processing::desk::check_name(&by)?;
            check_text(
                "--note",
                &note,
                500,
                "say on one line why: the appeal decided, the investigation closed",
            )?;
            let (_, place) = place(&config, records)?;
            let records = place.open_records()?;
            let audit = place.audit()?;
            audit.append(
                &format!("retention {by}"),
                konvert_crypto::audit::AuditAction::Other(super::RELEASE.into()),
                &format!("hold {id}"),
                &note,
            )?;
            let hold = records.release_hold(
                id,
                Release {
                    by,
                    at_unix_ms: now_ms(),
                    note,
                },
            )?;
            place.anchor(&audit)?;
            println!(
                "hold {} released ({} of {}); retention judges what it kept from the next sweep on",
                hold.id, hold.reason, hold.target
            );
        }
        RetentionAction::Holds {
            at: RecordsAt { config, records },
            all,
        } => {
            let (_, place) = place(&config, records)?;
            let holds = place.open_records()?.holds()?;
            for h in holds.iter().filter(|h| all || h.released.is_none()) {
                let state = match &h.released {
                    Some(r) => format!("released by {}: {}", r.by, r.note),
                    None => "in force".into(),
                };
                println!(
                    "  {:>4}  {:<13} {} by {}: {} — {state}",
                    h.id, h.reason, h.target, h.by, h.note
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
