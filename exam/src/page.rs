//! One scanned page as the edge recorded it: which file and page it is, what its barcode
//! said (or why it could not be read), and when it was scanned. The manifest carries one
//! record per page, so the center knows what the site believed it sent.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{BlankId, FormId};

/// What a page's barcode identifies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PageIdentity {
    /// A participant's blank.
    Blank(BlankId),
    /// A form of the room.
    Form(FormId),
}

impl fmt::Display for PageIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageIdentity::Blank(id) => write!(f, "{} {id}", id.kind.title()),
            PageIdentity::Form(id) => write!(
                f,
                "{} (room {}, site {}, {})",
                id.form.code(),
                id.room,
                id.site,
                id.date
            ),
        }
    }
}

/// The outcome of recognizing one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageStatus {
    /// The barcode was read.
    Read(PageIdentity),
    /// Nothing could be read; the page travels flagged for a manual check.
    Unreadable {
        /// Why, in words.
        reason: String,
    },
}

/// One page of a scan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRecord {
    /// The scan file's name in the packet.
    pub file: String,
    /// The page's index within the file, from 0.
    pub page: u32,
    /// SHA-256 of the whole scan file.
    #[serde(with = "crate::digest_hex")]
    pub file_sha256: [u8; 32],
    /// What recognition found.
    pub status: PageStatus,
    /// When the file was taken from the scanner's folder (ms since the Unix epoch).
    pub scanned_at_unix_ms: u64,
}

impl PageRecord {
    /// The identity, if the page was read.
    pub fn identity(&self) -> Option<&PageIdentity> {
        match &self.status {
            PageStatus::Read(id) => Some(id),
            PageStatus::Unreadable { .. } => None,
        }
    }

    /// Where the page is, for people: `file.tif p.3`.
    pub fn location(&self) -> String {
        format!("{} p.{}", self.file, self.page + 1)
    }
}
