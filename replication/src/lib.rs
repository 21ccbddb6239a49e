//! konvert's replication: moving sealed envelopes from edges to the center, exactly once.
//!
//! The core is sans-IO — [`frame`] (length-prefixed postcard), [`message`], [`sender`] and
//! [`receiver`] — and the bandwidth [`schedule`] — are plain state machines fed with
//! messages, with no sockets, clock, tokio or sled inside — so it is tested deterministically. Around it: [`pki`] and [`tls`] (the
//! center's private CA, station certificates, mutual TLS), the durable [`outbox`] and
//! [`inbox`] on sled, the reserve channel's drive format in [`reserve`], and the thin quinn
//! driver in [`driver`].

pub mod answer;
pub mod crl_floor;
pub mod drive;
pub mod driver;
mod durable;
mod error;
pub mod frame;
pub mod handshake;
pub mod inbox;
pub mod live;
pub mod logging;
pub mod message;
pub mod metrics_http;
pub mod notice;
pub mod outbox;
pub mod pki;
pub mod receipt;
pub mod receiver;
pub mod reserve;
pub mod schedule;
pub mod sender;
pub mod service;
pub mod sled_copy;
pub mod tls;
pub mod toml_text;

pub use answer::{AnswerOutcome, PacketAnswer, Remark, RemarkAction};
pub use durable::{open_sled, SledDb};
pub use error::Error;
pub use frame::FrameDecoder;
pub use inbox::{Inbox, InboxRecord, TornEnvelope};
pub use message::{Message, Offer, RejectReason, Share, SiteStatus, PROTOCOL_VERSION};
pub use notice::{Notice, SignedNotice, TestVerdict, Verdict};
pub use outbox::{Exported, Outbox, OutboxEntry, OutboxState};
pub use receipt::{Receipt, ReceiptBody};
pub use receiver::{PacketReceiver, ReceiverEvent};
pub use sender::{PacketSender, SenderEvent};
pub use toml_text::toml_error;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
