//! The loader's key: the center's decryption key, held by center specialists' tokens —
//! token files or hardware tokens (see `konvert_crypto::loader_key`). Opening envelopes
//! needs a specialist whose token the registry lists as an Issued center specialist's,
//! and that specialist's PIN. The key is born wrapped (`crate::center_key`); no bare copy
//! of it is ever written.

use std::path::{Path, PathBuf};

use konvert_crypto::loader_key::Specialist;
use konvert_crypto::registry::{RegistryBody, TokenRecord, TokenRole, TokenStatus};
use konvert_crypto::token::TokenFile;
use konvert_crypto::{keyfile, loader_key, KeyId, RecipientPublicKey, RecipientSecretKey};

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
    check_specialist_key(registry, token.key_id(), &format!("token {}", token.token_id), path).map(|_| ())
}

/// Checks that the registry lets the token whose key is `key` hold the loader key (an
/// Issued center specialist's token) and returns its token id. `who` names the token in
/// errors, `path` where it was found.
pub fn check_specialist_key(registry: &RegistryBody, key: KeyId, who: &str, path: &Path) -> Result<String> {
    specialist_record(registry, key, who, path).map(|r| r.token_id.clone())
}

/// The registry's record of the token whose key is `key`, if it lets that token hold the
/// loader key (an Issued center specialist's token).
pub fn specialist_record<'r>(
    registry: &'r RegistryBody,
    key: KeyId,
    who: &str,
    path: &Path,
) -> Result<&'r TokenRecord> {
    let record = registry
        .tokens
        .iter()
        .find(|t| t.public.key_id() == key)
        .ok_or_else(|| {
            refuse(
                path,
                format!(
                    "{who} (key {key}) is not in key registry v{}; the officers must issue it as a specialist's token",
                    registry.version
                ),
            )
        })?;
    if record.role != TokenRole::CenterSpecialist {
        return Err(refuse(
            path,
            format!(
                "token {} is a member's token, not a center specialist's",
                record.token_id
            ),
        ));
    }
    if record.status != TokenStatus::Issued {
        return Err(refuse(
            path,
            format!(
                "token {} is {} ({}) in key registry v{}; only an issued specialist's token opens envelopes",
                record.token_id,
                record.status.as_str(),
                record.status.russian(),
                registry.version
            ),
        ));
    }
    Ok(record)
}

/// Writes one wrapped key into `dir`, named by token and center key.
pub(crate) fn write_wrapped(
    dir: &Path,
    token_id: &str,
    center_key: &RecipientPublicKey,
    bytes: &[u8],
) -> Result<PathBuf> {
    let name = format!("{token_id}-{}{SUFFIX}", &center_key.to_string()[..16]);
    let path = dir.join(name.replace(['/', '\\'], "_"));
    keyfile::write_atomic(&path, bytes, 0o600)?;
    Ok(path)
}

/// Wraps the center key into `dir` for the specialist's hardware token `token_id`, whose
/// Ed25519 key is `token_key` and X25519 key `agreement_key`; returns the file.
pub fn wrap_for_hardware(
    dir: &Path,
    secret: &RecipientSecretKey,
    token_id: &str,
    token_key: KeyId,
    agreement_key: &RecipientPublicKey,
) -> Result<PathBuf> {
    let bytes = loader_key::wrap_for_hardware(secret, token_id, token_key, agreement_key)?;
    write_wrapped(dir, token_id, &secret.public_key(), &bytes)
}

/// Unwraps the center keys held for `specialist` in `dir` that the registry still lets
/// open envelopes at `now`, newest (the active key) first.
pub fn unwrap_for(
    dir: &Path,
    registry: &RegistryBody,
    specialist: Specialist<'_>,
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
        if header.token_key != specialist.token_key() || !registry.center_key_opens(&header.center_key, now_unix_ms) {
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
             a specialist who holds the key wraps it for this token (`konvert-center loader wrap-key`), \
             or a new key is born for two specialists (`konvert-center loader new-key`)"
                .into(),
        ));
    }
    Ok(keys)
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
