//! konvert's cryptography: member signing keys, center recipient keys, PIN-protected
//! member token files, the sealed envelope format (streaming seal, verify, open) and
//! domain-separated signatures.
//!
//! Contract: every primitive comes from `ring` (and `x25519-dalek` for agreement with a
//! stored X25519 key, which ring cannot do — ring issue #331). Secrets are zeroized on
//! drop and never appear in `Debug`, `Display` or error messages. This crate reads and
//! writes key and token files, and nothing else: it knows nothing of networks.

pub mod envelope;
mod error;
pub mod keyfile;
pub mod keys;
pub mod token;

pub use envelope::{EnvelopeHeader, EnvelopeVerifier, SealRequest, SealSummary, VerifiedEnvelope};
pub use error::Error;
pub use keys::{
    random_bytes, Domain, KeyId, RecipientPublicKey, RecipientSecretKey, Signature, SigningKey, VerifyingKey,
};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
