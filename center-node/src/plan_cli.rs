//! `konvert-center plan`: import an exam day's plan, show what is imported, and issue a
//! site's seating plan from it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use konvert_crypto::audit::AuditLog;
use konvert_crypto::keyfile;
use konvert_exam::{ExamDate, ExamKind, SiteId};

use crate::config::CenterConfig;
use crate::plans::{self, PlanDesk};
use crate::service::{AUDIT_CHECKPOINT_EVERY, AUDIT_LOG};
use crate::Result;

/// How long an import waits for a serving center to record it in the audit log.
const AUDIT_WAIT: Duration = Duration::from_secs(15);

/// What to do with the exam days' plans.
#[derive(Debug, Subcommand)]
pub enum PlanAction {
    /// Import an exam day's plan (TOML from the regional records): sites with kind and
    /// time zone, rooms, participants, members. Rows without consent are left out. A new
    /// import for the same day and exam replaces the earlier one. Works while the center
    /// serves; recorded in the audit log.
    Import {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The plan file.
        plan: PathBuf,
        /// Who imports it (recorded in the audit log).
        #[arg(long, default_value = "center staff")]
        operator: String,
    },
    /// Show the imported plans: per site its kind, time zone, rooms, participants, members.
    Show {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
    },
    /// Write a site's seating plan, in the format the site's station reads
    /// (`seating_plan` in site.toml).
    Seating {
        /// center.toml
        #[arg(long)]
        config: PathBuf,
        /// The site code.
        #[arg(long)]
        site: String,
        /// The exam day, when the site is in several plans (YYYY-MM-DD).
        #[arg(long)]
        date: Option<String>,
        /// The exam, when the site is in several plans (ege, oge, gve, essay).
        #[arg(long)]
        exam: Option<String>,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs one `plan` command.
pub fn plan_command(action: PlanAction) -> Result<()> {
    match action {
        PlanAction::Import { config, plan, operator } => {
            let cfg = CenterConfig::load(&config)?;
            let desk = PlanDesk::open(&cfg.data_dir)?;
            let imported = desk.import(&plan, &operator)?;
            println!(
                "{}: exam day {} ({}) {}: {} site(s), {} room(s), {} participant(s), {} member(s)",
                plan.display(),
                imported.date,
                imported.exam.code(),
                if imported.replaced {
                    "imported, replacing the plan imported before"
                } else {
                    "imported"
                },
                imported.sites,
                imported.rooms,
                imported.participants,
                imported.members
            );
            println!(
                "  {} row(s) of participants without consent left out: not kept at the center; their blanks \
                 stay on paper",
                imported.without_consent
            );
            println!("  {}", record_import(&cfg, &desk)?);
            println!(
                "  issue each site its seating plan: konvert-center plan seating --config {} --site CODE --out FILE",
                config.display()
            );
        }
        PlanAction::Show { config } => {
            let cfg = CenterConfig::load(&config)?;
            let plans = PlanDesk::open(&cfg.data_dir)?.plans()?;
            if plans.is_empty() {
                println!("no exam-day plan imported (konvert-center plan import)");
            }
            for plan in &plans {
                print!("{}", plans::describe(plan));
            }
        }
        PlanAction::Seating {
            config,
            site,
            date,
            exam,
            out,
        } => {
            let cfg = CenterConfig::load(&config)?;
            let site: SiteId = site.parse()?;
            let date: Option<ExamDate> = date.map(|d| d.parse()).transpose()?;
            let exam: Option<ExamKind> = exam.map(|e| e.parse()).transpose()?;
            let seating = PlanDesk::open(&cfg.data_dir)?.seating(&site, date, exam)?;
            plans::write_seating(&seating, &out)?;
            println!(
                "seating plan of site {site} for {} ({}): {} participant(s) in {} room(s) written to {}",
                seating.date,
                seating.exam.code(),
                seating.participants.len(),
                seating.rooms().len(),
                out.display()
            );
            println!("  give it to the site as the file site.toml's seating_plan names");
        }
    }
    Ok(())
}

/// Writes the import to the audit log: here when no center serves, else by the serving
/// center (which holds the log), waited for. Returns what to tell the operator.
fn record_import(cfg: &CenterConfig, desk: &PlanDesk) -> Result<String> {
    // The inbox's lock says whether a center serves this data folder.
    if let Ok(inbox) = konvert_replication::Inbox::open(&cfg.data_dir) {
        let audit = AuditLog::open(
            &cfg.data_dir.join(AUDIT_LOG),
            keyfile::read_signing_key(&cfg.receipt_key).ok(),
            AUDIT_CHECKPOINT_EVERY,
        )?;
        desk.record_pending(&audit)?;
        if let Err(e) = audit.checkpoint() {
            tracing::warn!("cannot write the audit log's checkpoint: {e}");
        }
        drop(inbox);
        return Ok("recorded in the audit log".into());
    }
    let until = Instant::now() + AUDIT_WAIT;
    while desk.audit_pending() {
        if Instant::now() > until {
            return Ok(format!(
                "the serving center has not yet recorded the import in the audit log; it does so from {} \
                 as soon as it looks (check the center's log if this stays)",
                cfg.data_dir.join("plans/audit-pending").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok("recorded in the audit log by the serving center; it watches the plan's sites from now on".into())
}
