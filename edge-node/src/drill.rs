//! `konvert-edge drill`: a realistic exam day for rehearsals and readiness checks, with no
//! scanner and no seating plan from the center — a seating plan for the rooms asked for,
//! and each room's scans as a scanner would drop them: the room's forms (ППЭ-12-04МАШ,
//! ППЭ-13-02МАШ), then every present participant's full set of blanks, rendered as real
//! images with real barcodes by the `exam` crate's synthetic scan generator.

use std::path::{Path, PathBuf};

use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{ExamDate, ExamKind, PageIdentity, RoomId, SiteId};

use crate::{Error, Result};

/// The first kit number a drill plan hands out: drill kits never look like a real
/// region's numbering (which starts from the region code), so a drill page can never be
/// taken for a real participant's.
const DRILL_KIT_BASE: u64 = 9_900_000_000;

/// Most participants a drill room may seat (a real room seats up to 25 or so).
const MAX_SEATED: usize = 60;

/// What to write.
#[derive(Debug, Clone)]
pub struct DrillRequest {
    /// The site.
    pub site: SiteId,
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The rooms, each with its number of seated participants.
    pub rooms: Vec<(RoomId, usize)>,
    /// Participants of each room who did not come (no blanks scanned).
    pub absent: usize,
    /// Pages per TIFF file (as a sheet-fed scanner batches them); 1 for PNG.
    pub pages_per_file: usize,
    /// TIFF (G4, multi-page) or PNG (grayscale, one page).
    pub format: ScanFormat,
    /// Degrade pages (rotation, skew, speckle, blur) as worn scanners do.
    pub degrade: bool,
    /// Seed of the handwriting and the degradation.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct DrillDay {
    /// The seating plan (TOML, for `[day] seating_plan`).
    pub plan: PathBuf,
    /// Per room: its folder of scans, its seated and present participants, its files.
    pub rooms: Vec<DrillRoom>,
}

/// One room of a drill.
#[derive(Debug, Clone)]
pub struct DrillRoom {
    /// The room.
    pub room: RoomId,
    /// Where its scans are.
    pub scans: PathBuf,
    /// Participants seated.
    pub seated: usize,
    /// Participants present (the number ППЭ-13-02МАШ gives).
    pub present: usize,
    /// Scan files written.
    pub files: usize,
    /// Pages on them.
    pub pages: usize,
}

/// Writes `out/plan.toml` and each room's scans into `out/scans/<room>/`. Refuses a
/// folder that already holds a plan, so a drill never mixes into an earlier one.
pub fn write_drill(out: &Path, req: &DrillRequest) -> Result<DrillDay> {
    let bad = |message: String| Error::Config {
        path: out.to_owned(),
        message,
    };
    if req.rooms.is_empty() {
        return Err(bad("name at least one room (--room 0012)".into()));
    }
    if let Some((room, n)) = req.rooms.iter().find(|(_, n)| *n == 0 || *n > MAX_SEATED) {
        return Err(bad(format!(
            "room {room}: {n} participants; a drill room seats 1 to {MAX_SEATED}"
        )));
    }
    if let Some((room, n)) = req.rooms.iter().find(|(_, n)| req.absent >= *n) {
        return Err(bad(format!(
            "room {room} seats {n}; --absent {} would leave nobody to scan",
            req.absent
        )));
    }
    let plan_path = out.join("plan.toml");
    if plan_path.exists() {
        return Err(bad(format!(
            "{} already exists: a drill is written into a new folder; choose another --out",
            plan_path.display()
        )));
    }
    let rooms: Vec<(&RoomId, usize)> = req.rooms.iter().map(|(r, n)| (r, *n)).collect();
    let plan = synthetic_plan(&req.site, req.date, req.exam, &rooms, DRILL_KIT_BASE);
    std::fs::create_dir_all(out).map_err(Error::file(out))?;
    let text = toml::to_string(&plan).map_err(|e| bad(format!("cannot write the seating plan: {e}")))?;
    let header = format!(
        "# A DRILL seating plan written by `konvert-edge drill` for rehearsals: site {}, {} {}.\n\
         # Never use it on an exam day; the real plan comes from the center.\n",
        req.site,
        req.exam.code(),
        req.date
    );
    std::fs::write(&plan_path, header + &text).map_err(Error::file(&plan_path))?;
    let mut written = Vec::new();
    for (i, (room, seated)) in req.rooms.iter().enumerate() {
        let pages = room_pages(&plan, room, req.absent);
        // Forms and blanks go in separate batches, as they are scanned at a site.
        let (forms, blanks): (Vec<_>, Vec<_>) = pages.iter().cloned().partition(|p| matches!(p, PageIdentity::Form(_)));
        let job = ScanJob {
            format: req.format,
            pages_per_file: req.pages_per_file.max(1),
            degrade: req.degrade,
            dpi: 200,
            seed: req.seed.wrapping_add(i as u64),
        };
        let dir = out.join("scans").join(room.as_str());
        let mut files = write_pages(&forms, &dir, &format!("{room}-forms"), job)?;
        files.extend(write_pages(&blanks, &dir, &format!("{room}-blanks"), job)?);
        written.push(DrillRoom {
            room: room.clone(),
            scans: dir,
            seated: *seated,
            present: seated - req.absent,
            files: files.len(),
            pages: pages.len(),
        });
    }
    Ok(DrillDay {
        plan: plan_path,
        rooms: written,
    })
}

#[cfg(test)]
#[path = "drill_tests.rs"]
mod tests;
