//! The loader unpacks stored exam packets for processing: on its offline workstation,
//! with the center's decryption keys from a specialist's token, each envelope in the
//! store is verified again and decrypted into a folder of its scan files and a
//! `packet.json` (where it came from, who signed it, the site's manifest of what it
//! recognized).
//!
//! Layout: `OUT/<site>/<packet id>/v<version>/` (mode 0700: scans in clear) with
//! `files/` and `packet.json`, built under a hidden `.v<version>.partial` folder and
//! renamed into place, so a folder that exists is complete. Unpacking again skips what is there, so it can run after every
//! batch of arrivals. Test packets stay on the test desk; a packet's older versions (a
//! corrected rescan superseded them) are counted, not unpacked; a packet flagged for
//! review (its signer's token was blocked soon after) is held back unless asked for, and
//! then its `packet.json` carries the flag. A late version (received after its site's
//! deadline) is held back until an operator decides (`konvert-center late decide`); until
//! then the newest on-time version is the one unpacked, and a late version taken by the
//! operator carries `late` and the decision in its `packet.json`. A packet that cannot be opened is reported and
//! the rest go on; nothing in the store is changed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use konvert_crypto::registry::RegistryBody;
use konvert_crypto::{envelope, KeyId, RecipientSecretKey, VerifiedEnvelope, VerifyingKey};
use konvert_exam::agreement::{self, Claim, Disagreement, Sealed};
use konvert_exam::{read_archive, Manifest, PacketRef};
use konvert_replication::{Inbox, InboxRecord, ReceiptBody};
use serde::Serialize;

use crate::late::{LateChoice, LateDecision, LateDesk};
use crate::registry::CenterRegistry;
use crate::review::{ReviewDesk, ReviewFlag};
use crate::{Error, Result};

/// Which stored packets to unpack (default: every exam packet).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this site's packets.
    pub site: Option<String>,
    /// Only this packet id.
    pub packet: Option<String>,
    /// Also packets flagged for review (`konvert-center review`).
    pub include_flagged: bool,
}

impl Filter {
    fn takes(&self, r: &InboxRecord) -> bool {
        let b = &r.receipt.body;
        self.site.as_deref().is_none_or(|s| s == b.site) && self.packet.as_deref().is_none_or(|p| p == b.packet_id)
    }
}

/// What one run unpacked.
#[derive(Debug, Default)]
pub struct UnpackReport {
    /// Folders written now, with the scan bytes in each.
    pub unpacked: Vec<(PathBuf, u64)>,
    /// Packets whose folder was already there.
    pub already: usize,
    /// Older versions left sealed because a newer one is stored.
    pub superseded: usize,
    /// Packets held back because they are flagged for review: packet id and version.
    pub held_for_review: Vec<String>,
    /// Late versions held back until an operator decides (`konvert-center late`); the
    /// newest on-time version of the packet is unpacked instead: packet id and version.
    pub held_late: Vec<String>,
    /// Packets that could not be opened: (packet id and version, why).
    pub failed: Vec<(String, String)>,
}

/// What `packet.json` holds.
#[derive(Debug, Serialize)]
struct PacketFile<'a> {
    envelope_id: String,
    site: &'a str,
    packet_id: &'a str,
    version: u32,
    bytes: u64,
    received_at_unix_ms: u64,
    /// The edge's claim, never trusted.
    sealed_at_unix_ms: u64,
    signer: String,
    /// Why the packet is flagged for review, if it is.
    review: Option<&'a ReviewFlag>,
    /// Received after its site's delivery deadline (by the center's clock).
    late: bool,
    /// The operator's decision that let a late packet be processed.
    late_decision: Option<&'a LateDecision>,
    manifest: &'a Manifest,
}

/// Unpacks the newest version of every stored exam packet `filter` takes into `out`.
pub fn unpack(
    data_dir: &Path,
    inbox: &Inbox,
    keys: &[RecipientSecretKey],
    registry: &RegistryBody,
    filter: &Filter,
    out: &Path,
) -> Result<UnpackReport> {
    // Any token the registry lists: the receiver already decided on its status.
    let trusted = |id: &KeyId| -> Option<VerifyingKey> { CenterRegistry::token_key(registry, id) };
    let mut report = UnpackReport::default();
    let chosen = processable(data_dir, inbox, filter)?;
    report.held_late = chosen.held_late;
    let decisions = chosen.late_decisions;
    let mut newest: BTreeMap<(String, String), InboxRecord> = BTreeMap::new();
    for r in chosen.versions {
        let key = (r.receipt.body.site.clone(), r.receipt.body.packet_id.clone());
        match newest.get(&key) {
            Some(n) if n.receipt.body.version > r.receipt.body.version => report.superseded += 1,
            Some(_) => {
                report.superseded += 1;
                newest.insert(key, r);
            }
            None => {
                newest.insert(key, r);
            }
        }
    }
    report.superseded += chosen.not_taken;
    let flags: BTreeMap<String, ReviewFlag> = ReviewDesk::open(data_dir)?
        .list()?
        .into_iter()
        .map(|f| (f.envelope_id.clone(), f))
        .collect();
    for r in newest.values() {
        let b = &r.receipt.body;
        let flag = flags.get(&hex::encode(b.digest));
        if flag.is_some() && !filter.include_flagged {
            report.held_for_review.push(format!("{} v{}", b.packet_id, b.version));
            continue;
        }
        let site_dir = out.join(safe_name(&b.site)?);
        let parent = site_dir.join(safe_name(&b.packet_id)?);
        let dir = parent.join(format!("v{}", b.version));
        // Nothing is looked up through a link below `out` (nor written: unpack_one makes
        // the folders one by one): a link there would put scans wherever it points.
        if let Err(e) = [&site_dir, &parent, &dir].into_iter().try_for_each(|p| not_a_link(p)) {
            report
                .failed
                .push((format!("{} v{}", b.packet_id, b.version), e.to_string()));
            continue;
        }
        if dir.join("packet.json").is_file() {
            report.already += 1;
            continue;
        }
        let late = decisions.get(&hex::encode(b.digest));
        match unpack_one(data_dir, r, flag, late, keys, &trusted, out, &parent, &dir) {
            Ok(bytes) => report.unpacked.push((dir, bytes)),
            Err(e) => report
                .failed
                .push((format!("{} v{}", b.packet_id, b.version), e.to_string())),
        }
    }
    Ok(report)
}

/// The stored exam packet versions that may be processed, and what is held back.
#[derive(Debug, Default)]
pub struct Processable {
    /// Every version that may be processed: on time, or late and taken by an operator.
    pub versions: Vec<InboxRecord>,
    /// Late versions nobody decided on yet: packet id and version.
    pub held_late: Vec<String>,
    /// Late versions an operator chose not to process.
    pub not_taken: usize,
    /// The operators' decisions on late versions taken, by envelope id.
    pub late_decisions: BTreeMap<String, LateDecision>,
}

/// The stored exam packet versions `filter` takes that may be processed (test packets
/// never are). A late version nobody decided on yet is held back.
pub fn processable(data_dir: &Path, inbox: &Inbox, filter: &Filter) -> Result<Processable> {
    let late_desk = LateDesk::open(data_dir)?;
    let mut out = Processable::default();
    for r in inbox.records()? {
        if r.test_packet || !filter.takes(&r) || crate::retention::retired::is_retired(data_dir, &r.receipt.body.digest)
        {
            continue;
        }
        let b = &r.receipt.body;
        if r.late {
            match late_desk.decision(&hex::encode(b.digest))? {
                Some(d) if d.choice == LateChoice::Take => {
                    out.late_decisions.insert(d.envelope_id.clone(), d);
                }
                Some(_) => {
                    out.not_taken += 1;
                    continue;
                }
                None => {
                    out.held_late.push(format!("{} v{}", b.packet_id, b.version));
                    continue;
                }
            }
        }
        out.versions.push(r);
    }
    out.versions.sort_by(|a, b| {
        let (a, b) = (&a.receipt.body, &b.receipt.body);
        (&a.site, &a.packet_id, a.version).cmp(&(&b.site, &b.packet_id, b.version))
    });
    Ok(out)
}

/// A site code or packet id as one folder name; anything else is refused, not mangled.
fn safe_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(Error::Loader {
            what: format!("the stored name {name:?} cannot be a folder name"),
            hint: "the inbox is damaged; restore the center's data folder from backup",
        })
    }
}

/// Makes the `--out` folder the operator named if it is missing; it may be reached through
/// links (the operator chose it), nothing below it may.
fn top_folder(out: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .map_err(Error::file(out))
}

/// Refuses `path` if it is a symbolic link (even a dangling one, or one to a folder).
fn not_a_link(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Loader {
            what: format!(
                "{} is a symbolic link; the loader writes scans only into plain folders it made, never through a \
                 link",
                path.display()
            ),
            hint: "nothing was written through it; remove the link (or give another --out folder) and unpack again",
        }),
        _ => Ok(()),
    }
}

/// Makes the folder `path` (mode 0700: exam scans in clear, only the loader's own account
/// may enter) unless a plain folder is there already; its parent must exist.
fn plain_folder(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    not_a_link(path)?;
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Loader {
            what: format!("{} is in the way: it is a file, not a folder", path.display()),
            hint: "move it out of the --out folder and unpack again",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(Error::file(path)),
        Err(e) => Err(Error::file(path)(e)),
    }
}

#[allow(clippy::too_many_arguments)] // The packet, what is known of it, and where it goes.
fn unpack_one(
    data_dir: &Path,
    r: &InboxRecord,
    review: Option<&ReviewFlag>,
    late_decision: Option<&LateDecision>,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    out: &Path,
    parent: &Path,
    dir: &Path,
) -> Result<u64> {
    let b = &r.receipt.body;
    let claim = receipted(b);
    // Before anything is written: the stored file must be the receipted packet.
    let checked = check_stored(data_dir, &claim, trusted)?;
    // One by one, none through a link (`parent` is `out/<site>/<packet id>`).
    top_folder(out)?;
    plain_folder(&out.join(&b.site))?;
    plain_folder(parent)?;
    not_a_link(dir)?;
    let partial = parent.join(format!(".v{}.partial", b.version));
    // Left by a run that stopped: removed (a link there is refused, not followed).
    not_a_link(&partial)?;
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(Error::file(&partial))?;
    }
    plain_folder(&partial)?;
    let files = partial.join("files");
    let done = (|| {
        let manifest = open_checked(&checked, &claim, keys, trusted, &partial, &files)?;
        let bytes = manifest.files.iter().map(|f| f.size).sum();
        let record = PacketFile {
            envelope_id: hex::encode(b.digest),
            site: &b.site,
            packet_id: &b.packet_id,
            version: b.version,
            bytes: b.bytes,
            received_at_unix_ms: b.received_at_unix_ms,
            sealed_at_unix_ms: r.sealed_at_unix_ms,
            signer: r.signer.to_string(),
            review,
            late: r.late,
            late_decision,
            manifest: &manifest,
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::Loader {
            what: format!("cannot describe the packet: {e}"),
            hint: "report this as a bug",
        })?;
        let path = partial.join("packet.json");
        fs::write(&path, json).map_err(Error::file(&path))?;
        fs::rename(&partial, dir).map_err(Error::file(dir))?;
        Ok(bytes)
    })();
    if done.is_err() {
        // Plaintext of a packet that did not open whole is not kept.
        let _ = fs::remove_dir_all(&partial);
    }
    done
}

/// What a stored packet's receipt and record name: the packet version, its site and the
/// envelope id and size the center receipted.
pub fn receipted(b: &ReceiptBody) -> Claim<'_> {
    Claim {
        by: "receipted",
        packet_id: &b.packet_id,
        version: b.version,
        site: Some(&b.site),
        envelope_id: b.digest,
        bytes: b.bytes,
    }
}

/// A stored envelope whose bytes, signature, header and packet description agree with
/// its receipt and record: only this is ever decrypted. Checking writes nothing.
pub struct Checked {
    path: PathBuf,
    source: Source,
    packet: PacketRef,
}

/// Where the checked bytes are when they are opened.
enum Source {
    /// Read whole into memory and verified there: opening them is one decrypting pass.
    Memory(envelope::VerifiedBytes),
    /// Too large to hold: opening reads the file again and checks it is the one verified.
    File(VerifiedEnvelope),
}

impl Checked {
    /// The packet the envelope, its description and its record all name.
    pub fn packet(&self) -> &PacketRef {
        &self.packet
    }

    fn verified(&self) -> &VerifiedEnvelope {
        self.source.verified()
    }
}

impl Source {
    fn verified(&self) -> &VerifiedEnvelope {
        match self {
            Source::Memory(b) => b.envelope(),
            Source::File(v) => v,
        }
    }
}

/// Envelopes up to this size are checked and opened in memory (a room's packet is tens
/// of megabytes); larger ones stream from the file twice.
const IN_MEMORY_BYTES: u64 = 256 << 20;

/// Checks the stored envelope that `claim` names, without decrypting or writing anything:
/// its bytes hash to the receipted envelope id, its signature verifies against `trusted`,
/// and its header's packet id, version and site, and its signed description (site, day,
/// exam, room, kind), are the record's.
pub fn check_stored(
    data_dir: &Path,
    claim: &Claim<'_>,
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
) -> Result<Checked> {
    let path = Inbox::stored_envelope(data_dir, &claim.envelope_id);
    let source = if claim.bytes <= IN_MEMORY_BYTES {
        let bytes = read_envelope(&path, claim)?;
        Source::Memory(envelope::verify_bytes(bytes, trusted).map_err(|e| explain(&path, claim, e))?)
    } else {
        let file = open_envelope(&path)?;
        let size = file.metadata().map_err(Error::file(&path))?.len();
        if size != claim.bytes {
            return Err(altered(&path, claim, &format!("{size} bytes")));
        }
        let input = std::io::BufReader::with_capacity(256 << 10, file);
        Source::File(envelope::verify_stored(input, trusted).map_err(|e| explain(&path, claim, e))?)
    };
    let packet = agree_verified(claim, &path, source.verified())?;
    Ok(Checked { path, source, packet })
}

/// The packet a verified envelope's header and signed description name, when they are the
/// record's.
fn agree_verified(claim: &Claim<'_>, path: &Path, verified: &VerifiedEnvelope) -> Result<PacketRef> {
    let h = verified.header();
    let sealed = Sealed {
        envelope_id: verified.digest(),
        bytes: verified.envelope_bytes(),
        packet_id: &h.packet_id,
        version: h.version,
        sender_site: &h.sender_site,
        metadata: &h.metadata,
    };
    agreement::agree(claim, &sealed).map_err(|d| disagrees(claim, path, &d))
}

fn disagrees(claim: &Claim<'_>, path: &Path, d: &Disagreement) -> Error {
    Error::Loader {
        what: format!(
            "the stored envelope {} is not the {} packet {} v{}: {d}",
            path.display(),
            claim.by,
            claim.packet_id,
            claim.version
        ),
        hint: "nothing of it was written; the store was altered or files were swapped — restore the center's \
               data folder from backup, or ask the site to send the packet again",
    }
}

/// A packet version opened in memory: its manifest and its files, never written anywhere.
pub struct OpenedPacket {
    /// The packet the envelope, its description and its record all name.
    pub packet: PacketRef,
    /// The manifest, every file checked against it.
    pub manifest: Manifest,
    plain: Vec<u8>,
    files: Vec<std::ops::Range<usize>>,
}

impl OpenedPacket {
    /// The bytes of the manifest's `index`th file.
    pub fn file(&self, index: usize) -> Option<&[u8]> {
        self.files.get(index).and_then(|r| self.plain.get(r.clone()))
    }
}

/// Checks and opens the stored version `claim` names in memory, as [`check_stored`] and
/// [`open_checked`] do but without writing the scans anywhere: the signature is checked
/// while the envelope is decrypted, and nothing decrypted is returned unless it verified and
/// agrees with the record. `None` when the envelope is too large to hold: open it to a
/// folder instead.
pub fn open_stored_in_memory(
    data_dir: &Path,
    claim: &Claim<'_>,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
) -> Result<Option<OpenedPacket>> {
    if claim.bytes > IN_MEMORY_BYTES {
        return Ok(None);
    }
    let path = Inbox::stored_envelope(data_dir, &claim.envelope_id);
    let mut bytes = take_buffer();
    let opened =
        read_envelope_into(&path, claim, &mut bytes).and_then(|()| open_read(&path, &bytes, claim, keys, trusted));
    give_back(bytes);
    opened.map(Some)
}

/// Buffers of envelopes and plaintexts opened before, for the next ones: a fresh buffer
/// for each packet costs a page fault every 4 KiB of it.
static BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// The largest buffer kept between packets.
const KEEP_BUFFER: usize = 64 << 20;

/// A buffer kept from an earlier packet, or a new one.
fn take_buffer() -> Vec<u8> {
    BUFFERS.lock().ok().and_then(|mut kept| kept.pop()).unwrap_or_default()
}

/// Keeps `buffer` for the next packet, unless it is large or enough are kept.
fn give_back(buffer: Vec<u8>) {
    if buffer.capacity() <= KEEP_BUFFER {
        if let Ok(mut kept) = BUFFERS.lock() {
            // A few are enough: packets are opened one after another, each an envelope
            // and a plaintext.
            if kept.len() < 3 {
                kept.push(buffer);
            }
        }
    }
}

impl Drop for OpenedPacket {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.plain));
    }
}

/// The in-memory opening of an envelope read whole into `bytes`.
fn open_read(
    path: &Path,
    bytes: &[u8],
    claim: &Claim<'_>,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
) -> Result<OpenedPacket> {
    // Unverified, only to pick the key: a header that lies fails the signature below.
    let header = envelope::read_header(bytes).map_err(|e| explain_bytes(path, claim, bytes, e))?;
    let key = key_for(keys, &header, claim)?;
    let (verified, archive) = envelope::open_in_memory(bytes, key, trusted, take_buffer(), |plain| {
        konvert_exam::parse_archive(&plain).map(|(manifest, files)| (manifest, files, plain))
    })
    .map_err(|e| explain_bytes(path, claim, bytes, e))?;
    let packet = agree_verified(claim, path, &verified)?;
    let (manifest, files, plain) = archive?;
    agreement::agree_manifest(&packet, verified.header().version, &manifest).map_err(|d| disagrees(claim, path, &d))?;
    Ok(OpenedPacket {
        packet,
        manifest,
        plain,
        files,
    })
}

/// Reads a stored envelope whole: at most one byte more than receipted, so a file grown
/// since is caught by its digest without holding whatever was appended.
fn read_envelope(path: &Path, claim: &Claim<'_>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_envelope_into(path, claim, &mut bytes)?;
    Ok(bytes)
}

/// [`read_envelope`] into `bytes` (emptied first, its capacity kept).
fn read_envelope_into(path: &Path, claim: &Claim<'_>, bytes: &mut Vec<u8>) -> Result<()> {
    let file = open_envelope(path)?;
    bytes.clear();
    bytes.reserve(usize::try_from(claim.bytes).unwrap_or(0));
    file.take(claim.bytes.saturating_add(1))
        .read_to_end(bytes)
        .map_err(Error::file(path))?;
    let read = bytes.len() as u64;
    if read != claim.bytes {
        let found = if read > claim.bytes {
            "more bytes than that".to_owned()
        } else {
            let id = ring::digest::digest(&ring::digest::SHA256, bytes);
            format!("{read} bytes, envelope id {}", hex::encode(id.as_ref()))
        };
        return Err(altered(path, claim, &found));
    }
    Ok(())
}

/// The store holds something else than the envelope its record receipted: the receiver
/// verified that one when it arrived, so this is the store's damage, not the site's.
fn altered(path: &Path, claim: &Claim<'_>, found: &str) -> Error {
    Error::Loader {
        what: format!(
            "the stored envelope {} is not the {} packet {} v{} (envelope id {}, {} bytes): it holds {found}",
            path.display(),
            claim.by,
            claim.packet_id,
            claim.version,
            hex::encode(claim.envelope_id),
            claim.bytes
        ),
        hint: "the store was altered or damaged after it was stored — restore the center's data folder from backup \
               (or import the envelopes drive again); the site need not send anything",
    }
}

/// Explains a stored envelope that failed its check: when its bytes are not the receipted
/// ones (hashed only now, on this rare path), the store was altered; otherwise the
/// check's own error stands.
fn explain(path: &Path, claim: &Claim<'_>, e: konvert_crypto::Error) -> Error {
    match read_envelope(path, claim) {
        Ok(bytes) => explain_bytes(path, claim, &bytes, e),
        Err(altered) => altered,
    }
}

/// [`explain`] for the envelope's `bytes` already in hand (the very ones that failed).
fn explain_bytes(path: &Path, claim: &Claim<'_>, bytes: &[u8], e: konvert_crypto::Error) -> Error {
    let d = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
    if d != hex::encode(claim.envelope_id) {
        altered(path, claim, &format!("envelope id {d}"))
    } else {
        e.into()
    }
}

/// The one of `keys` the envelope is sealed to.
fn key_for<'k>(
    keys: &'k [RecipientSecretKey],
    header: &konvert_crypto::EnvelopeHeader,
    claim: &Claim<'_>,
) -> Result<&'k RecipientSecretKey> {
    keys.iter()
        .find(|k| {
            let id = k.public_key().key_id();
            header.recipients.iter().any(|w| w.recipient == id)
        })
        .ok_or_else(|| Error::Loader {
            what: format!(
                "envelope {} is sealed to none of the center keys this specialist holds",
                hex::encode(claim.envelope_id)
            ),
            hint: "wrap the center key it was sealed to for this specialist, or ask a specialist who holds it",
        })
}

/// Opens a stored envelope without following a link or waiting on a FIFO: the store may
/// have been altered, and a FIFO put there would hang the loader for ever.
fn open_envelope(path: &Path) -> Result<fs::File> {
    konvert_replication::drive::open_regular(path).map_err(|e| Error::Loader {
        what: format!("the envelope {} cannot be opened: {e}", path.display()),
        hint: "run the loader against the center's data folder (--config of the center, or a copy of its data \
               folder); a stored envelope that is not a regular file means the store was altered — restore it \
               from backup",
    })
}

/// Opens the stored envelope `claim` names with whichever of `keys` it is sealed to, once
/// [`check_stored`] found it to be the receipted packet, and extracts its files into
/// `files` (`work` holds the decrypted archive meanwhile); the manifest inside must name
/// the same packet and version. Plaintext that did not verify is not kept.
pub fn open_stored(
    data_dir: &Path,
    claim: &Claim<'_>,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    work: &Path,
    files: &Path,
) -> Result<Manifest> {
    let checked = check_stored(data_dir, claim, trusted)?;
    open_checked(&checked, claim, keys, trusted, work, files)
}

/// The second half of [`open_stored`]: decrypts an envelope [`check_stored`] passed.
pub fn open_checked(
    checked: &Checked,
    claim: &Claim<'_>,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    work: &Path,
    files: &Path,
) -> Result<Manifest> {
    let key = key_for(keys, checked.verified().header(), claim)?;
    fs::create_dir_all(work).map_err(Error::file(work))?;
    // Decrypted straight into the archive reader through a pipe, on two threads: the
    // plaintext is never written whole, and decrypting and extracting overlap. The files
    // land in `files` as they come; on any failure the caller removes them (a packet that
    // did not open whole leaves no plaintext).
    let (from_pipe, into_pipe) = std::io::pipe().map_err(Error::file(work))?;
    let (manifest, opened) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_archive(std::io::BufReader::with_capacity(256 << 10, from_pipe), files));
        let opened = (|| {
            let mut sink = std::io::BufWriter::with_capacity(256 << 10, into_pipe);
            match &checked.source {
                Source::Memory(bytes) => envelope::open_bytes(bytes, key, &mut sink)?,
                Source::File(verified) => {
                    let input = std::io::BufReader::with_capacity(256 << 10, open_envelope(&checked.path)?);
                    let v = envelope::open(input, key, trusted, &mut sink)?;
                    // The file may have been swapped since it was checked: the bytes
                    // opened must be the very ones checked.
                    if v.digest() != verified.digest() {
                        return Err(Error::Loader {
                            what: format!("the envelope {} changed while it was opened", checked.path.display()),
                            hint:
                                "make sure nothing writes to the data folder while the loader runs, then run it again",
                        });
                    }
                }
            }
            sink.flush().map_err(Error::from)
        })();
        // The writing end is closed here (dropped above): the reader sees the end.
        let manifest = reader.join().unwrap_or_else(|_| {
            Err(konvert_exam::Error::MalformedArchive(
                "the archive reader stopped".into(),
            ))
        });
        (manifest, opened)
    });
    // The reader stopping first (the archive is bad) shows on this side only as a broken
    // pipe: then its reason is the one; otherwise a failure to open explains a reader that
    // saw the archive cut short.
    let broken_pipe = matches!(
        &opened,
        Err(Error::Crypto(konvert_crypto::Error::Io(e)) | Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe
    );
    let manifest = match (manifest, opened) {
        (Err(e), _) if broken_pipe => return Err(e.into()),
        (_, Err(e)) => return Err(e),
        (manifest, Ok(())) => manifest?,
    };
    agreement::agree_manifest(&checked.packet, checked.verified().header().version, &manifest)
        .map_err(|d| disagrees(claim, &checked.path, &d))?;
    Ok(manifest)
}
