//! Completeness of a room before sealing (domain.md §5, `002:7297`): the participants the
//! room's ППЭ-13-02МАШ says were present against the registration blanks found, every
//! present participant's full set of blanks (empty ones included), the room's
//! machine-readable forms, duplicate blanks, and pages that belong to another room, site
//! or day. Each finding is a [`Discrepancy`] in plain words; a room with any needs an
//! explicit override with a reason before it is sealed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{full_set, BlankKind, Form, PacketKind, PageIdentity, PageRecord, PageStatus, RoomId, SeatingPlan};

/// The room that takes pages no identifier places anywhere (unreadable batches, pages of
/// another site). They are never dropped: they travel flagged in this room's packet.
pub const UNSORTED_ROOM: &str = "UNSORTED";

/// The forms every room scans and sends (R4); ППЭ-18МАШ is per site, not per room.
pub const ROOM_FORMS: [Form; 2] = [Form::Ppe12_04Mash, Form::Ppe13_02Mash];

/// Which packet a scan file goes into.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Placement {
    /// The room.
    pub room: RoomId,
    /// Forms or blanks.
    pub kind: PacketKind,
}

/// The room a page belongs to by its own identifier, or `None` if it is not of this
/// site and day (or unread).
pub fn page_room(plan: &SeatingPlan, page: &PageRecord) -> Option<RoomId> {
    match page.identity()? {
        PageIdentity::Blank(id) => plan.by_kit(id.kit()).map(|p| p.room.clone()),
        PageIdentity::Form(id) => (id.site == plan.site && id.date == plan.date).then(|| id.room.clone()),
    }
}

/// Where a scan file goes: the room most of its pages name (a scanner batch is one
/// room's), as a forms packet if every page read is a form. Files with no placeable page
/// go to [`UNSORTED_ROOM`].
pub fn place_file(plan: &SeatingPlan, pages: &[PageRecord]) -> Placement {
    let mut votes: BTreeMap<RoomId, usize> = BTreeMap::new();
    for page in pages {
        if let Some(room) = page_room(plan, page) {
            *votes.entry(room).or_default() += 1;
        }
    }
    let room = votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(room, _)| room.clone())
        .unwrap_or_else(unsorted_room);
    let read: Vec<_> = pages.iter().filter_map(PageRecord::identity).collect();
    let all_forms = !read.is_empty() && read.iter().all(|id| matches!(id, PageIdentity::Form(_)));
    Placement {
        room,
        kind: if all_forms {
            PacketKind::Forms
        } else {
            PacketKind::Blanks
        },
    }
}

/// The [`UNSORTED_ROOM`] as a room id.
pub fn unsorted_room() -> RoomId {
    // UNSORTED_ROOM is a constant of valid room-code characters.
    RoomId::new(UNSORTED_ROOM).unwrap_or_else(|_| unreachable!("UNSORTED is a valid room code"))
}

/// Something that keeps a room from being complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discrepancy {
    /// A machine-readable form of the room was not scanned.
    FormMissing {
        /// The form.
        form: Form,
    },
    /// The number present from ППЭ-13-02МАШ has not been entered.
    AttendanceNotEntered,
    /// ППЭ-13-02МАШ says `reported` were present, but `registrations` registration blanks were found.
    AttendanceMismatch {
        /// Present according to the form.
        reported: u32,
        /// Registration blanks found.
        registrations: u32,
    },
    /// A present participant's full set lacks a blank.
    BlankMissing {
        /// The participant's code.
        participant: String,
        /// The missing blank kind.
        kind: BlankKind,
        /// How many of that kind were found.
        found: u32,
        /// How many the full set holds.
        expected: u32,
    },
    /// A participant's blanks were found without their registration blank.
    RegistrationMissing {
        /// The participant's code.
        participant: String,
    },
    /// The same blank or form was scanned more than once.
    Duplicate {
        /// What the barcode says.
        identity: String,
        /// Where each copy is.
        locations: Vec<String>,
    },
    /// A page of another site or exam day.
    OtherSite {
        /// Where it is.
        location: String,
        /// What the barcode says.
        identity: String,
    },
    /// A page of another room inside this room's scan batch.
    OtherRoom {
        /// Where it is.
        location: String,
        /// What the barcode says.
        identity: String,
        /// The room it belongs to.
        room: RoomId,
    },
    /// A page whose barcode could not be read; it travels flagged for a manual check.
    Unreadable {
        /// Where it is.
        location: String,
        /// Why.
        reason: String,
    },
    /// Blanks of kits the seating plan does not know were scanned at the site that day: a
    /// participant missing from the plan sat in some room. Blank barcodes name the kit
    /// only, so which room cannot be told from the scans: every room needs the operator's
    /// word until then.
    NotInPlan {
        /// The unknown kit numbers.
        kits: Vec<u64>,
        /// Where their pages are.
        locations: Vec<String>,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::FormMissing { form } => write!(f, "form {} not scanned; scan it", form.code()),
            Discrepancy::AttendanceNotEntered => write!(
                f,
                "number present from ППЭ-13-02МАШ not entered; run `konvert-edge attendance`"
            ),
            Discrepancy::AttendanceMismatch {
                reported,
                registrations,
            } => write!(
                f,
                "ППЭ-13-02МАШ says {reported} present, but {registrations} registration blanks were found"
            ),
            Discrepancy::BlankMissing {
                participant,
                kind,
                found,
                expected,
            } => write!(
                f,
                "participant {participant}: {found} of {expected} «{}» (a full set includes empty blanks)",
                kind.title()
            ),
            Discrepancy::RegistrationMissing { participant } => {
                write!(f, "participant {participant}: blanks found but no registration blank")
            }
            Discrepancy::Duplicate { identity, locations } => {
                write!(
                    f,
                    "{identity} scanned {} times: {}",
                    locations.len(),
                    locations.join(", ")
                )
            }
            Discrepancy::OtherSite { location, identity } => {
                write!(f, "{location}: {identity} is not of this site and exam day")
            }
            Discrepancy::OtherRoom {
                location,
                identity,
                room,
            } => {
                write!(
                    f,
                    "{location}: {identity} belongs to room {room}; scan it with that room"
                )
            }
            Discrepancy::Unreadable { location, reason } => {
                write!(
                    f,
                    "{location}: barcode not read ({reason}); check the page by hand or rescan"
                )
            }
            Discrepancy::NotInPlan { kits, locations } => {
                const SHOWN: usize = 4;
                let kits: Vec<String> = kits.iter().map(u64::to_string).collect();
                let mut at = locations.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
                if locations.len() > SHOWN {
                    at.push_str(&format!(" and {} more", locations.len() - SHOWN));
                }
                write!(
                    f,
                    "blanks of kit {} were scanned ({at}), but the seating plan has no participant \
                     with that kit: someone not in the plan sat in one of the rooms — find which, \
                     and seal that room with --override naming them (every room waits for the word)",
                    kits.join(", ")
                )
            }
        }
    }
}

/// What a room's packets hold, by count; sealed into the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCounts {
    /// Participants seated in the room by the plan.
    pub seated: u32,
    /// Present according to ППЭ-13-02МАШ, as entered.
    pub present_reported: Option<u32>,
    /// Registration blanks found.
    pub registrations: u32,
    /// Present participants whose full set is complete.
    pub complete_sets: u32,
    /// Blanks found per kind.
    pub blanks: BTreeMap<BlankKind, u32>,
    /// Form pages found.
    pub forms: BTreeMap<Form, u32>,
    /// Pages whose barcode was not read.
    pub unreadable: u32,
    /// Pages in all.
    pub pages: u32,
}

/// The completeness of one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCheck {
    /// The room.
    pub room: RoomId,
    /// The counts.
    pub counts: RoomCounts,
    /// Everything that is missing or extra; empty means complete.
    pub discrepancies: Vec<Discrepancy>,
}

impl RoomCheck {
    /// Whether the room may be sealed without an override.
    pub fn is_complete(&self) -> bool {
        self.discrepancies.is_empty()
    }
}

/// Checks one room: `pages` are the pages of the files placed in it, `all_pages` every
/// page of the day at the site (to find duplicates across rooms), `present` the number
/// present from ППЭ-13-02МАШ if entered.
pub fn check_room(
    plan: &SeatingPlan,
    room: &RoomId,
    pages: &[&PageRecord],
    all_pages: &[&PageRecord],
    present: Option<u32>,
) -> RoomCheck {
    let mut counts = RoomCounts {
        seated: u32::try_from(plan.seated_in(room)).unwrap_or(u32::MAX),
        present_reported: present,
        pages: u32::try_from(pages.len()).unwrap_or(u32::MAX),
        ..RoomCounts::default()
    };
    let mut found = Vec::new();
    // Per kit: blanks by kind.
    let mut kits: BTreeMap<u64, BTreeMap<BlankKind, u32>> = BTreeMap::new();
    let mut other = Vec::new();
    for page in pages {
        let identity = match &page.status {
            PageStatus::Unreadable { reason } => {
                counts.unreadable += 1;
                found.push(Discrepancy::Unreadable {
                    location: page.location(),
                    reason: reason.clone(),
                });
                continue;
            }
            PageStatus::Read(identity) => identity,
        };
        match page_room(plan, page) {
            // A blank's barcode names its kit only: unknown here means not in the plan,
            // reported below for the whole day.
            None if matches!(identity, PageIdentity::Blank(_)) => {}
            None => other.push(Discrepancy::OtherSite {
                location: page.location(),
                identity: identity.to_string(),
            }),
            Some(r) if &r != room => other.push(Discrepancy::OtherRoom {
                location: page.location(),
                identity: identity.to_string(),
                room: r,
            }),
            Some(_) => match identity {
                PageIdentity::Blank(id) => {
                    *counts.blanks.entry(id.kind).or_default() += 1;
                    *kits.entry(id.kit()).or_default().entry(id.kind).or_default() += 1;
                }
                PageIdentity::Form(id) => *counts.forms.entry(id.form).or_default() += 1,
            },
        }
    }
    counts.registrations = counts.blanks.get(&BlankKind::Registration).copied().unwrap_or(0);

    if room.as_str() != UNSORTED_ROOM {
        for form in ROOM_FORMS {
            if !counts.forms.contains_key(&form) {
                found.push(Discrepancy::FormMissing { form });
            }
        }
        match present {
            None => found.push(Discrepancy::AttendanceNotEntered),
            Some(reported) if reported != counts.registrations => found.push(Discrepancy::AttendanceMismatch {
                reported,
                registrations: counts.registrations,
            }),
            Some(_) => {}
        }
    }

    let set = full_set(plan.exam);
    for participant in plan.participants.iter().filter(|p| &p.room == room) {
        let Some(have) = kits.get(&participant.kit) else {
            continue; // absent: no blanks at all
        };
        if !have.contains_key(&BlankKind::Registration) {
            found.push(Discrepancy::RegistrationMissing {
                participant: participant.code.clone(),
            });
            continue;
        }
        let mut complete = true;
        for &(kind, expected) in set {
            let got = have.get(&kind).copied().unwrap_or(0);
            if got < u32::from(expected) {
                complete = false;
                found.push(Discrepancy::BlankMissing {
                    participant: participant.code.clone(),
                    kind,
                    found: got,
                    expected: u32::from(expected),
                });
            }
        }
        if complete {
            counts.complete_sets += 1;
        }
    }

    found.extend(duplicates(pages, all_pages));
    found.extend(other);
    found.extend(not_in_plan(plan, all_pages));
    RoomCheck {
        room: room.clone(),
        counts,
        discrepancies: found,
    }
}

/// The day's blanks whose kit the plan does not know, as one discrepancy, if any.
fn not_in_plan(plan: &SeatingPlan, all_pages: &[&PageRecord]) -> Option<Discrepancy> {
    let mut kits = BTreeSet::new();
    let mut locations = Vec::new();
    for page in all_pages {
        if let Some(PageIdentity::Blank(id)) = page.identity() {
            if plan.by_kit(id.kit()).is_none() {
                kits.insert(id.kit());
                locations.push(page.location());
            }
        }
    }
    (!kits.is_empty()).then(|| Discrepancy::NotInPlan {
        kits: kits.into_iter().collect(),
        locations,
    })
}

/// Identities of this room's pages that occur more than once anywhere at the site.
fn duplicates(pages: &[&PageRecord], all_pages: &[&PageRecord]) -> Vec<Discrepancy> {
    let mine: BTreeSet<&PageIdentity> = pages.iter().filter_map(|p| p.identity()).collect();
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for page in all_pages {
        if let Some(identity) = page.identity().filter(|id| mine.contains(id)) {
            seen.entry(identity.to_string()).or_default().push(page.location());
        }
    }
    seen.into_iter()
        .filter(|(_, locations)| locations.len() > 1)
        .map(|(identity, locations)| Discrepancy::Duplicate { identity, locations })
        .collect()
}

#[cfg(test)]
#[path = "completeness_tests.rs"]
mod tests;
