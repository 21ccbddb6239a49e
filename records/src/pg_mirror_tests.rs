//! A region and the federal node, each with real keys and its state in a real PostgreSQL,
//! driven in-process through [`PgMirror`]: rows pushed with their changes, cut, delivered,
//! applied and receipted; restarts from the stored state; a server stopped in the middle
//! of a step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use konvert_crypto::{SigningKey, VerifyingKey};
use konvert_mirror::{Endpoint, Event, Node, RecordKind, SendEvent, SenderLimits};
use postgres::{Client, NoTls};

use super::*;
use crate::test_cluster::TestCluster;

const R1: Node = Node::Region(1);
const FED: Node = Node::Federal;
const UP: RecordKind = RecordKind::ProcessingResults;
const DOWN: RecordKind = RecordKind::RecomputedScores;

/// A fixed key per node, so failures replay.
fn key(node: Node) -> SigningKey {
    let b = match node {
        Node::Federal => 200,
        Node::Region(c) => c,
    };
    SigningKey::from_seed(&[b; 32]).unwrap()
}

fn peers(node: Node) -> BTreeMap<Node, VerifyingKey> {
    match node {
        Node::Federal => [(R1, key(R1).verifying_key())].into(),
        Node::Region(_) => [(FED, key(FED).verifying_key())].into(),
    }
}

fn endpoint(node: Node) -> Endpoint {
    let limits = SenderLimits {
        window: 2,
        resend_after: 1000,
        batch_rows: 3,
        ..SenderLimits::default()
    };
    Endpoint::new(node, &key(node), peers(node), 1, 1..=1, limits).unwrap()
}

/// A node of the test: its endpoint in memory and its state in its own database.
struct Side {
    ep: Endpoint,
    store: PgMirror,
    url: String,
}

impl Side {
    /// Opens the node's database and rebuilds the endpoint from what is stored there, as a
    /// driver starts.
    fn open(url: &str, node: Node) -> Side {
        let records = Arc::new(PgRecords::connect(url).unwrap());
        let store = PgMirror::open(records, node).unwrap();
        let mut ep = endpoint(node);
        let (send, receive) = store.load().unwrap();
        ep.restore(send, receive).unwrap();
        Side {
            ep,
            store,
            url: url.to_owned(),
        }
    }

    /// A restart: everything in memory is gone.
    fn restart(self) -> Side {
        let node = self.store.node();
        let url = self.url.clone();
        drop(self);
        Side::open(&url, node)
    }

    fn push(&mut self, peer: Node, kind: RecordKind, payload: &[u8]) -> u64 {
        self.store
            .push(&mut self.ep, peer, kind, payload.to_vec(), |_| Ok(()))
            .unwrap()
            .0
    }

    /// Cuts and stores, then returns everything due at `now`.
    fn outgoing(&mut self, now: u64) -> Vec<Vec<u8>> {
        let cut = self.ep.cut().unwrap();
        self.store.store_cut(&cut).unwrap();
        std::iter::from_fn(|| self.ep.poll_transmit(now).map(|t| t.bytes)).collect()
    }

    /// Handles bytes from `from` and stores every event, as a driver does before it sends
    /// anything.
    fn take(&mut self, from: Node, bytes: &[u8]) -> Result<Vec<Event>> {
        self.ep.handle(from, bytes)?;
        let mut events = Vec::new();
        while let Some(e) = self.ep.poll_event() {
            match &e {
                Event::Applied(a) => {
                    self.store.apply(a, bytes, |_, _| Ok(()))?;
                }
                Event::Refused(n) => self.store.refused(n)?,
                Event::Sent(SendEvent::Acked {
                    peer,
                    kind,
                    checkpoint,
                    receipt,
                }) => {
                    self.store.acked(*peer, *kind, checkpoint, receipt)?;
                }
                _ => {}
            }
            events.push(e);
        }
        Ok(events)
    }

    /// Answers to the peer (receipts), without cutting.
    fn replies(&mut self, now: u64) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.ep.poll_transmit(now).map(|t| t.bytes)).collect()
    }

    /// The stored state is exactly the state in memory.
    fn assert_stored(&self) {
        assert_eq!(self.store.load().unwrap(), self.ep.state(), "{}", self.store.node());
    }
}

fn node_of_side(s: &Side) -> Node {
    s.store.node()
}

/// Delivers both ways until nothing is left to send.
fn exchange(a: &mut Side, b: &mut Side, now: u64) {
    for _ in 0..100 {
        let (na, nb) = (node_of_side(a), node_of_side(b));
        let from_a = a.outgoing(now);
        let from_b = b.outgoing(now);
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for m in &from_a {
            b.take(na, m).unwrap();
        }
        for m in &from_b {
            a.take(nb, m).unwrap();
        }
    }
    panic!("the exchange did not settle");
}

fn count(url: &str, table: &str) -> i64 {
    let mut c = Client::connect(url, NoTls).unwrap();
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

fn rows(range: std::ops::RangeInclusive<u64>, tag: &str) -> Vec<(u64, Vec<u8>)> {
    range.map(|n| (n, format!("{tag} {n}").into_bytes())).collect()
}

#[test]
fn a_region_and_the_federal_node_exchange_through_postgres_and_carry_on_after_restarts() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (
        cluster.database("mirror_pair_region"),
        cluster.database("mirror_pair_fed"),
    );
    let mut region = Side::open(&region_url, R1);
    let mut fed = Side::open(&fed_url, FED);
    Client::connect(&region_url, NoTls)
        .unwrap()
        .batch_execute("CREATE TABLE results (n bigint PRIMARY KEY)")
        .unwrap();

    // Each outbox row goes with the change it records, in one transaction.
    for n in 1..=7u64 {
        let payload = format!("result {n}").into_bytes();
        let (seq, ()) = region
            .store
            .push(&mut region.ep, FED, UP, payload, |tx| {
                tx.execute("INSERT INTO results (n) VALUES ($1)", &[&(n as i64)])
                    .map_err(region_db_error)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(seq, n);
    }
    // A change that fails takes its row with it, and the node numbers on as before.
    let err = region
        .store
        .push(&mut region.ep, FED, UP, b"duplicate".to_vec(), |tx| {
            tx.execute("INSERT INTO results (n) VALUES (7)", &[])
                .map_err(region_db_error)?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert_eq!(
        (count(&region_url, "results"), count(&region_url, "mirror_outbox")),
        (7, 7)
    );
    assert_eq!(region.ep.sender().lag(FED, UP), 7);
    region.assert_stored();

    // Many rows with one change: one transaction.
    let scores: Vec<Vec<u8>> = (1..=4u64).map(|n| format!("score {n}").into_bytes()).collect();
    let (seqs, marker) = fed
        .store
        .push_many(&mut fed.ep, R1, DOWN, scores, |_| Ok("recomputed"))
        .unwrap();
    assert_eq!((seqs, marker), (1..=4, "recomputed"));
    let lag = |s: &Side, direction, kind| {
        let all = s.store.status().unwrap();
        all.into_iter()
            .find(|c| c.direction == direction && c.kind == kind)
            .map(|c| (c.rows, c.through, c.lag, c.last_exchange_unix_ms.is_some()))
    };
    assert_eq!(
        lag(&region, MirrorDirection::Outgoing, UP),
        Some((7, 0, Some(7), false))
    );
    exchange(&mut region, &mut fed, 0);
    assert_eq!(lag(&region, MirrorDirection::Outgoing, UP), Some((7, 7, Some(0), true)));
    assert_eq!(lag(&region, MirrorDirection::Incoming, DOWN), Some((4, 4, None, true)));
    assert_eq!(lag(&fed, MirrorDirection::Incoming, UP), Some((7, 7, None, true)));
    assert_eq!(lag(&fed, MirrorDirection::Outgoing, DOWN), Some((4, 4, Some(0), true)));
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=7, "result"));
    assert_eq!(region.store.applied_rows(FED, DOWN).unwrap(), rows(1..=4, "score"));
    assert!(region.ep.sender().is_idle() && fed.ep.sender().is_idle());
    region.assert_stored();
    fed.assert_stored();
    // 7 rows in batches of 3: 3 batches, 3 receipts; kept on both sides.
    assert_eq!(count(&region_url, "mirror_batches_out"), 3);
    assert_eq!(count(&region_url, "mirror_receipts_in"), 3);
    assert_eq!(count(&fed_url, "mirror_batches_in WHERE sender = 1"), 3);

    // Both restart from the store and carry on where they were.
    let before = (region.ep.state(), fed.ep.state());
    let mut region = region.restart();
    let mut fed = fed.restart();
    assert_eq!((region.ep.state(), fed.ep.state()), before);
    for n in 8..=10u64 {
        assert_eq!(region.push(FED, UP, format!("result {n}").as_bytes()), n);
    }
    exchange(&mut region, &mut fed, 0);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=10, "result"));

    // Receipts lost on the way, then both restart: the region sends the very same bytes,
    // the federal node answers them from its stored receipts and applies nothing again.
    for n in 11..=12u64 {
        region.push(FED, UP, format!("result {n}").as_bytes());
    }
    let first = region.outgoing(0);
    assert_eq!(first.len(), 1);
    let mut receipts = Vec::new();
    for m in &first {
        assert!(matches!(fed.take(R1, m).unwrap()[..], [Event::Applied(_)]));
        receipts.extend(fed.replies(0));
    }
    let mut region = region.restart();
    let mut fed = fed.restart();
    let again = region.outgoing(0);
    assert_eq!(again, first, "a resend after a restart is the same bytes");
    let mut replayed = Vec::new();
    for m in &again {
        assert!(matches!(fed.take(R1, m).unwrap()[..], [Event::Replayed(_)]));
        replayed.extend(fed.replies(0));
    }
    assert_eq!(
        replayed, receipts,
        "the replay gets the very receipt of the first application"
    );
    let mut acks = Vec::new();
    for r in &replayed {
        acks.extend(region.take(FED, r).unwrap());
    }
    // Checkpoints only move forward: the same receipt again, or an older checkpoint,
    // changes nothing.
    let [Event::Sent(SendEvent::Acked {
        checkpoint, receipt, ..
    })] = &acks[..]
    else {
        panic!("{acks:?}")
    };
    assert_eq!(checkpoint.acked_through, 12);
    assert!(!region.store.acked(FED, UP, checkpoint, receipt).unwrap());
    let older = konvert_mirror::SendCheckpoint {
        acked_through: 3,
        last_acked: konvert_mirror::Digest([3; 32]),
    };
    assert!(!region.store.acked(FED, UP, &older, receipt).unwrap());
    assert_eq!(count(&region_url, "mirror_send WHERE acked_through = 12"), 1);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=12, "result"));
    assert_eq!(count(&fed_url, "mirror_applied"), 12);
    assert!(region.ep.sender().is_idle());
    region.assert_stored();
    fed.assert_stored();
}

fn region_db_error(e: postgres::Error) -> Error {
    Error::database("test", e)
}

/// The database's clock, in Unix milliseconds.
fn db_now_ms(url: &str) -> i64 {
    let mut c = Client::connect(url, NoTls).unwrap();
    c.query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", &[])
        .unwrap()
        .get(0)
}

fn outgoing_status(s: &Side, kind: RecordKind) -> MirrorChannelStatus {
    s.store
        .status()
        .unwrap()
        .into_iter()
        .find(|c| c.direction == MirrorDirection::Outgoing && c.kind == kind)
        .unwrap()
}

#[test]
fn the_lag_is_also_the_age_of_the_oldest_unreceipted_row_by_the_databases_clock() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (
        cluster.database("mirror_lag_time_region"),
        cluster.database("mirror_lag_time_fed"),
    );
    // A region whose database predates written_at (schema 3) already has a row waiting.
    let before_migration = db_now_ms(&region_url);
    {
        let records = Arc::new(PgRecords::connect_at(&region_url, 3).unwrap());
        let store = PgMirror::open(records, R1).unwrap();
        let mut ep = endpoint(R1);
        store.push(&mut ep, FED, UP, b"result 1".to_vec(), |_| Ok(())).unwrap();
    }
    // Opening it migrates: the waiting row gets the migration's time.
    let mut region = Side::open(&region_url, R1);
    let mut fed = Side::open(&fed_url, FED);
    let after_migration = db_now_ms(&region_url);
    let s = outgoing_status(&region, UP);
    assert_eq!((s.rows, s.lag), (1, Some(1)));
    let oldest = s.oldest_unreceipted_unix_ms.unwrap();
    assert!(
        (before_migration..=after_migration).contains(&oldest),
        "{before_migration} <= {oldest} <= {after_migration}"
    );
    for n in 2..=5u64 {
        region.push(FED, UP, format!("result {n}").as_bytes());
    }
    // Row n written (10 - n) hours ago: row 1 is the oldest, 9 hours.
    Client::connect(&region_url, NoTls)
        .unwrap()
        .execute(
            "UPDATE mirror_outbox SET written_at = now() - make_interval(hours => (10 - seq)::int)",
            &[],
        )
        .unwrap();
    let hour = 3_600_000;
    let age = |s: &MirrorChannelStatus| db_now_ms(&region_url) - s.oldest_unreceipted_unix_ms.unwrap();
    let s = outgoing_status(&region, UP);
    assert_eq!(s.lag, Some(5));
    assert!((9 * hour..9 * hour + 60_000).contains(&age(&s)), "{}", age(&s));

    // Rows 1-3 receipted (the first batch of two): the oldest unreceipted is row 4, 6 hours.
    let batches = region.outgoing(0);
    assert_eq!(batches.len(), 2, "rows 1-3 and 4-5");
    fed.take(R1, &batches[0]).unwrap();
    for receipt in fed.replies(0) {
        region.take(FED, &receipt).unwrap();
    }
    let s = outgoing_status(&region, UP);
    assert_eq!((s.through, s.lag), (3, Some(2)));
    assert!((6 * hour..6 * hour + 60_000).contains(&age(&s)), "{}", age(&s));

    // Everything receipted: no lag in rows, none in time; the receiver never knows either.
    exchange(&mut region, &mut fed, 2000);
    let s = outgoing_status(&region, UP);
    assert_eq!((s.lag, s.oldest_unreceipted_unix_ms), (Some(0), None));
    let incoming = fed.store.status().unwrap();
    assert!(
        incoming.iter().all(|c| c.direction == MirrorDirection::Incoming
            && c.lag.is_none()
            && c.oldest_unreceipted_unix_ms.is_none()),
        "{incoming:?}"
    );
    assert_eq!(incoming.len(), 1);
    region.assert_stored();
    fed.assert_stored();
}

#[test]
fn a_server_stopped_in_the_middle_of_a_step_loses_the_step_only() {
    let Some(cluster) = TestCluster::start() else { return };
    let (region_url, fed_url) = (cluster.database("crash_region"), cluster.database("crash_fed"));
    let mut region = Side::open(&region_url, R1);
    let mut fed = Side::open(&fed_url, FED);
    for n in 1..=5u64 {
        region.push(FED, UP, format!("result {n}").as_bytes());
    }
    let batches = region.outgoing(0);
    assert_eq!(batches.len(), 2, "rows 1-3 and 4-5");

    // The federal node applies the first batch in memory; PostgreSQL stops (as a crash
    // would) after the rows are written and before the checkpoint and the receipt are.
    fed.ep.handle(R1, &batches[0]).unwrap();
    let Some(Event::Applied(applied)) = fed.ep.poll_event() else {
        panic!("not applied")
    };
    let err = fed
        .store
        .apply(&applied, &batches[0], |tx, _| {
            cluster.stop_now();
            tx.execute("SELECT 1", &[]).map_err(region_db_error)?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    cluster.start_again();
    // The federal node drops what it held in memory (its queued receipt with it) and
    // rebuilds from the store: nothing of the batch is there, half or whole.
    drop(fed);
    let mut fed = Side::open(&fed_url, FED);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), vec![]);
    assert_eq!(count(&fed_url, "mirror_batches_in"), 0);
    assert_eq!(fed.ep.receiver().checkpoint(R1, UP).next_seq, 1);

    // The region restarts too (the machine went down) and sends both batches again, the
    // same bytes; both apply once.
    let mut region = region.restart();
    let resent = region.outgoing(1000);
    assert_eq!(resent, batches);
    for m in &resent {
        assert!(matches!(fed.take(R1, m).unwrap()[..], [Event::Applied(_)]));
        for r in fed.replies(1000) {
            region.take(FED, &r).unwrap();
        }
    }
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=5, "result"));
    assert!(region.ep.sender().is_idle());

    // Delivered again, the batch is a replay; stored again, it changes nothing.
    assert!(matches!(fed.take(R1, &batches[0]).unwrap()[..], [Event::Replayed(_)]));
    let mut ran = false;
    assert_eq!(
        fed.store
            .apply(&applied, &batches[0], |_, _| {
                ran = true;
                Ok(())
            })
            .unwrap(),
        None
    );
    assert!(!ran, "the records a batch feeds are not fed twice");
    assert_eq!(count(&fed_url, "mirror_applied"), 5);
    assert_eq!(count(&fed_url, "mirror_batches_in"), 2);
    fed.assert_stored();

    // A push whose server stops before its commit stores neither the change nor the row,
    // and the node in memory did not move: the next push numbers on.
    let err = region
        .store
        .push(&mut region.ep, FED, UP, b"lost".to_vec(), |tx| {
            cluster.stop_now();
            tx.execute("SELECT 1", &[]).map_err(region_db_error)?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    cluster.start_again();
    assert_eq!(region.push(FED, UP, b"result 6"), 6);
    // The federal node's connection went down with the server: its next call would fail
    // (and the driver rebuild it from the store), so it restarts here and now.
    let mut fed = fed.restart();
    exchange(&mut region, &mut fed, 2000);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=6, "result"));
    region.assert_stored();
    fed.assert_stored();
}

#[test]
fn steps_that_do_not_follow_the_stored_state_change_nothing() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (
        cluster.database("mirror_steps_region"),
        cluster.database("mirror_steps_fed"),
    );
    let mut region = Side::open(&region_url, R1);
    let mut fed = Side::open(&fed_url, FED);

    // A database of the records' schema before the mirror gets the mirror's tables.
    let older = cluster.database("mirror_steps_older");
    drop(PgRecords::connect_at(&older, 2).unwrap());
    let mut migrated = Side::open(&older, R1);
    assert_eq!(migrated.push(FED, UP, b"result 1"), 1);

    // A database holds one node's mirror.
    let other = PgMirror::open(Arc::new(PgRecords::connect(&region_url).unwrap()), Node::Region(2)).unwrap_err();
    assert!(
        matches!(
            other,
            Error::MirrorNode {
                found: R1,
                me: Node::Region(2),
                ..
            }
        ),
        "{other:?}"
    );
    // A region does not write federal kinds, nor the federal node to another region.
    let err = region
        .store
        .push(&mut region.ep, FED, DOWN, b"x".to_vec(), |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::Mirror(konvert_mirror::Error::NotOwner { .. })),
        "{err:?}"
    );
    let err = fed
        .store
        .push(&mut fed.ep, Node::Region(2), DOWN, b"x".to_vec(), |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::Mirror(konvert_mirror::Error::NotAPeer { .. })),
        "{err:?}"
    );
    assert_eq!(count(&fed_url, "mirror_outbox"), 0);

    // A node that went on without its store is caught at its next push.
    region.push(FED, UP, b"result 1");
    region.ep.push(FED, UP, b"not stored".to_vec()).unwrap();
    let err = region
        .store
        .push(&mut region.ep, FED, UP, b"result 2".to_vec(), |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::Push { stored: 2, node: 3 },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&region_url, "mirror_outbox"), 1);
    let mut region = region.restart();
    region.push(FED, UP, b"result 2");
    // One row too large refuses them all, in the store and in the node.
    let rows_with_a_big_one = vec![b"result 3".to_vec(), vec![0; konvert_mirror::MAX_ROW_PAYLOAD + 1]];
    let err = region
        .store
        .push_many(&mut region.ep, FED, UP, rows_with_a_big_one, |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::Mirror(konvert_mirror::Error::RowTooLarge { .. })),
        "{err:?}"
    );
    assert_eq!(count(&region_url, "mirror_outbox"), 2);
    region.assert_stored();

    // A batch whose records fail to take its rows is not applied at all.
    let batches = region.outgoing(0);
    fed.ep.handle(R1, &batches[0]).unwrap();
    let Some(Event::Applied(applied)) = fed.ep.poll_event() else {
        panic!("not applied")
    };
    let err = fed
        .store
        .apply(&applied, &batches[0], |tx, _| {
            tx.execute("INSERT INTO no_such_table VALUES (1)", &[])
                .map_err(region_db_error)?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert_eq!(count(&fed_url, "mirror_applied"), 0);
    assert_eq!(count(&fed_url, "mirror_batches_in"), 0);
    // The bytes kept as the signed batch must be that batch.
    let err = fed.store.apply(&applied, b"\x01\x00", |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::BatchBytes { first_seq: 1 },
                ..
            }
        ),
        "{err:?}"
    );
    // A node in memory ahead of its store (it applied rows 1-2 and never stored them) is
    // refused the next batch.
    region.push(FED, UP, b"result 3");
    let mut ahead = endpoint(FED);
    ahead.handle(R1, &batches[0]).unwrap();
    region.take(FED, &ahead.poll_transmit(0).unwrap().bytes).unwrap();
    let next = region.outgoing(0);
    ahead.handle(R1, &next[0]).unwrap();
    let Some(Event::Applied(third)) = ahead.poll_event().and_then(|_| ahead.poll_event()) else {
        panic!("not applied")
    };
    assert_eq!(third.first_seq, 3);
    let err = fed.store.apply(&third, &next[0], |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::Apply {
                    first_seq: 3,
                    next_seq: 1
                },
                ..
            }
        ),
        "{err:?}"
    );
    // Then it applies, once.
    assert_eq!(fed.store.apply(&applied, &batches[0], |_, _| Ok(7)).unwrap(), Some(7));
    assert_eq!(fed.store.apply(&applied, &batches[0], |_, _| Ok(7)).unwrap(), None);
    // Another batch for the same rows, even signed by their owner, is a conflict, not a
    // replay: the owner contradicts its own history.
    let mut other_history = endpoint(R1);
    other_history.push(FED, UP, b"other 1".to_vec()).unwrap();
    other_history.cut().unwrap();
    let other = other_history.poll_transmit(0).unwrap().bytes;
    let mut fresh = endpoint(FED);
    fresh.handle(R1, &other).unwrap();
    let Some(Event::Applied(forged)) = fresh.poll_event() else {
        panic!("not applied")
    };
    let err = fed.store.apply(&forged, &other, |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::ApplyConflict { first_seq: 1 },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=2, "result"));

    // A cut beyond the outbox is refused, and so is another cut of rows already cut.
    let cut = |first_seq, last_seq| konvert_mirror::CutBatch {
        peer: FED,
        kind: UP,
        first_seq,
        last_seq,
        digest: konvert_mirror::Digest([1; 32]),
        bytes: vec![1],
    };
    let err = region.store.store_cut(&[cut(3, 3)]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::CutConflict { first_seq: 3 },
                ..
            }
        ),
        "{err:?}"
    );
    let cut = konvert_mirror::CutBatch {
        peer: FED,
        kind: UP,
        first_seq: 4,
        last_seq: 5,
        digest: konvert_mirror::Digest([1; 32]),
        bytes: vec![1],
    };
    let err = region.store.store_cut(&[cut]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::Cut {
                    cut_through: 3,
                    pushed_through: 3,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&region_url, "mirror_batches_out"), 2);
    region.assert_stored();

    // A region's batch of a federal kind, signed by the region itself, is refused, kept
    // as a refusal, and merged nowhere.
    let body = konvert_mirror::BatchBody {
        schema: 1,
        from: R1,
        to: FED,
        kind: DOWN,
        first_seq: 1,
        prev: konvert_mirror::Digest::ZERO,
        rows: vec![b"a score the region made up".to_vec().into()],
    };
    let batch = konvert_mirror::SignedBatch::sign(body, &key(R1)).unwrap();
    let bytes = konvert_mirror::encode(&konvert_mirror::Message::Batch(batch)).unwrap();
    let events = fed.take(R1, &bytes).unwrap();
    assert!(
        matches!(&events[..], [Event::Refused(n)] if matches!(n.reason, konvert_mirror::Refusal::NotOwner { .. })),
        "{events:?}"
    );
    assert_eq!(count(&fed_url, "mirror_refusals WHERE sender = 1 AND kind = 6"), 1);
    assert_eq!(fed.store.applied_rows(R1, DOWN).unwrap(), vec![]);
}

/// The batches of several messages stored in one transaction (the driver's step), all or
/// none, each exactly once.
#[test]
fn batches_stored_together_are_stored_all_or_none_and_once() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (
        cluster.database("mirror_many_region"),
        cluster.database("mirror_many_fed"),
    );
    let mut region = Side::open(&region_url, R1);
    let fed = Side::open(&fed_url, FED);
    for i in 1..=6 {
        region.push(FED, UP, format!("result {i}").as_bytes());
    }
    // The window is 2 batches of 3 rows: both cut at once, as a link delivers them.
    let sent = region.outgoing(0);
    assert_eq!(sent.len(), 2);
    let applied = |bytes: &[Vec<u8>]| {
        let mut ep = endpoint(FED);
        let (send, receive) = fed.store.load().unwrap();
        ep.restore(send, receive).unwrap();
        let mut out = Vec::new();
        for b in bytes {
            ep.handle(R1, b).unwrap();
            while let Some(e) = ep.poll_event() {
                match e {
                    Event::Applied(a) => out.push(a),
                    other => panic!("not applied: {other:?}"),
                }
            }
        }
        out
    };
    let both = applied(&sent);
    let pairs: Vec<_> = both.iter().map(|a| (a, a.signed.as_slice())).collect();

    // The records failing to take the second batch's rows stores neither.
    let err = fed
        .store
        .apply_many(&pairs, |tx, b| {
            assert_eq!(b.len(), 2);
            tx.execute("INSERT INTO no_such_table VALUES (1)", &[])
                .map_err(region_db_error)?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert_eq!(count(&fed_url, "mirror_batches_in"), 0);

    // The second before the first: refused, and the first is not stored either.
    let err = fed.store.apply_many(&[pairs[1], pairs[0]], |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MirrorOutOfStep {
                what: OutOfStep::Apply {
                    first_seq: 4,
                    next_seq: 1
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&fed_url, "mirror_batches_in"), 0);

    // In order: both stored, the rows handed over once, in order.
    let (fresh, firsts) = fed
        .store
        .apply_many(&pairs, |_, b| Ok(b.iter().map(|a| a.first_seq).collect::<Vec<_>>()))
        .unwrap();
    assert_eq!((fresh, firsts), (vec![true, true], vec![1, 4]));
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=6, "result"));
    // Again (a redelivery): nothing stored twice, no rows handed over.
    let (fresh, handed) = fed.store.apply_many(&pairs, |_, b| Ok(b.len())).unwrap();
    assert_eq!((fresh, handed), (vec![false, false], 0));
    assert_eq!(count(&fed_url, "mirror_batches_in"), 2);
    assert_eq!(count(&fed_url, "mirror_applied"), 6);
    // The stored state is what a node that applied both one by one holds.
    let mut one_by_one = endpoint(FED);
    for b in &sent {
        one_by_one.handle(R1, b).unwrap();
    }
    assert_eq!(fed.store.load().unwrap().1, one_by_one.state().1);
}

/// Where the kill test's child finds its database, its batch and where to say it is
/// in the middle of applying.
const CHILD_ENV: &str = "KONVERT_MIRROR_KILL_CHILD";

/// The kill test's child, run only by [`a_node_killed_in_the_middle_of_applying_applies_nothing_half`]
/// in a process of its own: the federal node applies a batch and hangs in the middle of
/// the transaction, after its rows are written, until it is killed.
#[test]
#[ignore = "the child of the kill test, run by it"]
fn kill_child_applies_and_hangs() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir = std::path::PathBuf::from(dir);
    let url = std::fs::read_to_string(dir.join("url")).unwrap();
    let batch = std::fs::read(dir.join("batch")).unwrap();
    let mut fed = Side::open(&url, FED);
    fed.ep.handle(R1, &batch).unwrap();
    let Some(Event::Applied(applied)) = fed.ep.poll_event() else {
        panic!("not applied")
    };
    fed.store
        .apply(&applied, &batch, |tx, _| {
            let written: i64 = tx
                .query_one("SELECT count(*) FROM mirror_applied", &[])
                .map_err(region_db_error)?
                .get(0);
            std::fs::write(dir.join("applying"), written.to_string()).unwrap();
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        })
        .unwrap();
    panic!("not killed in time");
}

#[test]
fn a_node_killed_in_the_middle_of_applying_applies_nothing_half() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (cluster.database("kill_region"), cluster.database("kill_fed"));
    let mut region = Side::open(&region_url, R1);
    // The federal node's database exists (migrated, claimed) before the child opens it.
    drop(Side::open(&fed_url, FED));
    for n in 1..=3u64 {
        region.push(FED, UP, format!("result {n}").as_bytes());
    }
    let batches = region.outgoing(0);
    assert_eq!(batches.len(), 1);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("url"), &fed_url).unwrap();
    std::fs::write(dir.path().join("batch"), &batches[0]).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "pg_mirror::tests::kill_child_applies_and_hangs",
            "--nocapture",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let applying = dir.path().join("applying");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !applying.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended before applying: {status}");
        }
        assert!(std::time::Instant::now() < deadline, "the child never got to apply");
        std::thread::sleep(Duration::from_millis(20));
    }
    // kill -9 with the rows written in its open transaction.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(&applying).unwrap(),
        "3",
        "the child was in the middle"
    );

    // Nothing of the batch is stored; started again, the node applies it, once.
    let mut fed = Side::open(&fed_url, FED);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), vec![]);
    assert_eq!(fed.ep.receiver().checkpoint(R1, UP).next_seq, 1);
    let mut region = region.restart();
    exchange(&mut region, &mut fed, 0);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=3, "result"));
    assert_eq!(count(&fed_url, "mirror_batches_in"), 1);
    assert!(region.ep.sender().is_idle());
    fed.assert_stored();
    region.assert_stored();
}

/// A rough figure, not a benchmark (`konvert bench mirror` is): the federal node applying
/// one region's exam day (16,000 results of 200 bytes) through the core and this store,
/// against a plain `COPY` of the same rows into the same database. Run with
/// `cargo test -p konvert-records --features test-cluster --release -- --ignored apply_rate --nocapture`.
#[test]
#[ignore = "a figure, run by hand"]
fn apply_rate() {
    use std::io::Write;
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (cluster.database("rate_region"), cluster.database("rate_fed"));
    let records = Arc::new(PgRecords::connect(&region_url).unwrap());
    let region_store = PgMirror::open(records, R1).unwrap();
    let limits = SenderLimits {
        window: 64,
        batch_rows: 1024,
        ..SenderLimits::default()
    };
    let mut region_ep = Endpoint::new(R1, &key(R1), peers(R1), 1, 1..=1, limits.clone()).unwrap();
    let payloads: Vec<Vec<u8>> = (0..16_000u32).map(|n| format!("{n:0>200}").into_bytes()).collect();
    region_store
        .push_many(&mut region_ep, FED, UP, payloads.clone(), |_| Ok(()))
        .unwrap();
    let cut = region_ep.cut().unwrap();
    region_store.store_cut(&cut).unwrap();
    let batches: Vec<Vec<u8>> = std::iter::from_fn(|| region_ep.poll_transmit(0).map(|t| t.bytes)).collect();

    let mut fed = Side::open(&fed_url, FED);
    let start = std::time::Instant::now();
    for b in &batches {
        assert!(matches!(fed.take(R1, b).unwrap()[..], [Event::Applied(_)]));
    }
    let mirror = start.elapsed();

    let mut c = Client::connect(&fed_url, NoTls).unwrap();
    c.batch_execute("CREATE TABLE copied (seq bigint PRIMARY KEY, payload bytea NOT NULL)")
        .unwrap();
    let start = std::time::Instant::now();
    let mut w = c.copy_in("COPY copied (seq, payload) FROM STDIN").unwrap();
    for (n, p) in payloads.iter().enumerate() {
        writeln!(w, "{}\t\\\\x{}", n + 1, hex::encode(p)).unwrap();
    }
    w.finish().unwrap();
    let copy = start.elapsed();
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap().len(), 16_000);
    let rate = |d: Duration| 16_000.0 / d.as_secs_f64();
    println!(
        "apply: {:.0} rows/s ({} batches); COPY: {:.0} rows/s; apply/COPY = {:.0} %",
        rate(mirror),
        batches.len(),
        rate(copy),
        100.0 * copy.as_secs_f64() / mirror.as_secs_f64()
    );
}

#[test]
fn a_federal_database_that_kept_payloads_twice_migrates_and_still_gives_every_row() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (
        cluster.database("mirror_payload_once_region"),
        cluster.database("mirror_payload_once_fed"),
    );
    let mut region = Side::open(&region_url, R1);
    for n in 1..=3u64 {
        region.push(FED, UP, format!("result {n}").as_bytes());
    }
    let sent = region.outgoing(0);
    assert_eq!(sent.len(), 1);

    // The federal node at schema 6 applied the batch as it did then: each payload in
    // mirror_applied as well as in the signed batch.
    let mut fed_ep = endpoint(FED);
    {
        let records = Arc::new(PgRecords::connect_at(&fed_url, 6).unwrap());
        drop(PgMirror::open(records, FED).unwrap());
        fed_ep.handle(R1, &sent[0]).unwrap();
        let Some(Event::Applied(a)) = fed_ep.poll_event() else {
            panic!("the batch was not applied")
        };
        let mut c = Client::connect(&fed_url, NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        let (s, k) = (node_code(R1).unwrap(), kind_code(UP));
        for (seq, payload) in (1i64..).zip(&a.rows) {
            let digest = OutboxRow::digest_of(R1, FED, UP, seq as u64, payload);
            tx.execute(
                "INSERT INTO mirror_applied (sender, kind, seq, payload, digest, batch) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&s, &k, &seq, payload, &digest.0.as_slice(), &a.digest.0.as_slice()],
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO mirror_receive (sender, kind, next_seq, last_batch, batches) VALUES ($1, $2, $3, $4, $5)",
            &[&s, &k, &4i64, &a.digest.0.as_slice(), &1i64],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO mirror_batches_in (sender, kind, first_seq, last_seq, digest, bytes, receipt)
             VALUES ($1, $2, 1, 3, $3, $4, $5)",
            &[
                &s,
                &k,
                &a.digest.0.as_slice(),
                &sent[0],
                &encode("receipt", &a.receipt).unwrap(),
            ],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let receipt: Vec<Vec<u8>> = std::iter::from_fn(|| fed_ep.poll_transmit(0).map(|t| t.bytes)).collect();
    drop(fed_ep);

    // Opening it migrates: the payloads are read out of the signed batches.
    let mut fed = Side::open(&fed_url, FED);
    let columns: i64 = Client::connect(&fed_url, NoTls)
        .unwrap()
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'mirror_applied' AND column_name = 'payload'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(columns, 0);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=3, "result"));
    fed.assert_stored();

    // The channel goes on from the migrated checkpoint.
    for r in &receipt {
        region.take(FED, r).unwrap();
    }
    for n in 4..=5u64 {
        region.push(FED, UP, format!("result {n}").as_bytes());
    }
    exchange(&mut region, &mut fed, 0);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), rows(1..=5, "result"));
    assert_eq!(count(&fed_url, "mirror_applied"), 5);
    assert_eq!(count(&fed_url, "mirror_batches_in"), 2);
    fed.assert_stored();
}

/// One driver per database: a second is refused, naming the holder, and takes over as
/// soon as the first lets go (a restart in the same process included).
#[test]
fn a_second_mirror_driver_on_one_database_is_refused_until_the_first_lets_go() {
    let Some(cluster) = TestCluster::shared() else { return };
    let url = cluster.database("mirror_one_driver");
    let open = || PgMirror::open(Arc::new(PgRecords::connect(&url).unwrap()), R1).unwrap();
    let (first, second) = (open(), open());
    // A driver of another database on the same server neither blocks nor confuses this one.
    let elsewhere = PgMirror::open(
        Arc::new(PgRecords::connect(&cluster.database("mirror_one_driver_elsewhere")).unwrap()),
        FED,
    )
    .unwrap();
    let _other = elsewhere.lock_driver().unwrap();
    let held = first.lock_driver().unwrap();
    let started = std::time::Instant::now();
    let err = second.lock_driver().unwrap_err();
    assert!(
        started.elapsed() >= DRIVER_LOCK_WAIT,
        "gave up before a leaving holder could go"
    );
    assert!(matches!(err, Error::MirrorBusy { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("another konvert mirror process")
            && text.contains("PostgreSQL backend")
            && text.contains("stop it first"),
        "{text}"
    );
    assert!(!err.is_retryable());
    drop(held);
    let again = second.lock_driver().unwrap();
    // The writers need no lock while a driver holds it.
    let mut ep = endpoint(R1);
    first.push(&mut ep, FED, UP, b"a row".to_vec(), |_| Ok(())).unwrap();
    drop(again);
}
