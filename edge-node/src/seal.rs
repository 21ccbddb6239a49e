//! Sealing a room: the room folder's scans → archive (manifest + files) → envelope
//! signed with the member's token key and encrypted to the center → the outbox.
//! [`MemberToken`] is the member's token as site.toml names it: a PIN-protected token
//! file, or a key on a PKCS#11 hardware token (`[pkcs11]`); either unlocks to a
//! [`MemberSigner`].

use std::fs::File;
use std::path::Path;

use konvert_crypto::envelope::{self, SealRequest};
use konvert_crypto::pkcs11::Pkcs11Module;
use konvert_crypto::token::TokenFile;
use konvert_crypto::MemberSigner;
use konvert_exam::{ArchiveReader, ArchiveSource, PacketRef, RoomRecord};
use konvert_replication::{Offer, Outbox, OutboxEntry};

use crate::config::{Pkcs11Token, SiteConfig};
use crate::{Error, Result};

/// What sealing a room produced.
#[derive(Debug, Clone)]
pub struct SealedPacket {
    /// The outbox entry.
    pub entry: OutboxEntry,
    /// Number of scan files sealed.
    pub files: usize,
    /// Bytes of scans sealed.
    pub scan_bytes: u64,
}

impl std::fmt::Display for SealedPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sealed {} v{}: {} files, {:.1} MB",
            self.entry.offer.packet_id,
            self.entry.offer.version,
            self.files,
            self.scan_bytes as f64 / 1e6
        )
    }
}

/// The member's token this station signs with, before the PIN.
#[derive(Debug)]
pub enum MemberToken {
    /// A PIN-protected token file.
    File(TokenFile),
    /// A key on a PKCS#11 hardware token.
    Pkcs11 {
        /// The loaded module.
        module: Pkcs11Module,
        /// Which token and key.
        token: Pkcs11Token,
    },
}

impl MemberToken {
    /// The token site.toml names (reads the file or loads the module; asks no PIN).
    pub fn open(cfg: &SiteConfig) -> Result<MemberToken> {
        match &cfg.pkcs11 {
            Some(t) => Ok(MemberToken::Pkcs11 {
                module: Pkcs11Module::load(&t.module)?,
                token: t.clone(),
            }),
            None => Ok(MemberToken::File(TokenFile::read(cfg.token_file()?)?)),
        }
    }

    /// Names the token for the PIN prompt (with the tries left, for a token file).
    pub fn describe(&self) -> String {
        match self {
            MemberToken::File(t) => match t.remaining_tries() {
                Ok(n) if n < konvert_crypto::MAX_PIN_TRIES => {
                    format!("member token {} ({}), {n} tries left", t.token_id, t.holder)
                }
                _ => format!("member token {} ({})", t.token_id, t.holder),
            },
            MemberToken::Pkcs11 { token, .. } => format!("hardware token {}", token.token_label),
        }
    }

    /// The token's id as the registry knows it: the token file's id, or the hardware
    /// token's label.
    pub fn token_id(&self) -> &str {
        match self {
            MemberToken::File(t) => &t.token_id,
            MemberToken::Pkcs11 { token, .. } => &token.token_label,
        }
    }

    /// Unlocks the member's key with the PIN.
    pub fn unlock(&self, pin: &str) -> Result<Box<dyn MemberSigner>> {
        Ok(match self {
            MemberToken::File(t) => Box::new(t.unlock(pin)?),
            MemberToken::Pkcs11 { module, token } => {
                Box::new(module.login(&token.token_label, &token.key_label, pin)?)
            }
        })
    }
}

/// Seals the scans in `room_dir` as the next version of `packet` into the outbox.
/// `now_unix_ms` is recorded as the sealing time (a claim the center never trusts).
pub fn seal_room(
    cfg: &SiteConfig,
    outbox: &Outbox,
    signer: &dyn MemberSigner,
    room_dir: &Path,
    packet: PacketRef,
    now_unix_ms: u64,
) -> Result<SealedPacket> {
    let files = konvert_exam::list_scans(room_dir)?;
    let sources = files
        .into_iter()
        .map(|(name, size)| ArchiveSource {
            path: room_dir.join(&name),
            name,
            size,
            sha256: None,
        })
        .collect();
    seal_sources(cfg, outbox, signer, packet, sources, None, now_unix_ms)
}

/// Checks a room folder before a PIN is asked and anything is sealed: every file has
/// bytes, and a packet of scans (forms, blanks, test) holds only files that read as TIFF
/// or PNG scans — a text file or an empty file dropped into a room folder is named, not
/// sealed and sent to the center as a "scan".
pub fn check_room_files(room_dir: &Path, kind: konvert_exam::PacketKind) -> Result<()> {
    use konvert_exam::PacketKind;
    let scans = matches!(kind, PacketKind::Forms | PacketKind::Blanks | PacketKind::Test);
    for (name, size) in konvert_exam::list_scans(room_dir)? {
        let path = room_dir.join(&name);
        if size == 0 {
            return Err(Error::NotSealable {
                path,
                what: "the file is empty (0 bytes)".into(),
                hint: "a scan that was never written; scan the pages again, or take the file out of the folder",
            });
        }
        if scans {
            let bytes = std::fs::read(&path).map_err(Error::file(&path))?;
            if let Err(e) = konvert_exam::scan::read_scan_pages(&bytes) {
                return Err(Error::NotSealable {
                    path,
                    what: format!("not a scan for a {} packet ({e})", kind.code()),
                    hint: "forms, blanks and test packets hold TIFF or PNG scans only; take the file out \
                           of the folder, or seal it as the kind it is (--kind journal for station logs, \
                           --kind audio for recordings)",
                });
            }
        }
    }
    Ok(())
}

/// The center key to seal to: the active one of the newest registry the station holds
/// (even an expired one knows the newest key), else the one the site was enrolled with.
fn sealing_key(cfg: &SiteConfig) -> Result<konvert_crypto::RecipientPublicKey> {
    let from_registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)?
        .last_known()?
        .and_then(|body| body.active_center_key().copied());
    match from_registry {
        Some(key) => Ok(key),
        None => cfg.recipient_key(),
    }
}

/// Seals `sources` as the next version of `packet` into the outbox, with the page
/// records and completeness of the room in the manifest when given.
pub fn seal_sources(
    cfg: &SiteConfig,
    outbox: &Outbox,
    signer: &dyn MemberSigner,
    packet: PacketRef,
    sources: Vec<ArchiveSource>,
    record: Option<RoomRecord>,
    now_unix_ms: u64,
) -> Result<SealedPacket> {
    if packet.site != cfg.site {
        return Err(Error::Config {
            path: cfg.data_dir.clone(),
            message: format!(
                "the packet is for site {}, but this station is site {}",
                packet.site, cfg.site
            ),
        });
    }
    let packet_id = packet.packet_id();
    let version = outbox.next_version(&packet_id)?;
    let metadata =
        postcard::to_allocvec(&packet).map_err(|e| Error::Push(format!("cannot encode packet metadata: {e}")))?;
    let recipients = [sealing_key(cfg)?];
    // Everything that can fail on the inputs is checked before the envelope is written, so
    // a refusal leaves no half-made file behind.
    let deadline_unix_ms = u64::try_from(cfg.time_zone.deadline_unix_ms(packet.date)?).unwrap_or(0);
    let request = SealRequest {
        packet_id: &packet_id,
        version,
        sender_site: cfg.site.as_str(),
        sealed_at_unix_ms: now_unix_ms,
        metadata: &metadata,
        recipients: &recipients,
    };
    let staging = outbox.staging_path(&packet_id, version);
    let out = File::create(&staging).map_err(Error::file(&staging))?;
    // The archive is a reader over the room's files, so each scan is read once, straight
    // into the sealer's chunk buffer; neither archive nor envelope is ever held whole.
    let mut archive = ArchiveReader::from_sources(packet.clone(), version, sources);
    if let Some(record) = record {
        archive = archive.with_room_record(record);
    }
    let sealed = envelope::seal(&request, signer, &mut archive, out);
    let (summary, manifest) = match (sealed, archive.manifest()) {
        (Ok(summary), Some(manifest)) => (summary, manifest.clone()),
        (result, _) => {
            let _ = std::fs::remove_file(&staging);
            return Err(match result {
                Err(e) => e.into(),
                Ok(_) => Error::Push("the packet archive ended early".into()),
            });
        }
    };
    let offer = Offer {
        packet_id: packet_id.clone(),
        version,
        size: summary.envelope_bytes,
        digest: summary.digest,
        priority: packet.kind.priority(),
        sealed_at_unix_ms: now_unix_ms,
        deadline_unix_ms,
    };
    let label = format!("room {} {}", packet.room, packet.kind.code());
    let entry = outbox.add(&staging, offer, label)?;
    Ok(SealedPacket {
        entry,
        files: manifest.files.len(),
        scan_bytes: manifest.total_bytes(),
    })
}
