//! Member token files: the member's Ed25519 key encrypted under a PIN.
//! Layout: `"KNVRTTOK"` ‖ version u16 LE ‖ clear length u32 LE ‖ postcard(clear part) ‖
//! AES-256-GCM(seed) (48 bytes). The key is Argon2id(PIN, salt, memory, passes, lanes)
//! (version 2) — memory-hard, so a stolen file costs an offline guesser memory as well as
//! time — or, in files written before it, PBKDF2-HMAC-SHA256(PIN, salt, iterations)
//! (version 1, still read, and rewritten as version 2 the next time the right PIN opens
//! it). Everything before the ciphertext is the AAD, so editing any clear field breaks
//! unlock.
//!
//! A center specialist's token file unwraps the center's decryption key, the key to every
//! scan, so it takes a passphrase ([`check_specialist_passphrase`]), not a 6-digit PIN.
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
//! a crash or a killed process cannot lose a counted failure. The whole attempt holds an
//! exclusive lock on `<token file name>.lock`, so concurrent attempts are counted one after
//! another, never lost in a read-modify-write race. The token's folder must therefore be
//! writable. A sidecar that names another key (an old token replaced at the
//! same path) counts as no failures.
//!
//! The honest limit: the counter stops guessing *through konvert*, nothing more. Whoever
//! can copy the token file can attack the PIN offline with Argon2id as the only cost, and
//! whoever can write the folder can delete the sidecar. Keys that cannot be copied at all
//! live on hardware tokens ([`crate::pkcs11`]), whose retry counter is enforced by the
//! token itself; those are the real answer, file tokens are for tests, drills and sites
//! without hardware.

use std::num::NonZeroU32;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::pbkdf2;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{read_bounded, write_atomic, write_new_atomic};
use crate::{random_bytes, Error, KeyId, Result, SigningKey, VerifyingKey};

/// PBKDF2 iterations of version-1 token files (still read; new files use Argon2id).
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// Shortest PIN accepted.
pub const MIN_PIN_LEN: usize = 6;
/// Shortest passphrase accepted for a center specialist's token file.
pub const MIN_SPECIALIST_PASSPHRASE_LEN: usize = 12;
/// Fewest different characters, spaces aside, in a specialist's passphrase: twelve spaces
/// or `aaaaaaaaaaaa` are twelve characters but no secret.
pub const MIN_SPECIALIST_DISTINCT_CHARS: usize = 6;
/// Consecutive wrong PINs after which a token file locks.
pub const MAX_PIN_TRIES: u32 = 10;
const TRIES_MAGIC: &[u8; 8] = b"KNVRTTRY";
const TRIES_LEN: usize = 8 + 4 + 16;
const MAGIC: &[u8; 8] = b"KNVRTTOK";
/// Version 1: PBKDF2-HMAC-SHA256.
const VERSION_PBKDF2: u16 = 1;
/// Version 2: Argon2id.
const VERSION_ARGON2ID: u16 = 2;
/// Most PBKDF2 iterations accepted (≈ 30× the default), so that an edited token file
/// cannot make `unlock` spin for hours.
pub const MAX_KDF_ITERATIONS: u32 = 20_000_000;
/// Most Argon2id memory accepted in a file (1 GiB), so an edited file cannot exhaust RAM.
const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
/// Most Argon2id passes accepted in a file.
const MAX_ARGON2_PASSES: u32 = 16;
/// Most Argon2id lanes accepted in a file.
const MAX_ARGON2_LANES: u32 = 8;
const MAX_TOKEN_FILE: u64 = 64 * 1024;
const HEAD_LEN: usize = 14;
const SEALED_SEED_LEN: usize = 32 + 16;

/// Argon2id parameters of a token file (RFC 9106). Only [`KdfParams::default`] (or a
/// stronger [`KdfParams::with_memory_mib`]) is for real tokens; the one cheap set has a name
/// that says what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106 §4's second recommendation, with one lane for
    /// two-core laptops): about 0.2 s per unlock in release here.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            passes: 3,
            lanes: 1,
        }
    }
}

impl KdfParams {
    /// The production parameters with more memory: `mib` from 64 to 1024.
    pub fn with_memory_mib(mib: u32) -> Result<Self> {
        if !(64..=1024).contains(&mib) {
            return Err(Error::BadKey("token KDF memory must be 64 to 1024 MiB"));
        }
        Ok(KdfParams {
            memory_kib: mib * 1024,
            ..KdfParams::default()
        })
    }

    /// 64 KiB, 1 pass: guessable in microseconds. Only for tests and drills whose tokens
    /// protect nothing; never for a token that signs or opens real exam packets.
    pub fn insecure_fast_for_tests() -> Self {
        KdfParams {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        }
    }

    /// Memory in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Passes over the memory.
    pub fn passes(&self) -> u32 {
        self.passes
    }

    fn plausible(&self) -> bool {
        (1..=MAX_ARGON2_LANES).contains(&self.lanes)
            && (1..=MAX_ARGON2_PASSES).contains(&self.passes)
            && (8 * self.lanes..=MAX_ARGON2_MEMORY_KIB).contains(&self.memory_kib)
    }
}

/// The PIN's key derivation, as a file states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kdf {
    Pbkdf2 { iterations: u32 },
    Argon2id(KdfParams),
}

/// Clear part of a version-1 file (PBKDF2).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClearV1 {
    token_id: String,
    holder: String,
    public: VerifyingKey,
    kdf_iterations: u32,
    salt: [u8; 16],
    nonce: [u8; 12],
}

/// Clear part of a version-2 file (Argon2id).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClearV2 {
    token_id: String,
    holder: String,
    public: VerifyingKey,
    kdf: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 12],
}

#[derive(Debug, Clone)]
struct Clear {
    token_id: String,
    holder: String,
    public: VerifyingKey,
    kdf: Kdf,
    salt: [u8; 16],
    nonce: [u8; 12],
}

/// Checks a new center specialist's passphrase: at least
/// [`MIN_SPECIALIST_PASSPHRASE_LEN`] characters and not only digits. The specialist's token
/// unwraps the center's decryption key — the key to every scan — so a stolen copy must
/// resist an offline search far beyond the 10⁶ six-digit PINs.
pub fn check_specialist_passphrase(passphrase: &str) -> Result<()> {
    let len = passphrase.chars().count();
    if len < MIN_SPECIALIST_PASSPHRASE_LEN
        || passphrase.chars().all(|c| c.is_ascii_digit())
        || distinct_visible(passphrase) < MIN_SPECIALIST_DISTINCT_CHARS
    {
        return Err(Error::WeakPassphrase {
            min: MIN_SPECIALIST_PASSPHRASE_LEN,
            distinct: MIN_SPECIALIST_DISTINCT_CHARS,
        });
    }
    Ok(())
}

/// Checks a new member's PIN: at least [`MIN_PIN_LEN`] characters, not only spaces and not
/// one character repeated (`000000` is the first PIN any guesser tries).
pub fn check_pin(pin: &str) -> Result<()> {
    if pin.chars().count() < MIN_PIN_LEN {
        return Err(Error::PinTooShort { min: MIN_PIN_LEN });
    }
    if distinct_visible(pin) < 2 {
        return Err(Error::WeakPin);
    }
    Ok(())
}

/// How many different characters `secret` has, whitespace not counted.
fn distinct_visible(secret: &str) -> usize {
    let mut seen: Vec<char> = secret.chars().filter(|c| !c.is_whitespace()).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
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
            .field("kdf", &self.clear.kdf)
            .finish_non_exhaustive()
    }
}

fn pin_key(pin: &str, salt: &[u8; 16], kdf: Kdf) -> Result<LessSafeKey> {
    let mut k = Zeroizing::new([0u8; 32]);
    match kdf {
        Kdf::Pbkdf2 { iterations } => {
            let iterations = NonZeroU32::new(iterations).ok_or(Error::BadKey("KDF iterations must be positive"))?;
            pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, pin.as_bytes(), k.as_mut());
        }
        Kdf::Argon2id(p) => {
            let params = argon2::Params::new(p.memory_kib, p.passes, p.lanes, Some(32))
                .map_err(|_| Error::BadKey("Argon2id parameters out of range"))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(pin.as_bytes(), salt, k.as_mut())
                .map_err(|_| Error::BadKey("Argon2id failed (out of memory?)"))?;
        }
    }
    let unbound = UnboundKey::new(&AES_256_GCM, k.as_ref()).map_err(|_| Error::BadKey("AES key"))?;
    Ok(LessSafeKey::new(unbound))
}

impl TokenFile {
    /// Creates a member's token file with a new key, the PIN at least [`MIN_PIN_LEN`]
    /// characters. Refuses to overwrite an existing file.
    pub fn create(path: &Path, token_id: &str, holder: &str, pin: &str, kdf: KdfParams) -> Result<TokenFile> {
        check_pin(pin)?;
        let key = SigningKey::generate()?;
        Self::write(path, token_id, holder, &key, pin, Kdf::Argon2id(kdf), false)
    }

    /// Creates a center specialist's token file: as [`TokenFile::create`], but the secret
    /// must pass [`check_specialist_passphrase`].
    pub fn create_specialist(
        path: &Path,
        token_id: &str,
        holder: &str,
        passphrase: &str,
        kdf: KdfParams,
    ) -> Result<TokenFile> {
        check_specialist_passphrase(passphrase)?;
        Self::create(path, token_id, holder, passphrase, kdf)
    }

    /// Writes `key` under `pin` with `kdf`: a new file, or (`replace`) over an old one.
    fn write(
        path: &Path,
        token_id: &str,
        holder: &str,
        key: &SigningKey,
        pin: &str,
        kdf: Kdf,
        replace: bool,
    ) -> Result<TokenFile> {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        random_bytes(&mut salt)?;
        random_bytes(&mut nonce)?;
        let clear = Clear {
            token_id: token_id.to_owned(),
            holder: holder.to_owned(),
            public: key.verifying_key(),
            kdf,
            salt,
            nonce,
        };
        let (version, clear_bytes) = match kdf {
            Kdf::Pbkdf2 { iterations } => {
                if iterations == 0 || iterations > MAX_KDF_ITERATIONS {
                    return Err(Error::BadKey("PBKDF2 iterations must be between 1 and 20 000 000"));
                }
                let c = ClearV1 {
                    token_id: clear.token_id.clone(),
                    holder: clear.holder.clone(),
                    public: clear.public,
                    kdf_iterations: iterations,
                    salt,
                    nonce,
                };
                (VERSION_PBKDF2, postcard::to_allocvec(&c))
            }
            Kdf::Argon2id(params) => {
                if !params.plausible() {
                    return Err(Error::BadKey("Argon2id parameters out of range"));
                }
                let c = ClearV2 {
                    token_id: clear.token_id.clone(),
                    holder: clear.holder.clone(),
                    public: clear.public,
                    kdf: params,
                    salt,
                    nonce,
                };
                (VERSION_ARGON2ID, postcard::to_allocvec(&c))
            }
        };
        let clear_bytes = clear_bytes.map_err(|e| Error::BadKey(leak_free(e)))?;
        let mut aad = Vec::with_capacity(HEAD_LEN + clear_bytes.len());
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&version.to_le_bytes());
        aad.extend_from_slice(&(clear_bytes.len() as u32).to_le_bytes());
        aad.extend_from_slice(&clear_bytes);
        let mut ciphertext = Zeroizing::new(key.seed().to_vec());
        pin_key(pin, &salt, kdf)?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), &mut *ciphertext)
            .map_err(|_| Error::BadKey("token encryption failed"))?;
        let mut file = aad.clone();
        file.extend_from_slice(&ciphertext);
        if replace {
            write_atomic(path, &file, 0o600)?;
        } else {
            write_new_atomic(path, &file, 0o600)?;
        }
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

    /// A version-1 (PBKDF2) file, as konvert 0.1 wrote them: tests of the upgrade only.
    #[cfg(test)]
    pub(crate) fn create_pbkdf2(path: &Path, token_id: &str, pin: &str, iterations: u32) -> Result<TokenFile> {
        let key = SigningKey::generate()?;
        Self::write(path, token_id, "h", &key, pin, Kdf::Pbkdf2 { iterations }, false)
    }

    /// How the file derives its key from the PIN: `Some(params)` for Argon2id, `None` for
    /// a version-1 PBKDF2 file (rewritten with Argon2id at its next right PIN).
    pub fn argon2_params(&self) -> Option<KdfParams> {
        match self.clear.kdf {
            Kdf::Argon2id(p) => Some(p),
            Kdf::Pbkdf2 { .. } => None,
        }
    }

    /// Reads a token file (bounded), without unlocking it.
    pub fn read(path: &Path) -> Result<TokenFile> {
        let bytes = read_bounded(path, MAX_TOKEN_FILE)?;
        let bad = |m: &str| Error::BadFile {
            path: path.to_owned(),
            message: format!("{m}; this is not a usable token file (a member's or a specialist's)"),
        };
        if bytes.len() < HEAD_LEN || &bytes[..8] != MAGIC {
            return Err(bad("bad magic bytes"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION_PBKDF2 && version != VERSION_ARGON2ID {
            return Err(bad(&format!("token file version {version} is not supported")));
        }
        let clear_len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        if bytes.len().checked_sub(HEAD_LEN + clear_len) != Some(SEALED_SEED_LEN) {
            return Err(bad("wrong length (truncated or extended)"));
        }
        let clear_bytes = &bytes[HEAD_LEN..HEAD_LEN + clear_len];
        let clear = if version == VERSION_PBKDF2 {
            let c: ClearV1 = postcard::from_bytes(clear_bytes).map_err(|_| bad("damaged clear part"))?;
            if c.kdf_iterations == 0 || c.kdf_iterations > MAX_KDF_ITERATIONS {
                return Err(bad("implausible PBKDF2 iteration count"));
            }
            Clear {
                token_id: c.token_id,
                holder: c.holder,
                public: c.public,
                kdf: Kdf::Pbkdf2 {
                    iterations: c.kdf_iterations,
                },
                salt: c.salt,
                nonce: c.nonce,
            }
        } else {
            let c: ClearV2 = postcard::from_bytes(clear_bytes).map_err(|_| bad("damaged clear part"))?;
            if !c.kdf.plausible() {
                return Err(bad("implausible Argon2id parameters"));
            }
            Clear {
                token_id: c.token_id,
                holder: c.holder,
                public: c.public,
                kdf: Kdf::Argon2id(c.kdf),
                salt: c.salt,
                nonce: c.nonce,
            }
        };
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

    /// The lock file held during an unlock attempt: `<token file name>.lock` beside the token.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Takes the exclusive lock of an unlock attempt; released when the file is dropped.
    fn lock_attempts(&self) -> Result<std::fs::File> {
        let path = self.lock_path();
        let fail = |e: &dyn std::fmt::Display| Error::BadFile {
            path: path.clone(),
            message: format!("cannot lock the PIN retry counter ({e}); the token's folder must be writable"),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| fail(&e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| fail(&e))?;
        Ok(file)
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
        // Held for the whole attempt: concurrent attempts are counted one by one.
        let _lock = self.lock_attempts()?;
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
                if let Kdf::Pbkdf2 { .. } = self.clear.kdf {
                    self.upgrade(&signing, pin);
                }
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

    /// Rewrites a version-1 (PBKDF2) file as version 2 (Argon2id, default parameters), same
    /// key, same PIN, atomically. A failure leaves the old file and is only logged: the
    /// member must still be able to sign today.
    fn upgrade(&self, key: &SigningKey, pin: &str) {
        match Self::write(
            &self.path,
            &self.token_id,
            &self.holder,
            key,
            pin,
            Kdf::Argon2id(KdfParams::default()),
            true,
        ) {
            Ok(_) => tracing::info!(token = %self.token_id, "token file upgraded from PBKDF2 to Argon2id"),
            Err(e) => tracing::warn!(
                token = %self.token_id,
                error = %e,
                "could not upgrade the token file from PBKDF2 to Argon2id; it stays readable, the upgrade is tried at the next unlock"
            ),
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
        let key = pin_key(pin, &self.clear.salt, self.clear.kdf)?;
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

/// PINs taken from the environment, kept for this process's later reads.
static PINS_FROM_ENV: std::sync::Mutex<Vec<(String, Zeroizing<String>)>> = std::sync::Mutex::new(Vec::new());

/// The PIN in environment variable `var` (`--pin-env`, automation only), removed from the
/// process environment at the first read — so no child process inherits it and nothing
/// later in this process finds it there — and kept in this process for later reads.
/// `None` when the variable was never set. Not undone: `/proc/<pid>/environ` shows the
/// environment the process started with, to its own user and root, for as long as it runs;
/// automation that cannot accept that passes the PIN on a terminal instead.
pub fn pin_from_env(var: &str) -> Option<Zeroizing<String>> {
    let mut pins = PINS_FROM_ENV.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, pin)) = pins.iter().find(|(v, _)| v == var) {
        return Some(pin.clone());
    }
    let pin = Zeroizing::new(std::env::var(var).ok()?);
    std::env::remove_var(var);
    pins.push((var.to_owned(), pin.clone()));
    Some(pin)
}

fn leak_free(_: postcard::Error) -> &'static str {
    "cannot encode the token"
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
