//! The thin quinn/tokio driver around the sans-IO core: frames over QUIC streams, the
//! edge's push of one packet per stream, and the center's per-connection service.

mod bandwidth;
mod client;
mod server;
mod stream;

pub use bandwidth::{exchange_bandwidth, BrokerDesk, STATUS_EVERY};
pub use client::{
    ask_notices, ask_notices_for, connect, send_packet, send_packet_paced, watch_registry, watch_revocations, Outcome,
    Pace, AGENT,
};
pub use server::{
    serve_connection, serve_connection_until, Admission, Completion, Drain, Intake, RegistryFeed, RevocationFeed,
    SignedUpdate, StationSession,
};
pub use stream::{read_message, read_message_bounded, write_message, ConnectionFrames, FrameLimits};
