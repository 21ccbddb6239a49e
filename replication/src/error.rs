/// Everything that can go wrong in replication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol, sent a receipt or notice that does not verify, or
    /// refused the session.
    #[error(transparent)]
    Protocol(#[from] konvert_protocol::Error),
    /// A frame did not start or finish within its time limit.
    #[error("the peer sent no whole frame within {seconds} s ({what}); the stream is closed")]
    FrameTimeout {
        /// The limit, in seconds.
        seconds: u64,
        /// Which limit.
        what: &'static str,
    },
    /// A connection had too many frames unfinished at once.
    #[error("{0} frames are already unfinished on this connection; the stream is closed")]
    TooManyUnfinished(usize),
    /// Cryptography failed.
    #[error(transparent)]
    Crypto(#[from] konvert_crypto::Error),
    /// Durable storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A sled database failed (its disk was full or failing) and cannot be opened again yet.
    #[error(
        "{what} at {} failed and cannot be opened again yet ({cause}); free space on its disk or mend the disk: \
         it is opened again at its next use, without a restart",
        path.display()
    )]
    DatabaseDown {
        /// Which database, in words.
        what: &'static str,
        /// Its folder.
        path: std::path::PathBuf,
        /// Why it does not open.
        cause: String,
    },
    /// A reserve-channel drive holds something wrong (index, envelope or receipt file).
    #[error("{path}: {message}")]
    Drive {
        /// The file or folder on the drive.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A station revocation list older than one already put in force here: it would undo
    /// revocations made since.
    #[error(
        "{list_file}: this station revocation list (signed at {signed_at}) is older than the list already put in \
         force here (signed at {in_force_signed_at}, recorded in {floor_file}); an old list would undo the \
         revocations made since, so it is refused. Put the newest list back, or sign a fresh one with every \
         revocation: `konvert keys renew-crl --center DIR`"
    )]
    OlderRevocationList {
        /// The list file refused.
        list_file: std::path::PathBuf,
        /// When it was signed.
        signed_at: String,
        /// When the list in force was signed.
        in_force_signed_at: String,
        /// Where the newest list put in force is recorded.
        floor_file: std::path::PathBuf,
    },
    /// The record of the newest station revocation list put in force is missing or
    /// damaged where it must be present.
    #[error(
        "{floor_file} {problem}. It records the newest station revocation list put in force here, so that \
         an older list put back cannot undo revocations; without it the server does not start. At the \
         center: `konvert keys renew-crl --center DIR` signs a fresh list with every revocation of the \
         station index and records it here. At a relay: copy the center's current list (its `crl` file) \
         as stations.crl into the relay's data folder and the center's crl-in-force.toml (from the \
         center's data folder) beside it"
    )]
    RevocationFloor {
        /// The floor file.
        floor_file: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Certificates or TLS configuration failed.
    #[error("TLS/certificate error: {0}")]
    Tls(String),
    /// The QUIC connection failed.
    #[error("connection error: {0}")]
    Connection(String),
    /// File I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
