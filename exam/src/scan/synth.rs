//! A synthetic exam day for the demo, tests and benchmarks: a seating plan, and a room's
//! scans as a scanner would drop them — the room's forms, then every present
//! participant's full set of blanks, in batches of pages per file.

use std::fs;
use std::path::{Path, PathBuf};

use super::{render_page, write_scan, Degradation, PageMark, ScanFormat};
use crate::{
    full_set, BlankId, ExamDate, ExamKind, FormId, PageIdentity, Participant, Result, RoomId, SeatingPlan, SiteId,
    ROOM_FORMS,
};

/// A plan with `rooms` (code, participants), kits numbered from `kit_base`.
pub fn synthetic_plan(
    site: &SiteId,
    date: ExamDate,
    exam: ExamKind,
    rooms: &[(&RoomId, usize)],
    kit_base: u64,
) -> SeatingPlan {
    let mut participants = Vec::new();
    let mut kit = kit_base;
    for (room, n) in rooms {
        for i in 0..*n {
            kit += 1;
            participants.push(Participant {
                code: format!("{}{:07}", site, kit % 10_000_000),
                room: (*room).clone(),
                seat: format!("{}{}", i / 4 + 1, ["А", "Б", "В", "Г"][i % 4]),
                kit,
            });
        }
    }
    SeatingPlan {
        site: site.clone(),
        date,
        exam,
        participants,
    }
}

/// Everything a room scans when `absent` of its participants did not come: its forms
/// first, then each present participant's full set.
pub fn room_pages(plan: &SeatingPlan, room: &RoomId, absent: usize) -> Vec<PageIdentity> {
    let mut pages: Vec<PageIdentity> = ROOM_FORMS
        .iter()
        .map(|form| {
            PageIdentity::Form(FormId {
                form: *form,
                site: plan.site.clone(),
                room: room.clone(),
                date: plan.date,
            })
        })
        .collect();
    let seated: Vec<_> = plan.participants.iter().filter(|p| &p.room == room).collect();
    let present = seated.len().saturating_sub(absent);
    for p in seated.into_iter().take(present) {
        for &(kind, count) in full_set(plan.exam) {
            let first = u8::from(kind == crate::BlankKind::EssayWriting);
            for sheet in first..first + count {
                if let Ok(id) = BlankId::for_kit(kind, p.kit, sheet) {
                    pages.push(PageIdentity::Blank(id));
                }
            }
        }
    }
    pages
}

/// How a synthetic room is scanned.
#[derive(Debug, Clone, Copy)]
pub struct ScanJob {
    /// File format.
    pub format: ScanFormat,
    /// Pages per file (PNG always 1).
    pub pages_per_file: usize,
    /// Degrade pages randomly (rotation, skew, speckle, blur, resolution).
    pub degrade: bool,
    /// Resolution of undegraded pages.
    pub dpi: u32,
    /// Seed for handwriting and degradation.
    pub seed: u64,
}

/// Renders `pages` and writes them into `dir` (created if missing) as files named `<prefix>-0001.<ext>` …,
/// each written under a temporary name and renamed, as a careful scanner would.
pub fn write_pages(pages: &[PageIdentity], dir: &Path, prefix: &str, job: ScanJob) -> Result<Vec<PathBuf>> {
    let per_file = if job.format == ScanFormat::Png {
        1
    } else {
        job.pages_per_file.max(1)
    };
    let render = |n: usize, id: &PageIdentity| {
        let seed = job.seed.wrapping_mul(1_000_003).wrapping_add(n as u64);
        let d = if job.degrade {
            Degradation::random(seed)
        } else {
            Degradation {
                dpi: job.dpi,
                ..Degradation::clean()
            }
        };
        render_page(&PageMark::Identity(id.clone()), seed, &d)
    };
    // Rendering is the slow part: spread the pages over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut images: Vec<Option<super::PageImage>> = vec![None; pages.len()];
    std::thread::scope(|scope| {
        for (t, slots) in images.chunks_mut(pages.len().div_ceil(threads).max(1)).enumerate() {
            let base = t * pages.len().div_ceil(threads).max(1);
            let render = &render;
            scope.spawn(move || {
                for (i, slot) in slots.iter_mut().enumerate() {
                    *slot = Some(render(base + i, &pages[base + i]));
                }
            });
        }
    });
    let images: Vec<super::PageImage> = images.into_iter().flatten().collect();
    fs::create_dir_all(dir).map_err(crate::Error::io(dir))?;
    let mut written = Vec::new();
    for (n, chunk) in images.chunks(per_file).enumerate() {
        let mut bytes = Vec::new();
        write_scan(chunk, job.format, &mut bytes)?;
        let name = format!("{prefix}-{:04}.{}", n + 1, job.format.extension());
        let tmp = dir.join(format!(".{name}.part"));
        let path = dir.join(&name);
        fs::write(&tmp, &bytes).map_err(crate::Error::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(crate::Error::io(&path))?;
        written.push(path);
    }
    Ok(written)
}
