//! Bad input at the federal node, with real keys and real PostgreSQL: a batch out of
//! sequence, a broken hash chain, a wrong signer, a kind the sender does not own, a schema
//! version the receiver does not know, and PostgreSQL down or full. Each gets a clear
//! error or is retried, and nothing is applied half: the tests look at the tables.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use konvert_crypto::{SigningKey, VerifyingKey};
use konvert_mirror::{Endpoint, Event, Node, RecordKind, Refusal, SendEvent, SenderLimits};
use konvert_records::test_cluster::TestCluster;
use konvert_records::{Error, PgMirror, PgRecords};
use postgres::{Client, NoTls};

const R1: Node = Node::Region(1);
const FED: Node = Node::Federal;
const UP: RecordKind = RecordKind::ProcessingResults;
const DOWN: RecordKind = RecordKind::RecomputedScores;

/// A fixed key per node (seed 200 for the federal node, the region's code for a region).
fn key(node: Node) -> SigningKey {
    let b = match node {
        Node::Federal => 200,
        Node::Region(c) => c,
    };
    SigningKey::from_seed(&[b; 32]).unwrap()
}

fn peer_keys(node: Node) -> BTreeMap<Node, VerifyingKey> {
    match node {
        Node::Federal => [(R1, key(R1).verifying_key())].into(),
        Node::Region(_) => [(FED, key(FED).verifying_key())].into(),
    }
}

/// A node's endpoint signing with `signing`, writing schema `schema`, reading `schemas`.
fn endpoint_with(node: Node, signing: &SigningKey, schema: u16, schemas: RangeInclusive<u16>) -> Endpoint {
    let limits = SenderLimits {
        window: 4,
        resend_after: 1000,
        batch_rows: 3,
        ..SenderLimits::default()
    };
    Endpoint::new(node, signing, peer_keys(node), schema, schemas, limits).unwrap()
}

/// A node with its state in its own database, driven as a driver does.
struct Side {
    ep: Endpoint,
    store: PgMirror,
}

impl Side {
    /// Opens the node's database and rebuilds its endpoint from it.
    fn open(url: &str, node: Node, schemas: RangeInclusive<u16>) -> Side {
        let store = PgMirror::open(Arc::new(PgRecords::connect(url).unwrap()), node).unwrap();
        let mut ep = endpoint_with(node, &key(node), 1, schemas);
        let (send, receive) = store.load().unwrap();
        ep.restore(send, receive).unwrap();
        Side { ep, store }
    }

    /// What a driver does when a step failed to store: drops the node in memory (with
    /// whatever it queued) and rebuilds it from the store, keeping the store's connection.
    fn rebuild(self, schemas: RangeInclusive<u16>) -> Side {
        let node = self.store.node();
        let mut ep = endpoint_with(node, &key(node), 1, schemas);
        let (send, receive) = self.store.load().unwrap();
        ep.restore(send, receive).unwrap();
        Side { ep, store: self.store }
    }

    fn push(&mut self, peer: Node, kind: RecordKind, payload: &str) -> u64 {
        self.store
            .push(&mut self.ep, peer, kind, payload.as_bytes().to_vec(), |_| Ok(()))
            .unwrap()
            .0
    }

    /// Cuts and stores, then everything due at `now`.
    fn outgoing(&mut self, now: u64) -> Vec<Vec<u8>> {
        let cut = self.ep.cut().unwrap();
        self.store.store_cut(&cut).unwrap();
        std::iter::from_fn(|| self.ep.poll_transmit(now).map(|t| t.bytes)).collect()
    }

    /// Handles bytes from `from` and stores every event before anything is sent.
    fn take(&mut self, from: Node, bytes: &[u8]) -> Result<Vec<Event>, Error> {
        self.ep.handle(from, bytes)?;
        let mut events = Vec::new();
        while let Some(e) = self.ep.poll_event() {
            match &e {
                Event::Applied(a) => drop(self.store.apply(a, bytes, |_, _| Ok(()))?),
                Event::Refused(n) => self.store.refused(n)?,
                Event::Sent(SendEvent::Acked {
                    peer,
                    kind,
                    checkpoint,
                    receipt,
                }) => drop(self.store.acked(*peer, *kind, checkpoint, receipt)?),
                _ => {}
            }
            events.push(e);
        }
        Ok(events)
    }

    /// Answers waiting to go back (receipts, refusals).
    fn replies(&mut self, now: u64) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.ep.poll_transmit(now).map(|t| t.bytes)).collect()
    }
}

fn query_i64(url: &str, sql: &str) -> i64 {
    Client::connect(url, NoTls).unwrap().query_one(sql, &[]).unwrap().get(0)
}

fn count(url: &str, table: &str) -> i64 {
    query_i64(url, &format!("SELECT count(*) FROM {table}"))
}

/// The stored refusals' texts, oldest first.
fn refusals(url: &str) -> Vec<String> {
    Client::connect(url, NoTls)
        .unwrap()
        .query("SELECT reason_text FROM mirror_refusals ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What the federal node holds of the region's rows: (applied rows, batches, checkpoint).
fn held(url: &str) -> (i64, i64, i64) {
    (
        count(url, "mirror_applied"),
        count(url, "mirror_batches_in"),
        query_i64(url, "SELECT coalesce(max(next_seq), 1) FROM mirror_receive"),
    )
}

fn refusal_of(events: &[Event]) -> &Refusal {
    match events {
        [Event::Refused(n)] => &n.reason,
        other => panic!("not refused: {other:?}"),
    }
}

fn payloads(range: RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|n| (n, format!("result {n}").into_bytes())).collect()
}

/// A region and the federal node in databases `{name}_region` and `{name}_fed`.
fn pair(cluster: &TestCluster, name: &str) -> (Side, Side, String) {
    let (region_url, fed_url) = (
        cluster.database(&format!("{name}_region")),
        cluster.database(&format!("{name}_fed")),
    );
    (
        Side::open(&region_url, R1, 1..=1),
        Side::open(&fed_url, FED, 1..=1),
        fed_url,
    )
}

#[test]
fn a_batch_out_of_sequence_is_refused_retryably_and_then_applies_once() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (mut region, mut fed, fed_url) = pair(cluster, "bad_sequence");
    for n in 1..=6 {
        region.push(FED, UP, &format!("result {n}"));
    }
    let batches = region.outgoing(0);
    assert_eq!(batches.len(), 2, "rows 1-3 and 4-6");

    // The second batch overtakes the first.
    let events = fed.take(R1, &batches[1]).unwrap();
    let reason = refusal_of(&events);
    assert_eq!(reason, &Refusal::OutOfSequence { expected: 1, got: 4 });
    assert!(reason.is_retryable());
    assert_eq!(held(&fed_url), (0, 0, 1), "nothing applied");
    let text = &refusals(&fed_url)[0];
    assert!(
        text.contains("expected row 1") && text.contains("resends from row 1"),
        "{text}"
    );

    // The refusal makes the region resend from row 1 at once, without waiting for its timer.
    for r in fed.replies(0) {
        region.take(FED, &r).unwrap();
    }
    assert!(region.ep.sender().stalled(FED, UP).is_none(), "retryable: not stalled");
    let resent = region.outgoing(1);
    assert_eq!(
        resent,
        vec![batches[0].clone()],
        "the first batch again, the same bytes"
    );
    assert!(matches!(fed.take(R1, &resent[0]).unwrap()[..], [Event::Applied(_)]));
    assert!(matches!(fed.take(R1, &batches[1]).unwrap()[..], [Event::Applied(_)]));
    // The overtaking batch delivered once more is a replay: nothing applied twice.
    assert!(matches!(fed.take(R1, &batches[1]).unwrap()[..], [Event::Replayed(_)]));
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), payloads(1..=6));
    assert_eq!(held(&fed_url), (6, 2, 7));
}

#[test]
fn a_broken_hash_chain_and_a_second_history_are_refused_and_never_merged() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (mut region, mut fed, fed_url) = pair(cluster, "bad_chain");
    for n in 1..=3 {
        region.push(FED, UP, &format!("result {n}"));
    }
    for b in region.outgoing(0) {
        assert!(matches!(fed.take(R1, &b).unwrap()[..], [Event::Applied(_)]));
    }
    for r in fed.replies(0) {
        region.take(FED, &r).unwrap();
    }
    // The region restored from an older backup writes its rows 1-6 again, otherwise: its
    // real key signs a history the federal node did not apply.
    let mut other = endpoint_with(R1, &key(R1), 1, 1..=1);
    for n in 1..=6 {
        other.push(FED, UP, format!("rewritten {n}").into_bytes()).unwrap();
    }
    other.cut().unwrap();
    let rewritten: Vec<Vec<u8>> = std::iter::from_fn(|| other.poll_transmit(0).map(|t| t.bytes)).collect();

    let events = fed.take(R1, &rewritten[1]).unwrap();
    let reason = refusal_of(&events);
    assert!(matches!(reason, Refusal::BrokenChain { .. }), "{reason:?}");
    assert!(!reason.is_retryable());
    let events = fed.take(R1, &rewritten[0]).unwrap();
    assert!(matches!(refusal_of(&events), Refusal::Conflict { first_seq: 1 }));
    let texts = refusals(&fed_url);
    assert!(
        texts[0].contains("broken hash chain") && texts[0].contains("compare both nodes"),
        "{}",
        texts[0]
    );
    assert!(texts[1].contains("never merged"), "{}", texts[1]);
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), payloads(1..=3));
    assert_eq!(held(&fed_url), (3, 1, 4));

    // The sender of the second history stops that channel: resending cannot help.
    let mut stalled = None;
    for r in fed.replies(0) {
        other.handle(FED, &r).unwrap();
        while let Some(e) = other.poll_event() {
            if let Event::Sent(SendEvent::Stalled { reason, .. }) = e {
                stalled.get_or_insert(reason);
            }
        }
    }
    assert!(matches!(stalled, Some(Refusal::BrokenChain { .. })), "{stalled:?}");
    assert!(
        other.poll_transmit(1_000_000).is_none(),
        "a stalled channel sends nothing"
    );
}

#[test]
fn a_wrong_signer_is_refused_by_key_and_nothing_is_applied() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (_region, mut fed, fed_url) = pair(cluster, "bad_signer");
    // Someone with another key speaks for region 1 (over region 1's connection).
    let stranger = SigningKey::from_seed(&[77; 32]).unwrap();
    let mut forger = endpoint_with(R1, &stranger, 1, 1..=1);
    forger.push(FED, UP, b"forged result".to_vec()).unwrap();
    forger.cut().unwrap();
    let batch = forger.poll_transmit(0).unwrap().bytes;
    let events = fed.take(R1, &batch).unwrap();
    match refusal_of(&events) {
        Refusal::WrongSigner { node, expected, got } => {
            assert_eq!(*node, R1);
            assert_eq!(*expected, key(R1).key_id());
            assert_eq!(*got, stranger.key_id());
        }
        other => panic!("{other:?}"),
    }
    let text = &refusals(&fed_url)[0];
    assert!(
        text.contains(&stranger.key_id().to_string()) && text.contains("configure its new public key"),
        "{text}"
    );
    assert_eq!(held(&fed_url), (0, 0, 1));
    // A batch claiming to come from another region over region 1's connection is the
    // connection's fault: an error, the driver closes it; nothing stored.
    let mut r2 = Endpoint::new(
        Node::Region(2),
        &key(Node::Region(2)),
        peer_keys(Node::Region(2)),
        1,
        1..=1,
        SenderLimits::default(),
    )
    .unwrap();
    r2.push(FED, UP, b"result of region 2".to_vec()).unwrap();
    r2.cut().unwrap();
    let err = fed.take(R1, &r2.poll_transmit(0).unwrap().bytes).unwrap_err();
    assert!(
        matches!(err, Error::Mirror(konvert_mirror::Error::Misaddressed { .. })),
        "{err:?}"
    );
    assert_eq!(held(&fed_url), (0, 0, 1));
}

#[test]
fn a_kind_the_sender_does_not_own_is_refused_at_both_ends() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (mut region, mut fed, fed_url) = pair(cluster, "bad_owner");
    let region_url = cluster.url("bad_owner_region");
    // The region's own store refuses to write a federal kind, and writes nothing.
    let err = region
        .store
        .push(&mut region.ep, FED, DOWN, b"a score".to_vec(), |_| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("does not own recomputed_scores"), "{err}");
    assert_eq!(count(&region_url, "mirror_outbox"), 0);

    // A batch of it, signed by the region's real key, is refused and never merged.
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
    assert_eq!(refusal_of(&events), &Refusal::NotOwner { sender: R1, kind: DOWN });
    let text = &refusals(&fed_url)[0];
    assert!(text.contains("never merged"), "{text}");
    assert_eq!(fed.store.applied_rows(R1, DOWN).unwrap(), vec![]);
    assert_eq!(held(&fed_url), (0, 0, 1));
}

#[test]
fn a_schema_version_the_receiver_does_not_know_waits_for_an_upgrade_then_applies_once() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (_, mut fed, fed_url) = pair(cluster, "bad_schema");
    // A region already upgraded writes schema 2; the federal node reads 1 only.
    let region_url = cluster.url("bad_schema_region");
    let store = PgMirror::open(Arc::new(PgRecords::connect(&region_url).unwrap()), R1).unwrap();
    let mut region = Side {
        ep: endpoint_with(R1, &key(R1), 2, 1..=2),
        store,
    };
    for n in 1..=2 {
        region.push(FED, UP, &format!("result {n}"));
    }
    let batches = region.outgoing(0);
    let events = fed.take(R1, &batches[0]).unwrap();
    assert_eq!(refusal_of(&events), &Refusal::UnknownSchema { got: 2, min: 1, max: 1 });
    let text = &refusals(&fed_url)[0];
    assert!(text.contains("upgrade the older node"), "{text}");
    assert_eq!(held(&fed_url), (0, 0, 1));
    // The region's channel stops: resending the same bytes cannot help.
    let mut stalled = false;
    for r in fed.replies(0) {
        let events = region.take(FED, &r).unwrap();
        stalled |= events.iter().any(|e| {
            matches!(
                e,
                Event::Sent(SendEvent::Stalled {
                    reason: Refusal::UnknownSchema { .. },
                    ..
                })
            )
        });
    }
    assert!(stalled);
    assert!(region.outgoing(1_000_000).is_empty(), "stalled: nothing sent");

    // The federal node is upgraded (restarted reading 1..=2) and the region resumes: the
    // same batch applies, once.
    drop(fed);
    let mut fed = Side::open(&fed_url, FED, 1..=2);
    region.ep.sender_mut().resume(FED, UP);
    let resent = region.outgoing(1_000_000);
    assert_eq!(resent, batches);
    assert!(matches!(fed.take(R1, &resent[0]).unwrap()[..], [Event::Applied(_)]));
    assert!(matches!(fed.take(R1, &resent[0]).unwrap()[..], [Event::Replayed(_)]));
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), payloads(1..=2));
    assert_eq!(held(&fed_url), (2, 1, 3));
}

#[test]
fn postgres_down_is_a_clear_retryable_error_and_the_batch_applies_once_when_it_is_back() {
    // A cluster of its own: this test stops it.
    let Some(cluster) = TestCluster::start() else { return };
    let (mut region, mut fed, fed_url) = pair(&cluster, "down");
    for n in 1..=3 {
        region.push(FED, UP, &format!("result {n}"));
    }
    let batch = region.outgoing(0).remove(0);

    // PostgreSQL stops (as a crash would) in the middle of the apply: rows written in the
    // open transaction, checkpoint and receipt not yet.
    fed.ep.handle(R1, &batch).unwrap();
    let Some(Event::Applied(applied)) = fed.ep.poll_event() else {
        panic!("not applied in memory")
    };
    let err = fed
        .store
        .apply(&applied, &batch, |tx, _| {
            cluster.stop_now();
            tx.execute("SELECT 1", &[])
                .map_err(|e| Error::database("the federal records", e))
                .map(drop)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }) && err.is_retryable(), "{err:?}");
    // While it is down, the next call says so, and that nothing of it was written.
    let err = fed.store.apply(&applied, &batch, |_, _| Ok(())).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", cluster.port()))
            && text.contains("check that PostgreSQL runs there")
            && text.contains("applied whole or not at all"),
        "{text}"
    );
    assert!(!text.contains("password"), "{text}");

    cluster.start_again();
    // The driver drops the node (its queued receipt with it) and rebuilds it from the store,
    // which connects again: nothing of the batch is there.
    let mut fed = fed.rebuild(1..=1);
    assert_eq!(held(&fed_url), (0, 0, 1));
    // The region's resend applies it, once.
    let mut region = {
        let url = cluster.url("down_region");
        drop(region);
        Side::open(&url, R1, 1..=1)
    };
    let resent = region.outgoing(1000);
    assert_eq!(resent, vec![batch.clone()]);
    assert!(matches!(fed.take(R1, &resent[0]).unwrap()[..], [Event::Applied(_)]));
    for r in fed.replies(1000) {
        region.take(FED, &r).unwrap();
    }
    assert!(matches!(fed.take(R1, &batch).unwrap()[..], [Event::Replayed(_)]));
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), payloads(1..=3));
    assert_eq!(held(&fed_url), (3, 1, 4));
    assert!(region.ep.sender().is_idle());
}

#[test]
fn postgres_full_is_a_clear_retryable_error_and_nothing_is_applied_half() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (mut region, mut fed, fed_url) = pair(cluster, "full");
    for n in 1..=3 {
        region.push(FED, UP, &format!("result {n}"));
    }
    let batch = region.outgoing(0).remove(0);
    // PostgreSQL's own "disk full" (SQLSTATE 53100), raised where the batch's rows are
    // written: what a full disk under the federal node's database does to the apply. (A
    // real full disk needs a small filesystem mounted for the cluster, which needs root.)
    let mut admin = Client::connect(&fed_url, NoTls).unwrap();
    admin
        .batch_execute(
            "CREATE FUNCTION disk_is_full() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 RAISE EXCEPTION USING ERRCODE = 'disk_full',
                     MESSAGE = 'could not extend file \"base/16384/16500\": No space left on device',
                     HINT = 'Check free disk space.';
             END $$;
             CREATE TRIGGER disk_is_full BEFORE INSERT ON mirror_batches_in
                 FOR EACH STATEMENT EXECUTE FUNCTION disk_is_full();",
        )
        .unwrap();

    let err = fed.take(R1, &batch).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("No space left on device")
            && text.contains("53100")
            && text.contains("free disk space")
            && text.contains("nothing of this change was written")
            && text.contains("tries again by itself"),
        "{text}"
    );
    assert_eq!(held(&fed_url), (0, 0, 1), "nothing applied half");
    assert_eq!(count(&fed_url, "mirror_receive"), 0, "not even the channel's row");

    // Space is freed; the node is rebuilt from its store and the resent batch applies once.
    admin
        .batch_execute("DROP TRIGGER disk_is_full ON mirror_batches_in")
        .unwrap();
    let mut fed = fed.rebuild(1..=1);
    assert!(matches!(fed.take(R1, &batch).unwrap()[..], [Event::Applied(_)]));
    assert!(matches!(fed.take(R1, &batch).unwrap()[..], [Event::Replayed(_)]));
    for r in fed.replies(0) {
        region.take(FED, &r).unwrap();
    }
    assert!(region.ep.sender().is_idle());
    assert_eq!(fed.store.applied_rows(R1, UP).unwrap(), payloads(1..=3));
    assert_eq!(held(&fed_url), (3, 1, 4));
}
