//! Synthetic room folders with scan-like files, deterministic from a seed. (Realistic
//! scans with barcodes come with the recognition work; these exercise the transfer.)

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, RngCore, SeedableRng};

/// Writes `pages` files of about `page_bytes` each into `dir`, looking like bilevel scans:
/// long runs of white with noisy strokes, so they compress like real ones.
pub fn write_room(dir: &Path, seed: u64, pages: usize, page_bytes: usize) -> std::io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut paths = Vec::with_capacity(pages);
    let mut row = vec![0u8; 4096];
    for p in 0..pages {
        let path = dir.join(format!("page_{:04}.tif", p + 1));
        let mut w = BufWriter::new(fs::File::create(&path)?);
        let mut left = page_bytes;
        while left > 0 {
            let n = left.min(row.len());
            if rng.gen_bool(0.3) {
                rng.fill_bytes(&mut row[..n]);
            } else {
                row[..n].fill(0xFF);
            }
            w.write_all(&row[..n])?;
            left -= n;
        }
        w.flush()?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes one file of `bytes` uniformly random bytes (incompressible) into `dir`.
pub fn write_random_file(dir: &Path, name: &str, seed: u64, bytes: usize) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let path = dir.join(name);
    let mut w = BufWriter::new(fs::File::create(&path)?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        w.write_all(&buf[..n])?;
        left -= n;
    }
    w.flush()?;
    Ok(path)
}

/// The SHA-256 of a file, as intake takes it (read whole, hashed once).
pub fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    let bytes = fs::read(path)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_room(a.path(), 7, 3, 10_000).unwrap();
        write_room(b.path(), 7, 3, 10_000).unwrap();
        for name in ["page_0001.tif", "page_0003.tif"] {
            let x = fs::read(a.path().join(name)).unwrap();
            assert_eq!(x.len(), 10_000);
            assert_eq!(x, fs::read(b.path().join(name)).unwrap());
        }
    }
}
