//! The center's decryption key, held by center specialists' tokens: the recipient secret
//! key is stored only wrapped (AES-256-GCM) under a key that only one specialist's token
//! can derive, so the loader can open envelopes only after that specialist's PIN unlocks
//! the token (with the token's retry counter). One wrapped file per specialist and
//! center key; the bare key file is destroyed once wrapped.
//!
//! Layout: `"KNVRTLDR"` ‖ version u16 LE ‖ header length u32 LE ‖ postcard(header) ‖
//! AES-256-GCM(recipient secret) (48 bytes); everything before the ciphertext is the AAD.
//! The wrapping key is HKDF-SHA256 with salt = header.salt and
//! - version 1, a token file: ikm = the token's Ed25519 seed, info =
//!   `"konvert/v1/loader-key-wrap"`;
//! - version 2, a hardware token: ikm = X25519(an ephemeral key, the token's X25519 key),
//!   computed on the token when unwrapping (`CKM_ECDH1_DERIVE`), info =
//!   `"konvert/v2/loader-key-wrap-agreed"`; the header names the token's X25519 key and
//!   the ephemeral public key.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::pkcs11::Pkcs11Agreement;
use crate::{random_bytes, Error, KeyId, RecipientPublicKey, RecipientSecretKey, Result, SigningKey};

const MAGIC: &[u8; 8] = b"KNVRTLDR";
/// Wrapped for a token file.
const VERSION_FILE: u16 = 1;
/// Wrapped for a hardware token's X25519 key.
const VERSION_HARDWARE: u16 = 2;
const HEAD_LEN: usize = 14;
const SEALED_LEN: usize = 32 + 16;
const INFO_FILE: &[u8] = b"konvert/v1/loader-key-wrap";
const INFO_HARDWARE: &[u8] = b"konvert/v2/loader-key-wrap-agreed";
/// Largest wrapped key file read.
pub const MAX_WRAPPED_LEN: usize = 4096;

/// What holds the key that unwraps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holder {
    /// A token file: the wrapping key comes from its Ed25519 seed.
    TokenFile,
    /// A hardware token: the wrapping key comes from X25519 with its key, on the token.
    HardwareToken {
        /// The token's X25519 public key.
        agreement_key: RecipientPublicKey,
        /// The wrapping's ephemeral X25519 public key.
        ephemeral_public: [u8; 32],
    },
}

/// The clear part of a wrapped key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedHeader {
    /// The specialist's token id.
    pub token_id: String,
    /// The specialist token's key id (its Ed25519 public key, as the registry lists it).
    pub token_key: KeyId,
    /// The center key this unwraps to.
    pub center_key: RecipientPublicKey,
    salt: [u8; 32],
    nonce: [u8; 12],
    /// What unwraps it.
    pub holder: Holder,
}

/// Version 1's header: a token file, so no holder field.
#[derive(Serialize, Deserialize)]
struct FileHeader {
    token_id: String,
    token_key: KeyId,
    center_key: RecipientPublicKey,
    salt: [u8; 32],
    nonce: [u8; 12],
}

/// A specialist ready to unwrap: an unlocked token file, or a hardware token logged in.
#[derive(Debug, Clone, Copy)]
pub enum Specialist<'a> {
    /// The key of an unlocked token file.
    File(&'a SigningKey),
    /// A hardware token: its Ed25519 key id (as the registry lists it) and its X25519 key.
    Hardware {
        /// The token's Ed25519 key id.
        token_key: KeyId,
        /// The token's X25519 key, logged in.
        agreement: &'a Pkcs11Agreement,
    },
}

impl Specialist<'_> {
    /// The key id the registry lists the specialist's token by.
    pub fn token_key(&self) -> KeyId {
        match self {
            Specialist::File(k) => k.key_id(),
            Specialist::Hardware { token_key, .. } => *token_key,
        }
    }
}

struct Len;

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        32
    }
}

fn wrapping_key(ikm: &[u8], salt: &[u8; 32], info: &[u8]) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, Len)
        .map_err(|_| Error::BadKey("cannot derive the loader key's wrapping key"))?;
    let mut k = Zeroizing::new([0u8; 32]);
    okm.fill(k.as_mut())
        .map_err(|_| Error::BadKey("cannot derive the loader key's wrapping key"))?;
    let unbound = UnboundKey::new(&AES_256_GCM, k.as_ref()).map_err(|_| Error::BadKey("AES key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// A header for `secret` with a fresh salt and nonce.
fn fresh_header(
    secret: &RecipientSecretKey,
    token_id: &str,
    token_key: KeyId,
    holder: Holder,
) -> Result<WrappedHeader> {
    let mut header = WrappedHeader {
        token_id: token_id.to_owned(),
        token_key,
        center_key: secret.public_key(),
        salt: [0; 32],
        nonce: [0; 12],
        holder,
    };
    random_bytes(&mut header.salt)?;
    random_bytes(&mut header.nonce)?;
    Ok(header)
}

/// Frames `header` and seals `secret` under `key`.
fn seal(secret: &RecipientSecretKey, header: &WrappedHeader, key: &LessSafeKey) -> Result<Vec<u8>> {
    let encode = |r: postcard::Result<Vec<u8>>| r.map_err(|_| Error::BadKey("cannot encode the wrapped key"));
    let (version, clear) = match header.holder {
        Holder::TokenFile => (
            VERSION_FILE,
            encode(postcard::to_allocvec(&FileHeader {
                token_id: header.token_id.clone(),
                token_key: header.token_key,
                center_key: header.center_key,
                salt: header.salt,
                nonce: header.nonce,
            }))?,
        ),
        Holder::HardwareToken { .. } => (VERSION_HARDWARE, encode(postcard::to_allocvec(header))?),
    };
    let mut out = Vec::with_capacity(HEAD_LEN + clear.len() + SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(clear.len() as u32).to_le_bytes());
    out.extend_from_slice(&clear);
    let mut sealed = Zeroizing::new(secret.to_bytes().to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(header.nonce),
        Aad::from(&out),
        &mut *sealed,
    )
    .map_err(|_| Error::BadKey("cannot wrap the loader key"))?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Wraps the center's recipient key for the specialist whose token file unlocked `specialist`.
pub fn wrap(secret: &RecipientSecretKey, token_id: &str, specialist: &SigningKey) -> Result<Vec<u8>> {
    let header = fresh_header(secret, token_id, specialist.key_id(), Holder::TokenFile)?;
    seal(
        secret,
        &header,
        &wrapping_key(specialist.seed().as_ref(), &header.salt, INFO_FILE)?,
    )
}

/// Wraps the center's recipient key for a specialist's hardware token: `token_key` is its
/// Ed25519 key id (as the registry lists it), `agreement_key` its X25519 public key. No
/// PIN is needed: only the token can unwrap.
pub fn wrap_for_hardware(
    secret: &RecipientSecretKey,
    token_id: &str,
    token_key: KeyId,
    agreement_key: &RecipientPublicKey,
) -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| Error::Rng)?;
    let mut ephemeral_public = [0u8; 32];
    ephemeral_public.copy_from_slice(eph.compute_public_key().map_err(|_| Error::Rng)?.as_ref());
    let holder = Holder::HardwareToken {
        agreement_key: *agreement_key,
        ephemeral_public,
    };
    let header = fresh_header(secret, token_id, token_key, holder)?;
    let key = agreement::agree_ephemeral(eph, &UnparsedPublicKey::new(&X25519, agreement_key.0), |shared| {
        wrapping_key(shared, &header.salt, INFO_HARDWARE)
    })
    .map_err(|_| Error::BadKey("the token's key is not a valid X25519 public key"))??;
    seal(secret, &header, &key)
}

/// Reads the clear header of a wrapped key (bounded), without unwrapping it.
pub fn header(bytes: &[u8]) -> Result<WrappedHeader> {
    let bad = |m: &'static str| Error::BadKey(m);
    if bytes.len() > MAX_WRAPPED_LEN || bytes.len() < HEAD_LEN || &bytes[..8] != MAGIC {
        return Err(bad("not a konvert wrapped loader key"));
    }
    let len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    if bytes.len().checked_sub(HEAD_LEN + len) != Some(SEALED_LEN) {
        return Err(bad("the wrapped loader key is truncated or extended"));
    }
    let clear = &bytes[HEAD_LEN..HEAD_LEN + len];
    let damaged = |_| bad("the wrapped loader key is damaged");
    match u16::from_le_bytes([bytes[8], bytes[9]]) {
        VERSION_FILE => {
            let h: FileHeader = postcard::from_bytes(clear).map_err(damaged)?;
            Ok(WrappedHeader {
                token_id: h.token_id,
                token_key: h.token_key,
                center_key: h.center_key,
                salt: h.salt,
                nonce: h.nonce,
                holder: Holder::TokenFile,
            })
        }
        VERSION_HARDWARE => {
            let h: WrappedHeader = postcard::from_bytes(clear).map_err(damaged)?;
            match h.holder {
                Holder::HardwareToken { .. } => Ok(h),
                Holder::TokenFile => Err(bad("the wrapped loader key is damaged")),
            }
        }
        _ => Err(bad("this wrapped loader key's version is not supported")),
    }
}

/// Unwraps with the specialist's unlocked token; a wrong token or any edited byte fails
/// without saying more.
pub fn unwrap(bytes: &[u8], specialist: Specialist<'_>) -> Result<RecipientSecretKey> {
    let h = header(bytes)?;
    if h.token_key != specialist.token_key() {
        return Err(Error::BadKey(
            "this loader key is wrapped for another specialist's token",
        ));
    }
    let key = match (&h.holder, specialist) {
        (Holder::TokenFile, Specialist::File(k)) => wrapping_key(k.seed().as_ref(), &h.salt, INFO_FILE)?,
        (
            Holder::HardwareToken {
                agreement_key,
                ephemeral_public,
            },
            Specialist::Hardware { agreement, .. },
        ) => {
            if agreement.public_key() != *agreement_key {
                return Err(Error::BadKey(
                    "this loader key is wrapped for another X25519 key on the specialist's token",
                ));
            }
            wrapping_key(agreement.agree(ephemeral_public)?.as_ref(), &h.salt, INFO_HARDWARE)?
        }
        (Holder::TokenFile, Specialist::Hardware { .. }) => {
            return Err(Error::BadKey(
                "this loader key is wrapped for the specialist's token file, not a hardware token",
            ))
        }
        (Holder::HardwareToken { .. }, Specialist::File(_)) => {
            return Err(Error::BadKey(
                "this loader key is wrapped for the specialist's hardware token, not a token file",
            ))
        }
    };
    let split = bytes.len() - SEALED_LEN;
    let mut buf = Zeroizing::new(bytes[split..].to_vec());
    let secret = key
        .open_in_place(
            Nonce::assume_unique_for_key(h.nonce),
            Aad::from(&bytes[..split]),
            &mut buf,
        )
        .map_err(|_| Error::BadKey("the wrapped loader key does not open with this token; it is damaged"))?;
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
        secret
            .try_into()
            .map_err(|_| Error::BadKey("the wrapped loader key has the wrong length"))?,
    );
    let key = RecipientSecretKey::from_bytes(&secret);
    if key.public_key() != h.center_key {
        return Err(Error::BadKey("the wrapped loader key is not the center key it names"));
    }
    Ok(key)
}

#[cfg(test)]
#[path = "loader_key_tests.rs"]
mod tests;
