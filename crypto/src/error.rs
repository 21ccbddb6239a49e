use crate::KeyId;

/// Everything that can go wrong in konvert's cryptography. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signature did not verify against the given key.
    #[error("signature does not verify: the data was altered or was signed by another key; do not trust it, have it sent again")]
    BadSignature,
    /// Bytes that should be a key are not one.
    #[error("malformed key material: {0}")]
    BadKey(&'static str),
    /// A signer key id that the verifier does not trust.
    #[error("envelope is signed by key {0}, which is not an allowed member key; check that the member's token is issued and in the current key registry")]
    UnknownSigner(KeyId),
    /// Not a konvert envelope.
    #[error("not a konvert envelope (bad magic bytes); the file is damaged or is something else")]
    BadMagic,
    /// An envelope format or suite this build does not read.
    #[error("envelope format {version} suite {suite} is not supported by this version of konvert; update it")]
    UnsupportedFormat {
        /// Format version found.
        version: u16,
        /// Algorithm suite found.
        suite: u16,
    },
    /// A format-1 envelope (no key commitment) offered as new: only the store may hold one.
    #[error("envelope format {version} has no key commitment and is read only from a center's store; seal the packet again with this version of konvert")]
    LegacyEnvelope {
        /// Format version found.
        version: u16,
    },
    /// The file key does not match the header's commitment: recipients could see different content.
    #[error("envelope refused: {0}")]
    KeyCommitment(String),
    /// The declared header length is above the limit.
    #[error("envelope header of {len} bytes exceeds the limit of {max}; the file is damaged")]
    HeaderTooLarge {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header does not decode.
    #[error("envelope header is malformed: {0}")]
    MalformedHeader(String),
    /// The envelope ends too early.
    #[error("envelope is truncated; it was cut short in copying or transfer — seal or send it again")]
    Truncated,
    /// The envelope's structure is wrong.
    #[error("envelope is malformed: {0}")]
    Malformed(String),
    /// A chunk failed authentication while opening.
    #[error("chunk {index} of the envelope fails authentication; the file is damaged or was altered")]
    ChunkAuthentication {
        /// The chunk's index.
        index: u64,
    },
    /// The envelope is not sealed to this recipient key.
    #[error("the envelope is not sealed to recipient key {0}; use the center key it was sealed to")]
    NotARecipient(KeyId),
    /// Sealing needs at least one recipient.
    #[error("an envelope needs at least one recipient key")]
    NoRecipients,
    /// The PIN does not open the token.
    #[error("wrong PIN for token {token_id}; {}", tries_left(*.remaining_tries))]
    WrongPin {
        /// The token.
        token_id: String,
        /// Wrong PINs still allowed before the token locks, when the token tells.
        remaining_tries: Option<u32>,
    },
    /// Too many wrong PINs: the token refuses every PIN, even the right one.
    #[error("member token {token_id} is locked after too many wrong PINs and refuses every PIN now; bring the token to the security officer")]
    TokenLocked {
        /// The token.
        token_id: String,
    },
    /// A PKCS#11 module or token failed or refused (never carries a PIN).
    #[error("hardware token: {0}")]
    Pkcs11(String),
    /// A new token's PIN is too short.
    #[error("the PIN must have at least {min} characters; choose a longer PIN")]
    PinTooShort {
        /// The shortest PIN accepted.
        min: usize,
    },
    /// A new token's PIN is only spaces or one character repeated.
    #[error("the PIN is only spaces or one character repeated; choose a PIN with different characters")]
    WeakPin,
    /// A new center specialist's passphrase is too weak.
    #[error("a center specialist's token needs a passphrase of at least {min} characters with at least {distinct} different ones (spaces aside), not only digits: it unwraps the key to every scan; choose a longer passphrase (or use a hardware token)")]
    WeakPassphrase {
        /// The shortest passphrase accepted.
        min: usize,
        /// The fewest different characters accepted, spaces aside.
        distinct: usize,
    },
    /// A token or key file is damaged or of the wrong kind.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key registry was refused; `reason` is machine-readable.
    #[error("key registry refused ({reason:?}): {detail}")]
    Registry {
        /// Why.
        reason: crate::registry::RegistryRefusal,
        /// In words.
        detail: String,
    },
    /// An audit entry's field is too long or malformed.
    #[error("audit entry field {field}: {message}")]
    AuditField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The audit log does not verify, so the writer will not append to it.
    #[error("{path}: refusing to append to this audit log: {finding}; keep the file as evidence, check it with `konvert keys audit verify`, and start a new log beside it")]
    AuditLogRefused {
        /// The log.
        path: std::path::PathBuf,
        /// The first problem found.
        finding: crate::audit::Finding,
    },
    /// An earlier write to the audit log failed; its end may hold a partial record.
    #[error("an earlier write to the audit log failed; reopen the log (which repairs a partial last record) before appending")]
    AuditLogBroken,
    /// A value could not be encoded.
    #[error("could not encode: {0}")]
    Encode(String),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
    /// Reading or writing a key, token or envelope failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn tries_left(remaining: Option<u32>) -> String {
    match remaining {
        Some(0) => "that was the last try: the token is now locked; bring it to the security officer".into(),
        Some(1) => "1 try left before the token locks; check the PIN envelope before trying again".into(),
        Some(n) => format!("{n} tries left before the token locks; check the PIN envelope and try again"),
        None => "check the PIN envelope and try again".into(),
    }
}
