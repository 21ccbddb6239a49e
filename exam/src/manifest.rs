//! The manifest of a room packet: which packet it is and every file in it.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Discrepancy, Error, ExamDate, ExamKind, PacketKind, PageRecord, Result, RoomCounts, RoomId, SiteId};

/// Which packet: one per (site, exam day, exam, room, kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PacketRef {
    /// The sending site.
    pub site: SiteId,
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The room.
    pub room: RoomId,
    /// What the packet carries.
    pub kind: PacketKind,
}

impl PacketRef {
    /// The stable packet id, e.g. `0101-2026-06-01-ege-0012-blanks`.
    pub fn packet_id(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.site,
            self.date,
            self.exam.code(),
            self.room,
            self.kind.code()
        )
    }
}

/// One file of the packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name (no directories).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents.
    #[serde(with = "crate::digest_hex")]
    pub sha256: [u8; 32],
}

/// What a room packet holds; sealed inside the envelope and relied on by the center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Which packet.
    pub packet: PacketRef,
    /// The packet version (a corrected rescan is a new version).
    pub version: u32,
    /// The files, in archive order.
    pub files: Vec<ManifestFile>,
    /// What the site recognized and checked, when the packet came from the day's intake.
    pub room: Option<RoomRecord>,
}

/// What the site recognized on every page of a packet and what its completeness check
/// found; the center relies on it and checks it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// One record per page of every file, in archive order.
    pub pages: Vec<PageRecord>,
    /// The room's counts at sealing time.
    pub counts: RoomCounts,
    /// What was missing or extra when the room was sealed.
    pub discrepancies: Vec<Discrepancy>,
    /// Why the room was sealed despite them, as the operator gave it.
    pub override_reason: Option<String>,
}

/// Whether a folder entry is, by its name, a finished scan file: not hidden, not a
/// partial download, temporary or editor backup file.
pub fn is_scan_file(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with(".part") && !name.ends_with(".tmp") && !name.ends_with('~')
}

pub(crate) fn valid_file_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The scan files of a room folder, sorted by name, with their sizes: every regular,
/// non-hidden file that is not a partial download.
pub fn list_scans(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let meta = entry.metadata().map_err(Error::io(entry.path()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(Error::InvalidId {
                what: "file name",
                value: entry.file_name().to_string_lossy().into_owned(),
                hint: "scan file names must be valid UTF-8; rename the file",
            });
        };
        if meta.is_file() && is_scan_file(&name) && valid_file_name(&name) {
            files.push((name, meta.len()));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::EmptyRoom(dir.to_owned()));
    }
    Ok(files)
}

impl Manifest {
    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
