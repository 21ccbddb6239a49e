//! The exam days' plans at the center (`konvert-center plan`): what the center expects.
//!
//! A plan ([`DayPlan`]: sites with kind and time zone, rooms, participants, members) is
//! imported once per exam day and exam, into `data_dir/plans/<date>-<exam>.toml`; a new
//! import for the same day and exam replaces it. Rows of participants without consent are
//! dropped on reading and never written here (seed 001:888, 960–982); only their number
//! is said. The center issues each site's seating plan from it ([`PlanDesk::seating`]), in
//! the format the edge reads, so edge and center cannot disagree about who sits where.
//!
//! The receiver reads the plans for the sites it expects (monitoring covers every one,
//! connected or not) and for each site's time zone (its 23:59), before center.toml's.
//!
//! Why audit notes. Only one process may write the center's audit log, and on the exam
//! day `konvert-center serve` holds it. An import therefore leaves a note in
//! `plans/audit-pending/`; whoever holds the log — the import itself when no center
//! serves, else the running center within seconds — appends it and removes the note.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::keyfile;
use konvert_exam::{
    DayPlan, ExamDate, ExamKind, PacketRef, PlanReading, PlanSite, RoomId, SeatingPlan, SiteId, SiteZone,
};
use serde::{Deserialize, Serialize};

use crate::config::CenterConfig;
use crate::{Error, Result};

/// The audit log's word for an imported plan.
pub const PLAN_IMPORT: &str = "plan.import";

/// Audit notes are small; anything larger in the folder is not one.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// What an import took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// Sites expected.
    pub sites: usize,
    /// Rooms.
    pub rooms: usize,
    /// Participants seated (with consent).
    pub participants: usize,
    /// Members assigned.
    pub members: usize,
    /// Rows of participants without consent, left out.
    pub without_consent: usize,
    /// Whether it replaced a plan imported earlier for the same day and exam.
    pub replaced: bool,
    /// Where the center keeps it.
    pub stored: PathBuf,
}

/// A site the plans expect on one exam day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedSite {
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The site: code, kind, time zone.
    pub site: PlanSite,
    /// Its rooms, in the plan's order.
    pub rooms: Vec<RoomId>,
    /// Its rooms that have participants seated: each owes a blanks packet.
    pub seated_rooms: Vec<RoomId>,
    /// Participants seated there.
    pub participants: usize,
}

impl ExpectedSite {
    /// The site's time zone (checked when the plan was read; Moscow if it no longer reads).
    pub fn zone(&self) -> SiteZone {
        SiteZone::new(&self.site.time_zone).unwrap_or_else(|_| SiteZone::moscow())
    }
}

/// An import waiting to be written to the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditNote {
    operator: String,
    file: String,
    plan: String,
    detail: String,
}

/// Which plan files are there and how they looked, to know when to read them again.
type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The plans folder `data_dir/plans/`.
#[derive(Debug)]
pub struct PlanDesk {
    dir: PathBuf,
    cache: Mutex<Option<(Stamp, Arc<Vec<DayPlan>>)>>,
}

fn plan_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Plan {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads and checks a plan file: bounded, UTF-8, every row checked, rows without consent
/// dropped. Errors name the file and say what to fix.
pub fn read_plan_file(path: &Path) -> Result<(DayPlan, PlanReading)> {
    let text = keyfile::read_text_bounded(path, keyfile::MAX_PLAN_BYTES).map_err(|e| {
        plan_error(
            path,
            format!(
                "cannot be read ({e}); give the plan file exported from the regional records, TOML of at most {} MiB",
                keyfile::MAX_PLAN_BYTES >> 20
            ),
        )
    })?;
    DayPlan::from_toml(&text).map_err(|e| plan_error(path, format!("{e}; fix the file and import it again")))
}

impl PlanDesk {
    /// The plans of the center with data folder `data_dir` (the folder is made by the
    /// first import; reading writes nothing).
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(PlanDesk {
            dir: data_dir.join("plans"),
            cache: Mutex::new(None),
        })
    }

    fn file_for(&self, date: ExamDate, exam: ExamKind) -> PathBuf {
        self.dir.join(format!("{date}-{}.toml", exam.code()))
    }

    fn pending_dir(&self) -> PathBuf {
        self.dir.join("audit-pending")
    }

    /// Imports the plan at `path`, replacing one imported earlier for the same exam day
    /// and exam, and leaves the import's audit note (see [`PlanDesk::record_pending`]).
    pub fn import(&self, path: &Path, operator: &str) -> Result<Imported> {
        if operator.trim().is_empty() {
            return Err(plan_error(path, "an import needs the operator's name; give --operator"));
        }
        let (plan, reading) = read_plan_file(path)?;
        let stored = self.file_for(plan.date, plan.exam);
        let replaced = stored.exists();
        let text = plan.to_toml()?;
        fs::create_dir_all(self.pending_dir()).map_err(Error::file(&self.dir))?;
        let imported = Imported {
            date: plan.date,
            exam: plan.exam,
            sites: plan.sites.len(),
            rooms: plan.rooms.len(),
            participants: plan.participants.len(),
            members: plan.members.len(),
            without_consent: reading.without_consent,
            replaced,
            stored: stored.clone(),
        };
        let note = AuditNote {
            operator: operator.to_owned(),
            file: path.display().to_string().chars().take(512).collect(),
            plan: format!("{} {}", plan.date, plan.exam.code()),
            detail: format!(
                "{} site(s), {} room(s), {} participant(s), {} member(s); {} row(s) without consent left out{}",
                imported.sites,
                imported.rooms,
                imported.participants,
                imported.members,
                imported.without_consent,
                if replaced {
                    "; replaces the plan imported before"
                } else {
                    ""
                },
            ),
        };
        // The note first: a plan in force whose import is not on its way to the log is not
        // imported.
        let note_text = toml::to_string(&note).map_err(|e| plan_error(path, format!("cannot note the import: {e}")))?;
        let note_path = self.pending_dir().join(format!(
            "{}-{}-{}.toml",
            crate::intake::now_ms(),
            std::process::id(),
            plan.date
        ));
        keyfile::write_atomic(&note_path, note_text.as_bytes(), 0o600)?;
        keyfile::write_atomic(&stored, text.as_bytes(), 0o600)?;
        Ok(imported)
    }

    /// Appends every import waiting in `plans/audit-pending/` to `audit` and removes its
    /// note; returns how many. Only the holder of the audit log calls this.
    pub fn record_pending(&self, audit: &AuditLog) -> Result<usize> {
        let dir = self.pending_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut notes: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        notes.sort();
        let mut done = 0;
        for path in notes {
            let note = keyfile::read_text_bounded(&path, MAX_NOTE_BYTES)
                .ok()
                .and_then(|t| toml::from_str::<AuditNote>(&t).ok());
            let Some(note) = note else {
                tracing::warn!(file = %path.display(), "not an import note; left in place");
                continue;
            };
            audit.append(
                &format!("operator {}", note.operator),
                AuditAction::Other(PLAN_IMPORT.to_owned()),
                &format!("{} from {}", note.plan, note.file),
                &note.detail,
            )?;
            fs::remove_file(&path).map_err(Error::file(&path))?;
            done += 1;
        }
        Ok(done)
    }

    /// Whether imports still wait to be written to the audit log.
    pub fn audit_pending(&self) -> bool {
        fs::read_dir(self.pending_dir()).is_ok_and(|mut d| d.any(|e| e.is_ok()))
    }

    fn stamp(&self) -> Result<Stamp> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut stamp: Stamp = Vec::new();
        for e in entries {
            let e = e.map_err(Error::file(&self.dir))?;
            let path = e.path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(Error::file(&path))?;
            if meta.is_file() {
                stamp.push((path, meta.len(), meta.modified().ok()));
            }
        }
        stamp.sort();
        Ok(stamp)
    }

    /// Every imported plan, by exam day then exam; read again only when a file changed.
    pub fn plans(&self) -> Result<Vec<DayPlan>> {
        Ok(self.shared()?.as_ref().clone())
    }

    /// [`PlanDesk::plans`] without copying them.
    pub fn shared(&self) -> Result<Arc<Vec<DayPlan>>> {
        let stamp = self.stamp()?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, plans)) = cache.as_ref() {
            if *seen == stamp {
                return Ok(plans.clone());
            }
        }
        let mut plans = Vec::new();
        for (path, _, _) in &stamp {
            let (plan, _) = read_plan_file(path)?;
            plans.push(plan);
        }
        plans.sort_by_key(|p| (p.date, p.exam.code()));
        let plans = Arc::new(plans);
        *cache = Some((stamp, plans.clone()));
        Ok(plans)
    }

    /// The plan of exam day `date` and exam `exam`, if imported.
    pub fn plan(&self, date: ExamDate, exam: ExamKind) -> Result<Option<DayPlan>> {
        Ok(self
            .shared()?
            .iter()
            .find(|p| p.date == date && p.exam == exam)
            .cloned())
    }

    /// Every site every plan expects, by exam day, exam, then site.
    pub fn expected_sites(&self) -> Result<Vec<ExpectedSite>> {
        let plans = self.shared()?;
        let mut out = Vec::new();
        for plan in plans.iter() {
            let seated: BTreeSet<(&SiteId, &RoomId)> = plan.participants.iter().map(|p| (&p.site, &p.room)).collect();
            let mut sites: Vec<&PlanSite> = plan.sites.iter().collect();
            sites.sort_by(|a, b| a.code.cmp(&b.code));
            for s in sites {
                let rooms: Vec<RoomId> = plan.rooms_of(&s.code).map(|r| r.code.clone()).collect();
                out.push(ExpectedSite {
                    date: plan.date,
                    exam: plan.exam,
                    site: s.clone(),
                    seated_rooms: rooms
                        .iter()
                        .filter(|r| seated.contains(&(&s.code, *r)))
                        .cloned()
                        .collect(),
                    rooms,
                    participants: plan.participants.iter().filter(|p| p.site == s.code).count(),
                });
            }
        }
        Ok(out)
    }

    /// The time zone the plans give site `site`: the plan of the packet's day and exam
    /// first, then any plan that lists the site.
    pub fn site_zone(&self, site: &str, date: ExamDate, exam: ExamKind) -> Option<SiteZone> {
        let plans = self.shared().ok()?;
        let of = |p: &DayPlan| p.sites.iter().find(|s| s.code.as_str() == site).cloned();
        let found = plans
            .iter()
            .find(|p| p.date == date && p.exam == exam)
            .and_then(of)
            .or_else(|| plans.iter().rev().find_map(of))?;
        SiteZone::new(&found.time_zone).ok()
    }

    /// The seating plan of site `site`, from the plan of `date` and `exam` where given,
    /// else the one plan that lists the site.
    pub fn seating(&self, site: &SiteId, date: Option<ExamDate>, exam: Option<ExamKind>) -> Result<SeatingPlan> {
        let plans = self.shared()?;
        let matching: Vec<&DayPlan> = plans
            .iter()
            .filter(|p| date.is_none_or(|d| p.date == d) && exam.is_none_or(|e| p.exam == e))
            .filter(|p| p.site(site).is_some())
            .collect();
        match matching.as_slice() {
            [one] => Ok(one.seating(site)?),
            [] => Err(plan_error(
                &self.dir,
                format!(
                    "no imported plan lists site {site}{}; import the exam day's plan first \
                     (`konvert-center plan import`), or check the site code with `konvert-center plan show`",
                    match (date, exam) {
                        (Some(d), Some(e)) => format!(" on {d} ({})", e.code()),
                        (Some(d), None) => format!(" on {d}"),
                        (None, Some(e)) => format!(" for {}", e.code()),
                        (None, None) => String::new(),
                    }
                ),
            )),
            several => Err(plan_error(
                &self.dir,
                format!(
                    "site {site} is in {} plans ({}); say which with --date and --exam",
                    several.len(),
                    several
                        .iter()
                        .map(|p| format!("{} {}", p.date, p.exam.code()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// The time zone that decides site `packet.site`'s deadlines: the plans' first, then
/// center.toml's `[site_time_zones]`, then its `time_zone`.
pub fn zone_for(cfg: &CenterConfig, plans: Option<&PlanDesk>, packet: &PacketRef) -> SiteZone {
    plans
        .and_then(|p| p.site_zone(packet.site.as_str(), packet.date, packet.exam))
        .unwrap_or_else(|| cfg.site_zone(packet.site.as_str()).clone())
}

/// Writes `seating` as the TOML the edge's `seating_plan` reads.
pub fn write_seating(seating: &SeatingPlan, out: &Path) -> Result<()> {
    let text = toml::to_string(seating).map_err(|e| plan_error(out, format!("cannot encode the seating plan: {e}")))?;
    keyfile::write_atomic(out, text.as_bytes(), 0o600)?;
    Ok(())
}

/// A plan in words, as `plan show` prints it: counts per site, never a participant.
pub fn describe(plan: &DayPlan) -> String {
    let mut per_site: BTreeMap<&SiteId, (usize, usize, usize)> = BTreeMap::new();
    for s in &plan.sites {
        per_site.entry(&s.code).or_default();
    }
    for r in &plan.rooms {
        per_site.entry(&r.site).or_default().0 += 1;
    }
    for p in &plan.participants {
        per_site.entry(&p.site).or_default().1 += 1;
    }
    for m in &plan.members {
        per_site.entry(&m.site).or_default().2 += 1;
    }
    let mut out = format!(
        "{} {} (region {}{}): {} site(s), {} room(s), {} participant(s), {} member(s)\n",
        plan.date,
        plan.exam.code(),
        plan.region,
        if plan.expert_checking { ", expert checking" } else { "" },
        plan.sites.len(),
        plan.rooms.len(),
        plan.participants.len(),
        plan.members.len()
    );
    for s in &plan.sites {
        let (rooms, participants, members) = per_site.get(&s.code).copied().unwrap_or_default();
        out.push_str(&format!(
            "  site {:<6} {:<16} {:<20} {rooms:>4} room(s) {participants:>5} participant(s) {members:>3} member(s)\n",
            s.code,
            match s.kind {
                konvert_exam::SiteKind::ExamSite => "exam-site",
                konvert_exam::SiteKind::School => "school",
                konvert_exam::SiteKind::ProcessingPoint => "processing-point",
            },
            s.time_zone
        ));
    }
    out
}

#[cfg(test)]
#[path = "plans_tests.rs"]
mod tests;
