//! The reserve channel at the site: when the network fails, `export` writes every sealed
//! envelope that has no receipt yet to a drive, with an index of their offers, and
//! `import_receipts` takes back the receipts the center wrote there. A relay does the same
//! with one folder per site (`export_relay`, `import_relay_receipts`).
//!
//! Envelope files go first (written beside, fsynced, renamed), the index last, so a drive
//! pulled out mid-export never holds an index naming a missing or partial file. Exporting
//! again skips what the drive already holds with the same envelope id. An exported packet
//! stays Sealed in the outbox — and is still pushed if the network comes back — until a
//! receipt arrives by either channel; the center stores each packet version once, so it
//! is delivered exactly once whichever way it went.
//!
//! A drive is not trusted: folders and files on it are reached without following links,
//! read only if they are regular files and within a time limit, and written only as files
//! created exclusively ([`konvert_replication::drive`]).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use konvert_replication::drive::{self, DriveDir};
use konvert_replication::reserve::{self, DriveIndex, DrivePacket, INDEX_FORMAT};
use konvert_replication::{Exported, Outbox, OutboxEntry, OutboxState};

use crate::config::SiteConfig;
use crate::{Error, Result};

/// The most site folders a relay's drive is looked through for receipts.
const MAX_SITE_FOLDERS: usize = 10_000;

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    /// Envelopes written to the drive now.
    pub written: Vec<OutboxEntry>,
    /// Envelopes the drive already held, byte for byte.
    pub already_there: Vec<OutboxEntry>,
    /// Bytes written now.
    pub bytes_written: u64,
}

/// What became of one receipt file on the drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// It verified; the packet is now delivered.
    Delivered {
        /// The packet.
        packet_id: String,
        /// Its version.
        version: u32,
    },
    /// It verified, and the packet was already delivered (by the network or an earlier import).
    AlreadyDelivered {
        /// The packet.
        packet_id: String,
        /// Its version.
        version: u32,
    },
    /// It does not verify or matches no packet sent from here; nothing changed.
    Refused {
        /// The receipt file.
        file: PathBuf,
        /// Why.
        why: String,
    },
}

/// Whether the drive's `envelopes` folder already holds exactly this envelope: a regular
/// file (never a link) of its size and envelope id.
fn on_drive(envelopes: &DriveDir, entry: &OutboxEntry) -> bool {
    let Ok(Some(file)) = envelopes.open_file(&entry.file_name, entry.offer.size) else {
        return false;
    };
    if file.len() != entry.offer.size {
        return false;
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let read = file.read_exactly(entry.offer.size, drive::read_time_limit(entry.offer.size), |chunk| {
        ctx.update(chunk);
        Ok(())
    });
    matches!(read, Ok(Some(n)) if n == entry.offer.size) && ctx.finish().as_ref() == entry.offer.digest
}

/// Copies the outbox's envelope into the drive's `envelopes` folder through a `.part`
/// file created there exclusively, checking on the way that it is the envelope the offer
/// names, fsynced and renamed into place (over whatever entry had its name, never through it).
fn copy_envelope(source: &Path, envelopes: &DriveDir, entry: &OutboxEntry) -> Result<()> {
    let name = &entry.file_name;
    reserve::check_file_name(name, ".env").map_err(Error::Push)?;
    let part = format!("{name}.part");
    let mut from = fs::File::open(source).map_err(Error::file(source))?;
    let mut mismatch = false;
    envelopes
        .write_part(&part, |to| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = from.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
                to.write_all(&buf[..n])?;
            }
            if ctx.finish().as_ref() != entry.offer.digest {
                mismatch = true;
                return Err(konvert_replication::Error::Drive {
                    path: source.to_owned(),
                    message: "does not match its envelope id".into(),
                });
            }
            Ok(())
        })
        .map_err(|e| {
            if mismatch {
                Error::Push(format!(
                    "the outbox's envelope {} does not match its envelope id (damaged on this disk); \
                 seal the room again and export again",
                    source.display()
                ))
            } else {
                Error::from(e)
            }
        })?;
    envelopes.rename(&part, name)?;
    Ok(())
}

/// Writes every sealed envelope without a receipt to the drive folder `drive`, then the
/// index naming them, and records the export in the outbox.
pub fn export(cfg: &SiteConfig, outbox: &Outbox, drive: &Path, now_unix_ms: u64) -> Result<ExportReport> {
    export_site(cfg.site.as_str(), outbox, outbox.pending()?, drive, now_unix_ms)
}

/// A relay's export: every packet it holds without the center's receipt, one drive folder
/// per site (`drive/<site>`), each exactly as that site's own export would be, since a
/// drive index speaks for one site. Returns each site's folder and report.
pub fn export_relay(outbox: &Outbox, drive: &Path, now_unix_ms: u64) -> Result<Vec<(PathBuf, ExportReport)>> {
    let mut by_site: std::collections::BTreeMap<String, Vec<OutboxEntry>> = Default::default();
    for entry in outbox.pending()? {
        let path = outbox.envelope_path(&entry);
        let file = fs::File::open(&path).map_err(Error::file(&path))?;
        let header = konvert_crypto::envelope::read_header(std::io::BufReader::new(file))?;
        // The site names a folder: only a well-formed site code does.
        let site: konvert_exam::SiteId = header.sender_site.parse().map_err(|e| {
            Error::Push(format!(
                "{} names no valid sending site ({e}); it is not exported",
                path.display()
            ))
        })?;
        by_site.entry(site.to_string()).or_default().push(entry);
    }
    let mut done = Vec::new();
    fs::create_dir_all(drive).map_err(Error::file(drive))?;
    let root = DriveDir::open(drive)?;
    for (site, entries) in by_site {
        // A real folder, made if absent; a link in its place is refused.
        let folder = root.sub_or_create(&site)?.path().to_owned();
        let report = export_site(&site, outbox, entries, &folder, now_unix_ms)?;
        done.push((folder, report));
    }
    Ok(done)
}

/// Writes `pending` (all of `site`) to the drive folder `drive`, then the index naming them.
fn export_site(
    site: &str,
    outbox: &Outbox,
    pending: Vec<OutboxEntry>,
    drive: &Path,
    now_unix_ms: u64,
) -> Result<ExportReport> {
    if let Some(old) = DriveIndex::read(drive)? {
        if old.site != site {
            return Err(Error::Push(format!(
                "{} holds site {}'s export; use a folder of its own for site {site}",
                drive.display(),
                old.site,
            )));
        }
    }
    let mut report = ExportReport::default();
    if pending.is_empty() {
        return Ok(report);
    }
    // The center refuses a longer index whole: refused here, before anything is copied.
    if pending.len() > reserve::MAX_INDEX_PACKETS {
        return Err(Error::Push(format!(
            "{} packets wait to be sent; a drive carries at most {} — send them over the network, or ask for a konvert with a larger bound",
            pending.len(),
            reserve::MAX_INDEX_PACKETS
        )));
    }
    // The folder the operator named is made if absent; everything below it is checked.
    fs::create_dir_all(drive).map_err(Error::file(drive))?;
    let envelopes = DriveDir::open(drive)?.sub_or_create(reserve::ENVELOPES)?;
    for entry in &pending {
        if on_drive(&envelopes, entry) {
            report.already_there.push(entry.clone());
            continue;
        }
        copy_envelope(&outbox.envelope_path(entry), &envelopes, entry)?;
        report.bytes_written += entry.offer.size;
        report.written.push(entry.clone());
    }
    // Every rename above durable before the index names them.
    envelopes.sync()?;
    let index = DriveIndex {
        format: INDEX_FORMAT,
        site: site.to_owned(),
        written_at_unix_ms: now_unix_ms,
        packets: pending.iter().map(DrivePacket::from_entry).collect(),
    };
    index.write(drive)?;
    let exported = |entry: &OutboxEntry| Exported {
        drive: drive.display().to_string(),
        at_unix_ms: now_unix_ms,
        digest: entry.offer.digest,
    };
    for entry in &pending {
        outbox.mark_exported(&entry.offer, &exported(entry))?;
    }
    Ok(report)
}

/// Takes the receipts in `drive/receipts/`: each must verify against the center's receipt
/// key and name exactly an envelope sent from here; those mark their packet delivered.
pub fn import_receipts(cfg: &SiteConfig, outbox: &Outbox, drive: &Path) -> Result<Vec<ReceiptOutcome>> {
    import_receipts_with(&cfg.receipt_key()?, outbox, drive)
}

/// A relay takes back the receipts of its export: from every site folder under `drive`
/// (as [`export_relay`] wrote them), or from `drive` itself if it is one.
pub fn import_relay_receipts(
    center: &konvert_crypto::VerifyingKey,
    outbox: &Outbox,
    drive: &Path,
) -> Result<Vec<ReceiptOutcome>> {
    if !drive.is_dir() {
        return Err(Error::Push(format!(
            "{} is not a folder; give the drive folder the relay's export was written to",
            drive.display()
        )));
    }
    let mut folders = Vec::new();
    if DriveIndex::read(drive)?.is_some() {
        folders.push(drive.to_owned());
    }
    // Real folders only: a link among them is not followed.
    for name in DriveDir::open(drive)?.folders(MAX_SITE_FOLDERS)? {
        let folder = drive.join(name);
        if DriveIndex::read(&folder)?.is_some() {
            folders.push(folder);
        }
    }
    let mut outcomes = Vec::new();
    for folder in folders {
        outcomes.extend(import_receipts_with(center, outbox, &folder)?);
    }
    Ok(outcomes)
}

fn import_receipts_with(
    center: &konvert_crypto::VerifyingKey,
    outbox: &Outbox,
    drive: &Path,
) -> Result<Vec<ReceiptOutcome>> {
    let center = *center;
    let mut outcomes = Vec::new();
    let Some((folder, names)) = reserve::receipt_files(drive)? else {
        return Ok(outcomes);
    };
    for (name, what) in reserve::unreadable_receipts(drive)? {
        outcomes.push(ReceiptOutcome::Refused {
            file: folder.path().join(&name),
            why: format!("is {what}, not a receipt file; not read (a drive's receipts are plain files)"),
        });
    }
    for name in names {
        let file = folder.path().join(&name);
        let refused = |why: String| ReceiptOutcome::Refused {
            file: file.clone(),
            why,
        };
        let receipt = match reserve::read_receipt(&folder, &name) {
            Ok(r) => r,
            Err(e) => {
                outcomes.push(refused(e.to_string()));
                continue;
            }
        };
        let (packet_id, version) = (receipt.body.packet_id.clone(), receipt.body.version);
        let Some(entry) = outbox.get(&packet_id, version)? else {
            outcomes.push(refused(format!(
                "a receipt for {packet_id} v{version}, which this station never sealed"
            )));
            continue;
        };
        if let Err(e) = receipt.verify_for(&center, &entry.offer) {
            outcomes.push(refused(e.to_string()));
            continue;
        }
        if matches!(entry.state, OutboxState::Delivered { .. }) {
            outcomes.push(ReceiptOutcome::AlreadyDelivered { packet_id, version });
            continue;
        }
        // A verified receipt is the center's word that it holds the packet, whatever the
        // network said before.
        outbox.mark_delivered(&entry.offer, receipt)?;
        outcomes.push(ReceiptOutcome::Delivered { packet_id, version });
    }
    Ok(outcomes)
}

/// What an export did and what the operator does next, for the screen; `back_here` is how
/// the receipts are taken back where the export ran (a command line, or the day's word).
pub fn export_summary(report: &ExportReport, to: &Path, back_here: &str) -> String {
    let total = report.written.len() + report.already_there.len();
    if total == 0 {
        return "nothing to export: every sealed packet has a receipt".into();
    }
    let mut out = format!(
        "{total} packet(s) on {}: {} written now ({:.1} MB), {} already there\n",
        to.display(),
        report.written.len(),
        report.bytes_written as f64 / 1e6,
        report.already_there.len()
    );
    for e in report.written.iter().chain(&report.already_there) {
        out.push_str(&format!(
            "  {:<48} v{:<3} {:>10.1} MB  {}\n",
            e.offer.packet_id,
            e.offer.version,
            e.offer.size as f64 / 1e6,
            e.label
        ));
    }
    out.push_str(&format!(
        "next: unmount the drive safely and carry it to the center with its transfer statement; \
         there: `konvert-center import --config center.toml --operator \"<name>\" {}`; \
         back here: {back_here}. \
         Until then the packets stay in the outbox and are still pushed if the network returns — \
         the center takes each one once",
        to.display(),
    ));
    out
}

/// What taking the drive's receipts did, for the screen, and how many were refused.
pub fn receipts_summary(outcomes: &[ReceiptOutcome], still_pending: usize) -> (String, usize) {
    let mut out = String::new();
    let mut refused = 0;
    for o in outcomes {
        match o {
            ReceiptOutcome::Delivered { packet_id, version } => {
                out.push_str(&format!("  receipt ✓ {packet_id} v{version}: delivered\n"))
            }
            ReceiptOutcome::AlreadyDelivered { packet_id, version } => {
                out.push_str(&format!("  receipt ✓ {packet_id} v{version}: already delivered\n"))
            }
            ReceiptOutcome::Refused { file, why } => {
                refused += 1;
                out.push_str(&format!("  REFUSED {}: {why}; nothing changed\n", file.display()))
            }
        }
    }
    out.push_str(&format!(
        "{} receipt(s) taken, {refused} refused; {still_pending} packet(s) still wait for a receipt",
        outcomes.len() - refused
    ));
    (out, refused)
}
