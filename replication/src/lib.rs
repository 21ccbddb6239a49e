//! konvert's replication: moving sealed envelopes from edges to the center, exactly once.
//!
//! The protocol itself — frames, messages, sender, receiver, receipts, notices and the
//! bandwidth schedule — is the sans-IO crate `konvert-protocol`, re-exported here under
//! the same module names. Around it: [`pki`] and [`tls`] (the center's private CA,
//! station certificates, mutual TLS), the durable [`outbox`] and [`inbox`] on sled, the
//! reserve channel's drive format in [`reserve`], and the thin quinn driver in [`driver`].

pub mod crl_floor;
pub mod disk_floor;
pub mod drive;
pub mod driver;
mod durable;
mod error;
pub mod inbox;
pub mod live;
pub mod logging;
pub mod mending;
pub mod metrics_http;
pub mod outbox;
pub mod pki;
pub mod reserve;
pub mod service;
mod since_clean;
pub mod sled_copy;
pub mod tls;
pub mod toml_text;

pub use durable::{open_sled, SledDb};
pub use error::Error;
pub use inbox::{Inbox, InboxRecord, TornEnvelope};
pub use konvert_protocol::{answer, frame, handshake, message, notice, receipt, receiver, schedule, sender};
pub use konvert_protocol::{AnswerOutcome, PacketAnswer, Remark, RemarkAction};
pub use konvert_protocol::{
    FrameDecoder, Message, Notice, Offer, PacketReceiver, PacketSender, Receipt, ReceiptBody, ReceiverEvent,
    RejectReason, SenderEvent, Share, SignedNotice, SiteStatus, TestVerdict, Verdict, PROTOCOL_VERSION,
};
pub use mending::{Mending, SledHandles};
pub use outbox::{Exported, Outbox, OutboxEntry, OutboxState};
pub use toml_text::toml_error;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
