//! The reserve channel's drive: when the network fails, a site carries its sealed
//! envelopes to the center on a drive, and carries the center's receipts back.
//!
//! A drive folder holds
//!
//! ```text
//! envelopes/<packet id>.v<version>.env       the sealed envelopes, byte for byte the outbox's
//! konvert-index.toml                         what they are: each one's offer (written last)
//! receipts/<packet id>.v<version>.receipt    the center's signed receipts (written at import)
//! ```
//!
//! The index is written after every envelope it names is fsynced and renamed into place,
//! so a drive pulled out mid-export holds either the old index or the new one, never an
//! index naming a missing or partial file. Nothing on a drive is trusted: the index is
//! bounded and its names are checked before any path is built from them, the center
//! verifies every envelope exactly as on the network path, and the edge verifies every
//! receipt against the center's key and the packet it sent. Every file and folder below
//! the drive folder is reached without following links and read only if it is a regular
//! file, within a size and a time limit; what is written there is created exclusively
//! ([`crate::drive`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::drive::DriveDir;
use crate::{Error, Offer, OutboxEntry, Receipt, Result};

/// The index file in a drive folder.
pub const INDEX_FILE: &str = "konvert-index.toml";
/// The folder of envelopes in a drive folder.
pub const ENVELOPES: &str = "envelopes";
/// The folder of receipts in a drive folder.
pub const RECEIPTS: &str = "receipts";
/// The index format this build writes and reads.
pub const INDEX_FORMAT: u32 = 1;
/// The largest index read back: [`MAX_INDEX_PACKETS`] entries of ~400 bytes fit (~800 KB).
/// Parsing TOML takes up to ~130 bytes of heap per byte of text (measured by
/// `tests/tests/fuzz.rs`), so a larger bound only lets a forged drive cost the center
/// memory for an index it would refuse anyway.
pub const MAX_INDEX_BYTES: u64 = 1 << 20;
/// The most packets an index may name. A site seals at most a few hundred packets an exam
/// day (rooms × packet kinds); 2 000 is a week of a large site's backlog. The bound, with
/// every file named once, is what limits an import's work: at most this many envelopes,
/// each read at most once.
pub const MAX_INDEX_PACKETS: usize = 2_000;
/// The most receipt files read from a drive.
pub const MAX_RECEIPT_FILES: usize = 10_000;
/// The largest receipt file read back.
const MAX_RECEIPT_BYTES: u64 = 16 * 1024;
/// A receipt file: this magic and format byte, then the postcard of the [`Receipt`].
const RECEIPT_MAGIC: &[u8; 8] = b"KNVRTRC1";
/// The longest file name accepted in an index.
const MAX_NAME_LEN: usize = 200;

/// What a drive folder holds, as the edge that exported it describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveIndex {
    /// [`INDEX_FORMAT`].
    pub format: u32,
    /// The site that exported it.
    pub site: String,
    /// The edge's clock when the index was written (a claim, for people).
    pub written_at_unix_ms: u64,
    /// The envelopes, in sending order.
    pub packets: Vec<DrivePacket>,
}

/// One envelope on a drive: its file and the offer the edge would make for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivePacket {
    /// The file name under `envelopes/`.
    pub file: String,
    /// The room and kind, for people.
    pub label: String,
    /// The packet id.
    pub packet_id: String,
    /// The packet version.
    pub version: u32,
    /// The envelope's size in bytes.
    pub size: u64,
    /// The envelope id (SHA-256 of the file), 64 hex digits.
    pub digest: String,
    /// Scheduling class.
    pub priority: u8,
    /// When the edge sealed it (its claim).
    pub sealed_at_unix_ms: u64,
    /// The site's deadline for it.
    pub deadline_unix_ms: u64,
}

fn drive_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Drive {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Checks a file name from a drive before a path is built from it: a plain name of
/// letters, digits, `.`, `_`, `-`, not hidden, with the expected extension.
pub fn check_file_name(name: &str, extension: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain || !name.ends_with(extension) {
        return Err(format!(
            "{name:?} is not a plain *{extension} file name (letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

impl DrivePacket {
    /// The drive's description of an outbox entry.
    pub fn from_entry(entry: &OutboxEntry) -> Self {
        let o = &entry.offer;
        DrivePacket {
            file: entry.file_name.clone(),
            label: entry.label.clone(),
            packet_id: o.packet_id.clone(),
            version: o.version,
            size: o.size,
            digest: hex::encode(o.digest),
            priority: o.priority,
            sealed_at_unix_ms: o.sealed_at_unix_ms,
            deadline_unix_ms: o.deadline_unix_ms,
        }
    }

    /// The offer this entry describes, once its file name and digest are well formed.
    pub fn offer(&self) -> std::result::Result<Offer, String> {
        check_file_name(&self.file, ".env")?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&self.digest, &mut digest)
            .map_err(|_| format!("the digest of {} is not 64 hex digits", self.file))?;
        Ok(Offer {
            packet_id: self.packet_id.clone(),
            version: self.version,
            size: self.size,
            digest,
            priority: self.priority,
            sealed_at_unix_ms: self.sealed_at_unix_ms,
            deadline_unix_ms: self.deadline_unix_ms,
        })
    }

    /// The receipt file's name: the envelope's, with `.receipt` for `.env`.
    pub fn receipt_name(&self) -> String {
        let stem = self.file.strip_suffix(".env").unwrap_or(&self.file);
        format!("{stem}.receipt")
    }
}

impl DriveIndex {
    /// The index in drive folder `dir`, if there is one. A damaged, oversized or newer
    /// index is an error that says so; nothing is guessed.
    pub fn read(dir: &Path) -> Result<Option<DriveIndex>> {
        let path = dir.join(INDEX_FILE);
        // The drive folder the operator named (an export makes it if absent).
        if !dir.exists() {
            return Ok(None);
        }
        let Some(file) = DriveDir::open(dir)?.open_file(INDEX_FILE, MAX_INDEX_BYTES)? else {
            return Ok(None);
        };
        let bytes = file.read_all()?;
        let text = std::str::from_utf8(&bytes).map_err(|_| drive_err(&path, "not a konvert drive index (not text)"))?;
        // The format first, so a newer index is named as such rather than as damaged.
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format = toml::from_str::<Format>(text)
            .map_err(|e| drive_err(&path, format!("not a konvert drive index: {e}")))?
            .format;
        if format != INDEX_FORMAT {
            return Err(drive_err(
                &path,
                format!("index format {format}; this konvert reads format {INDEX_FORMAT} — use the same konvert version at the site and the center"),
            ));
        }
        let index: DriveIndex =
            toml::from_str(text).map_err(|e| drive_err(&path, format!("damaged drive index: {e}")))?;
        if index.packets.len() > MAX_INDEX_PACKETS {
            return Err(drive_err(
                &path,
                format!(
                    "names {} packets, at most {MAX_INDEX_PACKETS} — refused, nothing taken; the index is damaged or forged",
                    index.packets.len()
                ),
            ));
        }
        // Each envelope once: an index naming one file (or one packet version) many times
        // would have the center read and stage it as many times.
        let mut files = std::collections::HashSet::new();
        let mut versions = std::collections::HashSet::new();
        for p in &index.packets {
            if !files.insert(p.file.as_str()) {
                return Err(drive_err(
                    &path,
                    format!(
                        "names the file {:?} more than once — refused, nothing taken; export the drive again",
                        p.file
                    ),
                ));
            }
            if !versions.insert((p.packet_id.as_str(), p.version)) {
                return Err(drive_err(
                    &path,
                    format!(
                        "names packet {:?} version {} more than once — refused, nothing taken; export the drive again",
                        p.packet_id, p.version
                    ),
                ));
            }
        }
        Ok(Some(index))
    }

    /// Writes the index into `dir` atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(INDEX_FILE);
        let text = toml::to_string_pretty(self).map_err(|e| drive_err(&path, format!("cannot encode: {e}")))?;
        DriveDir::open(dir)?.write_durably(INDEX_FILE, text.as_bytes())
    }
}

/// Where an envelope named in the index lies (the name checked by [`DrivePacket::offer`]).
pub fn envelope_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(ENVELOPES).join(file)
}

/// The drive folder `dir` and its `envelopes/` folder (`None` if the drive has none),
/// opened so that nothing below `dir` is reached through a link.
pub fn open_envelopes(dir: &Path) -> Result<(DriveDir, Option<DriveDir>)> {
    let drive = DriveDir::open(dir)?;
    let envelopes = drive.sub(ENVELOPES)?;
    Ok((drive, envelopes))
}

/// Checks that the drive folder `dir`'s `envelopes/` and `receipts/` are real folders (or
/// absent), so a drive whose receipts could not be written back is refused before anything
/// on it is stored.
pub fn check_folders(dir: &Path) -> Result<()> {
    let drive = DriveDir::open(dir)?;
    drive.sub(ENVELOPES)?;
    drive.sub(RECEIPTS)?;
    Ok(())
}

/// Writes a receipt for the drive's packet into `dir/receipts/`, durably: `receipts/` is
/// made if absent and must be a real folder, and the file is created exclusively in it.
pub fn write_receipt(dir: &Path, packet: &DrivePacket, receipt: &Receipt) -> Result<PathBuf> {
    let drive = DriveDir::open(dir)?;
    let folder = drive.sub_or_create(RECEIPTS)?;
    let name = packet.receipt_name();
    check_file_name(&name, ".receipt").map_err(|e| drive_err(folder.path(), e))?;
    let path = folder.path().join(&name);
    let mut bytes = RECEIPT_MAGIC.to_vec();
    bytes.extend_from_slice(&postcard::to_allocvec(receipt).map_err(|e| drive_err(&path, e))?);
    folder.write_durably(&name, &bytes)?;
    Ok(path)
}

/// Reads one receipt file (bounded, a regular file only); a damaged one is an error
/// naming it.
pub fn read_receipt(folder: &DriveDir, name: &str) -> Result<Receipt> {
    let path = folder.path().join(name);
    let bytes = folder
        .open_file(name, MAX_RECEIPT_BYTES)?
        .ok_or_else(|| drive_err(&path, "vanished while the receipts were read"))?
        .read_all()?;
    let body = bytes
        .strip_prefix(RECEIPT_MAGIC.as_slice())
        .ok_or_else(|| drive_err(&path, "not a konvert receipt file"))?;
    match postcard::take_from_bytes::<Receipt>(body) {
        Ok((receipt, [])) => Ok(receipt),
        _ => Err(drive_err(&path, "a damaged receipt file")),
    }
}

/// The `receipts/` folder of drive folder `dir` (`None` if it has none) and the names of
/// the receipt files in it, sorted (at most [`MAX_RECEIPT_FILES`]). A `receipts` that is a
/// link is refused.
pub fn receipt_files(dir: &Path) -> Result<Option<(DriveDir, Vec<String>)>> {
    let Some(folder) = DriveDir::open(dir)?.sub(RECEIPTS)? else {
        return Ok(None);
    };
    let names = folder.files(".receipt", MAX_RECEIPT_FILES)?;
    Ok(Some((folder, names)))
}

/// The `receipts/*.receipt` entries on the drive at `dir` that are no regular file, each
/// with what it is: never read, but named to the operator.
pub fn unreadable_receipts(dir: &Path) -> Result<Vec<(String, &'static str)>> {
    let Some(folder) = DriveDir::open(dir)?.sub(RECEIPTS)? else {
        return Ok(Vec::new());
    };
    folder.not_regular(".receipt", MAX_RECEIPT_FILES)
}

#[cfg(test)]
#[path = "reserve_tests.rs"]
mod tests;
