//! Sealing a room: the room folder's scans → archive (manifest + files) → envelope
//! signed with the member's token key and encrypted to the center → the outbox.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use konvert_crypto::envelope::{self, SealRequest};
use konvert_crypto::SigningKey;
use konvert_exam::PacketRef;
use konvert_replication::{Offer, Outbox, OutboxEntry};

use crate::config::SiteConfig;
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

/// Seals the scans in `room_dir` as the next version of `packet` into the outbox.
/// `now_unix_ms` is recorded as the sealing time (a claim the center never trusts).
pub fn seal_room(
    cfg: &SiteConfig,
    outbox: &Outbox,
    signer: &SigningKey,
    room_dir: &Path,
    packet: PacketRef,
    now_unix_ms: u64,
) -> Result<SealedPacket> {
    if packet.site != cfg.site {
        return Err(Error::Config {
            path: room_dir.to_owned(),
            message: format!(
                "the packet is for site {}, but this station is site {}",
                packet.site, cfg.site
            ),
        });
    }
    let packet_id = packet.packet_id();
    let version = outbox.next_version(&packet_id)?;
    let files = konvert_exam::list_scans(room_dir)?;
    let metadata =
        postcard::to_allocvec(&packet).map_err(|e| Error::Push(format!("cannot encode packet metadata: {e}")))?;
    let recipients = [cfg.recipient_key()?];
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
    // The archive is produced on one thread and sealed on this one, through a pipe, so
    // neither the plaintext archive nor the envelope is ever held whole in memory.
    let (reader, writer) = std::io::pipe()?;
    let sealed = std::thread::scope(|s| {
        let archiver = s.spawn(|| {
            let mut w = BufWriter::with_capacity(256 * 1024, writer);
            let manifest = konvert_exam::write_archive(packet.clone(), version, room_dir, &files, &mut w)?;
            w.flush().map_err(|e| konvert_exam::Error::Io {
                path: room_dir.to_owned(),
                source: e,
            })?;
            Ok::<_, konvert_exam::Error>(manifest)
        });
        let mut w = BufWriter::with_capacity(1 << 20, out);
        let summary = envelope::seal(&request, signer, reader, &mut w);
        let flushed = w.flush();
        let archived = archiver.join();
        (summary, flushed, archived)
    });
    let (summary, manifest) = match sealed {
        (Ok(summary), Ok(()), Ok(Ok(manifest))) => (summary, manifest),
        (summary, flushed, archived) => {
            let _ = std::fs::remove_file(&staging);
            // The archive's error explains a truncated plaintext best; report it first.
            return Err(match (archived, summary, flushed) {
                (Ok(Err(e)), _, _) => e.into(),
                (Err(_), _, _) => Error::Push("the archive writer panicked".into()),
                (_, Err(e), _) => e.into(),
                (_, _, Err(e)) => Error::File {
                    path: staging,
                    source: e,
                },
                _ => Error::Push("sealing failed".into()),
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
        deadline_unix_ms: u64::try_from(packet.date.deadline_unix_ms(cfg.utc_offset_minutes)).unwrap_or(0),
    };
    let label = format!("room {} {}", packet.room, packet.kind.code());
    let entry = outbox.add(&staging, offer, label)?;
    Ok(SealedPacket {
        entry,
        files: manifest.files.len(),
        scan_bytes: manifest.total_bytes(),
    })
}
