//! Member token files: the member's Ed25519 key encrypted under a PIN.
//! Layout: `"KNVRTTOK"` ‖ version u16 LE ‖ clear length u32 LE ‖ postcard(clear part) ‖
//! AES-256-GCM(seed) (48 bytes). The key is PBKDF2-HMAC-SHA256(PIN, salt, iterations);
//! everything before the ciphertext is the AAD, so editing any clear field breaks unlock.
//!
//! **PIN retry counter.** Like a hardware token, a token file locks after
//! [`MAX_PIN_TRIES`] consecutive wrong PINs ([`Error::TokenLocked`]) and then refuses even
//! the right PIN; a right PIN resets the count, and every wrong PIN says how many tries
//! remain. The count lives in a sidecar file beside the token, `<token file name>.tries`
//! (`"KNVRTTRY"` ‖ failures u32 LE ‖ the token's key id, 28 bytes, mode 0600), not in the
//! token file itself: the token file is written once and never rewritten, so a crash or a
//! full disk while counting can never damage the encrypted key, and the token format stays
//! as it was. Each attempt first writes the incremented count (atomically: temp file,
//! fsync, rename, fsync of the folder), then checks the PIN, then writes 0 on success, so
//! a crash or a killed process cannot lose a counted failure. The token's folder must
//! therefore be writable. A sidecar that names another key (an old token replaced at the
//! same path) counts as no failures.
//!
//! The honest limit: the counter stops guessing *through konvert*, nothing more. Whoever
//! can copy the token file can attack the PIN offline with PBKDF2 as the only cost, and
//! whoever can write the folder can delete the sidecar. Keys that cannot be copied at all
//! live on hardware tokens ([`crate::pkcs11`]), whose retry counter is enforced by the
//! token itself; those are the real answer, file tokens are for tests, drills and sites
//! without hardware.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::pbkdf2;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{read_bounded, write_atomic, write_new_atomic};
use crate::{random_bytes, Error, KeyId, Result, SigningKey, VerifyingKey};

/// PBKDF2 iterations for new tokens.
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// Shortest PIN accepted.
pub const MIN_PIN_LEN: usize = 6;
/// Consecutive wrong PINs after which a token file locks.
pub const MAX_PIN_TRIES: u32 = 10;
const TRIES_MAGIC: &[u8; 8] = b"KNVRTTRY";
const TRIES_LEN: usize = 8 + 4 + 16;
const MAGIC: &[u8; 8] = b"KNVRTTOK";
const VERSION: u16 = 1;
/// Most PBKDF2 iterations accepted (≈ 30× the default), so that an edited token file
/// cannot make `unlock` spin for hours.
pub const MAX_KDF_ITERATIONS: u32 = 20_000_000;
const MAX_TOKEN_FILE: u64 = 64 * 1024;
const HEAD_LEN: usize = 14;
const SEALED_SEED_LEN: usize = 32 + 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Clear {
    token_id: String,
    holder: String,
    public: VerifyingKey,
    kdf_iterations: u32,
    salt: [u8; 16],
    nonce: [u8; 12],
}

/// A member token file, read but not unlocked.
#[derive(Clone)]
pub struct TokenFile {
    /// The token's id (serial).
    pub token_id: String,
    /// Who holds it.
    pub holder: String,
    /// The member's public key.
    pub public: VerifyingKey,
    path: PathBuf,
    clear: Clear,
    aad: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("token_id", &self.token_id)
            .field("holder", &self.holder)
            .field("public", &self.public)
            .field("kdf_iterations", &self.clear.kdf_iterations)
            .finish_non_exhaustive()
    }
}

fn check_iterations(iterations: u32) -> Result<()> {
    if iterations == 0 || iterations > MAX_KDF_ITERATIONS {
        return Err(Error::BadKey("PBKDF2 iterations must be between 1 and 20 000 000"));
    }
    Ok(())
}

fn pin_key(pin: &str, salt: &[u8; 16], iterations: u32) -> Result<LessSafeKey> {
    let iterations = NonZeroU32::new(iterations).ok_or(Error::BadKey("KDF iterations must be positive"))?;
    let mut k = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, pin.as_bytes(), k.as_mut());
    let unbound = UnboundKey::new(&AES_256_GCM, k.as_ref()).map_err(|_| Error::BadKey("AES key"))?;
    Ok(LessSafeKey::new(unbound))
}

impl TokenFile {
    /// Creates a token file with a new key. Refuses to overwrite an existing file.
    pub fn create(path: &Path, token_id: &str, holder: &str, pin: &str, kdf_iterations: u32) -> Result<TokenFile> {
        if pin.chars().count() < MIN_PIN_LEN {
            return Err(Error::PinTooShort { min: MIN_PIN_LEN });
        }
        check_iterations(kdf_iterations)?;
        let key = SigningKey::generate()?;
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        random_bytes(&mut salt)?;
        random_bytes(&mut nonce)?;
        let clear = Clear {
            token_id: token_id.to_owned(),
            holder: holder.to_owned(),
            public: key.verifying_key(),
            kdf_iterations,
            salt,
            nonce,
        };
        let clear_bytes = postcard::to_allocvec(&clear).map_err(|e| Error::BadKey(leak_free(e)))?;
        let mut aad = Vec::with_capacity(HEAD_LEN + clear_bytes.len());
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&VERSION.to_le_bytes());
        aad.extend_from_slice(&(clear_bytes.len() as u32).to_le_bytes());
        aad.extend_from_slice(&clear_bytes);
        let mut ciphertext = Zeroizing::new(key.seed().to_vec());
        pin_key(pin, &salt, kdf_iterations)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), &mut *ciphertext)
            .map_err(|_| Error::BadKey("token encryption failed"))?;
        let mut file = aad.clone();
        file.extend_from_slice(&ciphertext);
        write_new_atomic(path, &file, 0o600)?;
        Ok(TokenFile {
            token_id: clear.token_id.clone(),
            holder: clear.holder.clone(),
            public: clear.public,
            path: path.to_owned(),
            clear,
            aad,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// Reads a token file (bounded), without unlocking it.
    pub fn read(path: &Path) -> Result<TokenFile> {
        let bytes = read_bounded(path, MAX_TOKEN_FILE)?;
        let bad = |m: &str| Error::BadFile {
            path: path.to_owned(),
            message: format!("{m}; this is not a usable member token file"),
        };
        if bytes.len() < HEAD_LEN || &bytes[..8] != MAGIC {
            return Err(bad("bad magic bytes"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(bad(&format!("token file version {version} is not supported")));
        }
        let clear_len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        if bytes.len().checked_sub(HEAD_LEN + clear_len) != Some(SEALED_SEED_LEN) {
            return Err(bad("wrong length (truncated or extended)"));
        }
        let clear: Clear =
            postcard::from_bytes(&bytes[HEAD_LEN..HEAD_LEN + clear_len]).map_err(|_| bad("damaged clear part"))?;
        if clear.kdf_iterations == 0 || clear.kdf_iterations > MAX_KDF_ITERATIONS {
            return Err(bad("implausible PBKDF2 iteration count"));
        }
        Ok(TokenFile {
            token_id: clear.token_id.clone(),
            holder: clear.holder.clone(),
            public: clear.public,
            path: path.to_owned(),
            clear,
            aad: bytes[..HEAD_LEN + clear_len].to_vec(),
            ciphertext: bytes[HEAD_LEN + clear_len..].to_vec(),
        })
    }

    /// The member key's id.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// The token file's path (the retry counter lives beside it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The retry counter's sidecar file: `<token file name>.tries` beside the token.
    pub fn tries_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tries");
        self.path.with_file_name(name)
    }

    /// Wrong PINs still allowed before the token locks (0: locked).
    pub fn remaining_tries(&self) -> Result<u32> {
        Ok(MAX_PIN_TRIES.saturating_sub(self.failures()?))
    }

    /// Reads the token file at `path` and unlocks it with the PIN (see [`TokenFile::unlock`]).
    pub fn unlock_at(path: &Path, pin: &str) -> Result<SigningKey> {
        TokenFile::read(path)?.unlock(pin)
    }

    /// Unlocks the member's signing key with the PIN, counting the attempt beside the
    /// token file first: after [`MAX_PIN_TRIES`] consecutive wrong PINs every PIN is
    /// refused with [`Error::TokenLocked`]; a right PIN resets the count.
    pub fn unlock(&self, pin: &str) -> Result<SigningKey> {
        let failures = self.failures()?;
        if failures >= MAX_PIN_TRIES {
            tracing::warn!(token = %self.token_id, "member token is locked; unlock refused");
            return Err(Error::TokenLocked {
                token_id: self.token_id.clone(),
            });
        }
        // Counted before the check, so a crash cannot lose a failure.
        self.write_failures(failures + 1)?;
        match self.open(pin) {
            Ok(signing) => {
                self.write_failures(0)?;
                Ok(signing)
            }
            Err(Error::WrongPin { token_id, .. }) => {
                let remaining = MAX_PIN_TRIES.saturating_sub(failures + 1);
                tracing::warn!(token = %self.token_id, remaining, "wrong PIN for token");
                Err(Error::WrongPin {
                    token_id,
                    remaining_tries: Some(remaining),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn failures(&self) -> Result<u32> {
        let path = self.tries_path();
        let bytes = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            _ => read_bounded(&path, TRIES_LEN as u64)?,
        };
        if bytes.len() != TRIES_LEN || &bytes[..8] != TRIES_MAGIC {
            return Err(Error::BadFile {
                path,
                message: "damaged PIN retry counter; bring the token to the security officer".into(),
            });
        }
        if bytes[12..] != self.key_id().0 {
            // The counter of another token once kept at this path.
            return Ok(0);
        }
        Ok(u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]))
    }

    fn write_failures(&self, failures: u32) -> Result<()> {
        let mut b = Vec::with_capacity(TRIES_LEN);
        b.extend_from_slice(TRIES_MAGIC);
        b.extend_from_slice(&failures.to_le_bytes());
        b.extend_from_slice(&self.key_id().0);
        let path = self.tries_path();
        write_atomic(&path, &b, 0o600).map_err(|e| Error::BadFile {
            path,
            message: format!(
                "cannot record the PIN attempt beside the token ({e}); the token's folder must be writable"
            ),
        })
    }

    fn open(&self, pin: &str) -> Result<SigningKey> {
        let key = pin_key(pin, &self.clear.salt, self.clear.kdf_iterations)?;
        let mut buf = Zeroizing::new(self.ciphertext.clone());
        let seed = key
            .open_in_place(
                Nonce::assume_unique_for_key(self.clear.nonce),
                Aad::from(&self.aad),
                &mut buf,
            )
            .map_err(|_| Error::WrongPin {
                token_id: self.token_id.clone(),
                remaining_tries: None,
            })?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| Error::BadKey("token seed has the wrong length"))?;
        let seed = Zeroizing::new(seed);
        let signing = SigningKey::from_seed(&seed)?;
        if signing.verifying_key() != self.public {
            return Err(Error::BadKey(
                "the token's key does not match its public key; the token is damaged",
            ));
        }
        Ok(signing)
    }
}

fn leak_free(_: postcard::Error) -> &'static str {
    "cannot encode the token"
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
