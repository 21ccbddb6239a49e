//! A seeded simulation: one federal node and three regions exchange batches over a
//! network that drops, duplicates, reorders and partitions, while a region forges
//! batches of kinds it does not own. A plain loop on a virtual clock, no threads.

use std::collections::{BTreeMap, BTreeSet};

use konvert_mirror::{
    encode, Digest, Endpoint, Event, Message, Millis, Node, ReceiveState, RecordKind, Refusal, SendEvent, SendState,
    SenderLimits, Side,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::util::{batch, key, peers, REGIONS};

const TICK: Millis = 5;
const WRITE_UNTIL: Millis = 1_500;
const GIVE_UP: Millis = 120_000;
const WINDOW: usize = 3;

struct Network {
    rng: ChaCha8Rng,
    /// (deliver at, tie-breaker, from, to, bytes)
    in_flight: Vec<(Millis, u64, Node, Node, Vec<u8>)>,
    next_id: u64,
    drop: f64,
    duplicate: f64,
    max_delay: Millis,
    /// Per region: the spans during which its link to the federal node is down.
    partitions: BTreeMap<Node, Vec<(Millis, Millis)>>,
    sent: u64,
}

impl Network {
    fn partitioned(&self, a: Node, b: Node, now: Millis) -> bool {
        let region = if a == Node::Federal { b } else { a };
        self.partitions
            .get(&region)
            .is_some_and(|spans| spans.iter().any(|&(s, e)| now >= s && now < e))
    }

    fn send(&mut self, now: Millis, from: Node, to: Node, bytes: Vec<u8>) {
        self.sent += 1;
        if self.partitioned(from, to, now) || self.rng.gen_bool(self.drop) {
            return;
        }
        let copies = if self.rng.gen_bool(self.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            // Independent delays reorder messages on the same link.
            let at = now + self.rng.gen_range(1..=self.max_delay);
            self.next_id += 1;
            self.in_flight.push((at, self.next_id, from, to, bytes.clone()));
        }
    }

    fn due(&mut self, now: Millis) -> Vec<(Node, Node, Vec<u8>)> {
        let (mut due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|m| m.0 <= now);
        self.in_flight = rest;
        due.sort_by_key(|m| (m.0, m.1));
        due.into_iter()
            .filter(|m| !self.partitioned(m.2, m.3, now))
            .map(|m| (m.2, m.3, m.4))
            .collect()
    }
}

/// What a seed's run saw, for the cross-seed assertions.
#[derive(Default)]
struct Stats {
    rows: u64,
    replays: u64,
    out_of_sequence: u64,
    forged_refused: u64,
    messages: u64,
    converged_at: Millis,
    crashes: u64,
}

/// The chance that a node crashes while handling a message.
const CRASH: f64 = 0.004;

/// A node's state as its driver stores it, through its encoding.
fn stored_state(ep: &Endpoint) -> Vec<u8> {
    postcard::to_allocvec(&ep.state()).unwrap()
}

/// The node `n` restarted from its stored state.
fn restart(n: Node, limits: &SenderLimits, stored: &[u8]) -> Endpoint {
    let (send, receive): (Vec<SendState>, Vec<ReceiveState>) = postcard::from_bytes(stored).unwrap();
    let mut ep = Endpoint::new(n, &key(n), peers(n), 1, 1..=1, limits.clone()).unwrap();
    ep.restore(send, receive).unwrap();
    ep
}

type Channel = (Node, Node, RecordKind); // (from, to, kind)

fn run(seed: u64) -> Stats {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let limits = SenderLimits {
        window: WINDOW,
        resend_after: 300,
        batch_rows: rng.gen_range(1..=8),
        ..SenderLimits::default()
    };
    let nodes: Vec<Node> = std::iter::once(Node::Federal).chain(REGIONS).collect();
    // Keys are derived once: deriving them per tick would dominate the run.
    let peer_nodes: BTreeMap<Node, Vec<Node>> = nodes.iter().map(|&n| (n, peers(n).into_keys().collect())).collect();
    let mut eps: BTreeMap<Node, Endpoint> = nodes
        .iter()
        .map(|&n| {
            (
                n,
                Endpoint::new(n, &key(n), peers(n), 1, 1..=1, limits.clone()).unwrap(),
            )
        })
        .collect();
    let mut partitions = BTreeMap::new();
    for &r in &REGIONS {
        let spans = (0..rng.gen_range(0..=2))
            .map(|_| {
                let s = rng.gen_range(0..WRITE_UNTIL);
                (s, s + rng.gen_range(100..1_500))
            })
            .collect();
        partitions.insert(r, spans);
    }
    let mut net = Network {
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
        in_flight: Vec::new(),
        next_id: 0,
        drop: rng.gen_range(0.0..0.3),
        duplicate: rng.gen_range(0.0..0.3),
        max_delay: rng.gen_range(2..60),
        partitions,
        sent: 0,
    };

    // What each owner wrote, per channel, and what each receiver applied.
    let mut written: BTreeMap<Channel, Vec<Vec<u8>>> = BTreeMap::new();
    let mut applied: BTreeMap<Channel, Vec<Vec<u8>>> = BTreeMap::new();
    // Checkpoints seen so far, to check they only move forward.
    let mut rx_seen: BTreeMap<Channel, (u64, u64)> = BTreeMap::new();
    let mut tx_seen: BTreeMap<Channel, u64> = BTreeMap::new();
    let mut forged: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut receipts: BTreeMap<(Node, Node, RecordKind, u64), konvert_mirror::SignedReceipt> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut counter = 0u32;

    let mut now: Millis = 0;
    loop {
        // Owners write rows while the exam period lasts.
        if now < WRITE_UNTIL {
            for &n in &nodes {
                if !rng.gen_bool(0.15) {
                    continue;
                }
                let kinds: Vec<RecordKind> = RecordKind::owned_by(n.side()).collect();
                let kind = kinds[rng.gen_range(0..kinds.len())];
                let peer = match n {
                    Node::Federal => REGIONS[rng.gen_range(0..REGIONS.len())],
                    Node::Region(_) => Node::Federal,
                };
                counter += 1;
                let mut payload = format!("{n}->{peer}/{kind}/{counter}/").into_bytes();
                payload.extend((0..rng.gen_range(0..40)).map(|_| rng.gen::<u8>()));
                let seq = eps.get_mut(&n).unwrap().push(peer, kind, payload.clone()).unwrap();
                let w = written.entry((n, peer, kind)).or_default();
                w.push(payload);
                assert_eq!(seq, w.len() as u64);
                stats.rows += 1;
            }
            // Region 77 forges a federal kind now and then: signed with its own configured
            // key, over its own connection, so only ownership stops it.
            if rng.gen_bool(0.02) {
                let r = Node::Region(77);
                let kinds: Vec<RecordKind> = RecordKind::owned_by(Side::Federal).collect();
                let kind = kinds[rng.gen_range(0..kinds.len())];
                let b = batch(
                    r,
                    Node::Federal,
                    kind,
                    1,
                    Digest::ZERO,
                    &[b"forged 100 points"],
                    &key(r),
                );
                let bytes = encode(&Message::Batch(b)).unwrap();
                forged.insert(bytes.clone());
                net.send(now, r, Node::Federal, bytes);
            }
        }

        // A node restarts between steps now and then: its unsent answers and its resend
        // timers are gone, its store is not.
        for &n in &nodes {
            if rng.gen_bool(CRASH / 4.0) {
                let stored = stored_state(&eps[&n]);
                eps.insert(n, restart(n, &limits, &stored));
                stats.crashes += 1;
            }
        }

        // Every node cuts (and would store) its batches, then sends what it has.
        for (&n, ep) in eps.iter_mut() {
            ep.cut().unwrap();
            while let Some(t) = ep.poll_transmit(now) {
                net.send(now, n, t.to, t.bytes);
            }
            // The window holds on every channel.
            for &peer in &peer_nodes[&n] {
                for kind in RecordKind::owned_by(n.side()) {
                    assert!(
                        ep.sender().unreceipted(peer, kind) <= WINDOW,
                        "seed {seed}: window overrun"
                    );
                }
            }
        }

        // The network delivers; every node takes what came.
        for (from, to, bytes) in net.due(now) {
            let is_forged = forged.contains(&bytes);
            let ep = eps.get_mut(&to).unwrap();
            // What the node has stored when it crashes in this step: every earlier step
            // committed.
            let stored = rng.gen_bool(CRASH).then(|| stored_state(ep));
            ep.handle(from, &bytes).unwrap();
            if let Some(stored) = stored {
                // kill -9 in the middle of applying: nothing of this step was committed
                // (no rows, no checkpoint, no receipt sent); the node restarts from its store.
                *ep = restart(to, &limits, &stored);
                stats.crashes += 1;
                continue;
            }
            while let Some(e) = ep.poll_event() {
                match e {
                    Event::Applied(a) => {
                        assert!(!is_forged, "seed {seed}: a forged batch was applied");
                        receipts.insert((a.from, to, a.kind, a.first_seq), a.receipt.clone());
                        let got = applied.entry((a.from, to, a.kind)).or_default();
                        assert_eq!(a.first_seq, got.len() as u64 + 1, "seed {seed}: applied out of order");
                        got.extend(a.rows);
                    }
                    Event::Replayed(r) => {
                        assert!(!is_forged);
                        stats.replays += 1;
                        // A replay gets the very receipt the batch got when it was applied.
                        let first = receipts.get(&(from, to, r.body.kind, r.body.first_seq));
                        assert_eq!(first, Some(&r), "seed {seed}: a replay's receipt differs");
                    }
                    Event::Refused(n) => match n.reason {
                        Refusal::OutOfSequence { .. } => {
                            assert!(!is_forged);
                            stats.out_of_sequence += 1;
                        }
                        Refusal::NotOwner { sender, kind } => {
                            assert!(is_forged, "seed {seed}: an honest batch refused as not owned");
                            assert_eq!(sender, from);
                            assert_eq!(kind.owner(), Side::Federal);
                            stats.forged_refused += 1;
                        }
                        other => panic!("seed {seed}: unexpected refusal {other:?}"),
                    },
                    Event::Sent(SendEvent::Stalled { peer, kind, reason }) => {
                        // Refusals of forged batches reach region 77 and match nothing pending.
                        panic!("seed {seed}: {to}'s channel to {peer} {kind} stalled: {reason}")
                    }
                    Event::Sent(SendEvent::Acked { .. }) => {}
                }
            }
        }

        // Checkpoints only move forward, on both sides.
        for (&n, ep) in &eps {
            for &peer in &peer_nodes[&n] {
                for kind in RecordKind::owned_by(peer.side()) {
                    let cp = ep.receiver().checkpoint(peer, kind);
                    let prev = rx_seen
                        .insert((peer, n, kind), (cp.next_seq, cp.batches))
                        .unwrap_or((1, 0));
                    assert!(
                        cp.next_seq >= prev.0 && cp.batches >= prev.1,
                        "seed {seed}: receiver went back"
                    );
                }
                for kind in RecordKind::owned_by(n.side()) {
                    let acked = ep.sender().checkpoint(peer, kind).acked_through;
                    let prev = tx_seen.insert((n, peer, kind), acked).unwrap_or(0);
                    assert!(acked >= prev, "seed {seed}: sender went back");
                }
            }
        }

        if now >= WRITE_UNTIL && net.in_flight.is_empty() && eps.values().all(|e| e.sender().is_idle()) {
            stats.converged_at = now;
            break;
        }
        assert!(now < GIVE_UP, "seed {seed}: no convergence by {GIVE_UP} ms");
        now += TICK;
    }
    stats.messages = net.sent;

    // Both sides converge: every receiver applied exactly what its owner wrote, byte for
    // byte, once (the order check above), and nothing else.
    assert_eq!(applied, written, "seed {seed}: applied rows differ from written rows");
    for (&(from, to, kind), rows) in &written {
        let rx = eps[&to].receiver().checkpoint(from, kind);
        assert_eq!(rx.next_seq, rows.len() as u64 + 1);
        assert_eq!(
            eps[&from].sender().checkpoint(to, kind).acked_through,
            rows.len() as u64
        );
        assert_eq!(
            eps[&from].sender().checkpoint(to, kind).last_acked,
            rx.last_batch,
            "both sides agree on the chain's head"
        );
    }
    // Each region saw only its own federal rows.
    for (&(from, to, _), rows) in &applied {
        if from == Node::Federal {
            let tag = format!("ФИС->{to}/").into_bytes();
            assert!(
                rows.iter().all(|r| r.starts_with(&tag)),
                "seed {seed}: {to} got another region's row"
            );
        }
    }
    // Nothing forged was merged: region 77 owns no federal kind at the federal node.
    for kind in RecordKind::owned_by(Side::Federal) {
        assert_eq!(
            eps[&Node::Federal]
                .receiver()
                .checkpoint(Node::Region(77), kind)
                .batches,
            0
        );
    }
    stats
}

#[test]
fn one_federal_node_and_three_regions_converge_over_a_lossy_network() {
    let seeds = 16;
    let mut total = Stats::default();
    for seed in 0..seeds {
        let s = run(seed);
        total.rows += s.rows;
        total.replays += s.replays;
        total.out_of_sequence += s.out_of_sequence;
        total.forged_refused += s.forged_refused;
        total.messages += s.messages;
        total.converged_at = total.converged_at.max(s.converged_at);
        total.crashes += s.crashes;
    }
    eprintln!(
        "{seeds} seeds: {} rows, {} messages, {} replays, {} out of sequence, {} forged refused, {} crashes, slowest converged at {} ms",
        total.rows,
        total.messages,
        total.replays,
        total.out_of_sequence,
        total.forged_refused,
        total.crashes,
        total.converged_at
    );
    // The faults were exercised, not just survived.
    assert!(total.replays > 0, "no replay happened");
    assert!(total.out_of_sequence > 0, "no batch came out of sequence");
    assert!(total.forged_refused > 0, "no forged batch reached the federal node");
    assert!(total.crashes > 0, "no node crashed");
}

#[test]
fn a_seed_replays_identically() {
    let a = run(7);
    let b = run(7);
    assert_eq!(
        (a.rows, a.messages, a.replays, a.out_of_sequence, a.converged_at),
        (b.rows, b.messages, b.replays, b.out_of_sequence, b.converged_at)
    );
}
