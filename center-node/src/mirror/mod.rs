//! The records' mirror between a region (РИС) and the federal node (ФИС), as processes:
//! a thin tokio + quinn driver around the sans-IO [`konvert_mirror::Endpoint`] with its
//! state in PostgreSQL ([`konvert_records::PgMirror`]).
//!
//! - [`node`]: one node's endpoint and store, stepped on blocking threads in the order
//!   the store requires; the metrics hooks ([`node::MirrorHooks`]).
//! - [`link`]: one QUIC connection, one unidirectional stream per message.
//! - [`identity`]: mutual TLS with the federal CA, ALPN `konvert-mirror/1`, and which
//!   region a certificate names.
//! - [`federal`]: the federal node's role (`konvert-center federal …`).
//! - [`region`]: a region's mirror process (`konvert-center mirror …`).
//! - [`config`]: `federal.toml` and `mirror.toml`.
//! - [`metrics`]: the metrics a running node serves.

pub mod cli;
pub mod config;
pub mod federal;
pub mod identity;
pub mod link;
pub mod metrics;
pub mod node;
pub mod region;
pub mod wake;
