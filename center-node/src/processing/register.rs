//! Registering one stored packet version: check it is the receipted envelope, decrypt it,
//! check every file against the manifest, and recognize every page with the exam crate's
//! recognizer — files spread over the cores. A packet of ordinary size is verified while it
//! is decrypted, in memory, so its scans in clear never touch the disk; a larger one goes
//! through a private scratch folder, emptied once its pages are registered. The images
//! stay retrievable from the sealed envelope in the store (for appeals, 002:7509–7511).
//!
//! A packet the site got wrong (its manifest lies about a digest, it is not an archive)
//! is registered as refused, so that it is answered with a remark once; a failure that is
//! the center's own (no key for it, a full disk) registers nothing and is tried again on
//! the next run.

use std::borrow::Cow;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use konvert_crypto::{KeyId, RecipientSecretKey, VerifyingKey};
use konvert_exam::scan::{read_scan_pages, recognize, Recognition};
use konvert_exam::{Manifest, ManifestFile, PacketKind, PageIdentity, PageStatus};
use konvert_records::{page_digest, ExamDay, ImageRef, Mark, Opening, PacketEntry, PageEntry, PageKey, PageReading};
use konvert_replication::InboxRecord;

use crate::image_keep::ImageKeeper;
use crate::unpack::{check_stored, open_checked, open_stored_in_memory, receipted};
use crate::{Error, Result};

/// Time one page may take to recognize before it goes to a verifier as unreadable.
pub const PAGE_BUDGET: Duration = Duration::from_secs(3);

/// What registering one version produced.
#[derive(Debug)]
pub struct Registered {
    /// The packet entry.
    pub packet: PacketEntry,
    /// Its pages.
    pub pages: Vec<PageEntry>,
    /// The images of its pages now held in the image store (the rule's, [`ImageKeeper`]).
    pub images: Vec<ImageRef>,
    /// The manifest's files (empty for a refused version).
    files: Vec<ManifestFile>,
}

fn manifest_file(done: &Registered, i: usize) -> Result<&ManifestFile> {
    done.files.get(i).ok_or_else(|| Error::Loader {
        what: format!("file {i} of the packet is not in its manifest"),
        hint: "run processing again; report this as a bug if it repeats",
    })
}

/// Opens the stored version `record` and recognizes its pages; `scratch` is a private
/// folder for the scans in clear, emptied before returning.
pub fn register(
    data_dir: &Path,
    record: &InboxRecord,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    scratch: &Path,
    now_unix_ms: u64,
    keeper: Option<&ImageKeeper<'_>>,
) -> Result<Registered> {
    let b = &record.receipt.body;
    let claim = receipted(b);
    let entry = |packet_ref: &konvert_exam::PacketRef, opening| PacketEntry {
        envelope: b.digest,
        site: b.site.clone(),
        packet_id: b.packet_id.clone(),
        version: b.version,
        day: ExamDay {
            date: packet_ref.date,
            exam: packet_ref.exam,
        },
        room: packet_ref.room.clone(),
        kind: packet_ref.kind,
        received_at_unix_ms: b.received_at_unix_ms,
        registered_at_unix_ms: now_unix_ms,
        opening,
    };
    let refused = |packet_ref: &konvert_exam::PacketRef, e: &Error| Registered {
        packet: entry(packet_ref, Opening::Refused { reason: e.to_string() }),
        pages: Vec::new(),
        images: Vec::new(),
        files: Vec::new(),
    };
    let opened = |packet_ref: &konvert_exam::PacketRef, manifest: &Manifest, pages: Vec<PageEntry>| Registered {
        packet: entry(
            packet_ref,
            Opening::Opened {
                files: u32::try_from(manifest.files.len()).unwrap_or(u32::MAX),
                pages: u32::try_from(pages.len()).unwrap_or(u32::MAX),
            },
        ),
        pages,
        images: Vec::new(),
        files: Vec::new(),
    };
    // The images the rule keeps go to the image store while their bytes are in hand.
    let keep = |mut done: Registered, bytes: &FileBytes<'_>| -> Result<Registered> {
        if let Some(keeper) = keeper {
            let whole = |i: usize| bytes(i, manifest_file(&done, i)?);
            done.images = keeper.keep(&done.packet, &done.pages, &whole)?;
        }
        Ok(done)
    };
    // A packet of ordinary size is opened in memory: its scans never touch the disk.
    match open_stored_in_memory(data_dir, &claim, keys, trusted) {
        Ok(Some(packet)) => {
            let bytes = |i: usize, _: &ManifestFile| {
                packet.file(i).map(Cow::Borrowed).ok_or_else(|| Error::Loader {
                    what: format!("file {i} of the packet is missing from what was opened"),
                    hint: "run processing again; report this as a bug if it repeats",
                })
            };
            let pages = recognize_all(&packet.manifest, &bytes, b.digest, packet.packet.kind)?;
            let mut done = opened(&packet.packet, &packet.manifest, pages);
            done.files = packet.manifest.files.clone();
            return keep(done, &bytes);
        }
        Ok(None) => {}
        Err(e) if is_the_packets_fault(&e) => {
            // The packet's description is only known once it checked: check it alone.
            let checked = check_stored(data_dir, &claim, trusted)?;
            return Ok(refused(checked.packet(), &e));
        }
        Err(e) => return Err(e),
    }
    // The signed header names the packet; nothing else is trusted for site, room or day.
    let checked = check_stored(data_dir, &claim, trusted)?;
    let packet_ref = checked.packet().clone();
    let work = scratch.join(hex::encode(b.digest));
    if work.exists() {
        fs::remove_dir_all(&work).map_err(Error::file(&work))?;
    }
    private_dir(&work)?;
    let files = work.join("files");
    let result = match open_checked(&checked, &claim, keys, trusted, &work, &files) {
        Ok(manifest) => {
            let bytes = |_: usize, file: &ManifestFile| {
                // Our own scratch copy, checked against the manifest as it was written; still bounded.
                konvert_crypto::keyfile::read_bounded(&files.join(&file.name), file.size.saturating_add(1))
                    .map(|b| Cow::Owned(b.to_vec()))
                    .map_err(Error::from)
            };
            recognize_all(&manifest, &bytes, b.digest, packet_ref.kind).and_then(|pages| {
                let mut done = opened(&packet_ref, &manifest, pages);
                done.files = manifest.files.clone();
                keep(done, &bytes)
            })
        }
        Err(e) if is_the_packets_fault(&e) => Ok(refused(&packet_ref, &e)),
        Err(e) => Err(e),
    };
    let _ = fs::remove_dir_all(&work);
    result
}

/// Opens the stored version `record` again, registered before as `packet` with `pages`,
/// and keeps in the image store what the rule keeps now (its day's plan came after it was
/// registered, or an image was lost): nothing is recognized again.
#[allow(clippy::too_many_arguments)] // Where, what with, and what is known of it.
pub fn keep_from_envelope(
    data_dir: &Path,
    record: &InboxRecord,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    scratch: &Path,
    keeper: &ImageKeeper<'_>,
    packet: &PacketEntry,
    pages: &[PageEntry],
) -> Result<Vec<ImageRef>> {
    let b = &record.receipt.body;
    let claim = receipted(b);
    if let Some(opened) = open_stored_in_memory(data_dir, &claim, keys, trusted)? {
        let bytes = |i: usize| {
            opened.file(i).map(Cow::Borrowed).ok_or_else(|| Error::Loader {
                what: format!("file {i} of the packet is missing from what was opened"),
                hint: "run processing again; report this as a bug if it repeats",
            })
        };
        return keeper.keep(packet, pages, &bytes);
    }
    let checked = check_stored(data_dir, &claim, trusted)?;
    let work = scratch.join(format!("keep-{}", hex::encode(b.digest)));
    if work.exists() {
        fs::remove_dir_all(&work).map_err(Error::file(&work))?;
    }
    private_dir(&work)?;
    let files = work.join("files");
    let done = open_checked(&checked, &claim, keys, trusted, &work, &files).and_then(|manifest| {
        let bytes = |i: usize| {
            let file = manifest.files.get(i).ok_or_else(|| Error::Loader {
                what: format!("file {i} of the packet is not in its manifest"),
                hint: "the records and the store disagree: restore both from the same backup",
            })?;
            konvert_crypto::keyfile::read_bounded(&files.join(&file.name), file.size.saturating_add(1))
                .map(|b| Cow::Owned(b.to_vec()))
                .map_err(Error::from)
        };
        keeper.keep(packet, pages, &bytes)
    });
    let _ = fs::remove_dir_all(&work);
    done
}

/// Whether an opening error is the packet's (the site must resend) rather than the
/// center's (retry): a manifest that lies, an archive that is not one.
fn is_the_packets_fault(e: &Error) -> bool {
    matches!(
        e,
        Error::Exam(konvert_exam::Error::DigestMismatch { .. } | konvert_exam::Error::MalformedArchive(_))
    )
}

fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::file(path))
}

/// The bytes of a packet's `index`th file, from memory or from a scratch folder.
type FileBytes<'a> = dyn Fn(usize, &ManifestFile) -> Result<Cow<'a, [u8]>> + Sync + 'a;

/// Recognizes every page of every file of `manifest`, files spread over the
/// cores; pages in manifest order.
fn recognize_all(
    manifest: &Manifest,
    bytes: &FileBytes<'_>,
    envelope: [u8; 32],
    kind: PacketKind,
) -> Result<Vec<PageEntry>> {
    let claims: std::collections::BTreeMap<(&str, u32), &PageIdentity> = manifest
        .room
        .iter()
        .flat_map(|r| r.pages.iter())
        .filter_map(|p| match &p.status {
            PageStatus::Read(id) => Some(((p.file.as_str(), p.page), id)),
            PageStatus::Unreadable { .. } => None,
        })
        .collect();
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(usize, Result<Vec<PageEntry>>)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(file) = manifest.files.get(i) else { return };
                let pages = bytes(i, file).and_then(|b| recognize_file(file, &b, i, envelope, kind, &claims));
                if let Ok(mut r) = results.lock() {
                    r.push((i, pages));
                }
            });
        }
    });
    let mut results = results.into_inner().map_err(|_| Error::Loader {
        what: "a recognition thread failed".into(),
        hint: "run processing again; report this as a bug if it repeats",
    })?;
    results.sort_by_key(|(i, _)| *i);
    let mut pages = Vec::new();
    for (_, r) in results {
        pages.extend(r?);
    }
    Ok(pages)
}

/// How the records name a scan file: its place in the packet and the start of its digest,
/// never the name it had at the site.
pub fn scan_label(file_index: u32, sha256: &[u8; 32]) -> String {
    format!("file {} ({})", u64::from(file_index) + 1, hex::encode(&sha256[..4]))
}

fn recognize_file(
    file: &ManifestFile,
    bytes: &[u8],
    index: usize,
    envelope: [u8; 32],
    kind: PacketKind,
    claims: &std::collections::BTreeMap<(&str, u32), &PageIdentity>,
) -> Result<Vec<PageEntry>> {
    let file_index = u32::try_from(index).unwrap_or(u32::MAX);
    let page = |n: u32, reading: PageReading| PageEntry {
        key: PageKey {
            envelope,
            file: file_index,
            page: n,
        },
        // Not the site's file name: a name is what an operator typed (a participant's
        // name, for all we know — R18), and the records keep pages for ten years. The
        // file's place in the packet and its digest find it at the site just as well.
        file_name: scan_label(file_index, &file.sha256),
        file_sha256: file.sha256,
        digest: page_digest(&file.sha256, n),
        site_reading: claims.get(&(file.name.as_str(), n)).map(|id| (*id).clone()),
        reading,
        removed_mark: None,
        early_finish_mark: None,
        written: None,
    };
    let mut out = Vec::new();
    if kind == PacketKind::Audio {
        // A recording is one "page": its KIM number, never the audio.
        out.push(page(
            0,
            match konvert_exam::read_kim(bytes) {
                Ok(kim) => PageReading::Recording {
                    kim: kim.as_str().to_owned(),
                },
                Err(e) => PageReading::NotImage {
                    reason: format!("not a recording: {e}"),
                },
            },
        ));
        return Ok(out);
    }
    let mut pages = match read_scan_pages(bytes) {
        Ok(p) => p,
        Err(e) => {
            out.push(page(0, PageReading::NotImage { reason: e.to_string() }));
            return Ok(out);
        }
    };
    for (n, item) in (0u32..).zip(pages.by_ref()) {
        match item {
            Ok(image) => {
                let mut entry = page(n, PageReading::NotImage { reason: String::new() });
                entry.reading = match recognize(&image, PAGE_BUDGET) {
                    Recognition::Read {
                        identity,
                        orientation,
                        via_fallback,
                        contents,
                    } => {
                        measure(&image, orientation, &identity, &mut entry);
                        PageReading::Read {
                            identity,
                            orientation,
                            via_fallback,
                            contents,
                        }
                    }
                    Recognition::Unreadable { reason } => PageReading::Unreadable { reason },
                };
                out.push(entry);
            }
            Err(e) => {
                // A damaged page: what came before it stands, the rest of the file is
                // one page that is not an image.
                out.push(page(n, PageReading::NotImage { reason: e.to_string() }));
                break;
            }
        }
    }
    if out.is_empty() {
        out.push(page(
            0,
            PageReading::NotImage {
                reason: "the file holds no page".into(),
            },
        ));
    }
    Ok(out)
}

/// The marks a page's kind has: a registration blank's removal and early-finish boxes,
/// an answer page's handwriting. Small crops only, in the orientation recognition found.
fn measure(image: &konvert_exam::scan::PageImage, orientation: u16, identity: &PageIdentity, entry: &mut PageEntry) {
    use konvert_exam::scan::{read_answer_ink, read_marks, AnswerReading, MarkReading};
    use konvert_exam::{BlankKind, MarkBox};
    let PageIdentity::Blank(id) = identity else { return };
    match id.kind {
        BlankKind::Registration => {
            for m in read_marks(image, orientation) {
                let mark = match m.reading {
                    MarkReading::Marked => Mark::Yes,
                    MarkReading::Empty => Mark::No,
                    MarkReading::Unsure => Mark::Unsure,
                };
                match m.mark {
                    MarkBox::Removed => entry.removed_mark = Some(mark),
                    MarkBox::EarlyFinish => entry.early_finish_mark = Some(mark),
                }
            }
        }
        BlankKind::Answer2Sheet1 | BlankKind::Answer2Sheet2 | BlankKind::Additional | BlankKind::EssayWriting => {
            entry.written = Some(match read_answer_ink(image, orientation).reading {
                AnswerReading::Written => Mark::Yes,
                AnswerReading::Empty => Mark::No,
                AnswerReading::Unsure => Mark::Unsure,
            });
        }
        BlankKind::Answer1 => {}
    }
}

/// Writes the image of page `key` of the stored version `record` to `out` as a PNG (for
/// an appeal, 002:7509–7511): the envelope is checked and opened again into `scratch`,
/// and only that page is kept.
pub fn page_image(
    data_dir: &Path,
    record: &InboxRecord,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    scratch: &Path,
    key: &PageKey,
    out: &Path,
) -> Result<()> {
    let b = &record.receipt.body;
    let claim = receipted(b);
    let checked = check_stored(data_dir, &claim, trusted)?;
    let work = scratch.join(format!("page-{}", hex::encode(b.digest)));
    if work.exists() {
        fs::remove_dir_all(&work).map_err(Error::file(&work))?;
    }
    private_dir(&work)?;
    let files = work.join("files");
    let done = (|| {
        let manifest = open_checked(&checked, &claim, keys, trusted, &work, &files)?;
        let file = usize::try_from(key.file)
            .ok()
            .and_then(|i| manifest.files.get(i))
            .ok_or_else(|| Error::Loader {
                what: format!("packet {} v{} has no file {}", b.packet_id, b.version, key.file),
                hint: "take the page key from the records (`konvert-center loader queue` or `findings`)",
            })?;
        let bytes = konvert_crypto::keyfile::read_bounded(&files.join(&file.name), file.size.saturating_add(1))?;
        write_page_png(&bytes, key, &file.name, out)
    })();
    let _ = fs::remove_dir_all(&work);
    done
}

/// Writes page `key` of the scan file `bytes` (named `name`) to `out` as a PNG (0600).
pub fn write_page_png(bytes: &[u8], key: &PageKey, name: &str, out: &Path) -> Result<()> {
    let image = read_scan_pages(bytes)?
        .nth(key.page as usize)
        .ok_or_else(|| Error::Loader {
            what: format!("{name} has no page {}", key.page + 1),
            hint: "take the page key from the records",
        })??;
    let mut png = Vec::new();
    konvert_exam::scan::write_scan(
        std::slice::from_ref(&image),
        konvert_exam::scan::ScanFormat::Png,
        &mut png,
    )?;
    konvert_crypto::keyfile::write_atomic(out, &png, 0o600)?;
    Ok(())
}
