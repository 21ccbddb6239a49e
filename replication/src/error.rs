/// Everything that can go wrong in replication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame's declared length exceeds the maximum; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes; the peer is misbehaving or runs an incompatible version")]
    FrameTooLarge {
        /// Declared length.
        len: usize,
        /// Maximum allowed.
        max: usize,
    },
    /// A frame's body is not a valid message.
    #[error("malformed frame: {0}")]
    MalformedFrame(String),
    /// The stream ended in the middle of a frame.
    #[error("the peer closed the stream in the middle of a frame")]
    TruncatedFrame,
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
    /// A message arrived that is wrong for the state of the exchange.
    #[error("protocol violation: expected {expected}, got {got}")]
    Protocol {
        /// What the state machine expected.
        expected: &'static str,
        /// What arrived.
        got: String,
    },
    /// A receipt's signature or contents do not match.
    #[error("receipt is invalid: {0}")]
    BadReceipt(String),
    /// A notice from the center does not verify or does not fit a packet this site sent.
    #[error("notice from the center is invalid: {0}")]
    BadNotice(String),
    /// The center refused the session (on the control stream); `reason` says what to do.
    #[error("the center refused: {} ({detail})", reason.plain_words())]
    Refused {
        /// Why, machine-readable.
        reason: crate::RejectReason,
        /// The center's detail, for logs.
        detail: String,
    },
    /// Cryptography failed.
    #[error(transparent)]
    Crypto(#[from] konvert_crypto::Error),
    /// Durable storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A reserve-channel drive holds something wrong (index, envelope or receipt file).
    #[error("{path}: {message}")]
    Drive {
        /// The file or folder on the drive.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
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
