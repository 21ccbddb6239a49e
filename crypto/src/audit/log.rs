//! The audit log's writer: appends fsynced entries, signs checkpoints, keeps the head file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::record::{checkpoint_record, entry_record, HEADER};
use super::verify::walk;
use super::{AuditAction, AuditAnchor, AuditEntry, Checkpoint, Finding};
use crate::{keyfile, Error, Result, SigningKey};

/// The largest log `open` reads; start a new log file before this (a year of a region's
/// packets is far below it).
const MAX_LOG_LEN: u64 = 1 << 30;
const HEAD_MAGIC: &[u8; 8] = b"KNVRTAHD";
const MAX_HEAD_LEN: u64 = 4096;
const REPAIR_ACTOR: &str = "konvert-audit";

/// The head file kept beside a log: `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".head");
    log.with_file_name(name)
}

/// Reads a head file; `None` when there is none.
pub fn read_head(path: &Path) -> Result<Option<Checkpoint>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = keyfile::read_bounded(path, MAX_HEAD_LEN)?;
    let bad = || Error::BadFile {
        path: path.to_owned(),
        message: "not a konvert audit head file, or a damaged one".into(),
    };
    let body = bytes.strip_prefix(HEAD_MAGIC.as_slice()).ok_or_else(bad)?;
    match postcard::take_from_bytes::<Checkpoint>(body) {
        Ok((cp, [])) => Ok(Some(cp)),
        _ => Err(bad()),
    }
}

fn write_head(path: &Path, cp: &Checkpoint) -> Result<()> {
    let mut bytes = HEAD_MAGIC.to_vec();
    bytes.extend_from_slice(&postcard::to_allocvec(cp).map_err(|e| Error::Encode(e.to_string()))?);
    keyfile::write_atomic(path, &bytes, 0o644)
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()?;
    Ok(())
}

struct Inner {
    file: File,
    len: u64,
    last_seq: u64,
    last_hash: [u8; 32],
    since_checkpoint: u64,
    last_checkpoint: Option<Checkpoint>,
    head_current: bool,
    broken: bool,
}

impl Inner {
    /// Appends one record durably. On failure the file is cut back to its old length; if
    /// even that fails, the log refuses further appends until it is reopened.
    fn write_record(&mut self, bytes: &[u8]) -> Result<()> {
        if self.broken {
            return Err(Error::AuditLogBroken);
        }
        let written = self.file.write_all(bytes).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let restored = self.file.set_len(self.len).and_then(|()| self.file.sync_data());
            self.broken = restored.is_err();
            return Err(e.into());
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// Called with every new checkpoint's anchor (see [`AuditLog::on_checkpoint`]).
type CheckpointHook = Box<dyn Fn(&AuditAnchor) + Send + Sync>;

/// An open audit log, shared by reference between threads. Dropping it signs a last
/// checkpoint over whatever is new, so every command's end and every shutdown is covered.
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
    key: Option<SigningKey>,
    every: u64,
    inner: Mutex<Inner>,
    hooks: Mutex<Vec<CheckpointHook>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("key", &self.key)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or creates) the log at `path`. With `checkpoint_key`, a signed checkpoint is
    /// written after every `every` entries (0: only on [`AuditLog::checkpoint`]) and kept
    /// in [`head_path`]. Refuses a log that does not verify; cuts a torn last record as
    /// the module documentation describes.
    pub fn open(path: &Path, checkpoint_key: Option<SigningKey>, every: u64) -> Result<Self> {
        let head = head_path(path);
        if !path.exists() {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o640).open(path)?;
            f.write_all(HEADER)?;
            f.sync_all()?;
            sync_parent(path)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        if len > MAX_LOG_LEN {
            return Err(Error::BadFile {
                path: path.to_owned(),
                message: format!("{len} bytes is more than an audit log may hold; start a new log beside it"),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, MAX_LOG_LEN), &mut bytes)?;
        let head_cp = read_head(&head)?;
        let report = walk(&bytes, head_cp.as_ref(), None);
        let mut torn = None;
        match report.finding {
            None => {}
            Some(Finding::TornTail { offset }) => torn = Some(offset),
            Some(finding) => {
                return Err(Error::AuditLogRefused {
                    path: path.to_owned(),
                    finding,
                })
            }
        }
        let mut len = bytes.len() as u64;
        let mut cut = 0;
        if let Some(offset) = torn {
            cut = len - offset;
            len = offset.max(HEADER.len() as u64);
            tracing::warn!(
                log = %path.display(),
                offset,
                bytes = cut,
                "the audit log ends in an incomplete record left by an interrupted write; cutting it off and recording the repair"
            );
            file.set_len(offset)?;
            if offset == 0 {
                file.write_all(HEADER)?;
            }
            file.sync_all()?;
        }
        if let Some(cp) = &report.last_checkpoint {
            if head_cp.as_ref() != Some(cp) {
                // The process stopped between the checkpoint record and the head file.
                write_head(&head, cp)?;
            }
        }
        let log = AuditLog {
            path: path.to_owned(),
            head,
            key: checkpoint_key,
            every,
            inner: Mutex::new(Inner {
                len,
                file,
                last_seq: report.last_seq,
                last_hash: report.last_hash,
                since_checkpoint: report.uncovered,
                last_checkpoint: report.last_checkpoint.clone(),
                head_current: true,
                broken: false,
            }),
            hooks: Mutex::new(Vec::new()),
        };
        if let Some(offset) = torn {
            log.append(
                REPAIR_ACTOR,
                AuditAction::AuditRepair,
                &path.display().to_string(),
                &format!(
                    "cut {cut} byte(s) of an incomplete last record at byte {offset}, left by an interrupted write"
                ),
            )?;
        }
        Ok(log)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The anchor of the newest checkpoint: what to keep outside the log's folder.
    pub fn anchor(&self) -> Result<Option<AuditAnchor>> {
        Ok(self.lock()?.last_checkpoint.as_ref().map(AuditAnchor::of))
    }

    /// Calls `hook` with the newest checkpoint's anchor now (if there is one) and after
    /// every checkpoint from now on: the center exports it as metrics. The hook runs with
    /// the log locked; it must not write to the log.
    pub fn on_checkpoint(&self, hook: impl Fn(&AuditAnchor) + Send + Sync + 'static) -> Result<()> {
        if let Some(anchor) = self.anchor()? {
            hook(&anchor);
        }
        self.hooks
            .lock()
            .map_err(|_| Error::AuditLogBroken)?
            .push(Box::new(hook));
        Ok(())
    }

    /// The newest entry's number (0 for an empty log).
    pub fn last_seq(&self) -> Result<u64> {
        Ok(self.lock()?.last_seq)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| Error::AuditLogBroken)
    }

    /// Appends an entry stamped with the system clock, fsynced before it returns; returns
    /// its number.
    pub fn append(&self, actor: &str, action: AuditAction, subject: &str, detail: &str) -> Result<u64> {
        self.append_at(now_unix_ms(), actor, action, subject, detail)
    }

    /// [`AuditLog::append`] at a given time. A due checkpoint that fails is logged and
    /// retried on the next append; the entry stands either way.
    pub fn append_at(
        &self,
        at_unix_ms: u64,
        actor: &str,
        action: AuditAction,
        subject: &str,
        detail: &str,
    ) -> Result<u64> {
        let mut inner = self.lock()?;
        let entry = AuditEntry {
            seq: inner.last_seq + 1,
            at_unix_ms,
            actor: actor.to_owned(),
            action,
            subject: subject.to_owned(),
            detail: detail.to_owned(),
            prev: inner.last_hash,
        };
        let (bytes, hash) = entry_record(&entry)?;
        inner.write_record(&bytes)?;
        inner.last_seq = entry.seq;
        inner.last_hash = hash;
        inner.since_checkpoint += 1;
        if self.every > 0 && inner.since_checkpoint >= self.every {
            if let Err(e) = self.checkpoint_locked(&mut inner, at_unix_ms) {
                tracing::error!(log = %self.path.display(), error = %e, "audit checkpoint failed; retrying after the next entry");
            }
        }
        Ok(entry.seq)
    }

    /// Signs a checkpoint of everything written so far (call it on clean shutdown) and
    /// replaces the head file. `None` without a key, or when nothing is new.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let mut inner = self.lock()?;
        self.checkpoint_locked(&mut inner, now_unix_ms())
    }

    /// [`AuditLog::checkpoint`] at a given time.
    pub fn checkpoint_at(&self, at_unix_ms: u64) -> Result<Option<Checkpoint>> {
        let mut inner = self.lock()?;
        self.checkpoint_locked(&mut inner, at_unix_ms)
    }

    fn checkpoint_locked(&self, inner: &mut Inner, at_unix_ms: u64) -> Result<Option<Checkpoint>> {
        let Some(key) = &self.key else { return Ok(None) };
        if inner.last_seq == 0 {
            return Ok(None);
        }
        if let Some(cp) = inner.last_checkpoint.clone().filter(|c| c.seq == inner.last_seq) {
            if !inner.head_current {
                write_head(&self.head, &cp)?;
                inner.head_current = true;
            }
            return Ok(None);
        }
        let cp = Checkpoint::sign(key, inner.last_seq, inner.last_hash, at_unix_ms)?;
        inner.write_record(&checkpoint_record(&cp)?)?;
        inner.since_checkpoint = 0;
        inner.last_checkpoint = Some(cp.clone());
        inner.head_current = false;
        write_head(&self.head, &cp)?;
        inner.head_current = true;
        if let Ok(hooks) = self.hooks.lock() {
            let anchor = AuditAnchor::of(&cp);
            for hook in hooks.iter() {
                hook(&anchor);
            }
        }
        Ok(Some(cp))
    }
}

impl AuditLog {
    /// Copies the log, as it stands after a fresh checkpoint, to `dest` (and its head file
    /// beside it), while no entry can be appended: the copy ends on a signed checkpoint
    /// and verifies on its own (a backup taken while the writer runs). `dest` must not
    /// exist. Returns the anchor of the copy's newest checkpoint (`None` without a key or
    /// entries).
    pub fn copy_to(&self, dest: &Path) -> Result<Option<AuditAnchor>> {
        let mut inner = self.lock()?;
        self.checkpoint_locked(&mut inner, now_unix_ms())?;
        let mut from = File::open(&self.path)?;
        let mut to = OpenOptions::new().write(true).create_new(true).mode(0o640).open(dest)?;
        let copied = std::io::copy(&mut std::io::Read::take(&mut from, inner.len), &mut to)?;
        if copied != inner.len {
            return Err(Error::BadFile {
                path: self.path.clone(),
                message: format!(
                    "shorter than written ({copied} of {} bytes) while it was copied",
                    inner.len
                ),
            });
        }
        to.sync_all()?;
        if let Some(cp) = &inner.last_checkpoint {
            write_head(&head_path(dest), cp)?;
        }
        sync_parent(dest)?;
        Ok(inner.last_checkpoint.as_ref().map(AuditAnchor::of))
    }
}

impl Drop for AuditLog {
    /// The last checkpoint: a command that ends or a process that shuts down leaves no
    /// entry that a cut could remove unseen.
    fn drop(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::error!(log = %self.path.display(), error = %e, "cannot write the audit log's closing checkpoint");
        }
    }
}
