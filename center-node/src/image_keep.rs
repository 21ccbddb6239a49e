//! Which scan files processing keeps in the image store: only those whose every page
//! belongs to the exam day's plan. A blank whose kit is in no plan may be an essay
//! participant's who refused consent (R18, 001:888): their blanks stay on paper, so their
//! image is never kept — the sealed envelope stays its only copy, and it goes when the
//! records' retention ends. This is the one place that decides; the consent rules may
//! tighten it, never loosen it.

use konvert_exam::{DayPlan, ExamKind, PageIdentity};
use konvert_records::{Opening, PacketEntry, PageEntry, PageReading};

/// Whether the scan file whose pages are `pages` (all of one file of `packet`) is kept.
pub fn keep_image(packet: &PacketEntry, pages: &[&PageEntry], plans: &[DayPlan]) -> bool {
    if !matches!(packet.opening, Opening::Opened { .. }) || pages.is_empty() {
        return false;
    }
    let Some(plan) = plans
        .iter()
        .find(|p| p.date == packet.day.date && p.exam == packet.day.exam)
    else {
        // No plan yet: nothing can be told about whose pages these are. A later run keeps
        // them once the plan is imported.
        return false;
    };
    if !plan.sites.iter().any(|s| s.code.as_str() == packet.site) {
        return false;
    }
    pages.iter().all(|page| match &page.reading {
        PageReading::Read {
            identity: PageIdentity::Blank(id),
            ..
        } => plan.participants.iter().any(|p| p.kit == id.kit()),
        // A site's form: no participant's own page.
        PageReading::Read {
            identity: PageIdentity::Form(_),
            ..
        } => true,
        // Oral recordings carry a KIM number, not a kit; the essay, the one exam with the
        // consent rule, has none — one there is kept by no one.
        PageReading::Recording { .. } => packet.day.exam != ExamKind::Essay,
        // Whose page it is cannot be told.
        PageReading::Unreadable { .. } | PageReading::NotImage { .. } => false,
    })
}

/// Processing's hand on the image store: keeps what [`keep_image`] keeps, as each packet
/// version is registered (or later, once its day's plan is in).
#[derive(Debug)]
pub struct ImageKeeper<'a> {
    /// The store.
    pub store: &'a crate::image_store::ImageStore,
    /// The exam days' plans.
    pub plans: &'a [DayPlan],
    /// Now (loader's clock): when an image is first held.
    pub now_unix_ms: u64,
}

/// The bytes of a packet's `index`th file, from memory or from a scratch folder.
pub type FileBytes<'a> = dyn Fn(usize) -> crate::Result<std::borrow::Cow<'a, [u8]>> + Sync + 'a;

impl ImageKeeper<'_> {
    /// The files of `packet` (by index) whose pages are `pages`, each with its pages.
    fn files(pages: &[PageEntry]) -> std::collections::BTreeMap<u32, Vec<&PageEntry>> {
        let mut by_file: std::collections::BTreeMap<u32, Vec<&PageEntry>> = std::collections::BTreeMap::new();
        for p in pages {
            by_file.entry(p.key.file).or_default().push(p);
        }
        by_file
    }

    /// The files of `packet` the rule keeps that the store does not hold, leaving out
    /// those retention deleted (`deleted`).
    pub fn missing(
        &self,
        packet: &PacketEntry,
        pages: &[PageEntry],
        deleted: &std::collections::HashSet<[u8; 32]>,
    ) -> Vec<u32> {
        Self::files(pages)
            .into_iter()
            .filter(|(_, pages)| keep_image(packet, pages, self.plans))
            .filter(|(_, pages)| {
                let sha = pages[0].file_sha256;
                !deleted.contains(&sha) && !self.store.has(&sha)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Keeps every file of the registered `packet` the rule keeps (`bytes` gives a file's
    /// bytes, already checked against the manifest); returns their references.
    pub fn keep(
        &self,
        packet: &PacketEntry,
        pages: &[PageEntry],
        bytes: &FileBytes<'_>,
    ) -> crate::Result<Vec<konvert_records::ImageRef>> {
        let mut kept = Vec::new();
        for (i, pages) in Self::files(pages) {
            if !keep_image(packet, &pages, self.plans) {
                continue;
            }
            let sha = pages[0].file_sha256;
            let data = bytes(i as usize)?;
            self.store.put(&sha, &data)?;
            kept.push(konvert_records::ImageRef {
                sha256: sha,
                bytes: data.len() as u64,
                held_since_unix_ms: self.now_unix_ms,
                deleted: None,
            });
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use konvert_exam::{BlankId, BlankKind, Form, FormId, PacketKind, PlanParticipant, PlanSite, RoomId, SiteKind};
    use konvert_records::{ExamDay, PageKey};

    use super::*;

    fn packet(exam: ExamKind, site: &str) -> PacketEntry {
        PacketEntry {
            envelope: [1; 32],
            site: site.into(),
            packet_id: "p".into(),
            version: 1,
            day: ExamDay {
                date: "2026-06-01".parse().unwrap(),
                exam,
            },
            room: RoomId::new("0001").unwrap(),
            kind: PacketKind::Blanks,
            received_at_unix_ms: 1,
            registered_at_unix_ms: 2,
            opening: Opening::Opened { files: 1, pages: 1 },
        }
    }

    fn page(reading: PageReading) -> PageEntry {
        PageEntry {
            key: PageKey {
                envelope: [1; 32],
                file: 0,
                page: 0,
            },
            file_name: "a.tif".into(),
            file_sha256: [2; 32],
            digest: [3; 32],
            reading,
            site_reading: None,
            removed_mark: None,
            early_finish_mark: None,
            written: None,
        }
    }

    fn blank(kit: u64) -> PageReading {
        PageReading::Read {
            identity: PageIdentity::Blank(BlankId::for_kit(BlankKind::Answer1, kit, 0).unwrap()),
            orientation: 0,
            via_fallback: false,
            contents: None,
        }
    }

    fn plan(exam: ExamKind) -> DayPlan {
        DayPlan {
            date: "2026-06-01".parse().unwrap(),
            exam,
            region: "76".into(),
            expert_checking: false,
            sites: vec![PlanSite {
                code: "0101".parse().unwrap(),
                kind: SiteKind::ExamSite,
                time_zone: "Europe/Moscow".into(),
            }],
            rooms: vec![],
            participants: vec![PlanParticipant {
                code: "P1".into(),
                site: "0101".parse().unwrap(),
                room: RoomId::new("0001").unwrap(),
                seat: "1А".into(),
                kit: 1,
                consent: true,
            }],
            members: vec![],
        }
    }

    #[test]
    fn only_files_whose_every_page_is_the_plans_are_kept() {
        let plans = [plan(ExamKind::Ege), plan(ExamKind::Essay)];
        let ege = packet(ExamKind::Ege, "0101");
        let keep = |p: &PacketEntry, readings: Vec<PageReading>, plans: &[DayPlan]| {
            let pages: Vec<PageEntry> = readings.into_iter().map(page).collect();
            let refs: Vec<&PageEntry> = pages.iter().collect();
            keep_image(p, &refs, plans)
        };
        assert!(keep(&ege, vec![blank(1)], &plans));
        // A kit in no plan, even beside a planned one in the same file.
        assert!(!keep(&ege, vec![blank(2)], &plans));
        assert!(!keep(&ege, vec![blank(1), blank(2)], &plans));
        let form = PageReading::Read {
            identity: PageIdentity::Form(FormId {
                form: Form::Ppe13_02Mash,
                site: "0101".parse().unwrap(),
                room: "0001".parse().unwrap(),
                date: "2026-06-01".parse().unwrap(),
            }),
            orientation: 0,
            via_fallback: false,
            contents: None,
        };
        assert!(keep(&ege, vec![form], &plans));
        let unreadable = PageReading::Unreadable { reason: "x".into() };
        assert!(!keep(&ege, vec![unreadable], &plans));
        assert!(!keep(&ege, vec![PageReading::NotImage { reason: "x".into() }], &plans));
        let recording = || PageReading::Recording { kim: "1000001".into() };
        assert!(keep(&ege, vec![recording()], &plans));
        assert!(!keep(&packet(ExamKind::Essay, "0101"), vec![recording()], &plans));
        // No plan for the day, a site the plan does not expect, a packet that did not open.
        assert!(!keep(&packet(ExamKind::Oge, "0101"), vec![blank(1)], &plans));
        assert!(!keep(&packet(ExamKind::Ege, "0202"), vec![blank(1)], &plans));
        let refused = PacketEntry {
            opening: Opening::Refused { reason: "x".into() },
            ..ege.clone()
        };
        assert!(!keep(&refused, vec![blank(1)], &plans));
        assert!(!keep(&ege, vec![], &plans));
    }
}
