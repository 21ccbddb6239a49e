use crate::KeyId;

/// Everything that can go wrong in konvert's cryptography. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signature did not verify against the given key.
    #[error("signature does not verify: the data was altered or was signed by another key")]
    BadSignature,
    /// Bytes that should be a key are not one.
    #[error("malformed key material: {0}")]
    BadKey(&'static str),
    /// A signer key id that the verifier does not trust.
    #[error("envelope is signed by key {0}, which is not an allowed member key")]
    UnknownSigner(KeyId),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
    /// Reading or writing a key, token or envelope failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
