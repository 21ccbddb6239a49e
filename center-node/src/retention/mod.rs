//! Retention on the loader's workstation: what the records, the image store and the
//! center's encrypted store may delete today, by the regulations' table ([`table`]), and
//! what holds keep. A sweep is computed from the records alone and changes nothing
//! ([`sweep`]: the dry run); [`apply`] deletes exactly what a sweep computed at that moment
//! lists, writing each deletion to the loader's audit log before it happens.
//!
//! - A page image goes when its kind's time is over for every packet version whose pages
//!   are that file, and no hold keeps any of them.
//! - A transport envelope goes from the store once its exam is closed and every page of it
//!   is held in the image store, checked against its digest; or once its kind's time is
//!   over. Its inbox record and receipt stay; a tombstone says it was retired
//!   ([`retired`]).
//! - Holds: a person's hold (appeal, removal, annulment, investigation) keeps everything it
//!   touches until released. What the records themselves show — a page whose results are
//!   withheld for investigation, a participant not in the plan or seated elsewhere, a
//!   removal mark, a recording annulled — keeps its packet version whole until the records'
//!   own ten years end; past that, only a person's hold keeps it.
//! - The records' rows are never deleted here (a page's reference stays, marked deleted).

pub mod cli;
pub mod retired;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use konvert_crypto::audit::AuditAction;
use konvert_exam::{ExamDate, SiteZone};
use konvert_records::{
    DecisionKind, FinalState, FindingKind, Hold, HoldTarget, ImageRef, Mark, Opening, PacketEntry, PageEntry,
    PageStage, Records, Removal,
};
use konvert_replication::Inbox;
use serde::Serialize;

use crate::image_store::ImageStore;
use crate::processing::Workplace;
use crate::{Error, Result};
use table::{deletable_from, RetentionKind};

/// The audit log's word for deleting a page image.
pub const DELETE_IMAGE: &str = "retention-delete-image";
/// The audit log's word for deleting a transport envelope from the store.
pub const DELETE_ENVELOPE: &str = "retention-delete-envelope";
/// The audit log's word for placing a hold.
pub const HOLD: &str = "retention-hold";
/// The audit log's word for releasing a hold.
pub const RELEASE: &str = "retention-release";

/// A page image that goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageGoes {
    /// Its digest (hex).
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Why, in words.
    pub why: String,
}

/// A packet version's envelope and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeVerdict {
    /// The envelope id (hex).
    pub envelope_id: String,
    /// The packet id.
    pub packet_id: String,
    /// The version.
    pub version: u32,
    /// The site.
    pub site: String,
    /// Why it goes, or why it stays, in words.
    pub why: String,
}

/// What a sweep found: what goes today, and why each stored envelope stays.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Sweep {
    /// The day judged (the region's date).
    pub today: String,
    /// Page images that go.
    pub images: Vec<ImageGoes>,
    /// Envelopes that go from the store.
    pub envelopes: Vec<EnvelopeVerdict>,
    /// Envelopes that stay, with why.
    pub kept: Vec<EnvelopeVerdict>,
    /// Images the records keep that the store lacks or holds damaged (hex): they keep their
    /// envelopes, and need a backup restored or processing run again.
    pub damaged: Vec<String>,
    /// Packet versions whose records' ten years are over: their rows stay (this command
    /// never deletes records' rows).
    pub records_due: usize,
    /// Holds in force.
    pub holds: Vec<Hold>,
}

/// What retention knows of one registered packet version.
struct Judged<'a> {
    packet: &'a PacketEntry,
    pages: Vec<&'a PageEntry>,
    kind: RetentionKind,
    /// The first day its images may go.
    images_from: ExamDate,
    /// The first day its records' ten years are over.
    records_from: ExamDate,
    /// Holds placed by people that touch it.
    held_by: Vec<&'a Hold>,
    /// What the records show that keeps it (investigation, removal, annulment).
    shown: Vec<String>,
}

impl Judged<'_> {
    fn records_over(&self, today: ExamDate) -> bool {
        today >= self.records_from
    }

    /// Why nothing of it may go today, if anything keeps it.
    fn held(&self, today: ExamDate) -> Option<String> {
        if let Some(h) = self.held_by.first() {
            return Some(format!("held by hold {} ({}: {}, by {})", h.id, h.reason, h.note, h.by));
        }
        match self.shown.first() {
            Some(why) if !self.records_over(today) => Some(format!("held: {why}")),
            _ => None,
        }
    }
}

/// Whether `target` names anything in `records`: a registered packet version, an exam day
/// with a plan or a packet, a participant of a plan or of a page. A hold on nothing keeps
/// nothing, and would look in force all the same.
pub fn hold_matches(records: &dyn Records, target: &HoldTarget) -> Result<bool> {
    Ok(match target {
        HoldTarget::Packet(envelope) => records.packets()?.iter().any(|p| p.envelope == *envelope),
        HoldTarget::Day(day) => {
            records.packets()?.iter().any(|p| p.day == *day)
                || records
                    .plans()?
                    .iter()
                    .any(|p| p.date == day.date && p.exam == day.exam)
        }
        HoldTarget::Participant(code) => {
            records
                .plans()?
                .iter()
                .any(|p| p.participants.iter().any(|q| q.code == *code))
                || records
                    .outcomes()?
                    .iter()
                    .any(|o| o.participant.as_deref() == Some(code.as_str()))
        }
    })
}

/// Judges every registered packet version against `today` (the region's date).
fn judge<'a>(
    packets: &'a [PacketEntry],
    pages: &'a [PageEntry],
    records: &dyn Records,
    holds: &'a [Hold],
    zone: &SiteZone,
) -> Result<Vec<Judged<'a>>> {
    let plans = records.plans()?;
    let outcomes = records.outcomes()?;
    let findings = records.findings()?;
    let decisions = records.decisions()?;
    let mut by_envelope: BTreeMap<[u8; 32], Vec<&PageEntry>> = BTreeMap::new();
    for p in pages {
        by_envelope.entry(p.key.envelope).or_default().push(p);
    }
    let mut participants: BTreeMap<[u8; 32], BTreeSet<&str>> = BTreeMap::new();
    let mut shown: BTreeMap<[u8; 32], Vec<String>> = BTreeMap::new();
    for o in &outcomes {
        if let Some(code) = &o.participant {
            participants.entry(o.key.envelope).or_default().insert(code);
        }
        if let PageStage::Final(FinalState::Withheld { reason }) = &o.stage {
            shown
                .entry(o.key.envelope)
                .or_default()
                .push(format!("investigation (results withheld, page {}): {reason}", o.key));
        }
    }
    for p in pages {
        if p.removed_mark == Some(Mark::Yes) {
            shown
                .entry(p.key.envelope)
                .or_default()
                .push(format!("removal (marked on page {})", p.key));
        }
    }
    for f in &findings {
        let what = match &f.finding.kind {
            FindingKind::NotInPlan { .. } | FindingKind::SeatedElsewhere { .. } => "investigation",
            FindingKind::MarksDisagree { .. } => "removal",
            _ => continue,
        };
        let envelopes = f.finding.packet.into_iter().chain(f.finding.page.map(|k| k.envelope));
        for envelope in envelopes {
            shown
                .entry(envelope)
                .or_default()
                .push(format!("{what} (finding {})", f.finding.id));
        }
    }
    for d in &decisions {
        if let DecisionKind::Audio {
            recording,
            choice: konvert_records::AudioChoice::Annul,
        } = &d.kind
        {
            shown
                .entry(recording.envelope)
                .or_default()
                .push(format!("annulment (recording {}, decision {})", recording, d.seq));
        }
    }
    let mut out = Vec::new();
    for packet in packets {
        let region = plans
            .iter()
            .find(|p| p.date == packet.day.date && p.exam == packet.day.exam)
            .map(|p| p.region.as_str());
        let kind = RetentionKind::of(packet.day.exam, region);
        let registered = i64::try_from(packet.registered_at_unix_ms).unwrap_or(i64::MAX);
        let entered = zone.local_date(registered).unwrap_or(packet.day.date);
        let records_from = deletable_from(RetentionKind::Records, packet.day.date, entered);
        let images_from = deletable_from(kind, packet.day.date, entered).min(records_from);
        let codes = participants.get(&packet.envelope);
        let held_by = holds
            .iter()
            .filter(|h| h.released.is_none())
            .filter(|h| match &h.target {
                HoldTarget::Packet(envelope) => *envelope == packet.envelope,
                HoldTarget::Day(day) => *day == packet.day,
                HoldTarget::Participant(code) => codes.is_some_and(|c| c.contains(code.as_str())),
            })
            .collect();
        out.push(Judged {
            packet,
            pages: by_envelope.remove(&packet.envelope).unwrap_or_default(),
            kind,
            images_from,
            records_from,
            held_by,
            shown: shown.remove(&packet.envelope).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// What may be deleted on `today` (the region's date, in `zone`): the dry run. Reads the
/// store's envelopes and hashes the images of every envelope that would go; changes nothing.
pub fn sweep(place: &Workplace, records: &dyn Records, zone: &SiteZone, today: ExamDate) -> Result<Sweep> {
    let store = ImageStore::open(&place.records_dir)?;
    let packets = records.packets()?;
    let pages = records.pages()?;
    let holds = records.holds()?;
    let plans = records.plans()?;
    let decisions = records.decisions()?;
    let judged = judge(&packets, &pages, records, &holds, zone)?;
    let images: BTreeMap<[u8; 32], ImageRef> = records.images()?.into_iter().map(|i| (i.sha256, i)).collect();
    let mut sweep = Sweep {
        today: today.to_string(),
        holds: holds.iter().filter(|h| h.released.is_none()).cloned().collect(),
        ..Sweep::default()
    };

    // Images: a file goes when every packet version with a page of it may let it go.
    let mut users: BTreeMap<[u8; 32], Vec<&Judged<'_>>> = BTreeMap::new();
    for j in &judged {
        let files: BTreeSet<[u8; 32]> = j.pages.iter().map(|p| p.file_sha256).collect();
        for sha in files {
            users.entry(sha).or_default().push(j);
        }
    }
    for (sha, image) in &images {
        if image.deleted.is_some() {
            if store.has(sha) {
                sweep.images.push(ImageGoes {
                    sha256: hex::encode(sha),
                    bytes: image.bytes,
                    why: "deleted in the records by a run that stopped before removing the file".into(),
                });
            }
            continue;
        }
        // An image no registered page names stays: nothing says what it is.
        let Some(users) = users.get(sha) else { continue };
        let free = users.iter().all(|j| j.held(today).is_none() && today >= j.images_from);
        if free {
            let kinds: BTreeSet<&str> = users.iter().map(|j| j.kind.as_str()).collect();
            let from = users.iter().map(|j| j.images_from).max().unwrap_or(today);
            sweep.images.push(ImageGoes {
                sha256: hex::encode(sha),
                bytes: image.bytes,
                why: format!(
                    "{} since {from}: packet(s) {}",
                    kinds.into_iter().collect::<Vec<_>>().join(", "),
                    users
                        .iter()
                        .map(|j| format!("{} v{}", j.packet.packet_id, j.packet.version))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }

    // Envelopes.
    let mut verified: BTreeMap<[u8; 32], bool> = BTreeMap::new();
    for j in &judged {
        let p = j.packet;
        if j.records_over(today) {
            sweep.records_due += 1;
        }
        let verdict = |why: String| EnvelopeVerdict {
            envelope_id: hex::encode(p.envelope),
            packet_id: p.packet_id.clone(),
            version: p.version,
            site: p.site.clone(),
            why,
        };
        let path = Inbox::stored_envelope(&place.data_dir, &p.envelope);
        let present = std::fs::symlink_metadata(&path).is_ok();
        if retired::is_retired(&place.data_dir, &p.envelope) {
            if present {
                sweep
                    .envelopes
                    .push(verdict("retired by a run that stopped before deleting it".into()));
            }
            continue;
        }
        if !present {
            continue;
        }
        if let Some(why) = j.held(today) {
            sweep.kept.push(verdict(why));
            continue;
        }
        if today >= j.images_from {
            sweep
                .envelopes
                .push(verdict(format!("{} since {}", j.kind.as_str(), j.images_from)));
            continue;
        }
        if !crate::processing::desk::is_closed(&decisions, p.day) {
            sweep.kept.push(verdict(format!(
                "exam {} is not closed: processing may need the envelope again",
                p.day
            )));
            continue;
        }
        if !matches!(p.opening, Opening::Opened { .. }) || j.pages.is_empty() {
            sweep.kept.push(verdict(format!(
                "it did not open: kept as the site's packet until {}",
                j.images_from
            )));
            continue;
        }
        let mut by_file: BTreeMap<u32, Vec<&PageEntry>> = BTreeMap::new();
        for page in &j.pages {
            by_file.entry(page.key.file).or_default().push(page);
        }
        let not_kept = by_file
            .values()
            .filter(|pages| !crate::image_keep::keep_image(p, pages, &plans))
            .map(|pages| pages.len())
            .sum::<usize>();
        if not_kept > 0 {
            sweep.kept.push(verdict(format!(
                "{not_kept} page(s) whose image the records do not keep (not in the plan, or unreadable): the \
                 envelope is their only copy until {}",
                j.images_from
            )));
            continue;
        }
        let mut bad = Vec::new();
        for pages in by_file.values() {
            let sha = pages[0].file_sha256;
            let ok = match verified.get(&sha) {
                Some(ok) => *ok,
                None => {
                    let ok = images.get(&sha).is_some_and(|i| i.deleted.is_none()) && store.verify(&sha)? == Some(true);
                    verified.insert(sha, ok);
                    ok
                }
            };
            if !ok {
                bad.push(hex::encode(sha));
            }
        }
        if bad.is_empty() {
            sweep.envelopes.push(verdict(format!(
                "exam closed; all {} page image(s) held and checked",
                j.pages.len()
            )));
        } else {
            sweep.kept.push(verdict(format!(
                "{} image(s) not held or damaged: {}",
                bad.len(),
                bad.join(", ")
            )));
            sweep.damaged.extend(bad);
        }
    }
    sweep.damaged.sort();
    sweep.damaged.dedup();
    Ok(sweep)
}

/// What [`apply`] deleted.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Applied {
    /// The sweep it carried out.
    pub sweep: Sweep,
    /// Bytes of images deleted.
    pub image_bytes: u64,
}

/// Deletes what a sweep of `today` lists, each deletion in the loader's audit log before it
/// happens; `by` is who runs retention. Refused while a center serves the data folder.
pub fn apply(
    place: &Workplace,
    records: &dyn Records,
    zone: &SiteZone,
    today: ExamDate,
    by: &str,
    now_unix_ms: u64,
) -> Result<Applied> {
    if crate::control::ask_center(&place.data_dir, "status").is_some() {
        return Err(Error::Loader {
            what: format!("a center serves {}", place.data_dir.display()),
            hint: "retention deletes from the loader's copy of the data folder: run it there, or stop the center",
        });
    }
    let sweep = sweep(place, records, zone, today)?;
    let audit = place.audit()?;
    let store = ImageStore::open(&place.records_dir)?;
    let actor = format!("retention {by}");
    let removal = Removal {
        at_unix_ms: now_unix_ms,
        by: by.to_owned(),
    };
    let mut image_bytes = 0;
    for image in &sweep.images {
        let sha = parse_sha(&image.sha256)?;
        audit.append(
            &actor,
            AuditAction::Other(DELETE_IMAGE.into()),
            &image.sha256,
            &image.why,
        )?;
        // The records say so first: a stop before the file goes leaves it for the next run,
        // never an image processing would keep again.
        records.images_deleted(&[sha], &removal)?;
        store.remove(&sha)?;
        image_bytes += image.bytes;
    }
    for envelope in &sweep.envelopes {
        let digest = parse_sha(&envelope.envelope_id)?;
        audit.append(
            &actor,
            AuditAction::Other(DELETE_ENVELOPE.into()),
            &format!("{} v{} {}", envelope.packet_id, envelope.version, envelope.envelope_id),
            &format!("{}; its receipt and inbox record stay", envelope.why),
        )?;
        if !retired::is_retired(&place.data_dir, &digest) {
            retired::bury(
                &place.data_dir,
                &digest,
                &retired::Tombstone {
                    envelope_id: envelope.envelope_id.clone(),
                    packet_id: envelope.packet_id.clone(),
                    version: envelope.version,
                    site: envelope.site.clone(),
                    deleted_at_unix_ms: now_unix_ms,
                    by: by.to_owned(),
                    reason: envelope.why.clone(),
                },
            )?;
        }
        remove_durably(&Inbox::stored_envelope(&place.data_dir, &digest))?;
    }
    place.anchor(&audit)?;
    Ok(Applied { sweep, image_bytes })
}

fn parse_sha(text: &str) -> Result<[u8; 32]> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Error::Loader {
            what: format!("{text:?} is not a digest"),
            hint: "report this as a bug",
        })
}

fn remove_durably(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file(path)(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(Error::file(parent))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod sweep_tests;
