//! A UDP impairment proxy, since `tc netem` is not available: it sits between an edge
//! and the center and, in each direction, drops, delays (with jitter), reorders,
//! duplicates, rate-limits and blacks out datagrams, all driven by a seeded RNG so a run
//! can be repeated. One client (the edge's QUIC endpoint) at a time. Used by the
//! bad-network tests and by `konvert bench network` (goodput under loss).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// How one direction of the path misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Probability a datagram is held back a further `delay` (so later ones overtake it).
    pub reorder: f64,
    /// Probability a datagram is sent twice.
    pub duplicate: f64,
    /// Link rate in bits per second (none: unlimited); datagrams queue behind each other.
    pub rate_bps: Option<u64>,
    /// Periods, from the proxy's start, in which every datagram is dropped.
    pub blackouts: Vec<(Duration, Duration)>,
}

/// What the proxy did, per direction (0: edge → center, 1: center → edge).
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Datagrams received.
    pub received: [AtomicU64; 2],
    /// Datagrams dropped (loss or blackout).
    pub dropped: [AtomicU64; 2],
    /// Datagrams forwarded (duplicates counted).
    pub forwarded: [AtomicU64; 2],
    /// Bytes forwarded.
    pub bytes: [AtomicU64; 2],
}

/// A running proxy; dropped, it stops.
pub struct ImpairProxy {
    /// Where the edge connects instead of the center.
    pub addr: SocketAddr,
    /// Counters.
    pub stats: Arc<ProxyStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ImpairProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One direction's scheduler: decides each datagram's fate and departure time.
struct Shaper {
    imp: Impairment,
    rng: SmallRng,
    started: Instant,
    link_free_at: Instant,
}

impl Shaper {
    /// Departure times for a datagram of `len` bytes arriving `now` (none: dropped).
    fn schedule(&mut self, len: usize, now: Instant) -> Vec<Instant> {
        let since = now - self.started;
        if self
            .imp
            .blackouts
            .iter()
            .any(|(from, to)| since >= *from && since < *to)
        {
            return vec![];
        }
        if self.rng.gen_bool(self.imp.loss.clamp(0.0, 1.0)) {
            return vec![];
        }
        let mut at = now;
        if let Some(rate) = self.imp.rate_bps.filter(|r| *r > 0) {
            let on_wire = Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            let start = self.link_free_at.max(now);
            self.link_free_at = start + on_wire;
            at = self.link_free_at;
        }
        at += self.imp.delay;
        if !self.imp.jitter.is_zero() {
            at += self.imp.jitter.mul_f64(self.rng.gen::<f64>());
        }
        if self.rng.gen_bool(self.imp.reorder.clamp(0.0, 1.0)) {
            at += self.imp.delay.max(Duration::from_millis(2));
        }
        let mut out = vec![at];
        if self.rng.gen_bool(self.imp.duplicate.clamp(0.0, 1.0)) {
            out.push(at + Duration::from_micros(100));
        }
        out
    }
}

type Queue = BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>;

/// Moves datagrams from `rx` to `send`, shaped; `dest` picks the address to send to.
async fn pump(
    rx: Arc<UdpSocket>,
    tx: Arc<UdpSocket>,
    mut shaper: Shaper,
    dir: usize,
    stats: Arc<ProxyStats>,
    learn_client: Option<Arc<Mutex<Option<SocketAddr>>>>,
    dest: Arc<Mutex<Option<SocketAddr>>>,
) {
    let mut queue: Queue = BinaryHeap::new();
    let mut seq = 0u64;
    let mut buf = vec![0u8; 65_536];
    loop {
        let next = queue.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            got = rx.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { return };
                if let Some(client) = &learn_client {
                    if let Ok(mut c) = client.lock() {
                        *c = Some(from);
                    }
                }
                stats.received[dir].fetch_add(1, Ordering::Relaxed);
                let times = shaper.schedule(n, Instant::now());
                if times.is_empty() {
                    stats.dropped[dir].fetch_add(1, Ordering::Relaxed);
                }
                for at in times {
                    seq += 1;
                    queue.push(Reverse((at, seq, buf[..n].to_vec())));
                }
            }
            _ = async { if let Some(at) = next { tokio::time::sleep_until(at).await } else { std::future::pending::<()>().await } } => {
                let now = Instant::now();
                while queue.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                    let Some(Reverse((_, _, bytes))) = queue.pop() else { break };
                    let to = dest.lock().ok().and_then(|d| *d);
                    if let Some(to) = to {
                        if tx.send_to(&bytes, to).await.is_ok() {
                            stats.forwarded[dir].fetch_add(1, Ordering::Relaxed);
                            stats.bytes[dir].fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    }
}

impl ImpairProxy {
    /// Starts a proxy on loopback in front of `upstream`, with `up` shaping edge → center
    /// and `down` center → edge, seeded with `seed`.
    pub async fn start(upstream: SocketAddr, up: Impairment, down: Impairment, seed: u64) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let stats = Arc::new(ProxyStats::default());
        let client = Arc::new(Mutex::new(None));
        let center = Arc::new(Mutex::new(Some(upstream)));
        let now = Instant::now();
        let shaper = |imp: Impairment, salt: u64| Shaper {
            imp,
            rng: SmallRng::seed_from_u64(seed ^ salt),
            started: now,
            link_free_at: now,
        };
        let tasks = vec![
            tokio::spawn(pump(
                front.clone(),
                back.clone(),
                shaper(up, 0x5eed_0001),
                0,
                stats.clone(),
                Some(client.clone()),
                center,
            )),
            tokio::spawn(pump(
                back,
                front,
                shaper(down, 0x5eed_0002),
                1,
                stats.clone(),
                None,
                client,
            )),
        ];
        Ok(ImpairProxy { addr, stats, tasks })
    }
}

#[cfg(test)]
#[path = "impair_tests.rs"]
mod tests;
