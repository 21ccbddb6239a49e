//! konvert's replication protocol, sans-IO: [`frame`] (length-prefixed postcard),
//! [`message`], the [`handshake`], the packet [`sender`] and [`receiver`], signed
//! [`receipt`]s and [`notice`]s, the loader's [`answer`]s, the bandwidth [`schedule`]
//! (scheduler and broker) and the edge's [`push`] session are plain state machines fed
//! with messages and time.
//!
//! This crate depends on no runtime, socket or storage crate (no tokio, quinn or sled),
//! so "sans-IO" is checked by the compiler; `konvert-replication` drives it over QUIC
//! and keeps its queues on sled.

pub mod answer;
pub mod backoff;
mod error;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod notice;
pub mod push;
pub mod receipt;
pub mod receiver;
pub mod schedule;
pub mod sender;

pub use answer::{AnswerOutcome, PacketAnswer, Remark, RemarkAction};
pub use error::Error;
pub use frame::FrameDecoder;
pub use message::{Message, Offer, RejectReason, Share, SiteStatus, PROTOCOL_VERSION};
pub use notice::{Notice, SignedNotice, TestVerdict, Verdict};
pub use receipt::{Receipt, ReceiptBody};
pub use receiver::{PacketReceiver, ReceiverEvent};
pub use sender::{PacketSender, SenderEvent};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
