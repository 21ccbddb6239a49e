//! [`MemberSigner`]: whatever holds a member's Ed25519 key and can sign with it — a key
//! unlocked from a token file ([`SigningKey`]) or a key that never leaves a hardware token
//! ([`crate::pkcs11::Pkcs11Signer`]). Both sign `domain.label() ‖ msg` with pure Ed25519,
//! so [`VerifyingKey::verify`] accepts either.

use crate::{Domain, KeyId, Result, Signature, SigningKey, VerifyingKey};

/// A member's signing key, wherever it lives.
pub trait MemberSigner: Send + Sync {
    /// The public half.
    fn verifying_key(&self) -> VerifyingKey;

    /// Signs `msg` for `domain` (Ed25519 over `domain.label() ‖ msg`).
    fn sign(&self, domain: Domain, msg: &[u8]) -> Result<Signature>;

    /// The id of the public half.
    fn key_id(&self) -> KeyId {
        self.verifying_key().key_id()
    }
}

impl MemberSigner for SigningKey {
    fn verifying_key(&self) -> VerifyingKey {
        SigningKey::verifying_key(self)
    }

    fn sign(&self, domain: Domain, msg: &[u8]) -> Result<Signature> {
        Ok(SigningKey::sign(self, domain, msg))
    }
}
