//! The center's decryption key, held by a center specialist's token: the recipient secret
//! key is stored only wrapped (AES-256-GCM) under a key derived from the specialist
//! token's own secret, so the loader can open envelopes only after that specialist's PIN
//! unlocks the token (with the token's retry counter). One wrapped file per specialist and
//! center key; the bare key file is destroyed once wrapped.
//!
//! Layout: `"KNVRTLDR"` ‖ version u16 LE ‖ header length u32 LE ‖ postcard(header) ‖
//! AES-256-GCM(recipient secret) (48 bytes). The wrapping key is
//! HKDF-SHA256(salt = header.salt, ikm = the token's Ed25519 seed, info =
//! `"konvert/v1/loader-key-wrap"`); everything before the ciphertext is the AAD.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{random_bytes, Error, KeyId, RecipientPublicKey, RecipientSecretKey, Result, SigningKey};

const MAGIC: &[u8; 8] = b"KNVRTLDR";
const VERSION: u16 = 1;
const HEAD_LEN: usize = 14;
const SEALED_LEN: usize = 32 + 16;
const INFO: &[u8] = b"konvert/v1/loader-key-wrap";
/// Largest wrapped key file read.
pub const MAX_WRAPPED_LEN: usize = 4096;

/// The clear part of a wrapped key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedHeader {
    /// The specialist's token id.
    pub token_id: String,
    /// The specialist token's key id (its Ed25519 public key).
    pub token_key: KeyId,
    /// The center key this unwraps to.
    pub center_key: RecipientPublicKey,
    salt: [u8; 32],
    nonce: [u8; 12],
}

struct Len;

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        32
    }
}

fn wrapping_key(specialist: &SigningKey, salt: &[u8; 32]) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(specialist.seed().as_ref());
    let okm = prk
        .expand(&[INFO], Len)
        .map_err(|_| Error::BadKey("cannot derive the loader key's wrapping key"))?;
    let mut k = Zeroizing::new([0u8; 32]);
    okm.fill(k.as_mut())
        .map_err(|_| Error::BadKey("cannot derive the loader key's wrapping key"))?;
    let unbound = UnboundKey::new(&AES_256_GCM, k.as_ref()).map_err(|_| Error::BadKey("AES key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// Wraps the center's recipient key for the specialist whose token unlocked `specialist`.
pub fn wrap(secret: &RecipientSecretKey, token_id: &str, specialist: &SigningKey) -> Result<Vec<u8>> {
    let mut header = WrappedHeader {
        token_id: token_id.to_owned(),
        token_key: specialist.key_id(),
        center_key: secret.public_key(),
        salt: [0; 32],
        nonce: [0; 12],
    };
    random_bytes(&mut header.salt)?;
    random_bytes(&mut header.nonce)?;
    let clear = postcard::to_allocvec(&header).map_err(|_| Error::BadKey("cannot encode the wrapped key"))?;
    let mut out = Vec::with_capacity(HEAD_LEN + clear.len() + SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(clear.len() as u32).to_le_bytes());
    out.extend_from_slice(&clear);
    let mut sealed = Zeroizing::new(secret.to_bytes().to_vec());
    wrapping_key(specialist, &header.salt)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(header.nonce),
            Aad::from(&out),
            &mut *sealed,
        )
        .map_err(|_| Error::BadKey("cannot wrap the loader key"))?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Reads the clear header of a wrapped key (bounded), without unwrapping it.
pub fn header(bytes: &[u8]) -> Result<WrappedHeader> {
    let bad = |m: &'static str| Error::BadKey(m);
    if bytes.len() > MAX_WRAPPED_LEN || bytes.len() < HEAD_LEN || &bytes[..8] != MAGIC {
        return Err(bad("not a konvert wrapped loader key"));
    }
    if u16::from_le_bytes([bytes[8], bytes[9]]) != VERSION {
        return Err(bad("this wrapped loader key's version is not supported"));
    }
    let len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    if bytes.len().checked_sub(HEAD_LEN + len) != Some(SEALED_LEN) {
        return Err(bad("the wrapped loader key is truncated or extended"));
    }
    postcard::from_bytes(&bytes[HEAD_LEN..HEAD_LEN + len]).map_err(|_| bad("the wrapped loader key is damaged"))
}

/// Unwraps with the specialist's unlocked token key; a wrong token or any edited byte
/// fails without saying more.
pub fn unwrap(bytes: &[u8], specialist: &SigningKey) -> Result<RecipientSecretKey> {
    let h = header(bytes)?;
    if h.token_key != specialist.key_id() {
        return Err(Error::BadKey(
            "this loader key is wrapped for another specialist's token",
        ));
    }
    let split = bytes.len() - SEALED_LEN;
    let mut buf = Zeroizing::new(bytes[split..].to_vec());
    let secret = wrapping_key(specialist, &h.salt)?
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
