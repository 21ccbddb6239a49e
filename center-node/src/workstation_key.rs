//! The loader workstation's own signing key. The offline workstation holds the receiver's
//! receipt key only as its public half, yet its backups need a signed manifest and its
//! audit logs signed checkpoints: this key signs both there. It never signs receipts, and
//! nothing the receiver or a site trusts is signed with it.

use std::path::{Path, PathBuf};

use konvert_crypto::{keyfile, SigningKey, VerifyingKey};

use crate::config::CenterConfig;
use crate::{Error, Result};

/// Where `loader workstation-key` puts the key unless told otherwise (beside center.toml).
pub const DEFAULT_PATH: &str = "keys/workstation.key";

/// The receipt key where `receipt_key` names it (the receiver); `None` where it names only
/// its public half (a loader's workstation). A file that is neither — unreadable, damaged
/// — is an error, never taken for a workstation.
fn receipt_signing_key(cfg: &CenterConfig) -> Result<Option<SigningKey>> {
    match keyfile::read_signing_key(&cfg.receipt_key) {
        Ok(key) => Ok(Some(key)),
        // The public half, as the backup's checks read it.
        Err(_) if crate::backup::receipt_public(cfg).is_ok() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The key that signs this machine's backups and audit checkpoints: the receipt key where
/// this is the receiver (it holds it), else the workstation key center.toml names; `None`
/// on a loader's workstation that has none yet.
pub fn local_signing_key(cfg: &CenterConfig) -> Result<Option<SigningKey>> {
    if let Some(key) = receipt_signing_key(cfg)? {
        return Ok(Some(key));
    }
    match &cfg.workstation_key {
        Some(path) => Ok(Some(keyfile::read_signing_key(path)?)),
        None => Ok(None),
    }
}

/// The file [`local_signing_key`] reads, for what opens it again later.
pub fn local_signing_key_file(cfg: &CenterConfig) -> Result<Option<PathBuf>> {
    if receipt_signing_key(cfg)?.is_some() {
        return Ok(Some(cfg.receipt_key.clone()));
    }
    Ok(cfg.workstation_key.clone())
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
/// center.toml at `config` unless that already names a key. The new config is checked
/// before anything is written, and the key is removed again if naming it fails.
pub fn make(config: &Path, out: Option<&Path>) -> Result<Made> {
    let cfg = CenterConfig::load(config)?;
    if receipt_signing_key(&cfg)?.is_some() {
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
                   workstation_key line from center.toml and move the old key file away first",
        });
    }
    let base = config.parent().unwrap_or(Path::new("."));
    let relative = out.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf);
    let path = if relative.is_relative() {
        base.join(&relative)
    } else {
        relative.clone()
    };
    let named = named_in_config(config, &relative)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::file(dir))?;
    }
    let key = SigningKey::generate()?;
    // write_signing_key refuses an existing file: a key is never overwritten.
    keyfile::write_signing_key(&path, &key)?;
    if let Err(e) = keyfile::write_atomic(config, named.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&path);
        return Err(Error::Loader {
            what: format!("cannot write {}: {e}", config.display()),
            hint: "make center.toml and its folder writable for this account, then run the command again \
                   (the key just made was removed)",
        });
    }
    Ok(Made {
        path,
        public: key.verifying_key(),
    })
}

/// center.toml with `workstation_key = "…"` put at its top, where a key always belongs to
/// the top level whatever tables follow; the rest stays as the staff wrote it. Checked to
/// be a config this build reads before it is written.
fn named_in_config(config: &Path, key: &Path) -> Result<String> {
    let text = keyfile::read_text_bounded(config, keyfile::MAX_CONFIG_BYTES)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let value = toml::Value::String(key.display().to_string());
    let named = format!(
        "# The loader workstation's signing key (backups, audit checkpoints).\nworkstation_key = {value}\n{text}"
    );
    toml::from_str::<CenterConfig>(&named).map_err(|e| Error::Config {
        path: config.to_owned(),
        message: format!(
            "naming the workstation key in it would not read back ({}); nothing was written",
            konvert_replication::toml_error(&e, &named)
        ),
    })?;
    Ok(named)
}
