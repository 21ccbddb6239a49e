//! The manifest of a room packet: which packet it is and every file in it.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, ExamDate, ExamKind, PacketKind, Result, RoomId, SiteId};

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
}

/// Whether a folder entry is a scan file to send (not hidden, not a partial download).
fn is_scan_file(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with(".part") && !name.ends_with(".tmp")
}

pub(crate) fn valid_file_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

impl Manifest {
    /// Reads a room's folder: every regular scan file, sorted by name, with its digest.
    pub fn from_folder(dir: &Path, packet: PacketRef, version: u32) -> Result<Manifest> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
            let entry = entry.map_err(Error::io(dir))?;
            let ft = entry.file_type().map_err(Error::io(entry.path()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(Error::InvalidId {
                    what: "file name",
                    value: entry.file_name().to_string_lossy().into_owned(),
                    hint: "scan file names must be valid UTF-8; rename the file",
                });
            };
            if ft.is_file() && is_scan_file(&name) && valid_file_name(&name) {
                names.push(name);
            }
        }
        names.sort();
        if names.is_empty() {
            return Err(Error::EmptyRoom(dir.to_owned()));
        }
        let mut files = Vec::with_capacity(names.len());
        let mut buf = vec![0u8; 256 * 1024];
        for name in names {
            let path = dir.join(&name);
            let mut f = fs::File::open(&path).map_err(Error::io(&path))?;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf).map_err(Error::io(&path))?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
                size += n as u64;
            }
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(ctx.finish().as_ref());
            files.push(ManifestFile { name, size, sha256 });
        }
        Ok(Manifest { packet, version, files })
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
