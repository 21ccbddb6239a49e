//! The kill row: the center (its own process) killed with SIGKILL at seeded random
//! moments during a transfer and restarted at once; the edge resumes by itself. Counts
//! the bytes the edge sent beyond the envelopes' size (sent again), and checks that
//! every packet was receipted and stored exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::now_unix_ms;
use anyhow::Context;
use konvert_crypto::token::TokenFile;
use konvert_edge::push::PushEvent;
use konvert_edge::{push, seal_room, PushOptions};
use konvert_replication::inbox::SEGMENT;
use konvert_replication::{Inbox, Outbox, OutboxState};
use rand::{Rng, SeedableRng};

use crate::bench::{Rig, BENCH_PIN};
use crate::bench_replication::{work_dir, Options};
use crate::bench_table::{Row, RowsResult};
use crate::rooms::write_random_file;

/// The bytes-sent-again row.
pub const ROW_RESENT: (&str, &str) = ("kill -9 of the center during a transfer: bytes sent again", "");
/// The loss row.
pub const ROW_LOSS: (&str, &str) = ("kill -9 of the center: packets lost / stored twice", "0 / 0");

/// The kill moments' seed: the same moments every run.
pub const KILL_SEED: u64 = 0x6b69_6c6c;

/// Bytes the edge wrote to its streams, from its progress events: a packet's offset
/// going back (or staying) starts a new attempt, from where the center's durable copy ends.
#[derive(Default)]
struct SentCounter {
    last: Mutex<HashMap<String, u64>>,
    sent: AtomicU64,
    /// Bytes not sent again because a new attempt resumed past them.
    skipped: AtomicU64,
}

impl SentCounter {
    fn on_progress(&self, packet_id: &str, offset: u64) {
        let Ok(mut last) = self.last.lock() else { return };
        match last.insert(packet_id.to_owned(), offset) {
            Some(prev) if offset > prev => {
                self.sent.fetch_add(offset - prev, Ordering::Relaxed);
            }
            Some(_) => {
                self.skipped.fetch_add(offset, Ordering::Relaxed);
            }
            None => {}
        }
    }
}

/// Envelope files in the center's store.
pub fn stored_files(center_dir: &std::path::Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(center_dir.join("data/store")) else {
        return 0;
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .map(|f| f.flatten().count())
        .sum()
}

/// Runs the kill row: 1 GB in 100 packets of 10 MB and 10 kills (quick: 100 MB, 3 kills).
pub async fn run(opts: &Options) -> RowsResult {
    let (packets, packet_bytes, kills): (usize, usize, usize) = if opts.quick {
        (10, 10_000_000, 3)
    } else {
        (100, 10_000_000, 10)
    };
    let (_temp, root) = work_dir(opts, "kill")?;
    let rig = Rig::new(&root, false)?;
    let mut cfg = rig.cfg.clone();
    // Reconnect soon after a restart; the backoff still doubles while the center is down.
    cfg.push.retry_seconds = 0.1;
    let parallel = cfg.push.parallel;
    let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
    let signer = Arc::new(TokenFile::read(cfg.token_file()?)?.unlock(BENCH_PIN)?);
    for i in 0..packets {
        let room = format!("{:04}", i + 1);
        let dir = root.join("scans").join(&room);
        write_random_file(&dir, "scan.bin", 1000 + i as u64, packet_bytes)?;
        let packet = rig.packet(&room)?;
        let (c, o) = (cfg.clone(), outbox.clone());
        let signer = signer.clone();
        tokio::task::spawn_blocking(move || seal_room(&c, &o, &*signer, &dir, packet, now_unix_ms())).await??;
    }
    let entries = outbox.entries()?;
    let envelope_bytes: u64 = entries.iter().map(|e| e.offer.size).sum();

    let mut rng = rand::rngs::StdRng::seed_from_u64(KILL_SEED);
    let mut moments: Vec<u64> = (0..kills)
        .map(|_| (envelope_bytes as f64 * rng.gen_range(0.02..0.98)) as u64)
        .collect();
    moments.sort_unstable();

    let mut center = rig.start_center()?;
    let counter = Arc::new(SentCounter::default());
    let seen = counter.clone();
    let connected = Arc::new(AtomicU64::new(0));
    let conns = connected.clone();
    let on_event = Arc::new(move |ev: PushEvent| match ev {
        PushEvent::Progress { packet_id, offset, .. } => seen.on_progress(&packet_id, offset),
        PushEvent::Connected => {
            conns.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    });
    let (c, o) = (cfg.clone(), outbox.clone());
    let mut pushing = tokio::spawn(async move {
        push(
            &c,
            o,
            PushOptions {
                max_wait: Duration::from_secs(900),
                on_event,
                more_coming: None,
                expected: None,
            },
        )
        .await
    });
    let mut done_kills = 0;
    let mut connections_seen = 0u64;
    let mut since: Option<u64> = None;
    for at in moments {
        // Kill once the edge is past the moment, has connected to this run of the center,
        // and has sent 1 MiB on that connection: every kill lands in a live transfer.
        loop {
            let sent = counter.sent.load(Ordering::Relaxed);
            if connected.load(Ordering::Relaxed) > connections_seen {
                let from = *since.get_or_insert(sent);
                if sent >= at && sent >= from + (1 << 20) {
                    break;
                }
            }
            if pushing.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if pushing.is_finished() {
            break;
        }
        center.kill();
        done_kills += 1;
        connections_seen = connected.load(Ordering::Relaxed);
        since = None;
        center = rig.start_center()?;
    }
    let report = (&mut pushing).await?.context("the edge's push")?;
    center.kill();
    drop(center);
    anyhow::ensure!(
        done_kills == kills,
        "the transfer ended after {done_kills} of {kills} kills"
    );

    let sent = counter.sent.load(Ordering::Relaxed);
    let skipped = counter.skipped.load(Ordering::Relaxed);
    let resent = sent.saturating_sub(envelope_bytes);
    let inbox = Inbox::open(&rig.center_dir.join("data")).context("opening the center's inbox")?;
    let stored = stored_files(&rig.center_dir);
    let mut receipted = 0;
    for e in outbox.entries()? {
        if let OutboxState::Delivered { receipt } = &e.state {
            receipt
                .verify_for(&rig.init.receipt_public, &e.offer)
                .with_context(|| format!("the receipt for {}", e.offer.packet_id))?;
            receipted += 1;
        }
    }
    let lost = packets.saturating_sub(receipted.min(stored).min(inbox.len()));
    let twice = stored.saturating_sub(packets) + inbox.len().saturating_sub(packets);
    let gb = envelope_bytes as f64 / 1e9;
    Ok(vec![
        Row::measured(
            ROW_RESENT.0,
            ROW_RESENT.1,
            format!(
                "{:.1} MB ({:.2} % of {gb:.2} GB)",
                resent as f64 / 1e6,
                resent as f64 * 100.0 / envelope_bytes as f64
            ),
            None,
            format!(
                "{packets} packets × {:.0} MB, {parallel} in flight, {kills} kills at seeded moments (seed {KILL_SEED:#x}), \
                 center restarted at once; the edge wrote {:.1} MB to its streams for {:.1} MB of envelopes over {} connections \
                 in {:.0} s: {:.1} MB per kill, i.e. per packet in flight {:.1} MB (each resumes from its last durable \
                 {} MiB segment, which spared {:.1} MB; what the edge had buffered for the dead connection counts as sent); \
                 on the wire {:.1} MB of UDP payloads ({:.1} % over the envelopes, QUIC's headers and {:.1} MB it declared \
                 lost included)",
                packet_bytes as f64 / 1e6,
                sent as f64 / 1e6,
                envelope_bytes as f64 / 1e6,
                report.connections,
                report.elapsed.as_secs_f64(),
                resent as f64 / 1e6 / kills as f64,
                resent as f64 / 1e6 / (kills * parallel) as f64,
                SEGMENT >> 20,
                skipped as f64 / 1e6,
                report.wire_bytes as f64 / 1e6,
                (report.wire_bytes as f64 / envelope_bytes.max(1) as f64 - 1.0) * 100.0,
                report.lost_bytes as f64 / 1e6
            ),
        ),
        Row::measured(
            ROW_LOSS.0,
            ROW_LOSS.1,
            format!("{lost} / {twice}"),
            Some(lost == 0 && twice == 0),
            format!(
                "{receipted} of {packets} receipted (receipts verified); the center's inbox holds {} and its store {stored} files",
                inbox.len()
            ),
        ),
    ])
}

#[cfg(test)]
#[path = "bench_kill_tests.rs"]
mod tests;
