//! The plaintext of a room packet, which the edge seals — tar-like and streaming both
//! ways, so each scan is read once and nothing is held whole in memory:
//!
//! `"KNVRTPKT"` ‖ per file: `0x01` ‖ u32 LE length ‖ postcard(`{name, size}`) ‖ the file's
//! bytes ‖ then `0x02` ‖ u32 LE length ‖ postcard(`Manifest`) with every file's SHA-256.
//! The manifest comes last because its digests are computed while the files stream.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::valid_file_name;
use crate::{Error, Manifest, ManifestFile, PacketRef, Result, RoomRecord};

/// Magic bytes that open a packet archive.
pub const ARCHIVE_MAGIC: &[u8; 8] = b"KNVRTPKT";
/// Upper bound on an encoded manifest or file entry, checked before allocating.
pub const MAX_MANIFEST_LEN: usize = 16 * 1024 * 1024;

const TAG_FILE: u8 = 1;
const TAG_MANIFEST: u8 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    name: String,
    size: u64,
}

fn record(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(5 + body.len());
    r.push(tag);
    r.extend_from_slice(&(body.len() as u32).to_le_bytes());
    r.extend_from_slice(body);
    r
}

enum Stage {
    /// Emitting bytes from `pending` (magic, an entry header or the manifest).
    Header,
    /// Streaming the body of the current file, hashing it unless its digest is known.
    Body {
        file: fs::File,
        left: u64,
        ctx: Option<Box<ring::digest::Context>>,
    },
    Done,
}

/// One file to put into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSource {
    /// The name inside the packet.
    pub name: String,
    /// Where the bytes are.
    pub path: PathBuf,
    /// How many bytes to take.
    pub size: u64,
    /// The SHA-256 the file had when this station took it in, if known: then the manifest
    /// takes it as it is and the file is not hashed again. Such a file is the station's own
    /// spool copy, named by that digest and fsynced before it was journaled; should it be
    /// damaged since, the center's check of every file against the manifest finds it and
    /// the loader's answer asks for a rescan. Unknown, the file is hashed as it is read.
    pub sha256: Option<[u8; 32]>,
}

/// The archive of a room's files as a `Read`: each scan is read once, straight into the
/// caller's buffer, and hashed on the way; the manifest with the digests is the last
/// record. After the end, [`ArchiveReader::manifest`] returns it.
pub struct ArchiveReader {
    files: Vec<ArchiveSource>,
    next: usize,
    pending: Vec<u8>,
    pos: usize,
    stage: Stage,
    manifest: Manifest,
    finished: bool,
}

impl ArchiveReader {
    /// Starts an archive of `files` (name, size) from `dir` for this packet version.
    pub fn new(packet: PacketRef, version: u32, dir: &Path, files: &[(String, u64)]) -> Self {
        let sources = files
            .iter()
            .map(|(name, size)| ArchiveSource {
                name: name.clone(),
                path: dir.join(name),
                size: *size,
                sha256: None,
            })
            .collect();
        Self::from_sources(packet, version, sources)
    }

    /// Starts an archive of files that may live anywhere, under their packet names.
    pub fn from_sources(packet: PacketRef, version: u32, files: Vec<ArchiveSource>) -> Self {
        let manifest = Manifest {
            packet,
            version,
            files: Vec::with_capacity(files.len()),
            room: None,
        };
        ArchiveReader {
            files,
            next: 0,
            pending: ARCHIVE_MAGIC.to_vec(),
            pos: 0,
            stage: Stage::Header,
            manifest,
            finished: false,
        }
    }

    /// Seals `record` (page recognition and completeness) into the manifest.
    pub fn with_room_record(mut self, record: RoomRecord) -> Self {
        self.manifest.room = Some(record);
        self
    }

    /// The manifest, once the whole archive was read.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.finished.then_some(&self.manifest)
    }

    /// Moves to the next record once `pending` is drained.
    fn advance(&mut self) -> Result<()> {
        if self.next < self.files.len() {
            let source = &self.files[self.next];
            if !valid_file_name(&source.name) {
                return Err(Error::InvalidId {
                    what: "file name",
                    value: source.name.clone(),
                    hint: "a plain file name",
                });
            }
            let file = fs::File::open(&source.path).map_err(Error::io(&source.path))?;
            let size = source.size;
            let entry = postcard::to_allocvec(&Entry {
                name: source.name.clone(),
                size,
            })
            .map_err(|e| Error::MalformedArchive(e.to_string()))?;
            self.pending = record(TAG_FILE, &entry);
            self.pos = 0;
            self.stage = Stage::Body {
                file,
                left: size,
                ctx: match source.sha256 {
                    Some(_) => None,
                    None => Some(Box::new(ring::digest::Context::new(&ring::digest::SHA256))),
                },
            };
        } else if !self.finished && matches!(self.stage, Stage::Header) {
            let encoded = postcard::to_allocvec(&self.manifest).map_err(|e| Error::MalformedArchive(e.to_string()))?;
            self.pending = record(TAG_MANIFEST, &encoded);
            self.pos = 0;
            self.stage = Stage::Done;
        }
        Ok(())
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match &mut self.stage {
                Stage::Header => self.advance()?,
                Stage::Body { file, left, ctx } => {
                    let source = &self.files[self.next];
                    if *left == 0 {
                        let sha256 = match (ctx.take(), source.sha256) {
                            (_, Some(known)) => known,
                            (Some(ctx), None) => {
                                let mut sha256 = [0u8; 32];
                                sha256.copy_from_slice(ctx.finish().as_ref());
                                sha256
                            }
                            (None, None) => {
                                return Err(Error::MalformedArchive(format!("{} was read unhashed", source.name)))
                            }
                        };
                        self.manifest.files.push(ManifestFile {
                            name: source.name.clone(),
                            size: source.size,
                            sha256,
                        });
                        self.next += 1;
                        self.stage = Stage::Header;
                        continue;
                    }
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want]).map_err(Error::io(&source.path))?;
                    if n == 0 {
                        return Err(Error::ChangedWhileSealing {
                            name: source.name.clone(),
                        });
                    }
                    if let Some(ctx) = ctx {
                        ctx.update(&buf[..n]);
                    }
                    *left -= n as u64;
                    return Ok(n);
                }
                Stage::Done => {
                    self.finished = true;
                    return Ok(0);
                }
            }
        }
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_inner(buf).map_err(io::Error::other)
    }
}

/// Writes the archive of `files` (name, size) from `dir` to `out` and returns its
/// manifest. A file that is shorter than listed (changed while sealing) is an error;
/// nothing past the listed size is read.
pub fn write_archive<W: Write>(
    packet: PacketRef,
    version: u32,
    dir: &Path,
    files: &[(String, u64)],
    mut out: W,
) -> Result<Manifest> {
    let mut reader = ArchiveReader::new(packet, version, dir, files);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read_inner(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(Error::io("<packet output>"))?;
    }
    Ok(reader.manifest)
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
    Short,
}

/// Copies exactly `size` bytes, returning their SHA-256.
fn copy_hashed<R: Read, W: Write>(
    mut from: R,
    to: &mut W,
    buf: &mut [u8],
    size: u64,
) -> std::result::Result<[u8; 32], CopyError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = from.read(&mut buf[..want]).map_err(CopyError::Read)?;
        if n == 0 {
            return Err(CopyError::Short);
        }
        ctx.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        left -= n as u64;
    }
    let mut d = [0u8; 32];
    d.copy_from_slice(ctx.finish().as_ref());
    Ok(d)
}

fn get_record<R: Read>(input: &mut R) -> Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(Error::MalformedArchive("truncated record header".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Io {
                    path: "<packet input>".into(),
                    source: e,
                })
            }
        }
    }
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_MANIFEST_LEN {
        return Err(Error::MalformedArchive(format!(
            "record of {len} bytes exceeds {MAX_MANIFEST_LEN}"
        )));
    }
    let mut body = vec![0u8; len];
    input
        .read_exact(&mut body)
        .map_err(|_| Error::MalformedArchive("truncated record".into()))?;
    Ok(Some((head[0], body)))
}

/// Reads an archive, writing each file into `out_dir`, and checks every file against the
/// manifest at its end. Returns the manifest.
pub fn read_archive<R: Read>(mut input: R, out_dir: &Path) -> Result<Manifest> {
    check_magic(&mut input)?;
    fs::create_dir_all(out_dir).map_err(Error::io(out_dir))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen: Vec<ManifestFile> = Vec::new();
    loop {
        match next_record(&mut input, &seen)? {
            Record::File(entry) => {
                let path = out_dir.join(&entry.name);
                let mut out = fs::File::create(&path).map_err(Error::io(&path))?;
                let sha256 = copy_hashed((&mut input).take(entry.size), &mut out, &mut buf, entry.size).map_err(
                    |e| match e {
                        CopyError::Read(source) => Error::Io {
                            path: "<packet input>".into(),
                            source,
                        },
                        CopyError::Write(source) => Error::Io {
                            path: path.clone(),
                            source,
                        },
                        CopyError::Short => Error::MalformedArchive(format!("file {} is truncated", entry.name)),
                    },
                )?;
                seen.push(ManifestFile {
                    name: entry.name,
                    size: entry.size,
                    sha256,
                });
            }
            Record::Manifest(manifest) => {
                check_digests(&manifest, &seen)?;
                return Ok(*manifest);
            }
        }
    }
}

/// Reads an archive held in memory without copying it: every file is checked against the
/// manifest at the end, as [`read_archive`] does. Returns the manifest and where each of
/// its files lies in `plain`, in manifest order.
pub fn parse_archive(plain: &[u8]) -> Result<(Manifest, Vec<std::ops::Range<usize>>)> {
    let mut input = plain;
    check_magic(&mut input)?;
    // The structure first, then the files hashed (the loader checks the signature on the
    // other core meanwhile).
    let mut seen: Vec<ManifestFile> = Vec::new();
    let mut ranges = Vec::new();
    let manifest = loop {
        match next_record(&mut input, &seen)? {
            Record::File(entry) => {
                let start = plain.len() - input.len();
                let size = usize::try_from(entry.size).unwrap_or(usize::MAX);
                if size > input.len() {
                    return Err(Error::MalformedArchive(format!("file {} is truncated", entry.name)));
                }
                input = &input[size..];
                seen.push(ManifestFile {
                    name: entry.name,
                    size: entry.size,
                    sha256: [0; 32],
                });
                ranges.push(start..start + size);
            }
            Record::Manifest(manifest) => break manifest,
        }
    };
    for (file, range) in seen.iter_mut().zip(&ranges) {
        file.sha256 = sha256(&plain[range.clone()]);
    }
    check_digests(&manifest, &seen)?;
    Ok((*manifest, ranges))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    d
}

fn check_magic<R: Read>(input: &mut R) -> Result<()> {
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|_| Error::MalformedArchive("shorter than its magic".into()))?;
    if &magic != ARCHIVE_MAGIC {
        return Err(Error::MalformedArchive(
            "not a konvert packet archive (bad magic)".into(),
        ));
    }
    Ok(())
}

/// Every file the archive held (`got`, in order) is the one the manifest lists there.
fn check_digests(manifest: &Manifest, got: &[ManifestFile]) -> Result<()> {
    for (listed, got) in manifest.files.iter().zip(got) {
        if listed != got {
            return Err(Error::DigestMismatch { name: got.name.clone() });
        }
    }
    Ok(())
}

/// The next record of an archive: a file whose bytes follow, or the manifest, which must
/// be the last record and list as many files as were `seen` (their digests are the
/// caller's to compare, [`check_digests`]).
enum Record {
    File(Entry),
    Manifest(Box<Manifest>),
}

fn next_record<R: Read>(input: &mut R, seen: &[ManifestFile]) -> Result<Record> {
    let Some((tag, body)) = get_record(input)? else {
        return Err(Error::MalformedArchive("the archive ends without its manifest".into()));
    };
    match tag {
        TAG_FILE => {
            let entry: Entry =
                postcard::from_bytes(&body).map_err(|e| Error::MalformedArchive(format!("file entry: {e}")))?;
            if !valid_file_name(&entry.name) || seen.iter().any(|f| f.name == entry.name) {
                return Err(Error::MalformedArchive(format!(
                    "unsafe or repeated file name {:?}",
                    entry.name
                )));
            }
            Ok(Record::File(entry))
        }
        TAG_MANIFEST => {
            let manifest: Manifest =
                postcard::from_bytes(&body).map_err(|e| Error::MalformedArchive(format!("manifest: {e}")))?;
            if get_record(input)?.is_some() {
                return Err(Error::MalformedArchive("records after the manifest".into()));
            }
            if manifest.files.len() != seen.len() {
                return Err(Error::MalformedArchive(format!(
                    "the manifest lists {} files, the archive holds {}",
                    manifest.files.len(),
                    seen.len()
                )));
            }
            Ok(Record::Manifest(Box::new(manifest)))
        }
        other => Err(Error::MalformedArchive(format!("unknown record type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::list_scans;
    use crate::PacketKind;

    fn packet() -> PacketRef {
        PacketRef {
            site: "0101".parse().unwrap(),
            date: "2026-06-01".parse().unwrap(),
            exam: crate::ExamKind::Ege,
            room: "0012".parse().unwrap(),
            kind: PacketKind::Blanks,
        }
    }

    #[test]
    fn archive_round_trip_and_damage_detected() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("p1.tif"), vec![1u8; 300_000]).unwrap();
        fs::write(src.path().join("p2.png"), b"page two").unwrap();
        fs::write(src.path().join(".hidden"), b"x").unwrap();
        let files = list_scans(src.path()).unwrap();
        assert_eq!(files.len(), 2);
        let mut bytes = Vec::new();
        let m = write_archive(packet(), 1, src.path(), &files, &mut bytes).unwrap();
        assert_eq!(m.total_bytes(), 300_008);
        assert_eq!(m.packet.packet_id(), "0101-2026-06-01-ege-0012-blanks");
        let out = tempfile::tempdir().unwrap();
        let back = read_archive(&bytes[..], out.path()).unwrap();
        assert_eq!(back, m);
        assert_eq!(fs::read(out.path().join("p2.png")).unwrap(), b"page two");

        // A flipped byte inside the first file's contents.
        let mut damaged = bytes.clone();
        damaged[100] ^= 1;
        assert!(matches!(
            read_archive(&damaged[..], out.path()),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(read_archive(&bytes[..bytes.len() - 3], out.path()).is_err());
        assert!(read_archive(&bytes[..200_000], out.path()).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_archive(&longer[..], out.path()).is_err());

        // In memory: the same manifest, the files where they lie, the same refusals.
        let (parsed, ranges) = parse_archive(&bytes).unwrap();
        assert_eq!(parsed, m);
        assert_eq!(&bytes[ranges[0].clone()], &[1u8; 300_000][..]);
        assert_eq!(&bytes[ranges[1].clone()], b"page two");
        assert!(matches!(parse_archive(&damaged), Err(Error::DigestMismatch { .. })));
        for cut in [3, 200_000, bytes.len() - 10, bytes.len() - 1] {
            assert!(parse_archive(&bytes[..bytes.len() - cut]).is_err(), "cut {cut}");
        }
        assert!(parse_archive(&longer).is_err());
        assert!(parse_archive(b"KNVRTPK").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
        /// Arbitrary damage: both readers give an error or the same manifest, never a panic.
        #[test]
        fn both_readers_agree_on_damaged_archives(at in 0usize..400, byte in proptest::prelude::any::<u8>(), cut in 0usize..50) {
            let src = tempfile::tempdir().unwrap();
            fs::write(src.path().join("p1.tif"), vec![3u8; 100]).unwrap();
            fs::write(src.path().join("p2.png"), b"page two").unwrap();
            let files = list_scans(src.path()).unwrap();
            let mut bytes = Vec::new();
            write_archive(packet(), 1, src.path(), &files, &mut bytes).unwrap();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            let out = tempfile::tempdir().unwrap();
            let streamed = read_archive(&bytes[..], out.path()).ok();
            let parsed = parse_archive(&bytes).ok().map(|(m, _)| m);
            proptest::prop_assert_eq!(streamed, parsed);
        }
    }

    #[test]
    fn a_file_that_shrank_while_sealing_is_an_error() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("p1.tif"), b"original").unwrap();
        let files = list_scans(src.path()).unwrap();
        fs::write(src.path().join("p1.tif"), b"short").unwrap();
        let r = write_archive(packet(), 1, src.path(), &files, &mut Vec::new());
        assert!(matches!(r, Err(Error::ChangedWhileSealing { .. })));
    }

    fn archive_of(sources: Vec<ArchiveSource>) -> (Vec<u8>, Option<Manifest>) {
        let mut reader = ArchiveReader::from_sources(packet(), 1, sources);
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        (bytes, reader.manifest().cloned())
    }

    #[test]
    fn a_digest_known_from_intake_is_taken_as_is_and_the_center_finds_a_spool_file_damaged_since() {
        let src = tempfile::tempdir().unwrap();
        let path = src.path().join("p1.tif");
        fs::write(&path, b"the page as scanned").unwrap();
        let source = |known: Option<[u8; 32]>| ArchiveSource {
            name: "p1.tif".into(),
            path: path.clone(),
            size: 19,
            sha256: known,
        };
        let (hashed, hashed_manifest) = archive_of(vec![source(None)]);
        let (reused, reused_manifest) = archive_of(vec![source(Some(sha256(b"the page as scanned")))]);
        assert_eq!(
            reused, hashed,
            "the same archive, whether the digest was computed or reused"
        );
        assert_eq!(reused_manifest, hashed_manifest);
        assert!(parse_archive(&reused).is_ok());

        // The spool copy changed after intake (a damaged disk): the manifest carries the
        // intake digest, and the center's reading of the archive refuses the file.
        let (damaged, manifest) = archive_of(vec![source(Some(sha256(b"the page as scanned, then")))]);
        assert_eq!(
            manifest.map(|m| m.files[0].sha256),
            Some(sha256(b"the page as scanned, then"))
        );
        assert!(parse_archive(&damaged).is_err());
        let out = tempfile::tempdir().unwrap();
        assert!(read_archive(&damaged[..], out.path()).is_err());
    }

    #[test]
    fn empty_room_is_an_error() {
        let src = tempfile::tempdir().unwrap();
        assert!(matches!(list_scans(src.path()), Err(Error::EmptyRoom(_))));
    }
}
