//! The loader's key: the center's decryption key, held by center specialists' tokens
//! (see `konvert_crypto::loader_key`). Opening envelopes needs a specialist whose token
//! the registry lists as an Issued center specialist's, and that specialist's PIN.

use std::path::{Path, PathBuf};

use konvert_crypto::registry::{RegistryBody, TokenRole, TokenStatus};
use konvert_crypto::token::TokenFile;
use konvert_crypto::{keyfile, loader_key, RecipientSecretKey, SigningKey};

use crate::{Error, Result};

const SUFFIX: &str = ".loader-key";

fn refuse(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_owned(),
        message,
    }
}

/// Checks that the registry lets `token` hold the loader key: an Issued center
/// specialist's token.
pub fn check_specialist(registry: &RegistryBody, token: &TokenFile, path: &Path) -> Result<()> {
    let record = registry
        .tokens
        .iter()
        .find(|t| t.public.key_id() == token.key_id())
        .ok_or_else(|| {
            refuse(
                path,
                format!(
                    "token {} is not in key registry v{}; the officers must issue it as a specialist's token",
                    token.token_id, registry.version
                ),
            )
        })?;
    if record.role != TokenRole::CenterSpecialist {
        return Err(refuse(
            path,
            format!(
                "token {} is a member's token, not a center specialist's",
                token.token_id
            ),
        ));
    }
    if record.status != TokenStatus::Issued {
        return Err(refuse(
            path,
            format!(
                "token {} is {} ({}) in key registry v{}; only an issued specialist's token opens envelopes",
                token.token_id,
                record.status.as_str(),
                record.status.russian(),
                registry.version
            ),
        ));
    }
    Ok(())
}

/// Wraps the bare key for each unlocked specialist token into `dir`; returns the files.
pub fn wrap_for(dir: &Path, secret: &RecipientSecretKey, tokens: &[(TokenFile, SigningKey)]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (token, key) in tokens {
        let bytes = loader_key::wrap(secret, &token.token_id, key)?;
        let name = format!("{}-{}{SUFFIX}", token.token_id, &secret.public_key().to_string()[..16]);
        let path = dir.join(name.replace(['/', '\\'], "_"));
        keyfile::write_atomic(&path, &bytes, 0o600)?;
        written.push(path);
    }
    Ok(written)
}

/// Unwraps the center keys held for `specialist` in `dir` that the registry still lets
/// open envelopes at `now`, newest (the active key) first.
pub fn unwrap_for(
    dir: &Path,
    registry: &RegistryBody,
    specialist: &SigningKey,
    now_unix_ms: u64,
) -> Result<Vec<RecipientSecretKey>> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::file(dir))? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with(SUFFIX) {
            continue;
        }
        let bytes = keyfile::read_bounded(&path, loader_key::MAX_WRAPPED_LEN as u64)?;
        let header = loader_key::header(&bytes)?;
        if header.token_key != specialist.key_id() || !registry.center_key_opens(&header.center_key, now_unix_ms) {
            continue;
        }
        keys.push(loader_key::unwrap(&bytes, specialist)?);
    }
    let active = registry.active_center_key().copied();
    keys.sort_by_key(|k| Some(k.public_key()) != active);
    if keys.is_empty() {
        return Err(refuse(
            dir,
            "no loader key is wrapped for this specialist's token for a center key still in use; \
             wrap it with `konvert-center loader wrap-key`"
                .into(),
        ));
    }
    Ok(keys)
}

/// Overwrites a bare key file with zeros, syncs it and removes it.
pub fn destroy(path: &Path) -> Result<()> {
    let len = std::fs::metadata(path).map_err(Error::file(path))?.len();
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
    std::fs::write(path, &zeros).map_err(Error::file(path))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::file(path))?;
    std::fs::remove_file(path).map_err(Error::file(path))
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
