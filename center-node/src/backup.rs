//! Backups after each shift (R20, `002:8185`): `konvert-center backup` takes a consistent
//! copy of the center's data folder while the center serves, and `restore` brings it back.
//!
//! The inbox is a sled database the serving center holds locked; its files cannot be
//! copied one by one while it writes them. So the serving center is asked over its control
//! socket ([`CONTROL_INBOX`]) to copy its database, key by key, into the backup; the store's
//! envelopes are immutable files named by their SHA-256 and are copied by name for every
//! record in that copy, each checked against its digest; the other desks (late decisions,
//! review flags, test verdicts, registry store …) are small files replaced atomically and
//! are copied as they are; last, the serving center copies its audit log ending on a fresh
//! signed checkpoint ([`CONTROL_AUDIT`]), so the log covers everything copied before it.
//! With no center serving, the command holds the inbox's lock itself and does the same.
//!
//! What is copied is listed in one place, [`parts`]; a desk added to the data folder is
//! copied as plain files without a change here (a sled database found there is copied
//! through sled). A manifest lists every file with its size and SHA-256 and is signed
//! with the center's receipt key, so `restore` refuses a backup that was altered, is
//! incomplete, or is another center's.
//!
//! Regional records kept on PostgreSQL (center.toml's `records_url`) go along as one
//! `pg_dump` of their database ([`RECORDS_DUMP`]): one snapshot, so consistent by itself,
//! listed and digested in the signed manifest like every file. `restore` puts it back with
//! `pg_restore` into the database the restoring center.toml names, which must be empty.
//! The URL's password reaches neither the manifest nor any message.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use konvert_crypto::audit::{self, AuditAction, AuditAnchor, AuditLog};
use konvert_crypto::{keyfile, Domain, Signature, VerifyingKey};
use konvert_replication::drive::{open_regular, DriveDir};
use konvert_replication::service::ControlHandler;
use konvert_replication::Inbox;
use serde::{Deserialize, Serialize};

use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::service::{AUDIT_CHECKPOINT_EVERY, AUDIT_LOG};
use crate::{Error, Result};

/// The manifest's name in a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// Its signature (hex) beside it.
pub const MANIFEST_SIG: &str = "manifest.sig";
/// Where the data folder's copy lies in a backup folder.
pub const DATA: &str = "data";
/// Where copies of files center.toml names outside the data folder lie.
pub const BESIDE: &str = "config";
/// Where the dump of the records on PostgreSQL lies in a backup folder.
pub const POSTGRES: &str = "postgres";
/// The dump itself (`pg_dump --format=custom`).
pub const RECORDS_DUMP: &str = "postgres/records.pgdump";
/// The inbox's database in the data folder.
pub const INBOX_DB: &str = "inbox.sled";
/// The control request that makes the serving center copy its inbox's database into a
/// folder (hex of its path follows).
pub const CONTROL_INBOX: &str = "backup-inbox";
/// The control request that makes the serving center copy its audit log (as above).
pub const CONTROL_AUDIT: &str = "backup-audit";
/// The format of the manifest this build writes and reads.
const FORMAT: u32 = 1;
/// The largest manifest read (a region's day is a few thousand files).
const MAX_MANIFEST: u64 = 64 << 20;
/// Read and hash in pieces of this size.
const CHUNK: usize = 1 << 20;

/// How a part of the data folder is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The inbox's sled database, through the process that holds it.
    Inbox,
    /// The store: the envelopes the copied inbox records, each checked against its digest.
    Store,
    /// The audit log and its head file, ending on a signed checkpoint.
    AuditLog,
    /// A sled database no process holds (a loader's records), copied through sled.
    Sled,
    /// Plain files, copied as they are (hidden temporary files left out).
    Files,
    /// Not backed up: staging (the sites resume what is there), the reserve channel's spool
    /// of imports in progress, the control socket.
    Skip,
}

/// Names in the data folder copied other than as plain files. Anything else found there
/// is a desk of plain files (or a sled database, found by its files).
const SPECIAL: &[(&str, How)] = &[
    (INBOX_DB, How::Inbox),
    ("store", How::Store),
    (AUDIT_LOG, How::AuditLog),
    ("audit.log.head", How::Skip),
    ("staging", How::Skip),
    // Drive imports waiting for the serving center: a restored one must not take them again.
    ("reserve", How::Skip),
    (konvert_replication::service::CONTROL_SOCKET, How::Skip),
];

/// One thing a backup holds.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its path in the backup folder (`/`-separated).
    pub name: String,
    /// Where it is at the center.
    pub source: PathBuf,
    /// How it is copied.
    pub how: How,
}

/// Everything a backup of `cfg`'s center holds: each entry of the data folder, and the
/// public files center.toml names outside it (restored only where the target has none).
/// The loader's records go here too when they live outside the data folder.
pub fn parts(cfg: &CenterConfig) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let entries = fs::read_dir(&cfg.data_dir).map_err(Error::file(&cfg.data_dir))?;
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::file(&cfg.data_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && !name.starts_with(konvert_replication::service::CONTROL_SOCKET) {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        let source = cfg.data_dir.join(&name);
        let how = SPECIAL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| if is_sled(&source) { How::Sled } else { How::Files });
        if how != How::Skip {
            parts.push(Part {
                name: format!("{DATA}/{name}"),
                source,
                how,
            });
        }
    }
    for (name, source, how) in beside(cfg) {
        if source.exists() && !source.starts_with(&cfg.data_dir) {
            parts.push(Part {
                name: format!("{BESIDE}/{name}"),
                source,
                how,
            });
        }
    }
    Ok(parts)
}

/// What a backup holds outside the data folder: its name under `config/` in the backup,
/// where center.toml puts it, and how it is copied. `restore` puts each back only where
/// the target has none. On the loader's workstation that includes its records (the
/// regional records and the loader's audit log), in the folder center.toml names
/// (`records`, by default `records/` beside it) — where `konvert-center loader …` keeps them.
fn beside(cfg: &CenterConfig) -> Vec<(&'static str, PathBuf, How)> {
    let records = cfg.records.clone();
    vec![
        ("registry.bin", cfg.registry.clone(), How::Files),
        ("authority.toml", cfg.authority.clone(), How::Files),
        ("stations.crl", cfg.crl.clone(), How::Files),
        ("stations.toml", cfg.station_index(), How::Files),
        ("records/records.sled", records.join("records.sled"), How::Sled),
        // The page images the records keep for appeals (image_store.rs).
        ("records/images", records.join(crate::image_store::IMAGES), How::Files),
        ("records/loader-audit.log", records.join("loader-audit.log"), How::Files),
        (
            "records/loader-audit.log.head",
            records.join("loader-audit.log.head"),
            How::Files,
        ),
    ]
}

/// Whether `dir` is a sled database (its `conf` and `db` files).
fn is_sled(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// One file in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its path in the backup folder (`/`-separated).
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What a backup holds, signed with the center's receipt key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `"konvert-center backup"`: a signature over another kind of file never passes.
    pub kind: String,
    /// The manifest format.
    pub format: u32,
    /// The center's name (center.toml).
    pub center: String,
    /// The center's receipt public key, hex: who signed the manifest, unless
    /// `workstation_key` is given.
    pub receipt_key: String,
    /// The loader workstation's key, hex, when it signed the manifest (a backup taken on
    /// the loader's workstation, which holds only the receipt public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workstation_key: Option<String>,
    /// When the backup was taken (the center's clock).
    pub taken_at_unix_ms: u64,
    /// The same, for people (UTC).
    pub taken_at: String,
    /// Packet versions in the inbox's copy.
    pub packets: u64,
    /// The audit log copy's newest checkpoint (`seq=N head=…`).
    pub audit_anchor: Option<String>,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
    /// The regional records on PostgreSQL, dumped into [`RECORDS_DUMP`] (listed in
    /// `files`); `None` when they are on sled (then they are under `config/records/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_dump: Option<RecordsDumpEntry>,
}

/// The dump of the records on PostgreSQL in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsDumpEntry {
    /// Its path in the backup folder.
    pub path: String,
    /// The database it was taken from: hosts, ports, database and user, never a password.
    pub source: String,
}

const MANIFEST_KIND: &str = "konvert-center backup";

/// What `backup` did.
#[derive(Debug)]
pub struct BackupSummary {
    /// The manifest written.
    pub manifest: Manifest,
    /// Whether the serving center was asked (false: no center served, the lock was held).
    pub while_serving: bool,
}

/// A new file only its owner can read: a backup holds keys and participants' personal data,
/// whatever the umask.
fn new_private_file(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::file(path))
}

/// Folders (and their missing parents) only their owner can enter; see [`new_private_file`].
fn private_dir_all(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::file(path))
}

/// Refuses a target that exists and is not an empty folder; makes it otherwise.
pub fn make_empty_target(to: &Path) -> Result<()> {
    match fs::symlink_metadata(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => private_dir_all(to),
        Err(e) => Err(Error::file(to)(e)),
        Ok(m) if !m.is_dir() => Err(Error::Backup(format!(
            "{} is not a folder; give a new or empty folder (e.g. on the backup drive) as --to",
            to.display()
        ))),
        Ok(_) => {
            let held = fs::read_dir(to).map_err(Error::file(to))?.count();
            if held > 0 {
                return Err(Error::Backup(format!(
                    "{} is not empty ({held} entr{} in it); a backup goes into a new or empty folder — give another \
                     --to, or move what is there away first (nothing was written)",
                    to.display(),
                    if held == 1 { "y" } else { "ies" }
                )));
            }
            Ok(())
        }
    }
}

/// The keys an audit log copy's checkpoints may be signed with: the receipt key's (the
/// receiver's) and, on a loader's workstation, its own.
fn checkpoint_keys(cfg: &CenterConfig) -> Result<Vec<VerifyingKey>> {
    let mut keys = vec![receipt_public(cfg)?];
    keys.extend(crate::workstation_key::workstation_public(cfg)?);
    Ok(keys)
}

/// The center's receipt public key, which checks manifests and drive indexes: from the
/// receipt key, or — on the loader's workstation, which needs no signing key — from
/// `receipt_key` naming the public key file (`keys/receipt.pub`, 64 hex digits).
pub(crate) fn receipt_public(cfg: &CenterConfig) -> Result<VerifyingKey> {
    if let Ok(key) = keyfile::read_signing_key(&cfg.receipt_key) {
        return Ok(key.verifying_key());
    }
    let text = keyfile::read_text_bounded(&cfg.receipt_key, 4096)?;
    VerifyingKey::from_hex(text.trim()).map_err(|e| {
        Error::Backup(format!(
            "receipt_key = {} is neither the center's receipt key nor its public key (keys/receipt.pub): {e}",
            cfg.receipt_key.display()
        ))
    })
}

/// The hex form of a path for a control request (a path may hold any byte but newline).
fn path_arg(p: &Path) -> String {
    hex::encode(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
}

fn parse_path_arg(arg: &str) -> Result<PathBuf> {
    let bytes = hex::decode(arg).map_err(|_| Error::Control("a backup request names its folder in hex".into()))?;
    let p = PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes));
    if !p.is_absolute() {
        return Err(Error::Control("a backup request names an absolute folder".into()));
    }
    Ok(p)
}

/// Copies the live inbox's database into `dest_dir/inbox.sled`; returns its entries.
fn copy_inbox(inbox: &Inbox, dest_dir: &Path) -> Result<u64> {
    Ok(inbox.copy_database_to(&dest_dir.join(INBOX_DB))?)
}

/// Records the backup in the audit log, then copies the log into `dest_dir`.
fn copy_audit(audit: &AuditLog, dest_dir: &Path) -> Result<Option<AuditAnchor>> {
    audit.append(
        "konvert-center",
        AuditAction::Other("backup.take".into()),
        &dest_dir.display().to_string(),
        "a backup of the data folder was taken",
    )?;
    Ok(audit.copy_to(&dest_dir.join(AUDIT_LOG))?)
}

/// The serving center's answers to [`CONTROL_INBOX`] and [`CONTROL_AUDIT`]; every other
/// request goes to `inner`.
pub fn control_handler(inner: ControlHandler, inbox: Arc<Inbox>, audit: Arc<AuditLog>) -> ControlHandler {
    Arc::new(move |request: &str| {
        let mut words = request.split_whitespace();
        let (verb, arg) = (words.next(), words.next());
        let answer = match (verb, arg) {
            (Some(CONTROL_INBOX), Some(arg)) => {
                parse_path_arg(arg).and_then(|dir| copy_inbox(&inbox, &dir).map(|n| n.to_string()))
            }
            (Some(CONTROL_AUDIT), Some(arg)) => parse_path_arg(arg)
                .and_then(|dir| copy_audit(&audit, &dir).map(|a| a.map(|a| a.to_line()).unwrap_or_default())),
            _ => return inner(request),
        };
        match answer {
            Ok(text) => format!("ok\n{text}"),
            Err(e) => format!("error\n{e}"),
        }
    })
}

/// Who holds the inbox while a backup or export reads it: the serving center (asked over
/// its control socket), or this process (holding the lock, so no center starts meanwhile).
pub(crate) enum Holder {
    /// A center serves the data folder.
    Serving,
    /// No center serves; this process holds the inbox.
    Here(Box<Inbox>),
}

impl Holder {
    /// Asks whether a center serves `cfg`'s data folder; opens the inbox here if not.
    pub(crate) fn find(cfg: &CenterConfig) -> Result<Self> {
        // Whatever it answers, a process listens there and holds the inbox.
        match crate::control::ask_center(&cfg.data_dir, "status") {
            Some(_) => Ok(Holder::Serving),
            None => Ok(Holder::Here(Box::new(Inbox::open(&cfg.data_dir)?))),
        }
    }

    fn ask(cfg: &CenterConfig, verb: &str, dir: &Path) -> Result<String> {
        match crate::control::ask_center(&cfg.data_dir, &format!("{verb} {}", path_arg(dir))) {
            Some(answer) => answer,
            None => Err(Error::Backup(format!(
                "the center serving {} stopped during the backup; nothing in the data folder changed — run the \
                 backup again into a new folder",
                cfg.data_dir.display()
            ))),
        }
    }

    /// Copies the inbox's database into `dest_dir/inbox.sled`.
    pub(crate) fn copy_inbox(&self, cfg: &CenterConfig, dest_dir: &Path) -> Result<()> {
        match self {
            Holder::Serving => Self::ask(cfg, CONTROL_INBOX, dest_dir).map(drop),
            Holder::Here(inbox) => copy_inbox(inbox, dest_dir).map(drop),
        }
    }

    /// Copies the audit log into `dest_dir/audit.log` (and its head file).
    fn copy_audit(&self, cfg: &CenterConfig, dest_dir: &Path) -> Result<Option<AuditAnchor>> {
        match self {
            Holder::Serving => {
                let line = Self::ask(cfg, CONTROL_AUDIT, dest_dir)?;
                let line = line.trim();
                if line.is_empty() {
                    return Ok(None);
                }
                AuditAnchor::parse_line(line)
                    .map(Some)
                    .ok_or_else(|| Error::Control(format!("the serving center answered {line:?} for its audit anchor")))
            }
            Holder::Here(_) => {
                let log = AuditLog::open(
                    &cfg.data_dir.join(AUDIT_LOG),
                    Some(crate::workstation_key::backup_signing_key(cfg)?),
                    AUDIT_CHECKPOINT_EVERY,
                )?;
                copy_audit(&log, dest_dir)
            }
        }
    }
}

/// SHA-256 of `reader`'s bytes, and how many there were.
pub(crate) fn sha256_of(mut reader: impl Read, mut sink: impl FnMut(&[u8]) -> Result<()>) -> Result<([u8; 32], u64)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        ctx.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
    let mut d = [0u8; 32];
    d.copy_from_slice(ctx.finish().as_ref());
    Ok((d, total))
}

/// Copies the regular file `from` to the new file `to` (parents made), returning the
/// SHA-256 and size of what was written.
pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<([u8; 32], u64)> {
    let src = open_regular(from).map_err(Error::file(from))?;
    if let Some(parent) = to.parent() {
        private_dir_all(parent)?;
    }
    let mut out = new_private_file(to)?;
    let done = sha256_of(src, |chunk| out.write_all(chunk).map_err(Error::file(to)))?;
    out.sync_all().map_err(Error::file(to))?;
    Ok(done)
}

/// Copies a folder of plain files (hidden temporary files and vanished files left out).
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from).map_err(Error::file(from))?;
    if meta.is_file() {
        return match copy_file(from, to) {
            Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        };
    }
    if !meta.is_dir() {
        // A link or a special file is not part of any desk: left out, never followed.
        tracing::warn!(path = %from.display(), "not a plain file or folder; left out of the backup");
        return Ok(());
    }
    private_dir_all(to)?;
    for entry in fs::read_dir(from).map_err(Error::file(from))? {
        let entry = entry.map_err(Error::file(from))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        copy_files(&entry.path(), &to.join(&name))?;
    }
    Ok(())
}

/// Copies the envelope of every record in the inbox copy at `copy_dir` from the store at
/// `data_dir`, checking each against its digest; returns how many.
fn copy_store(data_dir: &Path, copy_dir: &Path) -> Result<u64> {
    let copy = Inbox::open(copy_dir)?;
    let records = copy.records()?;
    drop(copy);
    for r in &records {
        let digest = r.receipt.body.digest;
        // Deleted by retention: its tombstone is copied with the other desks.
        if crate::retention::retired::is_retired(data_dir, &digest) {
            continue;
        }
        let from = Inbox::stored_envelope(data_dir, &digest);
        let to = Inbox::stored_envelope(copy_dir, &digest);
        if to.exists() {
            continue;
        }
        let (got, _) = copy_file(&from, &to)?;
        if got != digest {
            return Err(Error::Backup(format!(
                "the stored envelope {} does not hash to its name: the store is damaged; the backup is incomplete \
                 (remove {} and find out what changed the store)",
                from.display(),
                copy_dir.display()
            )));
        }
    }
    Ok(records.len() as u64)
}

/// Every file below `root`, as `/`-separated paths relative to it, sorted.
fn list_files(root: &Path, below: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(below).map_err(Error::file(below))? {
        let entry = entry.map_err(Error::file(below))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::file(&path))?;
        if kind.is_dir() {
            list_files(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| Error::Backup("a file outside the backup".into()))?;
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// Takes a backup of `cfg`'s center into `to` (new or empty), while it serves or not.
pub fn take(cfg: &CenterConfig, to: &Path) -> Result<BackupSummary> {
    // Before the target is made: a backup that cannot be signed, or cannot take the
    // records, writes nothing.
    let key = crate::workstation_key::backup_signing_key(cfg)?;
    if cfg.records_url.is_some() {
        konvert_records::pg_dump::find_tool("pg_dump")?;
    }
    make_empty_target(to)?;
    let to = fs::canonicalize(to).map_err(Error::file(to))?;
    if fs::canonicalize(&cfg.data_dir).is_ok_and(|data| to.starts_with(data)) {
        let _ = fs::remove_dir(&to);
        return Err(Error::Backup(format!(
            "{} is inside the data folder {}; a backup goes elsewhere (another disk, the backup drive)",
            to.display(),
            cfg.data_dir.display()
        )));
    }
    let receipt = receipt_public(cfg)?;
    let signed_by_workstation = key.verifying_key() != receipt;
    let holder = Holder::find(cfg)?;
    let data = to.join(DATA);
    private_dir_all(&data)?;
    let parts = parts(cfg)?;
    // The inbox first; then what its records name; then the desks; the audit log last,
    // so its checkpoint covers every decision behind what was copied.
    holder.copy_inbox(cfg, &data)?;
    let packets = copy_store(&cfg.data_dir, &data)?;
    for part in &parts {
        let dest = to.join(&part.name);
        match part.how {
            How::Files => copy_files(&part.source, &dest)?,
            How::Sled => drop(konvert_replication::sled_copy::copy_closed(&part.source, &dest)?),
            How::Inbox | How::Store | How::AuditLog | How::Skip => {}
        }
    }
    let records_dump = match &cfg.records_url {
        Some(url) => {
            let dir = to.join(POSTGRES);
            private_dir_all(&dir)?;
            // Made 0600 before pg_dump writes into it, so the dump is never readable by others.
            let dump_path = to.join(RECORDS_DUMP);
            drop(new_private_file(&dump_path)?);
            let dump = konvert_records::pg_dump::dump(url, &dump_path)?;
            Some(RecordsDumpEntry {
                path: RECORDS_DUMP.to_owned(),
                source: dump.target,
            })
        }
        None => None,
    };
    let anchor = holder.copy_audit(cfg, &data)?;
    let while_serving = matches!(holder, Holder::Serving);
    drop(holder);
    check_audit_copy(&data, &checkpoint_keys(cfg)?, anchor.as_ref())?;

    let mut paths = Vec::new();
    list_files(&to, &to, &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let full = to.join(&path);
        let f = open_regular(&full).map_err(Error::file(&full))?;
        let (digest, bytes) = sha256_of(f, |_| Ok(()))?;
        files.push(FileEntry {
            path,
            bytes,
            sha256: hex::encode(digest),
        });
    }
    let now = now_ms();
    let manifest = Manifest {
        kind: MANIFEST_KIND.into(),
        format: FORMAT,
        center: cfg.name.clone(),
        receipt_key: receipt.to_string(),
        workstation_key: signed_by_workstation.then(|| key.verifying_key().to_string()),
        taken_at_unix_ms: now,
        taken_at: utc(now),
        packets,
        audit_anchor: anchor.map(|a| a.to_line()),
        files,
        records_dump,
    };
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Backup(format!("cannot write the manifest: {e}")))?;
    let sig = key.sign(Domain::CenterCopy, &text);
    keyfile::write_new_atomic(&to.join(MANIFEST), &text, 0o644)?;
    keyfile::write_new_atomic(
        &to.join(MANIFEST_SIG),
        format!("{}\n", hex::encode(sig.0)).as_bytes(),
        0o644,
    )?;
    Ok(BackupSummary {
        manifest,
        while_serving,
    })
}

/// A time for people: `2026-06-01 18:30:00 UTC`.
pub(crate) fn utc(unix_ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix_ms / 1000).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The audit log copy in `dir` verifies against the receipt key, ends on a checkpoint
/// that covers every entry, and (given one) reaches the anchor.
fn check_audit_copy(dir: &Path, keys: &[VerifyingKey], anchor: Option<&AuditAnchor>) -> Result<()> {
    let path = dir.join(AUDIT_LOG);
    if !path.exists() {
        return Ok(());
    }
    let bytes = keyfile::read_bounded(&path, 1 << 30)?;
    let head = audit::read_head(&audit::head_path(&path))?;
    let report = match anchor {
        Some(a) => audit::verify_anchored(&bytes, head.as_ref(), keys, a),
        None => audit::verify(&bytes, head.as_ref(), keys),
    };
    if let Some(finding) = report.finding {
        return Err(Error::Backup(format!(
            "the audit log's copy {} does not verify: {finding}",
            path.display()
        )));
    }
    if report.uncovered > 0 {
        return Err(Error::Backup(format!(
            "the audit log's copy {} ends with {} entr(ies) no signed checkpoint covers",
            path.display(),
            report.uncovered
        )));
    }
    Ok(())
}

/// Reads and checks a backup's manifest: signed by `cfg`'s receipt key, for its center,
/// in a format this build reads, every path a plain relative one.
pub fn read_manifest(cfg: &CenterConfig, from: &Path) -> Result<Manifest> {
    let dir = DriveDir::open(from)?;
    let missing = |name: &str| {
        Error::Backup(format!(
            "{} has no {name}: it is not a konvert-center backup folder (or an incomplete one); give the folder \
             `konvert-center backup --to` wrote",
            from.display()
        ))
    };
    let text = dir
        .open_file(MANIFEST, MAX_MANIFEST)?
        .ok_or_else(|| missing(MANIFEST))?
        .read_all()?;
    let sig = dir
        .open_file(MANIFEST_SIG, 1024)?
        .ok_or_else(|| missing(MANIFEST_SIG))?
        .read_all()?;
    let sig = String::from_utf8_lossy(&sig);
    let mut raw = [0u8; 64];
    hex::decode_to_slice(sig.trim(), &mut raw).map_err(|_| {
        Error::Backup(format!(
            "{}: not a signature (128 hex digits); the backup was altered — use another backup",
            from.join(MANIFEST_SIG).display()
        ))
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| Error::Backup(format!("{}: {e}", from.join(MANIFEST).display())))?;
    // Which key to check with comes from the config, never from the manifest: the
    // manifest only says which of this center's two it claims.
    let (key, named) = match &manifest.workstation_key {
        None => (
            receipt_public(cfg)?,
            format!("receipt key ({})", cfg.receipt_key.display()),
        ),
        Some(_) => match (crate::workstation_key::workstation_public(cfg)?, &cfg.workstation_key) {
            (Some(key), Some(path)) => (key, format!("workstation key ({})", path.display())),
            _ => {
                return Err(Error::Backup(format!(
                    "{}: this backup was taken on a loader's workstation and is signed with its workstation key, \
                     which this center.toml does not name — restore it with that workstation's center.toml and \
                     key (workstation_key)",
                    from.join(MANIFEST).display()
                )))
            }
        },
    };
    key.verify(Domain::CenterCopy, &text, &Signature(raw)).map_err(|_| {
        Error::Backup(format!(
            "{}: the signature does not verify against this center's {named}: the manifest was altered, or the \
             backup is another center's or another workstation's — use a backup of this one that was not changed",
            from.join(MANIFEST).display(),
        ))
    })?;
    if manifest.kind != MANIFEST_KIND || manifest.format != FORMAT {
        return Err(Error::Backup(format!(
            "{}: a {:?} of format {}, not a backup this build restores (format {FORMAT})",
            from.join(MANIFEST).display(),
            manifest.kind,
            manifest.format
        )));
    }
    if manifest.center != cfg.name {
        return Err(Error::Backup(format!(
            "the backup in {} is of center {:?}, this config is center {:?}; restore it with that center's \
             center.toml",
            from.display(),
            manifest.center,
            cfg.name
        )));
    }
    for f in &manifest.files {
        split_path(&f.path)?;
    }
    if let Some(d) = &manifest.records_dump {
        if d.path != RECORDS_DUMP || !manifest.files.iter().any(|f| f.path == d.path) {
            return Err(Error::Backup(format!(
                "{}: the records' dump {:?} is not among the backup's files; the backup was altered — use another one",
                from.join(MANIFEST).display(),
                d.path
            )));
        }
    }
    Ok(manifest)
}

/// A manifest path's folders and file name; refused unless plain relative names.
fn split_path(path: &str) -> Result<(Vec<&str>, &str)> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let ok = parts
        .iter()
        .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\0'));
    let first_ok = matches!(parts.first(), Some(&DATA) | Some(&BESIDE) | Some(&POSTGRES));
    match parts.pop() {
        Some(name) if ok && first_ok && !parts.is_empty() => Ok((parts, name)),
        _ => Err(Error::Backup(format!(
            "the manifest names {path:?}, which is no file of a backup; the backup was altered — use another one"
        ))),
    }
}

/// What `restore` did.
#[derive(Debug)]
pub struct RestoreSummary {
    /// The manifest restored.
    pub manifest: Manifest,
    /// Where the data folder that was there went (with `--replace`).
    pub moved_aside: Option<PathBuf>,
    /// Files center.toml names that the target had already and were left as they were.
    pub kept: Vec<PathBuf>,
    /// Files center.toml names that were missing and were restored.
    pub restored_beside: Vec<PathBuf>,
    /// Where the records on PostgreSQL were restored (no password), if the backup held them.
    pub records_restored_into: Option<String>,
}

/// Whether `dir` is missing or holds nothing (an empty `staging`/`store` left by a first
/// start counts as nothing).
fn is_empty_data(dir: &Path) -> Result<bool> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        other => other.map_err(Error::file(dir))?,
    };
    for entry in entries {
        let entry = entry.map_err(Error::file(dir))?;
        let path = entry.path();
        let empty_folder = path.is_dir() && fs::read_dir(&path).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty_folder {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Restores the backup in `from` into `cfg`'s data folder. Refuses while a center serves
/// it, and over a data folder that holds anything unless `replace` (which moves it aside,
/// never deletes it). Every file is checked against the signed manifest as it is copied,
/// into a folder beside the data folder that takes its name only when all of it checked.
pub fn restore(cfg: &CenterConfig, from: &Path, replace: bool) -> Result<RestoreSummary> {
    let manifest = read_manifest(cfg, from)?;
    if crate::control::ask_center(&cfg.data_dir, "status").is_some() {
        return Err(Error::Backup(format!(
            "a center is serving {}; stop it (systemctl stop konvert-center) before restoring into its data folder",
            cfg.data_dir.display()
        )));
    }
    // The records' database is checked before anything is copied: a restore that could
    // not put them back changes nothing.
    let records_url = match (&manifest.records_dump, &cfg.records_url) {
        (None, _) => None,
        (Some(d), None) => {
            return Err(Error::Backup(format!(
                "the backup in {} holds the regional records from PostgreSQL ({}), but this center.toml names no \
                 records_url; make an empty database (createdb), name it in records_url and restore again (nothing \
                 was changed)",
                from.display(),
                d.source
            )))
        }
        (Some(_), Some(url)) => {
            konvert_records::pg_dump::find_tool("pg_restore")?;
            konvert_records::pg_dump::check_empty_database(url)?;
            Some(url.as_str())
        }
    };
    let occupied = !is_empty_data(&cfg.data_dir)?;
    if occupied && !replace {
        return Err(Error::Backup(format!(
            "the data folder {} is not empty; restoring would replace what the center holds now. Restore into \
             another center.toml's data folder, or give --replace to move the present folder aside (it is kept \
             beside, renamed) and restore in its place",
            cfg.data_dir.display()
        )));
    }
    let parent = cfg
        .data_dir
        .parent()
        .ok_or_else(|| Error::Backup(format!("{} has no parent folder", cfg.data_dir.display())))?;
    fs::create_dir_all(parent).map_err(Error::file(parent))?;
    let stem = cfg
        .data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let work = parent.join(format!(".{stem}.restoring-{}", std::process::id()));
    if work.exists() {
        fs::remove_dir_all(&work).map_err(Error::file(&work))?;
    }
    let result = copy_checked(&manifest, from, &work);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&work);
        return Err(e);
    }
    let data_copy = work.join(DATA);
    let anchor = manifest.audit_anchor.as_deref().and_then(AuditAnchor::parse_line);
    if let Err(e) = check_audit_copy(&data_copy, &checkpoint_keys(cfg)?, anchor.as_ref()) {
        let _ = fs::remove_dir_all(&work);
        return Err(e);
    }
    // From the copy just checked against the manifest; one transaction, before the data
    // folder is touched.
    let records_restored_into = match records_url {
        Some(url) => match konvert_records::pg_dump::restore_into_empty(url, &work.join(RECORDS_DUMP)) {
            Ok(target) => Some(target),
            Err(e) => {
                let _ = fs::remove_dir_all(&work);
                return Err(e.into());
            }
        },
        None => None,
    };
    let mut moved_aside = None;
    if occupied {
        // Nothing may hold it: a loader, an import or a center starting now.
        drop(Inbox::open(&cfg.data_dir).map_err(|e| {
            Error::Backup(format!(
                "{e}; the data folder {} is in use — stop what uses it and restore again",
                cfg.data_dir.display()
            ))
        })?);
        let aside = parent.join(format!("{stem}.before-restore-{}", now_ms()));
        fs::rename(&cfg.data_dir, &aside).map_err(Error::file(&cfg.data_dir))?;
        moved_aside = Some(aside);
    } else if cfg.data_dir.exists() {
        fs::remove_dir_all(&cfg.data_dir).map_err(Error::file(&cfg.data_dir))?;
    }
    fs::rename(&data_copy, &cfg.data_dir).map_err(Error::file(&cfg.data_dir))?;
    let mut kept = Vec::new();
    let mut restored_beside = Vec::new();
    for (name, dest, _) in beside(cfg) {
        let src = work.join(BESIDE).join(name);
        if !src.exists() {
            continue;
        }
        if dest.exists() {
            kept.push(dest);
        } else {
            copy_files(&src, &dest)?;
            restored_beside.push(dest);
        }
    }
    let _ = fs::remove_dir_all(&work);
    // The restored center says in its own log what happened to it.
    let inbox = Inbox::open(&cfg.data_dir)?;
    let held = inbox.len() as u64;
    drop(inbox);
    // Checkpointed with the receipt key where there is one, else the workstation key (a
    // loader's workstation without one leaves the entry for its next checkpoint).
    let log = AuditLog::open(
        &cfg.data_dir.join(AUDIT_LOG),
        crate::workstation_key::local_signing_key(cfg)?,
        AUDIT_CHECKPOINT_EVERY,
    )?;
    log.append(
        "konvert-center",
        AuditAction::Other("backup.restore".into()),
        &from.display().to_string(),
        &format!(
            "restored the backup taken at {} ({} packet versions)",
            manifest.taken_at, manifest.packets
        ),
    )?;
    drop(log);
    if held != manifest.packets {
        return Err(Error::Backup(format!(
            "the restored inbox holds {held} packet versions, the manifest says {}; keep the backup and report this",
            manifest.packets
        )));
    }
    Ok(RestoreSummary {
        manifest,
        moved_aside,
        kept,
        restored_beside,
        records_restored_into,
    })
}

/// Copies every file the manifest lists from `from` into `work`, checking sizes and
/// digests as it goes; nothing else is copied.
fn copy_checked(manifest: &Manifest, from: &Path, work: &Path) -> Result<()> {
    let root = DriveDir::open(from)?;
    for f in &manifest.files {
        let (folders, name) = split_path(&f.path)?;
        let altered = |what: &str| {
            Error::Backup(format!(
                "{}: {what}; the backup was altered or damaged — nothing was restored, use another backup",
                from.join(&f.path).display()
            ))
        };
        let mut dir_path = work.to_path_buf();
        let mut dir = None::<DriveDir>;
        for folder in &folders {
            let next = match &dir {
                None => root.sub(folder)?,
                Some(d) => d.sub(folder)?,
            };
            dir = Some(next.ok_or_else(|| altered("its folder is missing"))?);
            dir_path.push(folder);
        }
        let dir = dir.ok_or_else(|| altered("not in a folder"))?;
        let file = dir
            .open_file(name, f.bytes)?
            .ok_or_else(|| altered("the file is missing"))?;
        private_dir_all(&dir_path)?;
        let dest = dir_path.join(name);
        let mut out = new_private_file(&dest)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let limit = konvert_replication::drive::read_time_limit(f.bytes);
        let read = file.read_exactly(f.bytes, limit, |chunk| {
            ctx.update(chunk);
            out.write_all(chunk).map_err(konvert_replication::Error::from)
        })?;
        if read != Some(f.bytes) {
            return Err(altered(&format!(
                "its size differs from the manifest's {} bytes",
                f.bytes
            )));
        }
        if hex::encode(ctx.finish()) != f.sha256 {
            return Err(altered("its SHA-256 differs from the manifest's"));
        }
        out.sync_all().map_err(Error::file(&dest))?;
    }
    Ok(())
}

/// Runs `konvert-center backup`.
pub fn backup_command(config: &Path, to: &Path) -> Result<()> {
    let cfg = CenterConfig::load(config)?;
    let s = take(&cfg, to)?;
    let m = &s.manifest;
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    println!(
        "backup of center {} taken {} into {}{}: {} packet version(s), {} file(s), {:.1} MB",
        m.center,
        m.taken_at,
        to.display(),
        if s.while_serving { " while it served" } else { "" },
        m.packets,
        m.files.len(),
        bytes as f64 / 1e6
    );
    if let Some(a) = &m.audit_anchor {
        println!("  audit log anchor: {a} (write it in the shift log)");
    }
    println!(
        "  check it any time, or bring it back: `konvert-center restore --config <center.toml> --from {}`",
        to.display()
    );
    if let Some(d) = &m.records_dump {
        println!(
            "  the regional records on PostgreSQL ({}): one consistent snapshot (pg_dump) in {}",
            d.source,
            to.join(&d.path).display()
        );
    }
    Ok(())
}

/// Runs `konvert-center restore`.
pub fn restore_command(config: &Path, from: &Path, replace: bool) -> Result<()> {
    let cfg = CenterConfig::load(config)?;
    let s = restore(&cfg, from, replace)?;
    let m = &s.manifest;
    println!(
        "restored the backup of center {} taken {} ({} packet version(s), {} file(s), every one checked) into {}",
        m.center,
        m.taken_at,
        m.packets,
        m.files.len(),
        cfg.data_dir.display()
    );
    if let Some(target) = &s.records_restored_into {
        println!("  the regional records restored into PostgreSQL at {target}");
    } else if cfg.records_url.is_some() {
        println!("  this backup holds no PostgreSQL records: the database in records_url was left as it was");
    }
    if let Some(a) = &s.moved_aside {
        println!("  the data folder that was there is kept as {}", a.display());
    }
    for p in &s.restored_beside {
        println!("  restored {}", p.display());
    }
    for p in &s.kept {
        println!(
            "  kept {} as it is (the backup's copy was not put over it)",
            p.display()
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
