//! Envelope files written since the last clean shutdown, checked against their SHA-256 at
//! the next start after one that was not clean.
//!
//! Every envelope is fsynced before it is recorded, so on an honest disk a power cut
//! cannot tear it. A drive that acknowledges a flush it has not made (a write cache
//! without power-loss protection) or a file system that journals only metadata can still
//! leave a file of the right size with zeroed or stale blocks, which a size check passes.
//! Hashing every stored file at each start would read the season's terabytes at the
//! center; hashing what was written since the last clean shutdown reads only what the cut
//! put at risk. Their keys are kept in a sled tree beside the records, made durable with
//! each record, and cleared after the check at start and when the holder closes cleanly.

use std::io::Read;
use std::path::Path;

/// The sled tree of the keys of envelopes written since the last clean shutdown.
pub(crate) const TREE: &str = "written-since-clean-shutdown";

/// Bytes read at a time while hashing.
const READ: usize = 1 << 20;

/// The SHA-256 of the file at `path`, read in pieces.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; READ];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

/// The keys in `tree`, in order.
pub(crate) fn keys(tree: &sled::Tree) -> crate::Result<Vec<sled::IVec>> {
    tree.iter()
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::durable::storage_err)
}
