//! The exam day's plan as the center imports it: every site expected to take part (code,
//! kind, time zone), its rooms, the participants seated in them and the exam-committee
//! members assigned. It is the one format: the center issues each site's seating plan
//! from it ([`DayPlan::seating`]), so edge and center never disagree about who sits where.
//!
//! A participant who refused consent to personal-data processing is not in the plan at
//! all (seed 001:888, 960–982: their blanks stay on paper, out of РИС and ФИС). A plan
//! exported with such rows marked `consent = false` is accepted, the rows are dropped on
//! reading and only their number is kept — nothing identifying them is stored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{BlankId, Error, ExamDate, ExamKind, Participant, Result, RoomId, SeatingPlan, SiteId, SiteKind, SiteZone};

/// A site expected on the exam day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSite {
    /// The site code.
    pub code: SiteId,
    /// What kind of place it is.
    pub kind: SiteKind,
    /// Its IANA time zone: the 23:59 deadline is local.
    pub time_zone: String,
}

/// A room of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRoom {
    /// The site.
    pub site: SiteId,
    /// The room.
    pub code: RoomId,
    /// The oral part of a foreign language: the room's summary is ППЭ-13-03-У МАШ.
    #[serde(default)]
    pub oral: bool,
}

/// A participant as the plan file lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanParticipant {
    /// The participant's code in the regional records.
    pub code: String,
    /// The site.
    pub site: SiteId,
    /// The room.
    pub room: RoomId,
    /// The seat, e.g. "3А".
    pub seat: String,
    /// The kit handed out: every blank of it carries this number.
    pub kit: u64,
    /// Consent to personal-data processing; a row with `false` is dropped on reading.
    #[serde(default = "yes")]
    pub consent: bool,
}

fn yes() -> bool {
    true
}

/// An exam-committee member assigned to a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanMember {
    /// The member's token id in the key registry.
    pub token_id: String,
    /// The site.
    pub site: SiteId,
}

/// The exam day's plan for the region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayPlan {
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The region's code, two digits.
    pub region: String,
    /// Whether the exam's answers go to expert checking (closing waits for its mark).
    #[serde(default)]
    pub expert_checking: bool,
    /// Every site expected.
    #[serde(default)]
    pub sites: Vec<PlanSite>,
    /// Every room.
    #[serde(default)]
    pub rooms: Vec<PlanRoom>,
    /// Everyone seated (with consent).
    #[serde(default)]
    pub participants: Vec<PlanParticipant>,
    /// Members assigned.
    #[serde(default)]
    pub members: Vec<PlanMember>,
}

/// What reading a plan left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanReading {
    /// Rows of participants without consent, dropped unread.
    pub without_consent: usize,
}

fn bad(value: String, hint: &'static str) -> Error {
    Error::InvalidId {
        what: "exam-day plan",
        value,
        hint,
    }
}

impl DayPlan {
    /// Reads a plan from TOML text, drops the participants without consent and checks it.
    pub fn from_toml(text: &str) -> Result<(Self, PlanReading)> {
        let mut plan: DayPlan = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1)))
                .unwrap_or_default();
            bad(
                format!("{}{at}", e.message()),
                "the plan is TOML: date, exam, region, then [[sites]] (code, kind, time_zone), [[rooms]] \
                 (site, code, oral), [[participants]] (code, site, room, seat, kit, consent) and [[members]] \
                 (token_id, site)",
            )
        })?;
        let before = plan.participants.len();
        plan.participants.retain(|p| p.consent);
        let reading = PlanReading {
            without_consent: before - plan.participants.len(),
        };
        plan.check()?;
        Ok((plan, reading))
    }

    /// The plan as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| bad(e.to_string(), "report this as a bug"))
    }

    /// Checks that every site, room and participant is named once and refers to what the
    /// plan holds, and that no row without consent is left.
    pub fn check(&self) -> Result<()> {
        if self.region.len() != 2 || !self.region.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                format!("region {:?}", self.region),
                "the region code is two digits, e.g. 76",
            ));
        }
        let mut sites = BTreeSet::new();
        for s in &self.sites {
            SiteZone::new(&s.time_zone)?;
            if !sites.insert(&s.code) {
                return Err(bad(
                    format!("site {} twice", s.code),
                    "list every site once under [[sites]]",
                ));
            }
        }
        let mut rooms = BTreeSet::new();
        for r in &self.rooms {
            if !sites.contains(&r.site) {
                return Err(bad(
                    format!("room {} of site {}", r.code, r.site),
                    "the room's site is not under [[sites]]; add the site or fix the room's site code",
                ));
            }
            if !rooms.insert((&r.site, &r.code)) {
                return Err(bad(
                    format!("room {} of site {} twice", r.code, r.site),
                    "list every room of a site once under [[rooms]]",
                ));
            }
        }
        let (mut codes, mut kits, mut seats) = (BTreeSet::new(), BTreeMap::new(), BTreeSet::new());
        for p in &self.participants {
            if !p.consent {
                return Err(bad(
                    format!("participant {}", p.code),
                    "a participant without consent is not in the plan at all",
                ));
            }
            if !rooms.contains(&(&p.site, &p.room)) {
                return Err(bad(
                    format!("participant {} in room {} of site {}", p.code, p.room, p.site),
                    "the participant's room is not under [[rooms]]; add it or fix the participant's room",
                ));
            }
            if p.code.trim().is_empty() || !codes.insert(p.code.as_str()) {
                return Err(bad(
                    format!("participant {:?}", p.code),
                    "every participant appears once, with a non-empty code",
                ));
            }
            if p.kit >= BlankId::KIT_LIMIT {
                return Err(bad(
                    format!("participant {} kit {}", p.code, p.kit),
                    "a kit number has at most 10 digits",
                ));
            }
            if let Some(other) = kits.insert(p.kit, p.code.as_str()) {
                return Err(bad(
                    format!("participants {other} and {} both hold kit {}", p.code, p.kit),
                    "every participant has their own kit; correct the plan's kit numbers",
                ));
            }
            if !seats.insert((&p.site, &p.room, p.seat.as_str())) {
                return Err(bad(
                    format!("site {} room {} seat {}", p.site, p.room, p.seat),
                    "every seat of a room is given once",
                ));
            }
        }
        for m in &self.members {
            if !sites.contains(&m.site) {
                return Err(bad(
                    format!("member {} at site {}", m.token_id, m.site),
                    "the member's site is not under [[sites]]",
                ));
            }
        }
        Ok(())
    }

    /// The site `code`, if the plan expects it.
    pub fn site(&self, code: &SiteId) -> Option<&PlanSite> {
        self.sites.iter().find(|s| &s.code == code)
    }

    /// The room `room` of site `site`, if planned.
    pub fn room(&self, site: &SiteId, room: &RoomId) -> Option<&PlanRoom> {
        self.rooms.iter().find(|r| &r.site == site && &r.code == room)
    }

    /// The rooms of `site`, in order.
    pub fn rooms_of<'a>(&'a self, site: &'a SiteId) -> impl Iterator<Item = &'a PlanRoom> + 'a {
        self.rooms.iter().filter(move |r| &r.site == site)
    }

    /// The participants by kit number.
    pub fn by_kit(&self) -> BTreeMap<u64, &PlanParticipant> {
        self.participants.iter().map(|p| (p.kit, p)).collect()
    }

    /// The seating plan the center issues to site `site`: exactly the plan's rows for it.
    pub fn seating(&self, site: &SiteId) -> Result<SeatingPlan> {
        if self.site(site).is_none() {
            return Err(bad(
                format!("site {site}"),
                "the site is not in the exam-day plan; import a plan that lists it",
            ));
        }
        let plan = SeatingPlan {
            site: site.clone(),
            date: self.date,
            exam: self.exam,
            participants: self
                .participants
                .iter()
                .filter(|p| &p.site == site)
                .map(|p| Participant {
                    code: p.code.clone(),
                    room: p.room.clone(),
                    seat: p.seat.clone(),
                    kit: p.kit,
                })
                .collect(),
        };
        plan.check()?;
        Ok(plan)
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
