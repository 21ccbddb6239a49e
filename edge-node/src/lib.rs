//! The exam site's node (`konvert-edge`): seals a room's scans into an envelope signed
//! with the member's token and encrypted to the center, keeps it in a durable outbox,
//! and pushes the outbox to the center over QUIC until every packet has a signed receipt
//! — or, when the network fails, exports it to a drive and takes the receipts back from it.
//!
//! Contract: the edge never holds the center's private keys; a packet counts as delivered
//! only with a receipt that verifies against the configured center receipt key.

pub mod answers;
pub mod cli;
pub mod config;
pub mod day;
pub mod deadline;
pub mod drill;
mod error;
pub mod inspect;
pub mod intake;
pub mod push;
pub mod readiness;
pub mod relay;
pub mod reserve;
pub mod rooms;
pub mod seal;

pub use config::SiteConfig;
pub use error::Error;
pub use push::{push, push_via, Link, PushOptions, PushReport};
pub use seal::{seal_room, seal_sources, SealedPacket};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
