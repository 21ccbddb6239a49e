//! The page images kept for appeals (002:7509–7511) for as long as the records (002:6659),
//! beside the loader's records: each scan file once, named by its SHA-256 (the manifest's
//! file digest), so the same file sent twice is held once. A file is written atomically
//! (temporary file, fsync, rename, fsync of the folder) with mode 0600 in folders of mode
//! 0700, and checked against its name every time it is read: a damaged image is an error,
//! never an appeal's document.
//!
//! The images are in clear, as the records beside them are: the loader's workstation is the
//! offline segment (R11), and the folder is the records' own.
//!
//! Layout: `<records>/images/<first two hex digits>/<64 hex digits>.scan`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The image store's folder in the records' folder.
pub const IMAGES: &str = "images";

/// The scan files held for the records.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::file(path))
}

impl ImageStore {
    /// Opens (or starts) the image store in the records' folder `records_dir`.
    pub fn open(records_dir: &Path) -> Result<Self> {
        let root = records_dir.join(IMAGES);
        private_dir(&root)?;
        Ok(ImageStore { root })
    }

    /// Where the image with this digest lies.
    pub fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha256);
        self.root.join(&hex[..2]).join(format!("{hex}.scan"))
    }

    /// Holds `bytes` as the image `sha256` names; `false` if an intact copy was held
    /// already. Bytes that do not hash to `sha256` are refused, never stored.
    pub fn put(&self, sha: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        if sha256(bytes) != *sha {
            return Err(Error::Loader {
                what: format!(
                    "the scan offered as image {} does not hash to it; it was not kept",
                    hex::encode(sha)
                ),
                hint: "report this as a bug: processing offers only files checked against the manifest",
            });
        }
        if self.verify(sha)? == Some(true) {
            return Ok(false);
        }
        let path = self.path(sha);
        if let Some(parent) = path.parent() {
            private_dir(parent)?;
        }
        // A damaged copy is replaced by the good one.
        konvert_crypto::keyfile::write_atomic(&path, bytes, 0o600)?;
        Ok(true)
    }

    /// Whether a file is held for `sha256` (not checked: see [`verify`](Self::verify)).
    pub fn has(&self, sha256: &[u8; 32]) -> bool {
        fs::symlink_metadata(self.path(sha256)).is_ok_and(|m| m.is_file())
    }

    /// Checks the held image against its name: `None` if none is held, `Some(false)` if
    /// the file is damaged (or is not a regular file).
    pub fn verify(&self, sha: &[u8; 32]) -> Result<Option<bool>> {
        let path = self.path(sha);
        let mut file = match konvert_replication::drive::open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Ok(Some(false)),
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(Error::file(&path))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        Ok(Some(ctx.finish().as_ref() == sha.as_slice()))
    }

    /// Reads the image `sha256` names, at most `max` bytes, checked against its name.
    pub fn read(&self, sha: &[u8; 32], max: u64) -> Result<Vec<u8>> {
        let path = self.path(sha);
        let file = konvert_replication::drive::open_regular(&path).map_err(|e| Error::Loader {
            what: format!("image {} is not held ({}: {e})", hex::encode(sha), path.display()),
            hint: "open the page from its envelope while the store still holds it, or restore the records' folder \
                   from the last backup",
        })?;
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(Error::file(&path))?;
        if bytes.len() as u64 > max || sha256(&bytes) != *sha {
            return Err(Error::Loader {
                what: format!(
                    "the held image {} is damaged: it does not hash to its name",
                    path.display()
                ),
                hint: "restore the records' folder from the last backup; the damaged file is not an appeal's document",
            });
        }
        Ok(bytes)
    }

    /// Deletes the image `sha256` names (its folder is made durable); `false` if none was held.
    pub fn remove(&self, sha: &[u8; 32]) -> Result<bool> {
        let path = self.path(sha);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::file(&path)(e)),
        }
        if let Some(parent) = path.parent() {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(Error::file(parent))?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_image_is_held_once_private_and_checked_on_every_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let scan = b"II*\0 a scan".to_vec();
        let sha = sha256(&scan);
        assert_eq!(store.verify(&sha).unwrap(), None);
        assert!(store.put(&sha, &scan).unwrap());
        assert!(!store.put(&sha, &scan).unwrap(), "held once");
        let path = store.path(&sha);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join(IMAGES)).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(store.read(&sha, 100).unwrap(), scan);
        assert!(store.read(&sha, 3).is_err(), "bounded");
        // Bytes that are not the named image are refused.
        assert!(store.put(&sha, b"something else").is_err());
        // A damaged file is found on reading and verifying, and put replaces it.
        fs::write(&path, b"II*\0 a scam").unwrap();
        assert_eq!(store.verify(&sha).unwrap(), Some(false));
        assert!(store.read(&sha, 100).unwrap_err().to_string().contains("damaged"));
        assert!(store.put(&sha, &scan).unwrap());
        assert_eq!(store.verify(&sha).unwrap(), Some(true));
        assert!(store.remove(&sha).unwrap());
        assert!(!store.remove(&sha).unwrap());
        assert!(!store.has(&sha));
    }
}
