//! The embedded records: one sled database, a tree per kind of record, values in postcard.
//! A packet's registration is one transaction over the packet and page trees, flushed
//! before it returns, so a kill -9 leaves either the whole packet or none of it.

use std::path::{Path, PathBuf};

use konvert_exam::DayPlan;
use konvert_replication::PacketAnswer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::retention::{deleted, released};
use crate::{
    Decision, DecisionKind, Error, Finding, FindingRecord, Hold, ImageRef, NewHold, PacketEntry, PageEntry,
    PageOutcome, Records, Release, Removal, Result, Role,
};

/// The records in a sled database.
#[derive(Debug, Clone)]
pub struct SledRecords {
    path: PathBuf,
    db: konvert_replication::SledDb,
    plans: sled::Tree,
    packets: sled::Tree,
    pages: sled::Tree,
    outcomes: sled::Tree,
    findings: sled::Tree,
    decisions: sled::Tree,
    answers: sled::Tree,
    images: sled::Tree,
    holds: sled::Tree,
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Encode {
        what,
        message: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        what,
        message: e.to_string(),
    })
}

impl SledRecords {
    /// Opens (or creates) the records in folder `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let store = |source| Error::Store {
            path: path.display().to_string(),
            source,
        };
        let db = konvert_replication::open_sled(path).map_err(store)?;
        let tree = |name: &str| db.open_tree(name).map_err(store);
        Ok(SledRecords {
            path: path.to_owned(),
            plans: tree("plans")?,
            packets: tree("packets")?,
            pages: tree("pages")?,
            outcomes: tree("outcomes")?,
            findings: tree("findings")?,
            decisions: tree("decisions")?,
            answers: tree("answers")?,
            images: tree("images")?,
            holds: tree("holds")?,
            db,
        })
    }

    /// The records' folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn store(&self) -> impl Fn(sled::Error) -> Error + '_ {
        move |source| Error::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn flush(&self) -> Result<()> {
        self.db.flush_durably().map_err(self.store())?;
        Ok(())
    }

    fn all<T: DeserializeOwned>(&self, tree: &sled::Tree, what: &'static str) -> Result<Vec<T>> {
        tree.iter()
            .values()
            .map(|v| decode(what, &v.map_err(self.store())?))
            .collect()
    }

    /// Replaces the whole of `tree` with `rows`, in one batch.
    fn replace(&self, tree: &sled::Tree, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let mut batch = sled::Batch::default();
        let keep: std::collections::HashSet<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
        for key in tree.iter().keys() {
            let key = key.map_err(self.store())?;
            if !keep.contains(key.as_ref()) {
                batch.remove(key);
            }
        }
        for (k, v) in &rows {
            if tree.get(k).map_err(self.store())?.as_deref() != Some(v.as_slice()) {
                batch.insert(k.as_slice(), v.as_slice());
            }
        }
        tree.apply_batch(batch).map_err(self.store())?;
        self.flush()
    }
}

fn plan_key(plan: &DayPlan) -> Vec<u8> {
    format!("{}/{}", plan.date, plan.exam.code()).into_bytes()
}

impl Records for SledRecords {
    fn put_plan(&self, plan: &DayPlan) -> Result<()> {
        self.plans
            .insert(plan_key(plan), encode("plan", plan)?)
            .map_err(self.store())?;
        self.flush()
    }

    fn plans(&self) -> Result<Vec<DayPlan>> {
        self.all(&self.plans, "plan")
    }

    fn is_registered(&self, envelope: &[u8; 32]) -> Result<bool> {
        self.packets.contains_key(envelope).map_err(self.store())
    }

    fn register(&self, packet: &PacketEntry, pages: &[PageEntry]) -> Result<bool> {
        let entry = encode("packet", packet)?;
        let rows = pages
            .iter()
            .map(|p| Ok((p.key.to_bytes(), encode("page", p)?)))
            .collect::<Result<Vec<_>>>()?;
        let done = (&self.packets, &self.pages).transaction(|(packets, page_tree)| {
            if let Some(old) = packets.get(packet.envelope)? {
                return Ok(if old.as_ref() == entry.as_slice() {
                    Some(false)
                } else {
                    None
                });
            }
            packets.insert(&packet.envelope, entry.as_slice())?;
            for (k, v) in &rows {
                page_tree.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(Some(true))
        });
        let fresh = match done {
            Ok(Some(fresh)) => fresh,
            Ok(None) => {
                // Registered before: the same contents, only the loader's time differs?
                let old: PacketEntry = match self.packets.get(packet.envelope).map_err(self.store())? {
                    Some(v) => decode("packet", &v)?,
                    None => return Err(self.store()(sled::Error::ReportableBug("packet vanished".into()))),
                };
                let same = PacketEntry {
                    registered_at_unix_ms: old.registered_at_unix_ms,
                    ..packet.clone()
                } == old;
                if !same {
                    return Err(Error::Conflict {
                        packet: packet.packet_id.clone(),
                        version: packet.version,
                    });
                }
                false
            }
            Err(TransactionError::Storage(e)) => return Err(self.store()(e)),
            Err(TransactionError::Abort(())) => false,
        };
        self.flush()?;
        Ok(fresh)
    }

    fn packets(&self) -> Result<Vec<PacketEntry>> {
        self.all(&self.packets, "packet")
    }

    fn pages(&self) -> Result<Vec<PageEntry>> {
        self.all(&self.pages, "page")
    }

    fn put_outcomes(&self, outcomes: &[PageOutcome]) -> Result<()> {
        let rows = outcomes
            .iter()
            .map(|o| Ok((o.key.to_bytes().to_vec(), encode("outcome", o)?)))
            .collect::<Result<Vec<_>>>()?;
        self.replace(&self.outcomes, rows)
    }

    fn outcomes(&self) -> Result<Vec<PageOutcome>> {
        self.all(&self.outcomes, "outcome")
    }

    fn put_findings(&self, found: &[Finding], now_unix_ms: u64) -> Result<Vec<String>> {
        let mut batch = sled::Batch::default();
        let mut new = Vec::new();
        let ids: std::collections::HashSet<&str> = found.iter().map(|f| f.id.as_str()).collect();
        for f in found {
            let old: Option<FindingRecord> = match self.findings.get(f.id.as_bytes()).map_err(self.store())? {
                Some(v) => Some(decode("finding", &v)?),
                None => None,
            };
            let Some(record) = FindingRecord::found_again(old.as_ref(), f, now_unix_ms) else {
                continue;
            };
            if old.is_none() {
                new.push(f.id.clone());
            }
            batch.insert(f.id.as_bytes(), encode("finding", &record)?);
        }
        for old in self.findings()? {
            if old.resolved_at_unix_ms.is_none() && !ids.contains(old.finding.id.as_str()) {
                let resolved = FindingRecord {
                    resolved_at_unix_ms: Some(now_unix_ms),
                    ..old
                };
                batch.insert(resolved.finding.id.as_bytes(), encode("finding", &resolved)?);
            }
        }
        self.findings.apply_batch(batch).map_err(self.store())?;
        self.flush()?;
        Ok(new)
    }

    fn findings(&self) -> Result<Vec<FindingRecord>> {
        self.all(&self.findings, "finding")
    }

    fn decide(&self, by: &str, role: Role, at_unix_ms: u64, kind: DecisionKind) -> Result<Decision> {
        let done = self.decisions.transaction(|tree| {
            let seq = match tree.get(b"next")? {
                Some(v) => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(v.get(..8).unwrap_or(&[0; 8]));
                    u64::from_be_bytes(b)
                }
                None => 1,
            };
            let decision = Decision {
                seq,
                by: by.to_owned(),
                role,
                at_unix_ms,
                kind: kind.clone(),
            };
            let bytes =
                postcard::to_allocvec(&decision).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
            tree.insert(&seq.to_be_bytes(), bytes)?;
            tree.insert(b"next", &(seq + 1).to_be_bytes())?;
            Ok(decision)
        });
        let decision = done.map_err(|e| match e {
            TransactionError::Storage(e) => self.store()(e),
            TransactionError::Abort(message) => Error::Encode {
                what: "decision",
                message,
            },
        })?;
        self.flush()?;
        Ok(decision)
    }

    fn decisions(&self) -> Result<Vec<Decision>> {
        let mut all = Vec::new();
        for kv in self.decisions.iter() {
            let (k, v) = kv.map_err(self.store())?;
            if k.as_ref() != b"next" {
                all.push(decode("decision", &v)?);
            }
        }
        Ok(all)
    }

    fn put_answer(&self, answer: &PacketAnswer) -> Result<bool> {
        let bytes = encode("answer", answer)?;
        let old = self.answers.get(answer.digest).map_err(self.store())?;
        // The time it was made is not a change: only what it says is.
        if let Some(old) = old {
            let old: PacketAnswer = decode("answer", &old)?;
            let unchanged = PacketAnswer {
                answered_at_unix_ms: answer.answered_at_unix_ms,
                ..old
            } == *answer;
            if unchanged {
                return Ok(false);
            }
        }
        self.answers.insert(answer.digest, bytes).map_err(self.store())?;
        self.flush()?;
        Ok(true)
    }

    fn answers(&self) -> Result<Vec<PacketAnswer>> {
        self.all(&self.answers, "answer")
    }

    fn hold_images(&self, images: &[ImageRef]) -> Result<usize> {
        let mut new = 0;
        for image in images {
            let bytes = encode("image", image)?;
            let swapped = self
                .images
                .compare_and_swap(image.sha256, None::<&[u8]>, Some(bytes))
                .map_err(self.store())?;
            if swapped.is_ok() {
                new += 1;
            }
        }
        self.flush()?;
        Ok(new)
    }

    fn images(&self) -> Result<Vec<ImageRef>> {
        self.all(&self.images, "image")
    }

    fn images_deleted(&self, sha256: &[[u8; 32]], removal: &Removal) -> Result<()> {
        let mut batch = sled::Batch::default();
        for sha in sha256 {
            let Some(old) = self.images.get(sha).map_err(self.store())? else {
                continue;
            };
            let image = deleted(decode("image", &old)?, removal);
            batch.insert(sha.as_slice(), encode("image", &image)?);
        }
        self.images.apply_batch(batch).map_err(self.store())?;
        self.flush()
    }

    fn add_hold(&self, hold: NewHold) -> Result<Hold> {
        let done = self.holds.transaction(|tree| {
            let id = match tree.get(b"next")? {
                Some(v) => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(v.get(..8).unwrap_or(&[0; 8]));
                    u64::from_be_bytes(b)
                }
                None => 1,
            };
            let hold = hold.clone().numbered(id);
            let bytes = postcard::to_allocvec(&hold).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
            tree.insert(&id.to_be_bytes(), bytes)?;
            tree.insert(b"next", &(id + 1).to_be_bytes())?;
            Ok(hold)
        });
        let hold = done.map_err(|e| match e {
            TransactionError::Storage(e) => self.store()(e),
            TransactionError::Abort(message) => Error::Encode { what: "hold", message },
        })?;
        self.flush()?;
        Ok(hold)
    }

    fn release_hold(&self, id: u64, release: Release) -> Result<Hold> {
        let key = id.to_be_bytes();
        let Some(old) = self.holds.get(key).map_err(self.store())? else {
            return Err(Error::UnknownHold { id });
        };
        let hold = released(decode("hold", &old)?, release)?;
        let swapped = self
            .holds
            .compare_and_swap(key, Some(old), Some(encode("hold", &hold)?))
            .map_err(self.store())?;
        if swapped.is_err() {
            // Released (or changed) by another command meanwhile.
            return Err(Error::HoldReleased { id });
        }
        self.flush()?;
        Ok(hold)
    }

    fn holds(&self) -> Result<Vec<Hold>> {
        let mut all = Vec::new();
        for kv in self.holds.iter() {
            let (k, v) = kv.map_err(self.store())?;
            if k.as_ref() != b"next" {
                all.push(decode("hold", &v)?);
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
#[path = "sled_records_tests.rs"]
mod tests;
