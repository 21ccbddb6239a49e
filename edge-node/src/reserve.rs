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

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use konvert_replication::reserve::{self, DriveIndex, DrivePacket, INDEX_FORMAT};
use konvert_replication::{Exported, Outbox, OutboxEntry, OutboxState};

use crate::config::SiteConfig;
use crate::{Error, Result};

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

/// SHA-256 of a file: the envelope id of an envelope file.
fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::file(dir))
}

/// Whether the drive already holds exactly this envelope.
fn on_drive(target: &Path, entry: &OutboxEntry) -> bool {
    fs::metadata(target).is_ok_and(|m| m.len() == entry.offer.size)
        && file_digest(target).is_ok_and(|d| d == entry.offer.digest)
}

/// Copies the outbox's envelope to `target` through `target.part`, checking on the way
/// that it is the envelope the offer names, fsynced and renamed into place.
fn copy_envelope(source: &Path, target: &Path, entry: &OutboxEntry) -> Result<()> {
    let part = target.with_extension("env.part");
    let result = (|| {
        let mut from = fs::File::open(source).map_err(Error::file(source))?;
        let mut to = fs::File::create(&part).map_err(Error::file(&part))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = from.read(&mut buf).map_err(Error::file(source))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            to.write_all(&buf[..n]).map_err(Error::file(&part))?;
        }
        if ctx.finish().as_ref() != entry.offer.digest {
            return Err(Error::Push(format!(
                "the outbox's envelope {} does not match its envelope id (damaged on this disk); \
                 seal the room again and export again",
                source.display()
            )));
        }
        to.sync_all().map_err(Error::file(&part))?;
        fs::rename(&part, target).map_err(Error::file(target))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
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
    for (site, entries) in by_site {
        let folder = drive.join(&site);
        fs::create_dir_all(&folder).map_err(Error::file(&folder))?;
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
    let envelopes = drive.join(reserve::ENVELOPES);
    fs::create_dir_all(&envelopes).map_err(Error::file(&envelopes))?;
    sync_dir(drive)?;
    for entry in &pending {
        let target = reserve::envelope_path(drive, &entry.file_name);
        if on_drive(&target, entry) {
            report.already_there.push(entry.clone());
            continue;
        }
        copy_envelope(&outbox.envelope_path(entry), &target, entry)?;
        report.bytes_written += entry.offer.size;
        report.written.push(entry.clone());
    }
    // Every rename above durable before the index names them.
    sync_dir(&envelopes)?;
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
    for entry in fs::read_dir(drive).map_err(Error::file(drive))?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) && DriveIndex::read(&entry.path())?.is_some() {
            folders.push(entry.path());
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
    for file in reserve::receipt_files(drive)? {
        let refused = |why: String| ReceiptOutcome::Refused {
            file: file.clone(),
            why,
        };
        let receipt = match reserve::read_receipt(&file) {
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

/// What an export did and what the operator does next, for the screen.
pub fn export_summary(report: &ExportReport, to: &Path) -> String {
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
         back here: `konvert-edge import-receipts --config site.toml {}`. \
         Until then the packets stay in the outbox and are still pushed if the network returns — \
         the center takes each one once",
        to.display(),
        to.display()
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
