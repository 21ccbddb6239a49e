//! A synthetic exam day for the demo, tests and benchmarks: a seating plan, and a room's
//! scans as a scanner would drop them — the room's forms, then every present
//! participant's full set of blanks, in batches of pages per file. [`room_scan`] goes
//! further, from a room's attendance: forms whose QR codes carry the room summary and the
//! acts' kits, removal and early-finish marks, additional blanks, pages left empty.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{render_page_with, write_scan, Degradation, Handwriting, MarkStroke, PageFill, PageMark, ScanFormat};
use crate::{
    full_set, BlankId, BlankKind, ExamDate, ExamKind, Form, FormContents, FormId, FormQr, MarkBox, PageIdentity,
    Participant, Result, RoomId, RoomSummary, SeatingPlan, SiteId, MAX_ACT_KITS, ROOM_FORMS,
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

/// What happened in a room, by the kits of its seated participants: who did not come,
/// who was removed or finished early, who left answer pages empty or took additional
/// blanks. Kits not seated in the room are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attendance {
    /// Did not come: no blanks.
    pub absent: Vec<u64>,
    /// Removed from the exam (ППЭ-21; the registration blank's «удалён» box crossed).
    pub removed: Vec<u64>,
    /// Finished early for objective reasons (ППЭ-22; the other box crossed).
    pub early_finished: Vec<u64>,
    /// Left answer blank 2 and additional blanks (essay: all writing blanks) empty.
    pub empty_answers: Vec<u64>,
    /// Additional blanks taken (ДБО; for the essay, writing blanks beyond the four), at
    /// most 4 per kit.
    pub additional: Vec<(u64, u8)>,
}

/// One page of a synthetic room: what is printed and what is written on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthPage {
    /// What is printed (the barcode and its contents).
    pub mark: PageMark,
    /// How much of the answer cells is written.
    pub handwriting: Handwriting,
    /// Marks in a registration blank's boxes.
    pub marks: Vec<(MarkBox, MarkStroke)>,
}

impl SynthPage {
    /// The page's identity, as recognition should read it.
    pub fn identity(&self) -> Option<PageIdentity> {
        match &self.mark {
            PageMark::Identity(id) => Some(id.clone()),
            PageMark::Form(qr) => Some(PageIdentity::Form(qr.id.clone())),
            PageMark::NoBarcode => None,
        }
    }

    fn written(mark: PageMark) -> Self {
        SynthPage {
            mark,
            handwriting: Handwriting::Seeded,
            marks: Vec::new(),
        }
    }
}

/// Everything a room scans given its `attendance`: ППЭ-12-04МАШ, ППЭ-13-02МАШ carrying the
/// room summary (counts of the pages below), ППЭ-21 and ППЭ-22 acts listing the removed
/// and early-finished kits (up to [`MAX_ACT_KITS`] a page), then each present
/// participant's full set and additional blanks. Essay writing blanks after the second
/// are left empty, as most participants leave them.
pub fn room_scan(plan: &SeatingPlan, room: &RoomId, attendance: &Attendance) -> Vec<SynthPage> {
    let seated: Vec<&Participant> = plan.participants.iter().filter(|p| &p.room == room).collect();
    let is = |list: &[u64], kit: u64| list.contains(&kit);
    let present: Vec<&Participant> = seated
        .iter()
        .copied()
        .filter(|p| !is(&attendance.absent, p.kit))
        .collect();
    let mut blanks = Vec::new();
    for p in &present {
        let empty = is(&attendance.empty_answers, p.kit);
        let extra = attendance
            .additional
            .iter()
            .filter(|(k, _)| *k == p.kit)
            .map(|(_, n)| (*n).min(4))
            .sum::<u8>()
            .min(4);
        let mut sheets: Vec<(BlankKind, u8)> = Vec::new();
        for &(kind, count) in full_set(plan.exam) {
            let first = u8::from(kind == BlankKind::EssayWriting);
            sheets.extend((first..first + count).map(|s| (kind, s)));
        }
        let (extra_kind, first_extra) = if plan.exam == ExamKind::Essay {
            (BlankKind::EssayWriting, 5)
        } else {
            (BlankKind::Additional, 1)
        };
        sheets.extend((first_extra..first_extra + extra).map(|s| (extra_kind, s)));
        for (kind, sheet) in sheets {
            let Ok(id) = BlankId::for_kit(kind, p.kit, sheet) else {
                continue;
            };
            let handwriting = if kind.has_written_answers()
                && (empty || (kind == BlankKind::EssayWriting && (3..=4).contains(&sheet)))
            {
                Handwriting::Empty
            } else {
                Handwriting::Seeded
            };
            let mut marks = Vec::new();
            if kind == BlankKind::Registration {
                if is(&attendance.removed, p.kit) {
                    marks.push((MarkBox::Removed, MarkStroke::Cross));
                }
                if is(&attendance.early_finished, p.kit) {
                    marks.push((MarkBox::EarlyFinish, MarkStroke::Cross));
                }
            }
            blanks.push(SynthPage {
                mark: PageMark::Identity(PageIdentity::Blank(id)),
                handwriting,
                marks,
            });
        }
    }
    let kits_of = |list: &[u64]| -> Vec<u64> { present.iter().map(|p| p.kit).filter(|k| list.contains(k)).collect() };
    let (removed, early) = (kits_of(&attendance.removed), kits_of(&attendance.early_finished));
    let mut per_kind: BTreeMap<BlankKind, u32> = BTreeMap::new();
    for page in &blanks {
        if let PageMark::Identity(PageIdentity::Blank(id)) = &page.mark {
            *per_kind.entry(id.kind).or_default() += 1;
        }
    }
    let summary = RoomSummary {
        present: present.len() as u32,
        absent: (seated.len() - present.len()) as u32,
        removed: removed.len() as u32,
        early_finished: early.len() as u32,
        blanks: per_kind,
    };
    let id = |form: Form| FormId {
        form,
        site: plan.site.clone(),
        room: room.clone(),
        date: plan.date,
    };
    let mut pages: Vec<SynthPage> = ROOM_FORMS
        .iter()
        .map(|&form| {
            let contents = (form == Form::Ppe13_02Mash).then(|| FormContents::RoomSummary(summary.clone()));
            SynthPage::written(PageMark::Form(FormQr { id: id(form), contents }))
        })
        .collect();
    for (form, kits) in [(Form::Ppe21, removed), (Form::Ppe22, early)] {
        for chunk in kits.chunks(MAX_ACT_KITS) {
            pages.push(SynthPage::written(PageMark::Form(FormQr {
                id: id(form),
                contents: Some(FormContents::Kits(chunk.to_vec())),
            })));
        }
    }
    pages.extend(blanks);
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
    let pages: Vec<SynthPage> = pages
        .iter()
        .map(|id| SynthPage::written(PageMark::Identity(id.clone())))
        .collect();
    write_synth_pages(&pages, dir, prefix, job)
}

/// [`write_pages`] for pages of [`room_scan`]: the same files, seeds and names, with what
/// each page says written on it.
pub fn write_synth_pages(pages: &[SynthPage], dir: &Path, prefix: &str, job: ScanJob) -> Result<Vec<PathBuf>> {
    let per_file = if job.format == ScanFormat::Png {
        1
    } else {
        job.pages_per_file.max(1)
    };
    let render = |n: usize, page: &SynthPage| {
        let seed = job.seed.wrapping_mul(1_000_003).wrapping_add(n as u64);
        let d = if job.degrade {
            Degradation::random(seed)
        } else {
            Degradation {
                dpi: job.dpi,
                ..Degradation::clean()
            }
        };
        let fill = PageFill {
            seed,
            handwriting: page.handwriting,
            marks: page.marks.clone(),
        };
        render_page_with(&page.mark, &fill, &d)
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

#[cfg(test)]
#[path = "synth_tests.rs"]
mod tests;
