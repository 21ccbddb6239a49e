//! The edge's outbox: sealed envelopes that wait for the center's signed receipt.
//! Metadata lives in sled; envelopes are files (sled is not a blob store). An entry is
//! only marked delivered with a receipt that verified; until then it is sent again.

use konvert_protocol::Error as ProtocolError;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{packet_key, packet_prefix, rename_durably, storage_err};
use konvert_crypto::VerifyingKey;

use crate::{Error, Notice, Offer, Receipt, RejectReason, Result, SignedNotice, TestVerdict};

/// Where a packet stands at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxState {
    /// Sealed, not yet receipted.
    Sealed,
    /// The center holds it durably; its signed receipt is kept.
    Delivered {
        /// The verified receipt.
        receipt: Receipt,
    },
    /// The center refused it for a reason that sending again cannot fix.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail from the center.
        detail: String,
    },
}

/// One sealed envelope in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// What will be offered to the center.
    pub offer: Offer,
    /// The envelope's file name in the outbox folder.
    pub file_name: String,
    /// A label for the operator (room and kind).
    pub label: String,
    /// Where it stands.
    pub state: OutboxState,
}

/// A copy of a sealed envelope written to a reserve-channel drive. The entry stays
/// Sealed (and is still pushed if the network comes back) until a receipt arrives by
/// either channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// The drive folder, as the operator named it.
    pub drive: String,
    /// When it was written there (this machine's clock).
    pub at_unix_ms: u64,
    /// The envelope id of the copy.
    pub digest: [u8; 32],
}

/// The outbox's sled database and its trees.
struct Trees {
    db: crate::durable::SledDb,
    entries: sled::Tree,
    /// The keys of the entries still Sealed: what a push looks at many times a second,
    /// without decoding every delivered entry of the season each time.
    sealed: sled::Tree,
    notices: sled::Tree,
    exports: sled::Tree,
    answers: sled::Tree,
    /// The keys of the envelopes written since the last clean shutdown.
    written: sled::Tree,
}

impl crate::mending::SledHandles for Trees {
    fn from_db(db: crate::durable::SledDb) -> std::result::Result<Trees, sled::Error> {
        Ok(Trees {
            entries: db.open_tree("entries")?,
            sealed: db.open_tree("sealed")?,
            notices: db.open_tree("notices")?,
            exports: db.open_tree("exports")?,
            answers: db.open_tree(answers::TREE)?,
            written: db.open_tree(crate::since_clean::TREE)?,
            db,
        })
    }

    fn db(&self) -> &crate::durable::SledDb {
        &self.db
    }
}

/// The edge's durable queue of sealed envelopes.
pub struct Outbox {
    /// Opened again after sled's sticky error (a full or failing disk).
    trees: crate::mending::Mending<Trees>,
    dir: PathBuf,
    /// Set once the start's checks are done: an outbox that failed to open has not
    /// checked what it should have, and must not close as if it had.
    started: bool,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let envelopes = dir.join("envelopes");
        fs::create_dir_all(&envelopes)?;
        let trees = crate::mending::Mending::open(&dir.join("outbox.sled"), "the outbox's database").map_err(|e| {
            Error::Storage(format!(
                "cannot open the outbox at {}: {e}; is another konvert-edge running?",
                dir.display()
            ))
        })?;
        let mut outbox = Outbox {
            trees,
            dir: envelopes,
            started: false,
        };
        outbox.rebuild_sealed_index()?;
        outbox.refuse_torn_envelopes()?;
        outbox.refuse_envelopes_torn_within()?;
        outbox.started = true;
        Ok(outbox)
    }

    /// After a start that did not follow a clean shutdown: an envelope written since the
    /// last one may be the right size with torn blocks inside (see [`crate::since_clean`]).
    /// Each still queued is checked against the envelope id it was sealed with; one that
    /// differs would be refused by the center forever, so it is marked refused here, with
    /// words that say to seal the room again.
    fn refuse_envelopes_torn_within(&self) -> Result<()> {
        let keys = self.trees.read(|t| crate::since_clean::keys(&t.written))?;
        for key in &keys {
            let Some(bytes) = self.trees.read(|t| t.entries.get(key).map_err(storage_err))? else {
                continue;
            };
            let entry = decode(&bytes)?;
            if entry.state != OutboxState::Sealed {
                continue;
            }
            let path = self.envelope_path(&entry);
            match crate::since_clean::sha256_file(&path) {
                Ok(digest) if digest == entry.offer.digest => continue,
                Ok(_) => {}
                // Missing: the size check before this one refused it already.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
            let detail = format!(
                "the sealed file {} on this station's disk has the size it was sealed at ({} bytes) but not its \
                 content (its SHA-256 differs): blocks inside it were torn by a power cut or a failing disk; \
                 seal room {} again",
                path.display(),
                entry.offer.size,
                entry.label
            );
            tracing::error!(packet = %entry.offer.packet_id, version = entry.offer.version, "{detail}");
            self.mark_rejected(&entry.offer, RejectReason::MalformedEnvelope, detail)?;
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.trees.write(|t| {
            t.written.clear().map_err(storage_err)?;
            t.db.flush_durably().map_err(storage_err)
        })
    }

    /// Finds what a power cut or a failing disk tore since the last start. A staging file
    /// (`.env.part`) is a seal that never finished: it is removed, and the room is still in
    /// its folder to seal again. A queued envelope whose file is missing or not the size
    /// it was sealed at would be refused by the center forever: it is marked refused here,
    /// with words that say to seal the room again.
    fn refuse_torn_envelopes(&self) -> Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.to_str().is_some_and(|p| p.ends_with(".env.part")) {
                tracing::warn!(file = %path.display(), "removing a sealed envelope that was never finished (cut off while sealing)");
                let _ = fs::remove_file(&path);
            }
        }
        for entry in self.pending()? {
            let path = self.envelope_path(&entry);
            let found = match fs::metadata(&path) {
                Ok(m) if m.len() == entry.offer.size => continue,
                Ok(m) => format!("{} bytes", m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".to_owned(),
                Err(e) => return Err(e.into()),
            };
            let detail = format!(
                "the sealed file {} on this station's disk is {found}, not the {} bytes it was sealed at: it was \
                 torn (a power cut or a failing disk); seal room {} again",
                path.display(),
                entry.offer.size,
                entry.label
            );
            tracing::error!(packet = %entry.offer.packet_id, version = entry.offer.version, "{detail}");
            self.mark_rejected(&entry.offer, RejectReason::MalformedEnvelope, detail)?;
        }
        Ok(())
    }

    /// Makes the index of Sealed entries match the entries (an outbox written before the
    /// index existed, or by a process that died between the two writes).
    fn rebuild_sealed_index(&self) -> Result<()> {
        self.trees.write(|t| {
            let mut changed = false;
            for kv in t.entries.iter() {
                let (key, v) = kv.map_err(storage_err)?;
                let is_sealed = decode(&v)?.state == OutboxState::Sealed;
                if is_sealed != t.sealed.contains_key(&key).map_err(storage_err)? {
                    changed = true;
                    if is_sealed {
                        t.sealed.insert(key, &[]).map_err(storage_err)?;
                    } else {
                        t.sealed.remove(key).map_err(storage_err)?;
                    }
                }
            }
            for key in t.sealed.iter().keys() {
                let key = key.map_err(storage_err)?;
                if !t.entries.contains_key(&key).map_err(storage_err)? {
                    changed = true;
                    t.sealed.remove(key).map_err(storage_err)?;
                }
            }
            if changed {
                t.db.flush_durably().map_err(storage_err)?;
            }
            Ok(())
        })
    }

    /// Where a new envelope is written before `add` takes it in.
    pub fn staging_path(&self, packet_id: &str, version: u32) -> PathBuf {
        self.dir.join(format!("{packet_id}.v{version}.env.part"))
    }

    /// The envelope file of an entry.
    pub fn envelope_path(&self, entry: &OutboxEntry) -> PathBuf {
        self.dir.join(&entry.file_name)
    }

    /// The next free version of a packet (1 for a new packet).
    pub fn next_version(&self, packet_id: &str) -> Result<u32> {
        self.trees.read(|t| {
            let mut last = 0;
            for kv in t.entries.scan_prefix(packet_prefix(packet_id)) {
                let (_, v) = kv.map_err(storage_err)?;
                last = last.max(decode(&v)?.offer.version);
            }
            Ok(last + 1)
        })
    }

    /// Takes a fully written envelope from `staged` into the outbox, durably. Refuses a
    /// packet id and version that is already there: a rescan is a new version.
    pub fn add(&self, staged: &Path, offer: Offer, label: String) -> Result<OutboxEntry> {
        let key = packet_key(&offer.packet_id, offer.version);
        if self.trees.read(|t| t.entries.contains_key(&key).map_err(storage_err))? {
            return Err(Error::Storage(format!(
                "packet {} version {} is already in the outbox; seal a new version instead",
                offer.packet_id, offer.version
            )));
        }
        fs::File::open(staged)?.sync_all()?;
        let file_name = format!("{}.v{}.env", offer.packet_id, offer.version);
        rename_durably(staged, &self.dir.join(&file_name))?;
        let entry = OutboxEntry {
            offer,
            file_name,
            label,
            state: OutboxState::Sealed,
        };
        self.put(&entry, true)?;
        Ok(entry)
    }

    /// Every entry, in sending order.
    pub fn entries(&self) -> Result<Vec<OutboxEntry>> {
        let mut all = self.trees.read(|t| {
            let mut all = Vec::new();
            for kv in t.entries.iter() {
                let (_, v) = kv.map_err(storage_err)?;
                all.push(decode(&v)?);
            }
            Ok::<_, Error>(all)
        })?;
        sort_for_sending(&mut all);
        Ok(all)
    }

    /// The entry of a packet version, if any.
    pub fn get(&self, packet_id: &str, version: u32) -> Result<Option<OutboxEntry>> {
        match self
            .trees
            .read(|t| t.entries.get(packet_key(packet_id, version)).map_err(storage_err))?
        {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Entries still waiting for a receipt, in sending order.
    pub fn pending(&self) -> Result<Vec<OutboxEntry>> {
        let mut pending = self.trees.read(|t| {
            let mut pending = Vec::new();
            for key in t.sealed.iter().keys() {
                let key = key.map_err(storage_err)?;
                if let Some(v) = t.entries.get(&key).map_err(storage_err)? {
                    let entry = decode(&v)?;
                    if entry.state == OutboxState::Sealed {
                        pending.push(entry);
                    }
                }
            }
            Ok::<_, Error>(pending)
        })?;
        sort_for_sending(&mut pending);
        Ok(pending)
    }

    /// Records a verified receipt, durably.
    pub fn mark_delivered(&self, offer: &Offer, receipt: Receipt) -> Result<()> {
        self.update(offer, OutboxState::Delivered { receipt })
    }

    /// Records a final refusal, durably.
    pub fn mark_rejected(&self, offer: &Offer, reason: RejectReason, detail: String) -> Result<()> {
        self.update(offer, OutboxState::Rejected { reason, detail })
    }

    /// Keeps a verdict the center sent on one of this outbox's packets: it must verify
    /// against `center` and name exactly an envelope sent from here. Returns whether it
    /// is new.
    pub fn record_verdict(&self, notice: &SignedNotice, center: &VerifyingKey) -> Result<bool> {
        let Notice::TestVerdict(v) = notice.verify(center)? else {
            return Err(ProtocolError::BadNotice("not a test packet's verdict".into()).into());
        };
        let key = packet_key(&v.packet_id, v.version);
        let sent = match self.trees.read(|t| t.entries.get(&key).map_err(storage_err))? {
            Some(bytes) => decode(&bytes)?,
            None => {
                return Err(ProtocolError::BadNotice(format!(
                    "a verdict on {} v{}, which this station never sent",
                    v.packet_id, v.version
                ))
                .into())
            }
        };
        if !v.is_for(&sent.offer) {
            return Err(ProtocolError::BadNotice(format!(
                "the verdict on {} v{} is for other content than this station sent",
                v.packet_id, v.version
            ))
            .into());
        }
        let bytes = postcard::to_allocvec(notice).map_err(storage_err)?;
        let old = self.trees.write(|t| {
            let old = t.notices.insert(key, bytes).map_err(storage_err)?;
            t.db.flush_durably().map_err(storage_err)?;
            Ok::<_, Error>(old)
        })?;
        Ok(old.is_none())
    }

    /// The verdict kept for a packet version, if any.
    pub fn verdict(&self, packet_id: &str, version: u32) -> Result<Option<TestVerdict>> {
        match self
            .trees
            .read(|t| t.notices.get(packet_key(packet_id, version)).map_err(storage_err))?
        {
            Some(bytes) => {
                let signed: SignedNotice =
                    postcard::from_bytes(&bytes).map_err(|e| Error::Storage(format!("corrupt stored verdict: {e}")))?;
                match signed.notice {
                    Notice::TestVerdict(v) => Ok(Some(v)),
                    Notice::PacketAnswer(_) => Err(Error::Storage("a packet answer among the verdicts".into())),
                }
            }
            None => Ok(None),
        }
    }

    /// Records, durably, that the envelope of `offer` was written to a drive.
    pub fn mark_exported(&self, offer: &Offer, exported: &Exported) -> Result<()> {
        let bytes = postcard::to_allocvec(exported).map_err(storage_err)?;
        self.trees.write(|t| {
            t.exports
                .insert(packet_key(&offer.packet_id, offer.version), bytes)
                .map_err(storage_err)?;
            t.db.flush_durably().map_err(storage_err)
        })
    }

    /// The last drive the envelope of `offer` was written to, if any.
    pub fn exported(&self, offer: &Offer) -> Result<Option<Exported>> {
        match self.trees.read(|t| {
            t.exports
                .get(packet_key(&offer.packet_id, offer.version))
                .map_err(storage_err)
        })? {
            Some(bytes) => Ok(Some(
                postcard::from_bytes(&bytes).map_err(|e| Error::Storage(format!("corrupt export record: {e}")))?,
            )),
            None => Ok(None),
        }
    }

    /// Removes the envelope file of a delivered packet version (a relay's, once the center
    /// holds it); the entry and its receipt stay. Returns the bytes freed. A packet not yet
    /// delivered keeps its file.
    pub fn drop_delivered_envelope(&self, packet_id: &str, version: u32) -> Result<u64> {
        let Some(entry) = self.get(packet_id, version)? else {
            return Ok(0);
        };
        if !matches!(entry.state, OutboxState::Delivered { .. }) {
            return Ok(0);
        }
        let path = self.envelope_path(&entry);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn update(&self, offer: &Offer, state: OutboxState) -> Result<()> {
        let key = packet_key(&offer.packet_id, offer.version);
        let Some(v) = self.trees.read(|t| t.entries.get(&key).map_err(storage_err))? else {
            return Err(Error::Storage(format!(
                "packet {} v{} is not in the outbox",
                offer.packet_id, offer.version
            )));
        };
        let mut entry = decode(&v)?;
        entry.state = state;
        self.put(&entry, false)
    }

    /// Records `entry`, durably; `new_file`: its envelope file was just written.
    fn put(&self, entry: &OutboxEntry, new_file: bool) -> Result<()> {
        use sled::Transactional;
        let bytes = postcard::to_allocvec(entry).map_err(storage_err)?;
        let key = packet_key(&entry.offer.packet_id, entry.offer.version);
        let is_sealed = entry.state == OutboxState::Sealed;
        self.trees.write(|t| {
            (&t.entries, &t.sealed, &t.written)
                .transaction(|(entries, sealed, written)| {
                    entries.insert(key.as_slice(), bytes.as_slice())?;
                    if new_file {
                        written.insert(key.as_slice(), &[])?;
                    }
                    if is_sealed {
                        sealed.insert(key.as_slice(), &[])?;
                    } else {
                        sealed.remove(key.as_slice())?;
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| Error::Storage(format!("cannot record the outbox entry: {e:?}")))?;
            t.db.flush_durably().map_err(storage_err)
        })
    }
}

impl Drop for Outbox {
    /// A clean shutdown: every envelope written was fsynced before it was recorded, so
    /// the next start need not read them again.
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let closed = self.trees.write(|t| {
            if t.written.is_empty() {
                return Ok(());
            }
            t.written.clear().map_err(storage_err)?;
            t.db.flush_durably().map_err(storage_err)
        });
        if let Err(e) = closed {
            tracing::warn!("the outbox's clean shutdown was not recorded ({e}); its newest envelopes are checked again at the next start");
        }
    }
}

/// Forms first, then earliest deadline, then oldest: the order packets are offered in.
fn sort_for_sending(entries: &mut [OutboxEntry]) {
    entries.sort_by(|a, b| {
        (
            a.offer.priority,
            a.offer.deadline_unix_ms,
            a.offer.sealed_at_unix_ms,
            &a.offer.packet_id,
        )
            .cmp(&(
                b.offer.priority,
                b.offer.deadline_unix_ms,
                b.offer.sealed_at_unix_ms,
                &b.offer.packet_id,
            ))
    });
}

fn decode(bytes: &[u8]) -> Result<OutboxEntry> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("corrupt outbox entry: {e}")))
}

#[path = "outbox_answers.rs"]
mod answers;
pub use answers::KeptAnswer;

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
