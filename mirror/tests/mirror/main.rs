//! The mirror's core: each refusal, the codec, the sender's pacing, and a seeded
//! simulation of one federal node and three regions over a lossy network.

// Test helpers outside #[test] functions unwrap too; a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod channel;
mod codec;
mod refusals;
mod restore;
mod sender;
mod sim;
mod util;
