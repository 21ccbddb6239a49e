//! The CPU that konvert's design cannot avoid for one transfer, each part measured on this
//! machine in the same run, and what it bounds: on a machine whose every core is busy,
//! no implementation of the design moves the bytes faster than its floor allows.
//!
//! The parts, and the fixed decision that makes each one unavoidable:
//! - the transport: mutual-TLS QUIC (`bench quic` over the same bytes);
//! - two SHA-256 passes: the member's signature over header ‖ ciphertext, and the center's
//!   check of that signature before it signs a receipt, since it cannot decrypt
//!   (design §2: ring for all primitives, so SHA-256). The manifest's file digests (the
//!   sealed scans are the scans recognized) are made once, when intake takes each scan in,
//!   and sealing reuses them, so they are no part of a transfer;
//! - one AES-256-GCM pass: sealing end to end at the edge;
//! - two fsync'd writes of every byte: the edge's durable outbox (it keeps every packet
//!   until the center's receipt) and the center's store (durable before the receipt).
//!
//! Not counted, so the floor is lower than any real transfer: reading the scans and the
//! outbox back, the archive, the queues' own writes, task switches.

use std::time::{Duration, Instant};

use crate::bench_table::Row;

/// The floor row.
pub const ROW_FLOOR: (&str, &str) = (
    "— the most konvert's design can reach here ÷ rsync (its CPU floor, every core busy)",
    "",
);

/// The parts of the floor for one transfer of `bytes`, each measured in this run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuFloor {
    /// Envelope bytes moved.
    pub bytes: u64,
    /// Cores the machine has.
    pub cores: usize,
    /// The transport alone over the same bytes, core-seconds.
    pub transport_core_s: f64,
    /// SHA-256 on one core, bytes per second.
    pub sha256_per_s: f64,
    /// AES-256-GCM sealing on one core, bytes per second.
    pub aes_gcm_per_s: f64,
    /// One fsync'd write of the same bytes as files (the disk probe), core-seconds.
    pub fsynced_write_core_s: f64,
}

impl CpuFloor {
    /// Core-seconds of the two SHA-256 passes.
    pub fn sha256_core_s(&self) -> f64 {
        2.0 * self.bytes as f64 / self.sha256_per_s.max(1.0)
    }

    /// Core-seconds of the AES-256-GCM pass.
    pub fn aes_gcm_core_s(&self) -> f64 {
        self.bytes as f64 / self.aes_gcm_per_s.max(1.0)
    }

    /// All the parts together, core-seconds.
    pub fn core_seconds(&self) -> f64 {
        self.transport_core_s + self.sha256_core_s() + self.aes_gcm_core_s() + 2.0 * self.fsynced_write_core_s
    }

    /// The shortest possible transfer: every core busy with nothing but the floor.
    pub fn shortest(&self) -> Duration {
        Duration::from_secs_f64(self.core_seconds() / self.cores.max(1) as f64)
    }

    /// How many times faster than a transfer that took `other` the floor allows.
    pub fn most_against(&self, other: Duration) -> f64 {
        other.as_secs_f64() / self.shortest().as_secs_f64().max(1e-9)
    }

    /// The row, against rsync's time in the same run, with how much of the floor konvert
    /// reached when it took `konvert_took` in that run.
    pub fn row(&self, rsync_took: Duration, konvert_took: Duration) -> Row {
        let ratio = self.most_against(rsync_took);
        let reached = self.shortest().as_secs_f64() / konvert_took.as_secs_f64().max(1e-9);
        Row::measured(
            ROW_FLOOR.0,
            ROW_FLOOR.1,
            format!("{ratio:.2}×"),
            None,
            format!(
                "what the design's fixed decisions cost per transfer, each measured here in this run: the transport \
                 {:.1} core-s + SHA-256 twice ({:.2} GB/s per core: the member's signature, the center's check \
                 without the key; the manifest reuses intake's digests) {:.1} + AES-256-GCM ({:.2} GB/s) {:.1} + two \
                 fsync'd writes of every byte (the edge's outbox, the center's store; the disk probe) 2 × {:.1} = \
                 {:.1} core-s, at least {:.2} s on {} cores against rsync's {:.2} s; reading the scans and the \
                 outbox, the archive and the queues are not counted. konvert took {:.2} s: {:.0} % of its floor",
                self.transport_core_s,
                self.sha256_per_s / 1e9,
                self.sha256_core_s(),
                self.aes_gcm_per_s / 1e9,
                self.aes_gcm_core_s(),
                self.fsynced_write_core_s,
                self.core_seconds(),
                self.shortest().as_secs_f64(),
                self.cores,
                rsync_took.as_secs_f64(),
                konvert_took.as_secs_f64(),
                100.0 * reached
            ),
        )
    }
}

/// Bytes each speed probe runs over: long enough to swamp the timer, short next to a run.
const PROBE_BYTES: usize = 256 << 20;
const PROBE_BLOCK: usize = 1 << 20;

/// SHA-256 (ring, as konvert uses it) on this thread, bytes per second.
pub fn sha256_speed() -> f64 {
    let block = vec![0x5au8; PROBE_BLOCK];
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let started = Instant::now();
    for _ in 0..PROBE_BYTES / PROBE_BLOCK {
        ctx.update(&block);
    }
    let _ = ctx.finish();
    PROBE_BYTES as f64 / started.elapsed().as_secs_f64().max(1e-9)
}

/// AES-256-GCM sealing (ring, in 64 KiB chunks as the envelope does) on this thread,
/// bytes per second; `None` if ring refuses the key (it never should).
pub fn aes_gcm_speed() -> Option<f64> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).ok()?);
    let mut chunk = vec![0x5au8; konvert_crypto::envelope::CHUNK_SIZE];
    let chunks = PROBE_BYTES / chunk.len();
    let started = Instant::now();
    for i in 0..chunks {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let _tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut chunk)
            .ok()?;
    }
    Some((chunks * chunk.len()) as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

#[cfg(test)]
#[path = "bench_floor_tests.rs"]
mod tests;
