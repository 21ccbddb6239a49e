//! The day's new envelopes to the loader's offline workstation by drive (R20), without
//! copying a live database: `konvert-center envelopes export` on the receiver writes the
//! envelopes received since the last export, with their records (receipt, signer, late,
//! review flag) in an index signed by the center's receipt key, and the officers' newest
//! key registry; `konvert-center envelopes import` on the loader checks all of it and puts
//! the envelopes into the loader's own copy of the store, where `loader process` (or `loader unpack`) opens them.
//!
//! The drive crosses between the segments and is read as untrusted: only through
//! [`konvert_replication::drive`] (no links, regular files, bounded and timed reads). The
//! index must verify against the receipt key the loader's center.toml names, every receipt
//! in it too, and every envelope must hash to its receipt's digest and pass
//! [`crate::unpack::check_stored`] before it is committed.
//!
//! Drive layout: `<drive>/konvert-envelopes/{index.json, index.sig, registry.bin,
//! <envelope id>.env…}`. The import leaves an `imported` mark there; the next export on
//! the same drive clears a marked folder and refuses one not yet imported.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use konvert_crypto::{keyfile, Domain, Signature};
use konvert_replication::drive::{self, DriveDir};
use konvert_replication::{Inbox, InboxRecord};
use serde::{Deserialize, Serialize};

use crate::backup::Holder;
use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::review::{ReviewDesk, ReviewFlag};
use crate::{Error, Result};

/// The export's folder on a drive.
pub const FOLDER: &str = "konvert-envelopes";
const INDEX: &str = "index.json";
const INDEX_SIG: &str = "index.sig";
const REGISTRY: &str = "registry.bin";
const IMPORTED: &str = "imported";
/// The receiver's list of envelope ids already exported (one a line), in its data folder.
const EXPORTED: &str = "envelope-drive/exported.txt";
const KIND: &str = "konvert-center envelope drive";
const FORMAT: u32 = 1;
const MAX_INDEX: u64 = 64 << 20;
const MAX_ENVELOPES: usize = 1_000_000;
const MAX_REGISTRY_FILE: u64 = konvert_crypto::registry::MAX_REGISTRY_LEN as u64 + 64 * 1024;

/// The signed index of an envelope drive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveIndex {
    /// Always `"konvert-center envelope drive"`.
    pub kind: String,
    /// The index format.
    pub format: u32,
    /// The center's name (center.toml).
    pub center: String,
    /// When it was written (the receiver's clock).
    pub written_at_unix_ms: u64,
    /// The packets on the drive.
    pub packets: Vec<DrivePacket>,
}

/// One packet version on the drive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrivePacket {
    /// The receiver's inbox record (postcard, hex): its receipt, signer, late mark.
    pub record: String,
    /// Its review flag, if the receiver flagged it.
    pub review: Option<ReviewFlag>,
}

/// What an export wrote.
#[derive(Debug)]
pub struct ExportSummary {
    /// The folder on the drive.
    pub folder: PathBuf,
    /// Packet versions written: packet id and version.
    pub packets: Vec<(String, u32)>,
    /// Bytes of envelopes written.
    pub bytes: u64,
    /// Whether the key registry went along.
    pub registry: bool,
}

fn exported_path(cfg: &CenterConfig) -> PathBuf {
    cfg.data_dir.join(EXPORTED)
}

fn read_exported(cfg: &CenterConfig) -> Result<BTreeSet<String>> {
    let path = exported_path(cfg);
    if !path.exists() {
        return Ok(BTreeSet::new());
    }
    let text = keyfile::read_text_bounded(&path, MAX_INDEX)?;
    Ok(text
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// The records the receiver holds, read through a copy of its database when it serves.
fn receiver_records(cfg: &CenterConfig) -> Result<Vec<InboxRecord>> {
    match Holder::find(cfg)? {
        Holder::Here(inbox) => Ok(inbox.records()?),
        holder @ Holder::Serving => {
            // Hidden in the data folder: the serving process writes there whatever its
            // private /tmp, and a backup leaves hidden names out.
            let scratch = cfg.data_dir.join(format!(".envelope-export-{}", std::process::id()));
            let _ = fs::remove_dir_all(&scratch);
            fs::create_dir_all(&scratch).map_err(Error::file(&scratch))?;
            let scratch = fs::canonicalize(&scratch).map_err(Error::file(&scratch))?;
            let read = holder
                .copy_inbox(cfg, &scratch)
                .and_then(|()| Ok(Inbox::open(&scratch)?.records()?));
            let _ = fs::remove_dir_all(&scratch);
            read
        }
    }
}

/// Writes the envelopes the receiver got since the last export (every one with `all`)
/// to `drive`, with their signed index; works while the center serves.
pub fn export(cfg: &CenterConfig, drive_path: &Path, all: bool) -> Result<ExportSummary> {
    let key = keyfile::read_signing_key(&cfg.receipt_key)?;
    let root = DriveDir::open(drive_path)?;
    let folder = match root.sub(FOLDER)? {
        // Imported at the loader, or to be written over with everything (--all): its files
        // go, the folder is reused.
        Some(old) if all || old.has(IMPORTED)? => {
            for name in old.files("", MAX_ENVELOPES)? {
                old.remove(&name)?;
            }
            old.sync()?;
            old
        }
        Some(old) if old.has(INDEX)? => {
            return Err(Error::Backup(format!(
                "{} holds an export the loader has not imported yet; import it at the loader first \
                 (`konvert-center envelopes import`), or write everything over it with --all",
                old.path().display()
            )))
        }
        Some(old) => old,
        None => root.sub_or_create(FOLDER)?,
    };
    let done = if all { BTreeSet::new() } else { read_exported(cfg)? };
    let mut records: Vec<InboxRecord> = receiver_records(cfg)?
        .into_iter()
        .filter(|r| !r.test_packet && !done.contains(&hex::encode(r.receipt.body.digest)))
        .collect();
    records.sort_by_key(|r| r.receipt.body.received_at_unix_ms);
    let flags = ReviewDesk::open(&cfg.data_dir)?.list()?;
    let mut packets = Vec::with_capacity(records.len());
    let mut summary = ExportSummary {
        folder: folder.path().to_owned(),
        packets: Vec::new(),
        bytes: 0,
        registry: false,
    };
    for r in &records {
        let b = &r.receipt.body;
        let id = hex::encode(b.digest);
        let name = format!("{id}.env");
        let from = Inbox::stored_envelope(&cfg.data_dir, &b.digest);
        let mut src = drive::open_regular(&from).map_err(Error::file(&from))?;
        let part = format!("{name}.part");
        let mut digest = [0u8; 32];
        folder.write_part(&part, |out| {
            let (d, _) = crate::backup::sha256_of(&mut src, |chunk| out.write_all(chunk).map_err(Error::from))
                .map_err(|e| konvert_replication::Error::Storage(e.to_string()))?;
            digest = d;
            Ok(())
        })?;
        if digest != b.digest {
            folder.remove(&part)?;
            return Err(Error::Backup(format!(
                "the stored envelope {} does not hash to its name: the store is damaged; nothing was marked exported",
                from.display()
            )));
        }
        folder.rename(&part, &name)?;
        let record = postcard::to_allocvec(r).map_err(|e| Error::Backup(format!("cannot encode a record: {e}")))?;
        packets.push(DrivePacket {
            record: hex::encode(record),
            review: flags.iter().find(|f| f.envelope_id == id).cloned(),
        });
        summary.packets.push((b.packet_id.clone(), b.version));
        summary.bytes += b.bytes;
    }
    if cfg.registry.is_file() {
        let bytes = keyfile::read_bounded(&cfg.registry, MAX_REGISTRY_FILE)?;
        folder.write_durably(REGISTRY, &bytes)?;
        summary.registry = true;
    }
    let index = DriveIndex {
        kind: KIND.into(),
        format: FORMAT,
        center: cfg.name.clone(),
        written_at_unix_ms: now_ms(),
        packets,
    };
    let text = serde_json::to_vec_pretty(&index).map_err(|e| Error::Backup(format!("cannot write the index: {e}")))?;
    let sig = key.sign(Domain::CenterCopy, &text);
    folder.write_durably(INDEX_SIG, format!("{}\n", hex::encode(sig.0)).as_bytes())?;
    // The index last: a drive with an index holds everything it names.
    folder.write_durably(INDEX, &text)?;
    let mut exported = if all { read_exported(cfg)? } else { done };
    exported.extend(records.iter().map(|r| hex::encode(r.receipt.body.digest)));
    let list: String = exported.iter().map(|id| format!("{id}\n")).collect();
    let path = exported_path(cfg);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(Error::file(dir))?;
    }
    keyfile::write_atomic(&path, list.as_bytes(), 0o644)?;
    Ok(summary)
}

/// What an import took.
#[derive(Debug, Default)]
pub struct ImportSummary {
    /// Packet versions put into the store.
    pub taken: Vec<(String, u32)>,
    /// Packet versions the loader's store held already.
    pub already: usize,
    /// Packet versions refused: packet id and version, why.
    pub refused: Vec<(String, String)>,
    /// The key registry version taken from the drive, when newer than the one held.
    pub registry: Option<u64>,
}

/// Reads and checks the drive's signed index against the loader's center.toml.
fn read_index(cfg: &CenterConfig, folder: &DriveDir) -> Result<DriveIndex> {
    let missing = |name: &str| {
        Error::Backup(format!(
            "{} has no {name}: the export is incomplete; export again on the receiver",
            folder.path().display()
        ))
    };
    let text = folder
        .open_file(INDEX, MAX_INDEX)?
        .ok_or_else(|| missing(INDEX))?
        .read_all()?;
    let sig = folder
        .open_file(INDEX_SIG, 1024)?
        .ok_or_else(|| missing(INDEX_SIG))?
        .read_all()?;
    let mut raw = [0u8; 64];
    hex::decode_to_slice(String::from_utf8_lossy(&sig).trim(), &mut raw).map_err(|_| missing(INDEX_SIG))?;
    let key = crate::backup::receipt_public(cfg)?;
    key.verify(Domain::CenterCopy, &text, &Signature(raw)).map_err(|_| {
        Error::Backup(format!(
            "{}: the signature does not verify against this center's receipt key: the drive was altered, or it \
             comes from another center — nothing was imported; export again on the receiver",
            folder.path().join(INDEX).display()
        ))
    })?;
    let index: DriveIndex = serde_json::from_slice(&text)
        .map_err(|e| Error::Backup(format!("{}: {e}", folder.path().join(INDEX).display())))?;
    if index.kind != KIND || index.format != FORMAT || index.center != cfg.name {
        return Err(Error::Backup(format!(
            "{}: an export of center {:?} ({:?}, format {}), not one this loader (center {:?}) imports",
            folder.path().join(INDEX).display(),
            index.center,
            index.kind,
            index.format,
            cfg.name
        )));
    }
    Ok(index)
}

/// Takes the drive's key registry when it verifies and is newer than the one held.
fn take_registry(cfg: &CenterConfig, folder: &DriveDir) -> Result<Option<u64>> {
    let Some(file) = folder.open_file(REGISTRY, MAX_REGISTRY_FILE)? else {
        return Ok(None);
    };
    let bytes = file.read_all()?;
    let held = crate::registry::held(cfg, now_ms())?.map_or(0, |b| b.version);
    let dir = cfg.registry.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::file(dir))?;
    let tmp = dir.join(".registry-from-drive.bin");
    keyfile::write_atomic(&tmp, &bytes, 0o644)?;
    let checked = crate::registry::CenterRegistry::open(cfg, now_ms(), None).and_then(|r| r.check_file(&tmp, now_ms()));
    match checked {
        Ok(body) if body.version > held => {
            fs::rename(&tmp, &cfg.registry).map_err(Error::file(&cfg.registry))?;
            Ok(Some(body.version))
        }
        Ok(_) => {
            let _ = fs::remove_file(&tmp);
            Ok(None)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            tracing::warn!("the key registry on the drive was not taken: {e}");
            Ok(None)
        }
    }
}

/// Takes an envelope drive into the loader's store (`cfg` is the loader's center.toml,
/// whose data folder no center serves).
pub fn import(cfg: &CenterConfig, drive_path: &Path) -> Result<ImportSummary> {
    let inbox = Inbox::open(&cfg.data_dir).map_err(|e| Error::Loader {
        what: e.to_string(),
        hint: "the envelope drive goes into the loader's own copy of the data folder, which no center serves",
    })?;
    let root = DriveDir::open(drive_path)?;
    let folder = root.sub(FOLDER)?.ok_or_else(|| {
        Error::Backup(format!(
            "{} holds no {FOLDER} folder; write the drive on the receiver with `konvert-center envelopes export`",
            drive_path.display()
        ))
    })?;
    let index = read_index(cfg, &folder)?;
    let receipt_key = crate::backup::receipt_public(cfg)?;
    let mut summary = ImportSummary {
        registry: take_registry(cfg, &folder)?,
        ..ImportSummary::default()
    };
    let registry = crate::registry::held(cfg, now_ms())?.ok_or_else(|| Error::Config {
        path: cfg.registry.clone(),
        message: "the loader holds no key registry to check the envelopes' signers with; restore a backup of the \
                  receiver first (`konvert-center restore`)"
            .into(),
    })?;
    let trusted = |id: &konvert_crypto::KeyId| crate::registry::CenterRegistry::token_key(&registry, id);
    let review = ReviewDesk::open(&cfg.data_dir)?;
    let scratch = cfg.data_dir.join("staging").join("envelope-drive");
    for p in &index.packets {
        let record: InboxRecord = match hex::decode(&p.record)
            .ok()
            .and_then(|b| postcard::from_bytes::<InboxRecord>(&b).ok())
        {
            Some(r) => r,
            None => {
                summary
                    .refused
                    .push(("?".into(), "a record in the index cannot be read".into()));
                continue;
            }
        };
        let b = record.receipt.body.clone();
        let what = format!("{} v{}", b.packet_id, b.version);
        if let Some(held) = inbox.lookup(&b.packet_id, b.version)? {
            if held.receipt.body.digest == b.digest {
                summary.already += 1;
            } else {
                summary.refused.push((
                    what,
                    "the loader holds another envelope for this packet version; keep both and report it".into(),
                ));
            }
            continue;
        }
        let _ = fs::remove_dir_all(&scratch);
        match take_one(&folder, &scratch, &record, &receipt_key, &trusted) {
            Ok(staged) => {
                inbox.commit(&staged, &record)?;
                if let Some(flag) = &p.review {
                    review.flag(flag)?;
                }
                summary.taken.push((b.packet_id.clone(), b.version));
            }
            Err(e) => summary.refused.push((what, e.to_string())),
        }
    }
    let _ = fs::remove_dir_all(&scratch);
    if summary.refused.is_empty() {
        folder.write_durably(IMPORTED, format!("{}\n", now_ms()).as_bytes())?;
    }
    Ok(summary)
}

/// Copies one envelope from the drive into `scratch`'s store layout and checks it as the
/// loader will open it: its receipt verifies, its bytes hash to the receipted digest, and
/// its signature, header and description agree with the receipt.
fn take_one(
    folder: &DriveDir,
    scratch: &Path,
    record: &InboxRecord,
    receipt_key: &konvert_crypto::VerifyingKey,
    trusted: &dyn Fn(&konvert_crypto::KeyId) -> Option<konvert_crypto::VerifyingKey>,
) -> Result<PathBuf> {
    let b = &record.receipt.body;
    record.receipt.verify(receipt_key)?;
    let name = format!("{}.env", hex::encode(b.digest));
    let file = folder.open_file(&name, b.bytes)?.ok_or_else(|| {
        Error::Backup(format!(
            "{} is missing on the drive",
            folder.path().join(&name).display()
        ))
    })?;
    let dest = Inbox::stored_envelope(scratch, &b.digest);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(Error::file(dir))?;
    }
    let mut out = fs::File::create(&dest).map_err(Error::file(&dest))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let read = file.read_exactly(b.bytes, drive::read_time_limit(b.bytes), |chunk| {
        ctx.update(chunk);
        out.write_all(chunk).map_err(konvert_replication::Error::from)
    })?;
    out.sync_all().map_err(Error::file(&dest))?;
    if read != Some(b.bytes) || ctx.finish().as_ref() != b.digest {
        return Err(Error::Backup(format!(
            "{} is not the receipted envelope (size or SHA-256 differ); export it again on the receiver",
            folder.path().join(&name).display()
        )));
    }
    crate::unpack::check_stored(scratch, &crate::unpack::receipted(b), trusted)?;
    Ok(dest)
}

/// What to do with envelope drives.
#[derive(Debug, clap::Subcommand)]
pub enum EnvelopeAction {
    /// On the receiver (while it serves): write the envelopes received since the last
    /// export, their signed records and the key registry to a drive for the loader.
    Export {
        /// The receiver's center.toml.
        #[arg(long)]
        config: PathBuf,
        /// The drive folder.
        #[arg(long)]
        to: PathBuf,
        /// Every envelope, not only those not exported yet (a drive was lost).
        #[arg(long)]
        all: bool,
    },
    /// On the loader's workstation: check an envelope drive and take its envelopes into
    /// the loader's own copy of the store, for `loader process`.
    Import {
        /// The loader's center.toml (its data folder is the loader's copy).
        #[arg(long)]
        config: PathBuf,
        /// The drive folder.
        #[arg(long)]
        from: PathBuf,
    },
}

/// Runs `konvert-center envelopes …`.
pub fn command(action: EnvelopeAction) -> Result<()> {
    use konvert_replication::logging::printable;
    match action {
        EnvelopeAction::Export { config, to, all } => {
            let cfg = CenterConfig::load(&config)?;
            let s = export(&cfg, &to, all)?;
            for (id, v) in &s.packets {
                println!("  {id} v{v}");
            }
            println!(
                "{} packet version(s), {:.1} MB, written to {}{}; take the drive to the loader and run \
                 `konvert-center envelopes import --config <loader's center.toml> --from {}`",
                s.packets.len(),
                s.bytes as f64 / 1e6,
                s.folder.display(),
                if s.registry { " with the key registry" } else { "" },
                to.display()
            );
        }
        EnvelopeAction::Import { config, from } => {
            let cfg = CenterConfig::load(&config)?;
            let s = import(&cfg, &from)?;
            for (id, v) in &s.taken {
                println!("  taken     {} v{v}", printable(id));
            }
            for (what, why) in &s.refused {
                println!("  REFUSED   {}: {}", printable(what), printable(why));
            }
            if let Some(v) = s.registry {
                println!("  key registry v{v} taken");
            }
            println!(
                "{} taken, {} already held, {} refused; next: `konvert-center loader process --config {} --token specialist.token`",
                s.taken.len(),
                s.already,
                s.refused.len(),
                config.display()
            );
            if !s.refused.is_empty() {
                return Err(Error::Backup(format!(
                    "{} packet version(s) on the drive were refused (see above); export them again on the receiver \
                     with --all",
                    s.refused.len()
                )));
            }
        }
    }
    Ok(())
}
