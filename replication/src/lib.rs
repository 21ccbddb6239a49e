//! konvert's replication: moving sealed envelopes from edges to the center, exactly once.
//!
//! The core is sans-IO — [`frame`] (length-prefixed postcard), [`message`], [`sender`] and
//! [`receiver`] are plain state machines fed with messages, with no sockets, clock, tokio or
//! sled inside — so it is tested deterministically. Around it: [`pki`] and [`tls`] (the
//! center's private CA, station certificates, mutual TLS), the durable [`outbox`] and
//! [`inbox`] on sled, and the thin quinn driver in [`driver`].

mod error;
pub mod message;
pub mod receipt;
mod durable;
pub mod driver;
pub mod frame;
pub mod handshake;
pub mod receiver;
pub mod sender;
pub mod pki;
pub mod tls;
pub mod inbox;
pub mod outbox;

pub use error::Error;
pub use message::{Message, Offer, RejectReason, PROTOCOL_VERSION};
pub use receipt::{Receipt, ReceiptBody};
pub use inbox::{Inbox, InboxRecord};
pub use outbox::{Outbox, OutboxEntry, OutboxState};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
