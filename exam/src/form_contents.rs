//! What a form's QR code carries beyond its identity: the room summary of ППЭ-13-02МАШ
//! (ППЭ-13-03-У МАШ) that the center reconciles a room against, and the kits listed on
//! the acts of removal (ППЭ-21) and early finish (ППЭ-22).
//!
//! The text is the form code of [`FormId`], then, for these forms only, a fifth field:
//! `FORM|SITE|ROOM|YYYY-MM-DD|CONTENTS`. A code without the fifth field (as printed before
//! contents existed, or for any other form) still reads, with no contents.
//! - Summary: `present=N;absent=N;removed=N;early=N` then `bKK=N` for each blank kind
//!   with code KK (e.g. `b10=24;b11=24;b12=24;b13=24;b14=3`); a kind left out is 0.
//! - Acts: `kits=K,K,…`, 1 to [`MAX_ACT_KITS`] kit numbers (10 digits at most); a room with
//!   more prints more act pages, and the center takes their union.
//!
//! Keys are fixed and each appears once; anything else is not a form code, so a misread
//! never becomes a wrong count.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{BlankId, BlankKind, Error, Form, FormId, Result};

/// Most kits one act page lists (keeps the QR code within its 45 mm zone).
pub const MAX_ACT_KITS: usize = 8;
/// Largest count a summary field holds.
pub const MAX_SUMMARY_COUNT: u32 = 99_999;

/// A room's summary as ППЭ-13-02МАШ (ППЭ-13-03-У МАШ) reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoomSummary {
    /// Participants who came.
    pub present: u32,
    /// Participants seated in the room who did not come.
    pub absent: u32,
    /// Participants removed from the exam (ППЭ-21).
    pub removed: u32,
    /// Participants who finished early for objective reasons (ППЭ-22).
    pub early_finished: u32,
    /// Blanks of each kind the room hands over; a kind not listed is 0.
    pub blanks: BTreeMap<BlankKind, u32>,
}

impl RoomSummary {
    /// Blanks of `kind` the room reports.
    pub fn blanks_of(&self, kind: BlankKind) -> u32 {
        self.blanks.get(&kind).copied().unwrap_or(0)
    }
}

/// What a form's QR code carries besides its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FormContents {
    /// ППЭ-13-02МАШ / ППЭ-13-03-У МАШ: the room's counts.
    RoomSummary(RoomSummary),
    /// ППЭ-21 / ППЭ-22: the kits of the participants the act is about.
    Kits(Vec<u64>),
}

/// Which contents a form may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carries {
    Summary,
    Kits,
    Nothing,
}

fn carries(form: Form) -> Carries {
    match form {
        Form::Ppe13_02Mash | Form::Ppe13_03UMash => Carries::Summary,
        Form::Ppe21 | Form::Ppe22 => Carries::Kits,
        _ => Carries::Nothing,
    }
}

impl FormContents {
    /// Whether `form` carries contents of this shape.
    pub fn fits(&self, form: Form) -> bool {
        matches!(
            (self, carries(form)),
            (FormContents::RoomSummary(_), Carries::Summary) | (FormContents::Kits(_), Carries::Kits)
        )
    }
}

impl fmt::Display for FormContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormContents::RoomSummary(s) => {
                write!(
                    f,
                    "present={};absent={};removed={};early={}",
                    s.present, s.absent, s.removed, s.early_finished
                )?;
                for (kind, n) in &s.blanks {
                    write!(f, ";b{:02}={n}", kind.code())?;
                }
                Ok(())
            }
            FormContents::Kits(kits) => {
                f.write_str("kits=")?;
                for (i, kit) in kits.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{kit}")?;
                }
                Ok(())
            }
        }
    }
}

/// A form's whole QR code: its identity and, for the forms that have them, contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FormQr {
    /// Which form, site, room and day.
    pub id: FormId,
    /// What it reports; `None` for forms without contents and for codes printed without.
    pub contents: Option<FormContents>,
}

impl FormQr {
    /// A form code with contents, checked to fit the form.
    pub fn new(id: FormId, contents: Option<FormContents>) -> Result<Self> {
        if let Some(c) = &contents {
            check_contents(id.form, c).map_err(|hint| Error::InvalidId {
                what: "form contents",
                value: format!("{} {c}", id.form.code()),
                hint,
            })?;
        }
        Ok(FormQr { id, contents })
    }

    /// The room summary, for ППЭ-13-02МАШ and ППЭ-13-03-У МАШ that carry one.
    pub fn summary(&self) -> Option<&RoomSummary> {
        match &self.contents {
            Some(FormContents::RoomSummary(s)) => Some(s),
            _ => None,
        }
    }

    /// The kits an act lists, for ППЭ-21 and ППЭ-22 that carry them.
    pub fn kits(&self) -> Option<&[u64]> {
        match &self.contents {
            Some(FormContents::Kits(k)) => Some(k),
            _ => None,
        }
    }
}

fn check_contents(form: Form, contents: &FormContents) -> std::result::Result<(), &'static str> {
    if !contents.fits(form) {
        return Err("only ППЭ-13-02МАШ and ППЭ-13-03-У МАШ carry a summary, only ППЭ-21 and ППЭ-22 carry kits");
    }
    match contents {
        FormContents::RoomSummary(s) => {
            let counts = [s.present, s.absent, s.removed, s.early_finished];
            if counts
                .into_iter()
                .chain(s.blanks.values().copied())
                .any(|n| n > MAX_SUMMARY_COUNT)
            {
                return Err("a count is larger than 99999");
            }
        }
        FormContents::Kits(kits) => {
            if kits.is_empty() || kits.len() > MAX_ACT_KITS {
                return Err("an act lists 1 to 8 kits; print more act pages for more");
            }
            if kits.iter().any(|&k| k >= BlankId::KIT_LIMIT) {
                return Err("a kit number has at most 10 digits");
            }
            let mut sorted = kits.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != kits.len() {
                return Err("a kit is listed twice");
            }
        }
    }
    Ok(())
}

impl fmt::Display for FormQr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(c) = &self.contents {
            write!(f, "|{c}")?;
        }
        Ok(())
    }
}

const HINT: &str = "FORM|SITE|ROOM|YYYY-MM-DD, then for ППЭ-13-02МАШ/13-03-У МАШ \
                    |present=N;absent=N;removed=N;early=N;bKK=N…, for ППЭ-21/22 |kits=K,K…";

impl FromStr for FormQr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidId {
            what: "form code",
            value: s.chars().take(200).collect(),
            hint: HINT,
        };
        let (head, tail) = match s.match_indices('|').nth(3) {
            Some((i, _)) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let id: FormId = head.parse().map_err(|_| bad())?;
        let contents = match tail {
            None => None,
            Some(tail) => Some(parse_contents(id.form, tail).ok_or_else(bad)?),
        };
        FormQr::new(id, contents).map_err(|_| bad())
    }
}

fn count(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 5 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn parse_contents(form: Form, tail: &str) -> Option<FormContents> {
    match carries(form) {
        Carries::Nothing => None,
        Carries::Kits => {
            let list = tail.strip_prefix("kits=")?;
            let kits = list
                .split(',')
                .map(|k| {
                    (!k.is_empty() && k.len() <= 10 && k.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| k.parse::<u64>().ok())
                        .flatten()
                })
                .collect::<Option<Vec<u64>>>()?;
            Some(FormContents::Kits(kits))
        }
        Carries::Summary => {
            let mut fields: [Option<u32>; 4] = [None; 4];
            let mut blanks = BTreeMap::new();
            for pair in tail.split(';') {
                let (key, value) = pair.split_once('=')?;
                let n = count(value)?;
                let slot = match key {
                    "present" => Some(0),
                    "absent" => Some(1),
                    "removed" => Some(2),
                    "early" => Some(3),
                    _ => None,
                };
                if let Some(i) = slot {
                    if fields[i].replace(n).is_some() {
                        return None;
                    }
                    continue;
                }
                let code = key.strip_prefix('b').filter(|c| c.len() == 2)?;
                let kind = BlankKind::from_code(code.parse().ok()?)?;
                if blanks.insert(kind, n).is_some() {
                    return None;
                }
            }
            let [Some(present), Some(absent), Some(removed), Some(early_finished)] = fields else {
                return None;
            };
            Some(FormContents::RoomSummary(RoomSummary {
                present,
                absent,
                removed,
                early_finished,
                blanks,
            }))
        }
    }
}

#[cfg(test)]
#[path = "form_contents_tests.rs"]
mod tests;
