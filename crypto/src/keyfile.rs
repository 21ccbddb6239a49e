//! Secret key files: written atomically with mode 0600, never overwritten by accident.
//! Layout: `"KNVRTKEY"` ‖ kind (1 = Ed25519 seed, 2 = X25519 secret) ‖ 32 key bytes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{Error, RecipientSecretKey, Result, SigningKey};

const MAGIC: &[u8; 8] = b"KNVRTKEY";
const KIND_SIGNING: u8 = 1;
const KIND_RECIPIENT: u8 = 2;
const KEY_FILE_LEN: usize = 8 + 1 + 32;
const MAX_KEY_FILE: u64 = 4096;

fn temp_path(path: &Path) -> Result<PathBuf> {
    let mut suffix = [0u8; 8];
    crate::random_bytes(&mut suffix)?;
    let name = path.file_name().ok_or_else(|| Error::BadFile {
        path: path.to_owned(),
        message: "not a file path".into(),
    })?;
    Ok(path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(suffix))))
}

/// Writes a fresh temp file beside `path` with exactly `mode` (not reduced by the umask),
/// fsynced; removes it again if anything fails.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let tmp = temp_path(path)?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o600)
        .open(&tmp)?;
    let written = (|| {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(tmp)
}

fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the folder),
/// replacing what was there, with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    sync_parent(path)
}

/// Like [`write_atomic`] but refuses to replace an existing file.
pub fn write_new_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    // A hard link fails if the target exists: creation without clobbering, atomically.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::BadFile {
            path: path.to_owned(),
            message: "already exists; refusing to overwrite a key — move it away first if you mean it".into(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Reads a small file whole, refusing anything above `max` bytes before reading it, and
/// anything that is not a regular file: a FIFO would hang the reader for ever and a device
/// (`/dev/zero`) would never end. Links are followed — a config may well be one — but what
/// they lead to is checked on the opened file, not on the path.
pub fn read_bounded(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |message: String| Error::BadFile {
        path: path.to_owned(),
        message,
    };
    // Non-blocking, so opening a FIFO with no writer returns at once instead of waiting.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = f.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.file_type().is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "a FIFO, socket or device"
        };
        return Err(bad(format!(
            "is {what}, not a regular file; give the path of the file itself"
        )));
    }
    let len = meta.len();
    if len > max {
        return Err(bad(format!(
            "{len} bytes is too large for this kind of file (at most {max})"
        )));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(len as usize));
    std::io::Read::read_to_end(&mut std::io::Read::take(f, max + 1), &mut buf).map_err(|e| bad(e.to_string()))?;
    if buf.len() as u64 > max {
        return Err(bad(format!("grew beyond {max} bytes while it was read")));
    }
    Ok(buf)
}

/// The largest config file read (`center.toml`, `site.toml`, `relay.toml`).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The largest exam-day plan the center imports: a whole region's day, a few hundred
/// thousand rows. Parsing TOML takes up to ~130 bytes of heap per byte of text (measured by
/// `tests/tests/fuzz.rs`), so a plan near this bound needs gigabytes while it is read.
pub const MAX_PLAN_BYTES: u64 = 32 << 20;
/// The largest seating plan a site reads: its biggest site seats a few thousand (~100
/// bytes a row). A site's machine is small: at ~130 bytes of heap per byte of TOML, the
/// day plan's bound would let a damaged file take gigabytes there.
pub const MAX_SEATING_BYTES: u64 = 4 << 20;

/// Reads a small UTF-8 text file (a config, a plan) as [`read_bounded`] does.
pub fn read_text_bounded(path: &Path, max: u64) -> Result<String> {
    let bytes = read_bounded(path, max)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::BadFile {
        path: path.to_owned(),
        message: "is not UTF-8 text".into(),
    })
}

fn encode(kind: u8, key: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(KEY_FILE_LEN));
    v.extend_from_slice(MAGIC);
    v.push(kind);
    v.extend_from_slice(key);
    v
}

fn decode(path: &Path, kind: u8) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = read_bounded(path, MAX_KEY_FILE)?;
    let bad = |message: &str| Error::BadFile {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    if bytes.len() < 9 || &bytes[..8] != MAGIC {
        return Err(bad("not a konvert key file (it does not start with \"KNVRTKEY\")"));
    }
    if bytes[8] != KIND_SIGNING && bytes[8] != KIND_RECIPIENT {
        return Err(bad(&format!("unknown key kind {}; not a konvert key file", bytes[8])));
    }
    if bytes[8] != kind {
        return Err(bad(if kind == KIND_SIGNING {
            "holds a recipient key, but a signing key is needed here"
        } else {
            "holds a signing key, but a recipient key is needed here"
        }));
    }
    if bytes.len() != KEY_FILE_LEN {
        return Err(bad(&format!(
            "{} bytes, but a key file has {KEY_FILE_LEN}; the file is damaged",
            bytes.len()
        )));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes[9..]);
    Ok(key)
}

/// Writes a signing key (0600; refuses to overwrite).
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<()> {
    write_new_atomic(path, &encode(KIND_SIGNING, key.seed()), 0o600)
}

/// Reads a signing key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    SigningKey::from_seed(&*decode(path, KIND_SIGNING)?)
}

/// Writes a recipient (decryption) key (0600; refuses to overwrite).
pub fn write_recipient_key(path: &Path, key: &RecipientSecretKey) -> Result<()> {
    write_new_atomic(path, &encode(KIND_RECIPIENT, &key.to_bytes()), 0o600)
}

/// Reads a recipient key.
pub fn read_recipient_key(path: &Path) -> Result<RecipientSecretKey> {
    Ok(RecipientSecretKey::from_bytes(&*decode(path, KIND_RECIPIENT)?))
}

#[cfg(test)]
#[path = "keyfile_tests.rs"]
mod tests;
