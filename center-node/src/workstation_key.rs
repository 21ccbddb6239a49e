//! The loader workstation's own signing key. The offline workstation holds the receiver's
//! receipt key only as its public half, yet its backups need a signed manifest and its
//! audit logs signed checkpoints: this key signs both there. It never signs receipts, and
//! nothing the receiver or a site trusts is signed with it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use konvert_crypto::{keyfile, SigningKey, VerifyingKey};

use crate::config::CenterConfig;
use crate::{Error, Result};

/// Where `loader workstation-key` puts the key unless told otherwise (beside center.toml).
pub const DEFAULT_PATH: &str = "keys/workstation.key";

/// The key that signs this machine's backups and audit checkpoints: the receipt key where
/// this is the receiver (it holds it), else the workstation key center.toml names; `None`
/// on a loader's workstation that has none yet.
pub fn local_signing_key(cfg: &CenterConfig) -> Result<Option<SigningKey>> {
    if let Ok(key) = keyfile::read_signing_key(&cfg.receipt_key) {
        return Ok(Some(key));
    }
    match &cfg.workstation_key {
        Some(path) => Ok(Some(keyfile::read_signing_key(path)?)),
        None => Ok(None),
    }
}

/// The file [`local_signing_key`] reads, for what opens it again later.
pub fn local_signing_key_file(cfg: &CenterConfig) -> Option<PathBuf> {
    if keyfile::read_signing_key(&cfg.receipt_key).is_ok() {
        return Some(cfg.receipt_key.clone());
    }
    cfg.workstation_key.clone()
}

/// The key that signs this machine's backups, or what to do to have one.
pub fn backup_signing_key(cfg: &CenterConfig) -> Result<SigningKey> {
    local_signing_key(cfg)?.ok_or_else(|| {
        Error::Backup(format!(
            "receipt_key = {} is the receipt public key, so this is a loader's workstation, and its backups are \
             signed with a key of its own that center.toml does not name — run `konvert-center loader \
             workstation-key --config …` once (it writes the key and names it in center.toml), then take the \
             backup again; nothing was written",
            cfg.receipt_key.display()
        ))
    })
}

/// The workstation key's public half, when center.toml names one.
pub fn workstation_public(cfg: &CenterConfig) -> Result<Option<VerifyingKey>> {
    match &cfg.workstation_key {
        Some(path) => Ok(Some(keyfile::read_signing_key(path)?.verifying_key())),
        None => Ok(None),
    }
}

/// What `loader workstation-key` made.
#[derive(Debug)]
pub struct Made {
    /// The key file.
    pub path: PathBuf,
    /// Its public half (for the shift log).
    pub public: VerifyingKey,
}

/// Makes the workstation key at `out` (refusing to replace one) and names it in the
/// center.toml at `config` unless that already names a key.
pub fn make(config: &Path, out: Option<&Path>) -> Result<Made> {
    let cfg = CenterConfig::load(config)?;
    if keyfile::read_signing_key(&cfg.receipt_key).is_ok() {
        return Err(Error::Loader {
            what: format!(
                "{} holds the receipt key ({}): this is the receiver, which signs its backups with it",
                config.display(),
                cfg.receipt_key.display()
            ),
            hint: "make the workstation key with the loader workstation's center.toml, whose receipt_key names \
                   keys/receipt.pub",
        });
    }
    if let Some(named) = &cfg.workstation_key {
        return Err(Error::Loader {
            what: format!(
                "{} already names a workstation key ({})",
                config.display(),
                named.display()
            ),
            hint: "keep it: backups taken with it are restored with it; to replace a lost key, remove the \
                   workstation_key line from center.toml first",
        });
    }
    let base = config.parent().unwrap_or(Path::new("."));
    let relative = out.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf);
    let path = if relative.is_relative() {
        base.join(&relative)
    } else {
        relative.clone()
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::file(dir))?;
    }
    let key = SigningKey::generate()?;
    // write_signing_key refuses an existing file: a key is never overwritten.
    keyfile::write_signing_key(&path, &key)?;
    name_in_config(config, &relative)?;
    Ok(Made {
        path,
        public: key.verifying_key(),
    })
}

/// Puts `workstation_key = "…"` at the top of center.toml, where a key always belongs to
/// the top level whatever tables follow; the rest of the file stays as the staff wrote it.
fn name_in_config(config: &Path, key: &Path) -> Result<()> {
    let text = keyfile::read_text_bounded(config, keyfile::MAX_CONFIG_BYTES)?;
    let value = toml::Value::String(key.display().to_string());
    let line =
        format!("# The loader workstation's signing key (backups, audit checkpoints).\nworkstation_key = {value}\n");
    let mut out = Vec::with_capacity(line.len() + text.len());
    out.write_all(line.as_bytes()).map_err(Error::file(config))?;
    out.write_all(text.as_bytes()).map_err(Error::file(config))?;
    keyfile::write_atomic(config, &out, 0o644)?;
    // What was written must still be a config this build reads.
    CenterConfig::load(config).map(drop)
}
