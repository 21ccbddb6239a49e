//! The center's inbox: envelopes held durably, still encrypted, content-addressed by
//! their SHA-256, indexed by packet id and version in sled. A packet version is stored
//! once; its first receipt is its only receipt.
//!
//! An envelope being received is staged as `staging/<offer>.part` (named by the hash of
//! the packet id, version and digest it is offered as); every [`SEGMENT`] bytes it is
//! fsynced and the length now durable is recorded in `staging/<offer>.held`. After a
//! disconnect or a crash of either side the edge resumes from that length, so a kill -9
//! costs at most one segment (plus what was in flight) of sending again.

use std::fs;
use std::path::{Path, PathBuf};

use konvert_crypto::KeyId;
use konvert_exam::PacketRef;
use serde::{Deserialize, Serialize};

use crate::durable::{packet_key, rename_durably, storage_err, sync_dir};
use crate::{Error, Offer, Receipt, Result};

/// What the center knows of a stored packet version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    /// The receipt sent when it was stored.
    pub receipt: Receipt,
    /// The member key that signed the envelope.
    pub signer: KeyId,
    /// The edge's claimed sealing time.
    pub sealed_at_unix_ms: u64,
    /// A technical-readiness test packet: kept and judged by staff, never processed.
    pub test_packet: bool,
    /// Received (by the center's clock; for a drive, when it was imported) after its
    /// site's delivery deadline: stored and receipted, but held back from processing
    /// until an operator decides.
    pub late: bool,
    /// The packet's signed description from the envelope header (site, exam day, exam,
    /// room, kind), agreed with its packet id on receipt; with the receipt's version it
    /// says what the packet is without opening the envelope. `None` only for records
    /// stored before it was kept. Last, so records written before it still read.
    pub packet: Option<PacketRef>,
}

/// An [`InboxRecord`] as written before `packet` existed.
#[derive(Deserialize)]
struct RecordBeforePacket {
    receipt: Receipt,
    signer: KeyId,
    sealed_at_unix_ms: u64,
    test_packet: bool,
    late: bool,
}

/// An [`InboxRecord`] as written before `late` existed.
#[derive(Deserialize)]
struct RecordBeforeLate {
    receipt: Receipt,
    signer: KeyId,
    sealed_at_unix_ms: u64,
    test_packet: bool,
}

/// Bytes of an incoming envelope made durable at a time: what a crash can cost again.
pub const SEGMENT: u64 = 4 << 20;

/// Bytes read at a time when a held prefix is replayed to the caller.
const REPLAY_READ: usize = 1 << 20;

/// Staging files untouched for this long belong to packets nobody resumes; they go.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// An envelope being received.
#[derive(Debug)]
pub struct Staged {
    /// The staging file, open for writing, cut to `held` bytes.
    pub file: fs::File,
    /// Its path.
    pub path: PathBuf,
    /// Bytes already held durably from an earlier attempt; the edge sends from here.
    pub held: u64,
    /// Bytes written so far (from offset 0, in order); `held` of them durable.
    pub written: u64,
}

fn held_marker(part: &Path) -> PathBuf {
    part.with_extension("held")
}

fn read_held(marker: &Path) -> u64 {
    fs::read(marker)
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
}

/// A stored packet whose envelope file a power cut or a failing disk tore: found when
/// the inbox opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornEnvelope {
    /// The packet id.
    pub packet_id: String,
    /// Its version.
    pub version: u32,
    /// The site that sent it.
    pub site: String,
    /// What is wrong, and what to do, in words.
    pub detail: String,
}

impl TornEnvelope {
    /// The stored envelope of `body` at `path`, torn as `what` says: logged, with what to do.
    fn found(body: &crate::receipt::ReceiptBody, path: &Path, what: &str) -> TornEnvelope {
        let detail = format!(
            "the stored envelope {} of packet {} v{} from site {} {what}; restore the store from the data \
             folder's backup (the site's outbox keeps the sealed file too)",
            path.display(),
            body.packet_id,
            body.version,
            body.site,
        );
        tracing::error!("{detail}");
        TornEnvelope {
            packet_id: body.packet_id.clone(),
            version: body.version,
            site: body.site.clone(),
            detail,
        }
    }
}

/// The inbox's sled database and its tree of records.
struct Records {
    db: crate::durable::SledDb,
    packets: sled::Tree,
    /// The keys of the envelopes stored since the last clean shutdown.
    written: sled::Tree,
}

impl crate::mending::SledHandles for Records {
    fn from_db(db: crate::durable::SledDb) -> std::result::Result<Records, sled::Error> {
        let packets = db.open_tree("packets")?;
        let written = db.open_tree(crate::since_clean::TREE)?;
        Ok(Records { db, packets, written })
    }

    fn db(&self) -> &crate::durable::SledDb {
        &self.db
    }
}

/// The center's durable store of received envelopes.
pub struct Inbox {
    /// Opened again after sled's sticky error (a full or failing disk).
    records: crate::mending::Mending<Records>,
    staging: PathBuf,
    store: PathBuf,
    torn: Vec<TornEnvelope>,
    /// Set once the start's checks are done: an inbox that failed to open has not
    /// checked what it should have, and must not close as if it had.
    started: bool,
}

impl Inbox {
    /// Opens (or creates) the inbox in `dir`. Staged envelopes with a durable length are
    /// kept for the edge to resume; staging files with nothing durable, and any untouched
    /// for a week, are removed (never receipted, so the edge still holds them).
    pub fn open(dir: &Path) -> Result<Self> {
        let staging = dir.join("staging");
        let store = dir.join("store");
        fs::create_dir_all(&staging)?;
        fs::create_dir_all(&store)?;
        // The lock first: another process that holds the inbox (a serving center, when a
        // loader or status runs beside it) is writing these staging files.
        let db_path = dir.join("inbox.sled");
        let records = crate::mending::Mending::open(&db_path, "the inbox's database").map_err(|e| {
            Error::Storage(format!(
                "cannot open the inbox at {}: {e}; is another konvert-center running?",
                dir.display()
            ))
        })?;
        for entry in fs::read_dir(&staging)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let path = entry.path();
            let stale = entry
                .metadata()?
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > STALE_STAGING);
            let keep = match path.extension().and_then(|e| e.to_str()) {
                Some("part") => held_marker(&path).exists(),
                Some("held") => path.with_extension("part").exists(),
                _ => false,
            };
            if stale || !keep {
                fs::remove_file(&path)?;
            }
        }
        let mut inbox = Inbox {
            records,
            staging,
            store,
            torn: Vec::new(),
            started: false,
        };
        inbox.torn = inbox.find_torn()?;
        inbox.torn.extend(inbox.find_torn_within()?);
        inbox.started = true;
        Ok(inbox)
    }

    /// Stored envelopes that are missing or not the size their receipt names. The center
    /// cannot mend one (only the site holds the sealed bytes), so it says which, loudly:
    /// the loader would refuse it as damaged anyway.
    fn find_torn(&self) -> Result<Vec<TornEnvelope>> {
        let mut torn = Vec::new();
        for record in self.records()? {
            let body = &record.receipt.body;
            let path = self.store_path(&body.digest);
            let found = match fs::metadata(&path) {
                Ok(m) if m.len() == body.bytes => continue,
                Ok(m) => format!("{} bytes", m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".to_owned(),
                Err(e) => return Err(e.into()),
            };
            let what = format!(
                "is {found}, not the {} bytes receipted: it was torn (a power cut or a failing disk)",
                body.bytes
            );
            torn.push(TornEnvelope::found(body, &path, &what));
        }
        Ok(torn)
    }

    /// After a start that did not follow a clean shutdown: stored envelopes of the right
    /// size whose bytes are not the ones receipted (torn inside, see
    /// [`crate::since_clean`]), among those stored since the last clean shutdown.
    fn find_torn_within(&self) -> Result<Vec<TornEnvelope>> {
        let keys = self.records.read(|r| crate::since_clean::keys(&r.written))?;
        let mut torn = Vec::new();
        for key in &keys {
            let Some(bytes) = self.records.read(|r| r.packets.get(key).map_err(storage_err))? else {
                continue;
            };
            let body = decode(&bytes)?.receipt.body;
            let path = self.store_path(&body.digest);
            match fs::metadata(&path) {
                Ok(m) if m.len() == body.bytes => {}
                // Missing or of another size: found by the size check already.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
            if crate::since_clean::sha256_file(&path)? == body.digest {
                continue;
            }
            let what = format!(
                "has the size receipted ({} bytes) but not its bytes (its SHA-256 differs): blocks inside it were \
                 torn by a power cut or a failing disk",
                body.bytes
            );
            torn.push(TornEnvelope::found(&body, &path, &what));
        }
        if !keys.is_empty() {
            self.records.write(|r| {
                r.written.clear().map_err(storage_err)?;
                r.db.flush_durably().map_err(storage_err)
            })?;
        }
        Ok(torn)
    }

    /// Runs `f`, which only reads, on the database (see [`crate::mending`]).
    fn with_records<T>(&self, f: impl FnOnce(&Records) -> std::result::Result<T, Error>) -> Result<T> {
        self.records.read(f)
    }

    /// How many times the database failed and was opened again since the inbox opened.
    pub fn reopened(&self) -> u64 {
        self.records.failures()
    }

    /// Stored envelopes found torn when the inbox was opened.
    pub fn torn(&self) -> &[TornEnvelope] {
        &self.torn
    }

    /// The stored record of a packet version, if any.
    pub fn lookup(&self, packet_id: &str, version: u32) -> Result<Option<InboxRecord>> {
        let found = self.with_records(|r| r.packets.get(packet_key(packet_id, version)).map_err(storage_err))?;
        match found {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The staging file for `offer`, resuming what an earlier attempt at this very offer
    /// made durable: the held prefix is cut to exactly that and fed to `replay` in order,
    /// so the caller's hashes and verifier stand where the sender resumes. A held prefix
    /// longer than the offer is not a prefix of it: staging starts again.
    pub fn resume_staging(&self, offer: &Offer, mut replay: impl FnMut(&[u8])) -> Result<Staged> {
        use std::os::unix::fs::FileExt;
        let path = self.staging_path(offer);
        let marker = held_marker(&path);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let mut held = read_held(&marker).min(file.metadata()?.len());
        if held > offer.size {
            held = 0;
        }
        file.set_len(held)?;
        if held == 0 {
            let _ = fs::remove_file(&marker);
        }
        let mut buf = vec![0u8; REPLAY_READ.min(held as usize)];
        let mut at = 0;
        while at < held {
            let n = usize::try_from((held - at).min(buf.len() as u64)).unwrap_or(buf.len());
            file.read_exact_at(&mut buf[..n], at)?;
            replay(&buf[..n]);
            at += n as u64;
        }
        Ok(Staged {
            file,
            path,
            held,
            written: held,
        })
    }

    /// An empty staging file for `offer`, whatever an earlier attempt held (a drive's
    /// bytes are staged from the start: a network prefix is not trusted to be the drive's).
    pub fn fresh_staging(&self, offer: &Offer) -> Result<Staged> {
        let path = self.staging_path(offer);
        let _ = fs::remove_file(held_marker(&path));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(Staged {
            file,
            path,
            held: 0,
            written: 0,
        })
    }

    /// Where `offer` is staged: named by everything the offer claims, not by its digest
    /// alone, so an offer (from a station or a drive's index) that names another packet's
    /// digest stages into a file of its own and cannot spoil that packet's transfer.
    fn staging_path(&self, offer: &Offer) -> PathBuf {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&(offer.packet_id.len() as u64).to_le_bytes());
        ctx.update(offer.packet_id.as_bytes());
        ctx.update(&offer.version.to_le_bytes());
        ctx.update(&offer.digest);
        self.staging.join(format!("{}.part", hex::encode(ctx.finish())))
    }

    /// Writes received bytes at `offset` into `staged`. Every [`SEGMENT`] past what is held
    /// is fsynced and recorded, so a crash costs at most one segment.
    pub fn write_staged(&self, staged: &mut Staged, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        staged.file.write_all_at(bytes, offset)?;
        staged.written = offset + bytes.len() as u64;
        if staged.written - staged.held >= SEGMENT {
            staged.file.sync_data()?;
            self.mark_held(&staged.path, staged.written)?;
            staged.held = staged.written;
        }
        Ok(())
    }

    /// A transfer broke off: what is held durably waits for the sender to resume; a
    /// staging with nothing held is removed.
    pub fn abandon_staged(&self, staged: &Staged) {
        if staged.held == 0 {
            self.discard_staging(&staged.path);
        }
    }

    /// Records that the first `held` bytes of the staging file at `staged` are durable;
    /// the caller has fsynced them.
    fn mark_held(&self, staged: &Path, held: u64) -> Result<()> {
        let marker = held_marker(staged);
        let tmp = marker.with_extension("held-new");
        {
            let mut f = fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &held.to_le_bytes())?;
            f.sync_all()?;
        }
        rename_durably(&tmp, &marker)
    }

    /// Where the envelope with this digest is stored.
    pub fn store_path(&self, digest: &[u8; 32]) -> PathBuf {
        Inbox::envelope_path(&self.store, digest)
    }

    /// Where the envelope with this digest lies in the inbox at `dir`, for readers that
    /// must not open the inbox's database (the receiver holds it).
    pub fn stored_envelope(dir: &Path, digest: &[u8; 32]) -> PathBuf {
        Inbox::envelope_path(&dir.join("store"), digest)
    }

    fn envelope_path(store: &Path, digest: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(digest);
        store.join(&hex[..2]).join(format!("{hex}.env"))
    }

    /// Moves a staged, fsynced and verified envelope into the store and records it. Only
    /// after this returns may the receipt be sent. Fails if the packet version is
    /// already recorded (the caller answers with the stored receipt instead).
    pub fn commit(&self, staged: &Path, record: &InboxRecord) -> Result<()> {
        let target = self.store_path(&record.receipt.body.digest);
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent)?;
                sync_dir(&self.store)?;
            }
        }
        rename_durably(staged, &target)?;
        let _ = fs::remove_file(held_marker(staged));
        let key = packet_key(&record.receipt.body.packet_id, record.receipt.body.version);
        let bytes = postcard::to_allocvec(record).map_err(storage_err)?;
        let swapped = self.records.write(|r| {
            // Marked first: sled recovers a prefix of its writes, and a mark without its
            // record costs nothing, while a record without its mark would go unchecked.
            r.written.insert(key.as_slice(), &[]).map_err(storage_err)?;
            let swapped = r
                .packets
                .compare_and_swap(key, None::<&[u8]>, Some(bytes))
                .map_err(storage_err)?;
            if swapped.is_ok() {
                r.db.flush_durably().map_err(storage_err)?;
            }
            Ok::<_, Error>(swapped)
        })?;
        if swapped.is_err() {
            return Err(Error::Storage(format!(
                "packet {} v{} was stored concurrently",
                record.receipt.body.packet_id, record.receipt.body.version
            )));
        }
        Ok(())
    }

    /// Makes every record durable. A record whose commit failed at the fsync is in sled
    /// all the same: a later offer of it is answered with its receipt only after this.
    pub fn sync(&self) -> Result<()> {
        self.records.write(|r| r.db.flush_durably().map_err(storage_err))
    }

    /// Removes a staging file that will not be committed, and its durable length.
    pub fn discard_staging(&self, staged: &Path) {
        let _ = fs::remove_file(held_marker(staged));
        let _ = fs::remove_file(staged);
    }

    /// Every stored record.
    pub fn records(&self) -> Result<Vec<InboxRecord>> {
        self.with_records(|r| {
            let mut all = Vec::new();
            for kv in r.packets.iter() {
                let (_, v) = kv.map_err(storage_err)?;
                all.push(decode(&v)?);
            }
            Ok(all)
        })
    }

    /// The number of stored packet versions.
    pub fn len(&self) -> usize {
        self.with_records(|r| Ok(r.packets.len())).unwrap_or(0)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the inbox's database (not its store) into a new one at `dest`, while this
    /// inbox goes on storing: what was committed before the copy began is in it.
    pub fn copy_database_to(&self, dest: &Path) -> Result<u64> {
        self.with_records(|r| {
            r.db.flush_durably().map_err(storage_err)?;
            crate::sled_copy::copy_db(&r.db, dest)
        })
    }
}

impl Drop for Inbox {
    /// A clean shutdown: every envelope stored was fsynced before it was recorded, so the
    /// next start need not read them again.
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let closed = self.records.write(|r| {
            if r.written.is_empty() {
                return Ok(());
            }
            r.written.clear().map_err(storage_err)?;
            r.db.flush_durably().map_err(storage_err)
        });
        if let Err(e) = closed {
            tracing::warn!("the inbox's clean shutdown was not recorded ({e}); its newest envelopes are checked again at the next start");
        }
    }
}

fn decode(bytes: &[u8]) -> Result<InboxRecord> {
    if let Ok((record, [])) = postcard::take_from_bytes::<InboxRecord>(bytes) {
        return Ok(record);
    }
    // A record stored before the description was kept: the loader reads it from the envelope.
    if let Ok((old, [])) = postcard::take_from_bytes::<RecordBeforePacket>(bytes) {
        return Ok(InboxRecord {
            receipt: old.receipt,
            signer: old.signer,
            sealed_at_unix_ms: old.sealed_at_unix_ms,
            test_packet: old.test_packet,
            late: old.late,
            packet: None,
        });
    }
    // A record stored before `late` existed: it was never judged late.
    match postcard::take_from_bytes::<RecordBeforeLate>(bytes) {
        Ok((old, [])) => Ok(InboxRecord {
            receipt: old.receipt,
            signer: old.signer,
            sealed_at_unix_ms: old.sealed_at_unix_ms,
            test_packet: old.test_packet,
            late: false,
            packet: None,
        }),
        _ => Err(Error::Storage(
            "corrupt inbox record: it is neither of the formats this build reads".into(),
        )),
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
