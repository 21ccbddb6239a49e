//! The regional center's node (`konvert-center`): the receiver service that accepts
//! sealed envelopes from exam-site stations over QUIC with mutual TLS, verifies the
//! member's signature without decrypting, stores the envelope still encrypted, and answers
//! with a signed receipt; the reserve channel's import of envelopes carried on a drive,
//! judged alike; plus its Prometheus metrics and the provisioning of its keys.
//!
//! Contract: the receiver never holds the center's decryption key and never sees
//! plaintext. A receipt is sent only after the envelope is fsynced, verified and indexed.

pub mod answer_file;
pub mod answers;
pub mod answers_cli;
pub mod backup;
pub mod center_key;
pub mod cli;
pub mod config;
pub mod control;
pub mod envelope_drive;
mod error;
pub mod federal_publish;
pub mod image_keep;
pub mod image_store;
pub mod intake;
pub mod late;
pub mod loader;
pub mod loader_audit;
pub mod loader_cli;
pub mod metrics;
pub mod mirror;
pub mod mirror_metrics;
pub mod mirror_status;
pub mod monitor;
pub mod plan_cli;
pub mod plans;
pub mod preview;
pub mod processing;
pub mod provision;
pub mod registry;
pub mod reserve;
pub mod retention;
pub mod review;
pub mod revocation;
pub mod service;
pub mod site_watch;
pub mod specialist;
pub mod stations;
pub mod test_packets;
#[cfg(test)]
mod test_support;
pub mod unpack;
pub mod workstation_key;

pub use config::CenterConfig;
pub use error::Error;
pub use service::{serve, RunningCenter};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
