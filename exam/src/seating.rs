//! Sites and the seating plan: who writes in which room, as the site receives it by 15:00
//! the day before (domain.md §3). Completeness checks compare scans against it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Error, ExamDate, ExamKind, Result, RoomId, SiteId, SiteZone};

/// What kind of place a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteKind {
    /// ППЭ — an exam site.
    ExamSite,
    /// ОО — a school (hosts the final essay).
    School,
    /// ППОИ — a primary processing point (grade-9 scans).
    ProcessingPoint,
}

/// A site: its code, region, local time and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The site code.
    pub code: SiteId,
    /// The region's code (субъект РФ), two digits, e.g. "76" for Yaroslavl.
    pub region: String,
    /// The site's IANA time zone.
    pub zone: SiteZone,
    /// What kind of place it is.
    pub kind: SiteKind,
}

impl Site {
    /// A site; the region must be a two-digit code.
    pub fn new(code: SiteId, region: &str, zone: SiteZone, kind: SiteKind) -> Result<Self> {
        if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidId {
                what: "region code",
                value: region.to_owned(),
                hint: "two digits, e.g. 76",
            });
        }
        Ok(Site {
            code,
            region: region.to_owned(),
            zone,
            kind,
        })
    }
}

/// An exam participant on the seating plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// The participant's code in the regional records.
    pub code: String,
    /// The room.
    pub room: RoomId,
    /// The seat, e.g. "3А".
    pub seat: String,
    /// The individual kit handed to the participant; every blank of it carries this number.
    pub kit: u64,
}

/// The seating plan of one exam day at one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatingPlan {
    /// The site.
    pub site: SiteId,
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// Everyone seated.
    pub participants: Vec<Participant>,
}

/// A seating plan file as read: its rows may carry `consent`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatingFile {
    site: SiteId,
    date: ExamDate,
    exam: ExamKind,
    participants: Vec<SeatingRow>,
}

/// A participant row of a seating plan file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatingRow {
    code: String,
    room: RoomId,
    seat: String,
    kit: u64,
    #[serde(default = "consented")]
    consent: bool,
}

fn consented() -> bool {
    true
}

impl SeatingPlan {
    /// Checks the plan: every participant once, every seat of a room once.
    pub fn check(&self) -> Result<()> {
        let mut codes = BTreeSet::new();
        let mut seats = BTreeSet::new();
        let mut kits = BTreeSet::new();
        for p in &self.participants {
            if p.kit >= crate::BlankId::KIT_LIMIT || !kits.insert(p.kit) {
                return Err(Error::InvalidId {
                    what: "seating plan",
                    value: format!("participant {} kit {}", p.code, p.kit),
                    hint: "every participant has their own kit number of at most 10 digits",
                });
            }
            if p.code.is_empty() || !codes.insert(p.code.as_str()) {
                return Err(Error::InvalidId {
                    what: "seating plan",
                    value: p.code.clone(),
                    hint: "every participant appears once, with a non-empty code",
                });
            }
            if !seats.insert((p.room.as_str(), p.seat.as_str())) {
                return Err(Error::InvalidId {
                    what: "seating plan",
                    value: format!("room {} seat {}", p.room, p.seat),
                    hint: "every seat of a room is given once",
                });
            }
        }
        Ok(())
    }

    /// The participants of each room, rooms in order.
    pub fn rooms(&self) -> BTreeMap<&RoomId, Vec<&Participant>> {
        let mut rooms: BTreeMap<&RoomId, Vec<&Participant>> = BTreeMap::new();
        for p in &self.participants {
            rooms.entry(&p.room).or_default().push(p);
        }
        rooms
    }

    /// The participant who holds kit `kit`.
    pub fn by_kit(&self, kit: u64) -> Option<&Participant> {
        self.participants.iter().find(|p| p.kit == kit)
    }

    /// Reads a plan from TOML text and checks it; rows marked `consent = false` are
    /// dropped unread ([`SeatingPlan::from_toml_reading`]).
    pub fn from_toml(text: &str) -> Result<Self> {
        Self::from_toml_reading(text).map(|(plan, _)| plan)
    }

    /// Reads a plan from TOML text, drops the participants without consent and checks it.
    ///
    /// The center issues seating plans from the day plan, which never holds anyone without
    /// consent; but a site may be handed a seating list made elsewhere (the school's own,
    /// for the final essay) that lists them with `consent = false`. Such a row is dropped
    /// as the day plan drops it (seed 001:888: their data go into no system; the site
    /// seats them on paper, ИС-05), and only their number is kept: refusing the whole file
    /// would stop the site's day for a row it must simply not use.
    pub fn from_toml_reading(text: &str) -> Result<(Self, crate::PlanReading)> {
        let file: SeatingFile = toml::from_str(text).map_err(|e| Error::InvalidId {
            what: "seating plan",
            value: e.message().to_owned(),
            hint: "the plan is TOML: site, date, exam and [[participants]] with code, room, seat, kit (and consent)",
        })?;
        let before = file.participants.len();
        let plan = SeatingPlan {
            site: file.site,
            date: file.date,
            exam: file.exam,
            participants: file
                .participants
                .into_iter()
                .filter(|p| p.consent)
                .map(|p| Participant {
                    code: p.code,
                    room: p.room,
                    seat: p.seat,
                    kit: p.kit,
                })
                .collect(),
        };
        let reading = crate::PlanReading {
            without_consent: before - plan.participants.len(),
        };
        plan.check()?;
        Ok((plan, reading))
    }

    /// How many participants are seated in `room`.
    pub fn seated_in(&self, room: &RoomId) -> usize {
        self.participants.iter().filter(|p| &p.room == room).count()
    }
}

#[cfg(test)]
#[path = "seating_tests.rs"]
mod tests;
