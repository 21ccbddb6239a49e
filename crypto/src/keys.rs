//! Key types: Ed25519 signing keys (members, the center's receipt key) and X25519
//! recipient keys (the center's decryption key), with short key ids and
//! domain-separated signatures.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// What a signature is for. The label prefixes the signed message, so a signature made
/// for one purpose can never be replayed as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The signature trailer of a sealed envelope (over the envelope digest).
    Envelope,
    /// A receipt signed by the center.
    Receipt,
    /// A notice the center sends back to a site (a test packet's verdict, later remarks).
    Notice,
    /// A security officer's signature on the key registry.
    Registry,
    /// A checkpoint of the audit log, signed by the log's key.
    AuditCheckpoint,
    /// A backup's manifest, or the index of an envelope drive for the loader, signed by
    /// the center's receipt key.
    CenterCopy,
    /// The loader's answer to a packet ("loaded" or remarks), signed by a center
    /// specialist's token on the offline workstation.
    PacketAnswer,
    /// A batch of the records' mirror (РИС ↔ ФИС), signed by the owner of its kind.
    MirrorBatch,
    /// A receipt of the records' mirror, signed by the node that applied the batch.
    MirrorReceipt,
}

impl Domain {
    /// The byte label prepended to the message before signing.
    pub fn label(self) -> &'static [u8] {
        match self {
            Domain::Envelope => b"konvert/v1/envelope-signature\0",
            Domain::Receipt => b"konvert/v1/receipt-signature\0",
            Domain::Notice => b"konvert/v1/center-notice\0",
            Domain::Registry => b"konvert/v1/key-registry\0",
            Domain::AuditCheckpoint => b"konvert/v1/audit-checkpoint\0",
            Domain::CenterCopy => b"konvert/v1/center-copy\0",
            Domain::PacketAnswer => b"konvert/v1/packet-answer\0",
            Domain::MirrorBatch => b"konvert/v1/mirror-batch\0",
            Domain::MirrorReceipt => b"konvert/v1/mirror-receipt\0",
        }
    }

    pub(crate) fn message(self, msg: &[u8]) -> Vec<u8> {
        let label = self.label();
        let mut m = Vec::with_capacity(label.len() + msg.len());
        m.extend_from_slice(label);
        m.extend_from_slice(msg);
        m
    }
}

/// A 16-byte key identifier: the first 16 bytes of
/// SHA-256("konvert/v1/key-id\0" ‖ kind ‖ public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    fn derive(kind: u8, public: &[u8]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"konvert/v1/key-id\0");
        ctx.update(&[kind]);
        ctx.update(public);
        let d = ctx.finish();
        let mut id = [0u8; 16];
        id.copy_from_slice(&d.as_ref()[..16]);
        KeyId(id)
    }

    /// Parses the 32-hex-digit form printed by `Display`.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut id).map_err(|_| Error::BadKey("a key id is 32 hex digits"))?;
        Ok(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

const KIND_SIGNING: u8 = 1;
const KIND_RECIPIENT: u8 = 2;

/// Fills `buf` from the system's secure random number generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new().fill(buf).map_err(|_| Error::Rng)
}

/// An Ed25519 signing key. The seed is zeroized on drop and never printed; ring's expanded
/// key pair beside it is not wiped (ring does not zeroize its key types).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    seed: Zeroizing<[u8; 32]>,
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        random_bytes(seed.as_mut())?;
        Self::from_seed(&seed)
    }

    /// The key for a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| Error::BadKey("not an Ed25519 seed"))?;
        Ok(SigningKey {
            pair,
            seed: Zeroizing::new(*seed),
        })
    }

    /// The secret seed, for writing the key into a protected file.
    pub fn seed(&self) -> &Zeroizing<[u8; 32]> {
        &self.seed
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(pk)
    }

    /// The id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.verifying_key().key_id()
    }

    /// Signs `msg` for `domain`.
    pub fn sign(&self, domain: Domain, msg: &[u8]) -> Signature {
        let sig = self.pair.sign(&domain.message(msg));
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        Signature(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, secret redacted)", self.key_id())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VerifyingKey(pub [u8; 32]);

impl VerifyingKey {
    /// Its key id.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive(KIND_SIGNING, &self.0)
    }

    /// Checks `sig` over `msg` for `domain`.
    pub fn verify(&self, domain: Domain, msg: &[u8], sig: &Signature) -> Result<()> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&domain.message(msg), &sig.0)
            .map_err(|_| Error::BadSignature)
    }

    /// Parses the 64-hex-digit form printed by `Display`; refuses what is not a point of
    /// Ed25519 or is of small order (see [`VerifyingKey::is_usable`]).
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut pk = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut pk).map_err(|_| Error::BadKey("a public key is 64 hex digits"))?;
        let key = VerifyingKey(pk);
        if !key.is_usable() {
            return Err(Error::BadKey(
                "not a usable Ed25519 public key (not on the curve, or of small order: such a key verifies forged signatures)",
            ));
        }
        Ok(key)
    }

    /// Whether the key is a point of Ed25519 that is not of small order. A small-order key
    /// (the identity, for one) verifies the signature (R = identity, S = 0) for every
    /// message, so no such key may be trusted.
    pub fn is_usable(&self) -> bool {
        curve25519_dalek::edwards::CompressedEdwardsY(self.0)
            .decompress()
            .is_some_and(|p| !p.is_small_order())
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let buf = serde_bytes::ByteBuf::deserialize(d)?;
        let bytes: &[u8] = buf.as_ref();
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"64 signature bytes"))?;
        Ok(Signature(arr))
    }
}

/// The center's X25519 recipient (decryption) key. Zeroized on drop, never printed.
pub struct RecipientSecretKey {
    secret: x25519_dalek::StaticSecret,
    /// Computed once: the loader asks for it for every packet it opens, and each
    /// derivation is a scalar multiplication.
    public: [u8; 32],
}

impl RecipientSecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut b = Zeroizing::new([0u8; 32]);
        random_bytes(b.as_mut())?;
        Ok(Self::from_bytes(&b))
    }

    /// The key for 32 secret bytes.
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*b);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        RecipientSecretKey { secret, public }
    }

    /// The secret bytes, for writing the key into a protected file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half, which edges seal to.
    pub fn public_key(&self) -> RecipientPublicKey {
        RecipientPublicKey(self.public)
    }

    /// X25519 agreement with a peer's public key; `None` for a low-order peer key
    /// (all-zero shared secret), which must be treated as a failure.
    pub fn agree(&self, peer: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        if !shared.was_contributory() {
            return None;
        }
        Some(Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientSecretKey({}, secret redacted)", self.public_key().key_id())
    }
}

/// The public half of a recipient key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecipientPublicKey(pub [u8; 32]);

impl RecipientPublicKey {
    /// Its key id.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive(KIND_RECIPIENT, &self.0)
    }

    /// Parses the 64-hex-digit form printed by `Display`.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut pk = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut pk).map_err(|_| Error::BadKey("a public key is 64 hex digits"))?;
        Ok(RecipientPublicKey(pk))
    }
}

impl fmt::Display for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientPublicKey({})", self.key_id())
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
