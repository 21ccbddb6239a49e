//! What the records keep for retention: the reference to each scan file held in the
//! content-addressed image store (since when; whether retention deleted it, when and by
//! whom), and the holds that keep records, images and envelopes past their time (an
//! appeal, a removal, an annulment, an investigation), each with who placed it and, once
//! lifted, who released it. Nothing here is ever removed: a deleted image keeps its
//! reference, marked deleted; a released hold stays, marked released.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ExamDay;

/// A scan file held in the image store, named by its SHA-256 (the manifest's file digest,
/// [`PageEntry::file_sha256`](crate::PageEntry::file_sha256)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// SHA-256 of the scan file.
    pub sha256: [u8; 32],
    /// Its size.
    pub bytes: u64,
    /// When the image store first held it (loader's clock): retention counts from here
    /// when it counts from the records' entry.
    pub held_since_unix_ms: u64,
    /// Deleted by retention: when and by whom.
    pub deleted: Option<Removal>,
}

/// Who deleted something by retention, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// When (loader's clock).
    pub at_unix_ms: u64,
    /// Who ran retention.
    pub by: String,
}

/// Why something is held past its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HoldReason {
    /// An appeal (procedural or on scores, 002:7479, 7543): its blanks' images and
    /// recognition are the appeal's documents (002:7509–7511).
    Appeal,
    /// A participant removed from the exam (ППЭ-21).
    Removal,
    /// A result annulled.
    Annulment,
    /// An investigation (e.g. a participant not in the plan, 002:6838).
    Investigation,
}

impl HoldReason {
    /// The reason's name in commands and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Appeal => "appeal",
            HoldReason::Removal => "removal",
            HoldReason::Annulment => "annulment",
            HoldReason::Investigation => "investigation",
        }
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hold keeps: everything it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldTarget {
    /// One packet version: its envelope, its records and every image of its pages.
    Packet([u8; 32]),
    /// One participant (by code in the regional records): every packet holding a page of
    /// theirs, whole.
    Participant(String),
    /// A whole exam day.
    Day(ExamDay),
}

impl fmt::Display for HoldTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldTarget::Packet(envelope) => write!(f, "packet {}", hex::encode(envelope)),
            HoldTarget::Participant(code) => write!(f, "participant {code}"),
            HoldTarget::Day(day) => write!(f, "exam {day}"),
        }
    }
}

/// A hold placed by a person, until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Number, from 1, in the order placed.
    pub id: u64,
    /// Why.
    pub reason: HoldReason,
    /// What it keeps.
    pub target: HoldTarget,
    /// Who placed it.
    pub by: String,
    /// When (loader's clock).
    pub at_unix_ms: u64,
    /// The case: an appeal's number, a commission's decision.
    pub note: String,
    /// Lifted: by whom, when, why.
    pub released: Option<Release>,
}

/// The lifting of a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Who released it.
    pub by: String,
    /// When (loader's clock).
    pub at_unix_ms: u64,
    /// Why: the appeal decided, the investigation closed.
    pub note: String,
}

/// A hold to be placed (its number is given by the records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    /// Why.
    pub reason: HoldReason,
    /// What it keeps.
    pub target: HoldTarget,
    /// Who places it.
    pub by: String,
    /// When (loader's clock).
    pub at_unix_ms: u64,
    /// The case.
    pub note: String,
}

impl NewHold {
    /// The hold as stored, numbered `id`.
    pub fn numbered(self, id: u64) -> Hold {
        Hold {
            id,
            reason: self.reason,
            target: self.target,
            by: self.by,
            at_unix_ms: self.at_unix_ms,
            note: self.note,
            released: None,
        }
    }
}

/// What lifting hold `old` makes of it; the same rule for every backend.
pub(crate) fn released(old: Hold, release: Release) -> crate::Result<Hold> {
    if old.released.is_some() {
        return Err(crate::Error::HoldReleased { id: old.id });
    }
    Ok(Hold {
        released: Some(release),
        ..old
    })
}

/// What marking `old` deleted makes of it: a reference deleted before keeps its first
/// deletion.
pub(crate) fn deleted(old: ImageRef, removal: &Removal) -> ImageRef {
    if old.deleted.is_some() {
        return old;
    }
    ImageRef {
        deleted: Some(removal.clone()),
        ..old
    }
}
