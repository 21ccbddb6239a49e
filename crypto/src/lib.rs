//! konvert's cryptography: member signing keys, center recipient keys, PIN-protected
//! member token files, the sealed envelope format (streaming seal, verify, open) and
//! domain-separated signatures.
//!
//! Contract: every primitive comes from `ring` (and `x25519-dalek` for agreement with a
//! stored X25519 key, which ring cannot do — ring issue #331). Secrets this crate holds
//! itself (seeds, file keys, PIN-derived keys, X25519 secrets) are zeroized on drop, and no
//! secret appears in `Debug`, `Display` or error messages. Not zeroized: the expanded keys
//! inside ring's own types (`Ed25519KeyPair`, `LessSafeKey`, HKDF and HMAC keys), which ring
//! does not wipe, and copies the allocator or the OS made (swap, core dumps): keep key
//! material on machines whose swap is encrypted and whose core dumps are off. This crate reads and
//! writes key, token and audit log files, and nothing else: it knows nothing of networks.
//!
//! - [`envelope`]: [`envelope::seal`] a payload for one or more center recipient keys,
//!   signed by a member key; [`envelope::verify`] structure and signature without any
//!   decryption key (streaming, or piece by piece with [`EnvelopeVerifier`]);
//!   [`envelope::open`] (verify, then decrypt); [`envelope::read_header`] for a cheap look.
//!   Only `verify` and `open` make a [`VerifiedEnvelope`].
//! - [`token`]: [`TokenFile`], a member's Ed25519 key encrypted under a PIN.
//! - [`signer`]: [`MemberSigner`], a member key in a token file or on a hardware token.
//! - [`pkcs11`]: member keys generated on and used from PKCS#11 hardware tokens.
//! - [`keyfile`]: the center's secret key files and [`keyfile::write_atomic`].
//! - [`audit`]: the tamper-evident audit log — hash-chained entries, signed checkpoints,
//!   [`audit::verify`] naming the first edited, removed, reordered or truncated entry.
//!
//! Every byte of every format is described in `crypto/FORMAT.md`.

pub mod audit;
pub mod envelope;
mod error;
pub mod keyfile;
pub mod keys;
pub mod loader_key;
pub mod pkcs11;
pub mod registry;
pub mod signer;
pub mod token;

pub use envelope::{
    EnvelopeHeader, EnvelopeVerifier, SealRequest, SealSummary, VerifiedEnvelope, WrappedKey, CHUNK_SIZE,
    MAX_HEADER_LEN,
};
pub use error::Error;
pub use keys::{
    random_bytes, Domain, KeyId, RecipientPublicKey, RecipientSecretKey, Signature, SigningKey, VerifyingKey,
};
pub use signer::MemberSigner;
pub use token::{KdfParams, TokenFile, DEFAULT_KDF_ITERATIONS, MAX_PIN_TRIES};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
