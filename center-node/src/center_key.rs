//! The center's decryption key is born on the loader's workstation: generated in memory,
//! wrapped at once to at least two issued specialists' tokens held by two different people
//! (R5), and never written bare. Only its public half leaves the workstation, on a file
//! the staff carry to the receiver and the officers. A specialist who holds the key can
//! later wrap it for one more token, unwrapping it into memory only.

use std::path::{Path, PathBuf};

use konvert_crypto::loader_key::{self, Specialist};
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::token::TokenFile;
use konvert_crypto::{keyfile, KeyId, RecipientPublicKey, RecipientSecretKey, SigningKey};

use crate::specialist::HardwareRecipient;
use crate::{loader, Error, Result};

/// How many people must hold a new center key (R5: at least two loader tokens).
pub const MIN_HOLDERS: usize = 2;

/// The most bytes a public-half file may have (one line of 64 hex digits).
const MAX_PUBLIC_FILE: u64 = 4096;

/// A specialist's token a center key is wrapped to.
pub enum Holder {
    /// A token file, unlocked with its PIN (its key derives the wrapping key).
    File {
        /// The token file (boxed: it is large beside a hardware token's public keys).
        token: Box<TokenFile>,
        /// Its unlocked key.
        key: SigningKey,
    },
    /// A hardware token: wrapped to its X25519 key; only the token unwraps.
    Hardware(HardwareRecipient),
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Holder({})", self.token_id())
    }
}

impl Holder {
    /// The token's id (serial number).
    pub fn token_id(&self) -> &str {
        match self {
            Holder::File { token, .. } => &token.token_id,
            Holder::Hardware(h) => h.token_id(),
        }
    }

    /// The token's Ed25519 key id, by which the registry knows it.
    pub fn token_key(&self) -> KeyId {
        match self {
            Holder::File { token, .. } => token.key_id(),
            Holder::Hardware(h) => h.identity(),
        }
    }

    /// Wraps `secret` for this token into `dir`. A token file's copy is opened again
    /// before it counts, so a key is never held by a file that does not give it back.
    fn wrap(&self, secret: &RecipientSecretKey, dir: &Path) -> Result<PathBuf> {
        match self {
            Holder::File { token, key } => {
                let sealed = loader_key::wrap(secret, &token.token_id, key)?;
                let path = loader::write_wrapped(dir, &token.token_id, &secret.public_key(), &sealed)?;
                let bytes = keyfile::read_bounded(&path, loader_key::MAX_WRAPPED_LEN as u64)?;
                let back = loader_key::unwrap(&bytes, Specialist::File(key))?;
                if back.public_key() != secret.public_key() {
                    return Err(Error::Loader {
                        what: format!("the key wrapped for token {} does not open again", token.token_id),
                        hint: "check the loader's disk; nothing else was changed",
                    });
                }
                Ok(path)
            }
            Holder::Hardware(h) => h.wrap(secret, dir),
        }
    }
}

/// Each holder's token id and the person the registry binds it to.
pub type HolderList = Vec<(String, String)>;

/// Checks that every holder is an issued specialist's token, none is named twice, and
/// that they belong to at least [`MIN_HOLDERS`] different people; returns each token id
/// with its person.
pub fn check_holders(registry: &RegistryBody, holders: &[Holder], path: &Path) -> Result<HolderList> {
    let tokens: Vec<(KeyId, &str)> = holders.iter().map(|h| (h.token_key(), h.token_id())).collect();
    check_tokens(registry, &tokens, path)
}

/// [`check_holders`] for tokens known by their Ed25519 key id and token id (before any
/// PIN is asked).
pub fn check_tokens(registry: &RegistryBody, tokens: &[(KeyId, &str)], path: &Path) -> Result<HolderList> {
    let refuse = |message: String| Error::Config {
        path: path.to_owned(),
        message,
    };
    let mut list: HolderList = Vec::new();
    for (key, id) in tokens {
        let record = loader::specialist_record(registry, *key, &format!("token {id}"), path)?;
        if list.iter().any(|(id, _)| *id == record.token_id) {
            return Err(refuse(format!(
                "token {} is named twice; name each specialist's token once",
                record.token_id
            )));
        }
        list.push((record.token_id.clone(), record.person.clone()));
    }
    let mut people: Vec<&str> = list.iter().map(|(_, p)| p.as_str()).filter(|p| !p.is_empty()).collect();
    people.sort_unstable();
    people.dedup();
    if list.len() < MIN_HOLDERS {
        return Err(refuse(format!(
            "a new center key must be wrapped at once to the tokens of at least {MIN_HOLDERS} specialists \
             (R5), {} given; name two issued specialists' tokens held by different people \
             (--token FILE, --pkcs11-token LABEL); nothing was generated",
            list.len()
        )));
    }
    if people.len() < MIN_HOLDERS {
        let who = people.first().copied().unwrap_or("nobody");
        return Err(refuse(format!(
            "tokens {} are all held by {who} in key registry v{}; a new center key needs the tokens of at \
             least {MIN_HOLDERS} different people (R5), so that it outlives one lost token or one absent \
             person; name another person's token; nothing was generated",
            list.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", "),
            registry.version
        )));
    }
    Ok(list)
}

/// What [`new_key`] made.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The new key's public half (edges seal to it once the officers publish it).
    pub public: RecipientPublicKey,
    /// The file with the public half, for the receiver and the officers.
    pub public_file: PathBuf,
    /// Each holder's token id and person.
    pub holders: HolderList,
    /// The wrapped copies written, one per holder.
    pub wrapped: Vec<PathBuf>,
}

/// Generates a center key in memory, wraps it into `loader_dir` for every holder (checked
/// with [`check_holders`] first: nothing is generated for fewer than two people), and writes
/// its public half to `public_file`. The bare key is never written anywhere.
pub fn new_key(registry: &RegistryBody, holders: &[Holder], loader_dir: &Path, public_file: &Path) -> Result<NewKey> {
    let list = check_holders(registry, holders, loader_dir)?;
    if public_file.symlink_metadata().is_ok() {
        return Err(Error::Config {
            path: public_file.to_owned(),
            message: "already exists (another key's public half?); give a new file for this key's".into(),
        });
    }
    std::fs::create_dir_all(loader_dir).map_err(Error::file(loader_dir))?;
    let secret = RecipientSecretKey::generate()?;
    let mut wrapped = Vec::new();
    for h in holders {
        wrapped.push(h.wrap(&secret, loader_dir)?);
    }
    let public = secret.public_key();
    drop(secret);
    write_public(public_file, &public)?;
    Ok(NewKey {
        public,
        public_file: public_file.to_owned(),
        holders: list,
        wrapped,
    })
}

/// Wraps every key in `keys` (unwrapped into memory by a specialist who holds them) for
/// each of `holders`, each an issued specialist's token; returns (center key, token id,
/// file) for every copy written.
pub fn wrap_for_more(
    registry: &RegistryBody,
    keys: &[RecipientSecretKey],
    holders: &[Holder],
    loader_dir: &Path,
) -> Result<Vec<(RecipientPublicKey, String, PathBuf)>> {
    for h in holders {
        loader::specialist_record(registry, h.token_key(), &format!("token {}", h.token_id()), loader_dir)?;
    }
    let mut out = Vec::new();
    for secret in keys {
        for h in holders {
            out.push((
                secret.public_key(),
                h.token_id().to_owned(),
                h.wrap(secret, loader_dir)?,
            ));
        }
    }
    Ok(out)
}

/// Writes a center key's public half: one line of 64 hex digits.
pub fn write_public(path: &Path, key: &RecipientPublicKey) -> Result<()> {
    keyfile::write_atomic(path, format!("{key}\n").as_bytes(), 0o644)?;
    Ok(())
}

/// Reads a center key's public half from a file [`new_key`] wrote. A private key file is
/// refused without echoing any of it.
pub fn read_public(path: &Path) -> Result<RecipientPublicKey> {
    let bytes = keyfile::read_bounded(path, MAX_PUBLIC_FILE)?;
    let refuse = |message: &str| Error::Config {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    if bytes.starts_with(b"KNVRT") {
        return Err(refuse(
            "this is a private key file, not a public half; the receiver takes only the center key's \
             public half (the file `konvert-center loader new-key --public-out` wrote)",
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| refuse("not a text file with a center key's public half"))?;
    RecipientPublicKey::from_hex(text.trim()).map_err(|_| {
        refuse("not a center key's public half (one line of 64 hex digits, from `konvert-center loader new-key`)")
    })
}

#[cfg(test)]
#[path = "center_key_tests.rs"]
mod tests;
