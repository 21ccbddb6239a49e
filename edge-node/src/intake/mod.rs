//! Hot-folder intake: the scanner writes files into a folder; the edge takes each one
//! once it is completely written (its size and time have settled and it parses to the
//! end), copies it durably into its spool, recognizes every page and records it in the
//! journal — in that order, so a crash at any point leaves the file either still in the
//! hot folder and untaken, or taken and accounted for. A file is never taken twice: the
//! journal knows every taken file by its digest, and a copy of one is reported, not taken.

mod journal;
mod recognize;
mod settle;
mod watch;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use konvert_exam::{PageRecord, PageStatus};

pub use journal::{Journal, SealedRecord, SeenName, TakenFile};
pub use recognize::scan_recognizer;
pub use settle::{Settler, Stat};
pub use watch::HotFolderWatch;

use crate::{Error, Result};

/// Scan files larger than this are not read into memory; one A4 page at 300 dpi is
/// about 0.1 MB as G4 TIFF and 1–9 MB as grayscale PNG.
pub const MAX_SCAN_FILE: u64 = 512 * 1024 * 1024;

/// What recognition made of one scan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReading {
    /// One status per page read, in order.
    pub pages: Vec<PageStatus>,
    /// Why the file could not be read to its end, if so.
    pub problem: Option<String>,
}

impl FileReading {
    /// The manifest's page records of the file `name`; an unreadable rest of the file
    /// becomes one flagged record, so it is never silent.
    pub fn page_records(&self, name: &str, sha256: [u8; 32], scanned_at_unix_ms: u64) -> Vec<PageRecord> {
        let record = |page: usize, status: PageStatus| PageRecord {
            file: name.to_owned(),
            page: u32::try_from(page).unwrap_or(u32::MAX),
            file_sha256: sha256,
            status,
            scanned_at_unix_ms,
        };
        let mut pages: Vec<PageRecord> = self
            .pages
            .iter()
            .enumerate()
            .map(|(i, status)| record(i, status.clone()))
            .collect();
        if let Some(problem) = &self.problem {
            pages.push(record(
                pages.len(),
                PageStatus::Unreadable {
                    reason: problem.clone(),
                },
            ));
        }
        pages
    }
}

/// Reads and recognizes a whole scan file.
pub type Recognizer = Arc<dyn Fn(&[u8]) -> FileReading + Send + Sync>;

/// Something intake did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeEvent {
    /// A file was taken.
    Taken {
        /// Its name in packets.
        name: String,
        /// Pages in it.
        pages: usize,
        /// Pages whose barcode could not be read.
        unreadable: usize,
        /// Why the file could not be read to its end, if so.
        problem: Option<String>,
    },
    /// A file with the same contents as one already taken; not taken again.
    Copy {
        /// The copy's name in the hot folder.
        name: String,
        /// The name it was taken under first.
        of: String,
    },
    /// A file that cannot be taken (too large); it stays in the hot folder.
    Refused {
        /// Its name in the hot folder.
        name: String,
        /// Why, and what to do.
        reason: String,
    },
}

/// Tuning of the intake.
#[derive(Debug, Clone, Copy)]
pub struct IntakeTuning {
    /// How long a file must keep its size and time before it is read.
    pub settle_ms: u64,
    /// How long a settled file that does not parse to its end is waited for before it is
    /// taken anyway, flagged.
    pub incomplete_wait_ms: u64,
}

/// The hot-folder intake of one site.
pub struct Intake {
    hot_folder: PathBuf,
    spool: PathBuf,
    journal: Journal,
    settler: Settler,
    tuning: IntakeTuning,
    recognizer: Recognizer,
    refused: std::collections::HashSet<(String, Stat)>,
    /// Settled files that did not read to their end yet, with why: waited for a little
    /// longer (perhaps still written in place), then taken flagged.
    incomplete: std::collections::HashMap<String, String>,
}

fn stat_of(meta: &fs::Metadata) -> Stat {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Stat {
        size: meta.len(),
        mtime_ns,
    }
}

impl Intake {
    /// Opens the intake of the site's exam day as `[day]` configures it: its hot folder,
    /// settle times and recognition budget.
    pub fn for_day(cfg: &crate::SiteConfig) -> Result<Self> {
        let day = cfg.day()?;
        Intake::open(
            &day.hot_folder,
            &cfg.data_dir,
            day.tuning(),
            scan_recognizer(cfg.page_budget()),
        )
    }

    /// Opens the intake of `hot_folder`, keeping its spool and journal in `data_dir`.
    pub fn open(hot_folder: &Path, data_dir: &Path, tuning: IntakeTuning, recognizer: Recognizer) -> Result<Self> {
        if !hot_folder.is_dir() {
            return Err(Error::Config {
                path: hot_folder.to_owned(),
                message: "the scanner's hot folder does not exist; create it or fix [day] hot_folder".into(),
            });
        }
        let spool = data_dir.join("spool");
        fs::create_dir_all(&spool).map_err(Error::file(&spool))?;
        // The spool's own name must outlive a power cut, or every copy in it is lost.
        fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::file(data_dir))?;
        Ok(Intake {
            hot_folder: hot_folder.to_owned(),
            spool,
            journal: Journal::open(data_dir)?,
            settler: Settler::new(tuning.settle_ms),
            tuning,
            recognizer,
            refused: Default::default(),
            incomplete: Default::default(),
        })
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Where a taken file's bytes are.
    pub fn spool_path(&self, file: &TakenFile) -> PathBuf {
        self.spool.join(&file.spool_name)
    }

    /// Whether files are waiting to settle.
    pub fn is_settling(&self) -> bool {
        !self.settler.is_empty()
    }

    /// The files waiting to settle, each with why it did not read to its end when it was
    /// last tried (none: it is still changing).
    pub fn settling(&self) -> Vec<(String, Option<String>)> {
        self.settler
            .names()
            .into_iter()
            .map(|name| {
                let problem = self.incomplete.get(&name).cloned();
                (name, problem)
            })
            .collect()
    }

    /// Lists the hot folder at `now_ms` and takes every file that is complete.
    pub fn poll(&mut self, now_ms: u64) -> Result<Vec<IntakeEvent>> {
        let listing = self.list()?;
        self.settler.retain(|name| listing.iter().any(|(n, _)| n == name));
        self.incomplete.retain(|name, _| listing.iter().any(|(n, _)| n == name));
        for (name, stat) in &listing {
            let known = self.journal.seen(name)?;
            if known.is_some_and(|s| s.size == stat.size && s.mtime_ns == stat.mtime_ns) {
                continue;
            }
            if self.refused.contains(&(name.clone(), *stat)) {
                continue;
            }
            self.settler.observe(name, *stat, now_ms);
        }
        let mut events = Vec::new();
        for (name, stat) in self.settler.ready(now_ms) {
            if let Some(event) = self.take(&name, stat, now_ms)? {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn list(&self) -> Result<Vec<(String, Stat)>> {
        let dir = &self.hot_folder;
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::file(dir))? {
            let entry = entry.map_err(Error::file(dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // not UTF-8; reported by `check` as a foreign file
            };
            if !konvert_exam::is_scan_file(&name) {
                continue;
            }
            // A file removed between listing and stat is simply gone.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                out.push((name, stat_of(&meta)));
            }
        }
        Ok(out)
    }

    /// Takes one settled file, or says why not yet.
    fn take(&mut self, name: &str, stat: Stat, now_ms: u64) -> Result<Option<IntakeEvent>> {
        let path = self.hot_folder.join(name);
        if stat.size > MAX_SCAN_FILE {
            self.settler.forget(name);
            self.refused.insert((name.to_owned(), stat));
            return Ok(Some(IntakeEvent::Refused {
                name: name.to_owned(),
                reason: format!(
                    "{} MB is larger than any scan batch ({} MB at most); split the batch and scan it again",
                    stat.size / 1_000_000,
                    MAX_SCAN_FILE / 1_000_000
                ),
            }));
        }
        let Ok(bytes) = fs::read(&path) else {
            self.settler.forget(name); // gone or unreadable for now: the next listing decides
            return Ok(None);
        };
        let after = fs::metadata(&path).map(|m| stat_of(&m)).ok();
        if after != Some(stat) || bytes.len() as u64 != stat.size {
            if let Some(after) = after {
                self.settler.observe(name, after, now_ms);
            }
            return Ok(None);
        }
        let sha256 = sha256(&bytes);
        let seen = SeenName {
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            sha256,
        };
        if let Some(first) = self.journal.file(&sha256)? {
            self.journal.mark_seen(name, seen)?;
            self.settler.forget(name);
            // The same name again is a restart after a crash between journal and listing.
            return Ok((first.original != name).then(|| IntakeEvent::Copy {
                name: name.to_owned(),
                of: first.name,
            }));
        }
        let reading = (self.recognizer)(&bytes);
        // How long the file has kept still: what this process watched, or what its
        // modification time says — a one-shot `check` watches for a moment only, and
        // must not wait for ever on a damaged file the scanner finished long ago.
        let mtime_ms = u64::try_from(stat.mtime_ns / 1_000_000).unwrap_or(u64::MAX);
        let still_for = self
            .settler
            .stable_for(name, now_ms)
            .unwrap_or(0)
            .max(now_ms.saturating_sub(mtime_ms));
        if let Some(problem) = &reading.problem {
            if still_for < self.tuning.incomplete_wait_ms {
                self.incomplete.insert(name.to_owned(), problem.clone());
                return Ok(None); // perhaps still being written in place; wait a little more
            }
        }
        self.incomplete.remove(name);
        let spool_name = format!("{}{}", hex::encode(sha256), extension(name));
        self.write_spool(&spool_name, &bytes)?;
        let packet_name = self.unique_name(name, &sha256)?;
        let scanned_at = u64::try_from(stat.mtime_ns / 1_000_000).unwrap_or(now_ms);
        let pages = reading.page_records(&packet_name, sha256, scanned_at);
        let unreadable = pages.iter().filter(|p| p.identity().is_none()).count();
        let taken = TakenFile {
            name: packet_name.clone(),
            original: name.to_owned(),
            spool_name,
            size: stat.size,
            sha256,
            taken_at_unix_ms: now_ms,
            pages,
            problem: reading.problem.clone(),
        };
        self.journal.take(&taken, seen)?;
        self.settler.forget(name);
        Ok(Some(IntakeEvent::Taken {
            name: packet_name,
            pages: reading.pages.len(),
            unreadable,
            problem: reading.problem,
        }))
    }

    fn write_spool(&self, spool_name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.spool.join(spool_name);
        let tmp = self.spool.join(format!("{spool_name}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(Error::file(&tmp))?;
        f.write_all(bytes).map_err(Error::file(&tmp))?;
        f.sync_all().map_err(Error::file(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(Error::file(&path))?;
        fs::File::open(&self.spool)
            .and_then(|d| d.sync_all())
            .map_err(Error::file(&self.spool))?;
        Ok(())
    }

    /// The scanner's name, or with the digest's first digits added if a different file
    /// was already taken under it (a scanner that restarted its numbering).
    fn unique_name(&self, name: &str, sha256: &[u8; 32]) -> Result<String> {
        if !self.journal.name_taken(name)? {
            return Ok(name.to_owned());
        }
        let ext = extension(name);
        let stem = name.strip_suffix(&ext).unwrap_or(name);
        Ok(format!("{stem}.{}{ext}", hex::encode(&sha256[..4])))
    }
}

/// `.tif` of `a.tif`, or empty.
fn extension(name: &str) -> String {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default()
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}
