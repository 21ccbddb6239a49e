//! Member token files: the member's Ed25519 key encrypted under a PIN.
//! Layout: `"KNVRTTOK"` ‖ version u16 LE ‖ clear length u32 LE ‖ postcard(clear part) ‖
//! AES-256-GCM(seed) (48 bytes). The key is PBKDF2-HMAC-SHA256(PIN, salt, iterations);
//! everything before the ciphertext is the AAD, so editing any clear field breaks unlock.

use std::num::NonZeroU32;
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::pbkdf2;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{read_bounded, write_new_atomic};
use crate::{random_bytes, Error, KeyId, Result, SigningKey, VerifyingKey};

/// PBKDF2 iterations for new tokens.
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// Shortest PIN accepted.
pub const MIN_PIN_LEN: usize = 6;
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
            clear,
            aad: bytes[..HEAD_LEN + clear_len].to_vec(),
            ciphertext: bytes[HEAD_LEN + clear_len..].to_vec(),
        })
    }

    /// The member key's id.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// Unlocks the member's signing key with the PIN.
    pub fn unlock(&self, pin: &str) -> Result<SigningKey> {
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
