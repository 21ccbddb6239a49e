/// Everything that can go wrong in the protocol: bad frames, messages out of turn,
/// receipts and notices that do not verify, a refusal from the center.
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
    /// A message arrived that is wrong for the state of the exchange.
    #[error("protocol violation: expected {expected}, got {got}")]
    Unexpected {
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
}
