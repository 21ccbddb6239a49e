//! The plaintext layout of a room packet, which the edge seals:
//! `"KNVRTPKT"` ‖ manifest length (u32 LE) ‖ postcard(manifest) ‖ the files' bytes,
//! concatenated in manifest order. Streaming both ways; nothing is held whole in memory.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::manifest::valid_file_name;
use crate::{Error, Manifest, Result};

/// Magic bytes that open a packet archive.
pub const ARCHIVE_MAGIC: &[u8; 8] = b"KNVRTPKT";
/// Upper bound on the encoded manifest, checked before allocating.
pub const MAX_MANIFEST_LEN: usize = 16 * 1024 * 1024;

/// Writes the archive of `manifest`'s files from `dir` to `out`; files are re-hashed on
/// the way so a file changed after the manifest was made is caught, not sealed.
pub fn write_archive<W: Write>(manifest: &Manifest, dir: &Path, mut out: W) -> Result<u64> {
    let encoded = postcard::to_allocvec(manifest).map_err(|e| Error::MalformedArchive(e.to_string()))?;
    let len = u32::try_from(encoded.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_MANIFEST_LEN)
        .ok_or_else(|| Error::MalformedArchive("manifest too large".into()))?;
    let sink = Path::new("<packet output>");
    out.write_all(ARCHIVE_MAGIC).map_err(Error::io(sink))?;
    out.write_all(&len.to_le_bytes()).map_err(Error::io(sink))?;
    out.write_all(&encoded).map_err(Error::io(sink))?;
    let mut written = (ARCHIVE_MAGIC.len() + 4 + encoded.len()) as u64;
    let mut buf = vec![0u8; 256 * 1024];
    for file in &manifest.files {
        let path = dir.join(&file.name);
        let f = fs::File::open(&path).map_err(Error::io(&path))?;
        let n =
            copy_hashed(f.take(file.size + 1), &mut out, &mut buf, &file.sha256, file.size).map_err(|e| match e {
                CopyError::Io(source) => Error::Io {
                    path: path.clone(),
                    source,
                },
                CopyError::Mismatch => Error::DigestMismatch {
                    name: file.name.clone(),
                },
            })?;
        written += n;
    }
    Ok(written)
}

enum CopyError {
    Io(io::Error),
    Mismatch,
}

fn copy_hashed<R: Read, W: Write>(
    mut from: R,
    to: &mut W,
    buf: &mut [u8],
    sha256: &[u8; 32],
    size: u64,
) -> std::result::Result<u64, CopyError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = from.read(&mut buf[..want]).map_err(CopyError::Io)?;
        if n == 0 {
            return Err(CopyError::Mismatch);
        }
        ctx.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Io)?;
        left -= n as u64;
    }
    // A file that grew after the manifest was made does not match it either.
    if from.read(&mut buf[..1]).map_err(CopyError::Io)? != 0 || ctx.finish().as_ref() != sha256 {
        return Err(CopyError::Mismatch);
    }
    Ok(size)
}

/// Reads an archive, writing each file into `out_dir` and checking it against the
/// manifest. Returns the manifest.
pub fn read_archive<R: Read>(mut input: R, out_dir: &Path) -> Result<Manifest> {
    let src = Path::new("<packet input>");
    let mut head = [0u8; 12];
    input
        .read_exact(&mut head)
        .map_err(|_| Error::MalformedArchive("shorter than its header".into()))?;
    if &head[..8] != ARCHIVE_MAGIC {
        return Err(Error::MalformedArchive(
            "not a konvert packet archive (bad magic)".into(),
        ));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if len > MAX_MANIFEST_LEN {
        return Err(Error::MalformedArchive(format!(
            "manifest of {len} bytes exceeds {MAX_MANIFEST_LEN}"
        )));
    }
    let mut encoded = vec![0u8; len];
    input
        .read_exact(&mut encoded)
        .map_err(|_| Error::MalformedArchive("manifest is truncated".into()))?;
    let manifest: Manifest =
        postcard::from_bytes(&encoded).map_err(|e| Error::MalformedArchive(format!("manifest: {e}")))?;
    fs::create_dir_all(out_dir).map_err(Error::io(out_dir))?;
    let mut buf = vec![0u8; 256 * 1024];
    for file in &manifest.files {
        if !valid_file_name(&file.name) {
            return Err(Error::MalformedArchive(format!("unsafe file name {:?}", file.name)));
        }
        let path = out_dir.join(&file.name);
        let mut out = fs::File::create(&path).map_err(Error::io(&path))?;
        copy_hashed(
            (&mut input).take(file.size),
            &mut out,
            &mut buf,
            &file.sha256,
            file.size,
        )
        .map_err(|e| match e {
            CopyError::Io(source) => Error::Io {
                path: path.clone(),
                source,
            },
            CopyError::Mismatch => Error::DigestMismatch {
                name: file.name.clone(),
            },
        })?;
    }
    let mut extra = [0u8; 1];
    if input.read(&mut extra).map_err(Error::io(src))? != 0 {
        return Err(Error::MalformedArchive("bytes after the last file".into()));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PacketKind, PacketRef};

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
        let m = Manifest::from_folder(src.path(), packet(), 1).unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.total_bytes(), 300_008);
        assert_eq!(m.packet.packet_id(), "0101-2026-06-01-ege-0012-blanks");
        let mut bytes = Vec::new();
        write_archive(&m, src.path(), &mut bytes).unwrap();
        let out = tempfile::tempdir().unwrap();
        let back = read_archive(&bytes[..], out.path()).unwrap();
        assert_eq!(back, m);
        assert_eq!(fs::read(out.path().join("p2.png")).unwrap(), b"page two");

        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            read_archive(&damaged[..], out.path()),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(read_archive(&bytes[..bytes.len() - 3], out.path()).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_archive(&longer[..], out.path()).is_err());
    }

    #[test]
    fn a_file_changed_after_the_manifest_is_not_sealed() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("p1.tif"), b"original").unwrap();
        let m = Manifest::from_folder(src.path(), packet(), 1).unwrap();
        fs::write(src.path().join("p1.tif"), b"replaced").unwrap();
        assert!(matches!(
            write_archive(&m, src.path(), &mut Vec::new()),
            Err(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn empty_room_is_an_error() {
        let src = tempfile::tempdir().unwrap();
        assert!(matches!(
            Manifest::from_folder(src.path(), packet(), 1),
            Err(Error::EmptyRoom(_))
        ));
    }
}
