//! The driver's step on a real PostgreSQL: the messages queued on the links are taken in
//! one step and their batches stored together, a planning batch before the rows it
//! plans are checked, and a peer that broke the protocol is not read further.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use konvert_exam::{ExamKind, RoomId, SiteId};
use konvert_mirror::Message;
use konvert_records::mirror_rows::{MirrorRow, PlanningRow, ProcessingResultRow};
use konvert_records::test_cluster::TestCluster;
use konvert_records::ExamDay;

use super::*;

const R1: Node = Node::Region(1);
const R2: Node = Node::Region(2);

fn key(node: Node) -> SigningKey {
    let b = match node {
        Node::Federal => 200,
        Node::Region(c) => c,
    };
    SigningKey::from_seed(&[b; 32]).unwrap()
}

/// What the federal node's hooks saw.
#[derive(Default)]
struct Seen {
    applied: Mutex<Vec<(Node, RecordKind, usize)>>,
    refused: Mutex<Vec<(Node, String)>>,
}

impl MirrorHooks for Seen {
    fn applied(&self, peer: Node, kind: RecordKind, rows: usize) {
        self.applied.lock().unwrap().push((peer, kind, rows));
    }
    fn refused(&self, peer: Node, _kind: RecordKind, reason: &Refusal) {
        self.refused.lock().unwrap().push((peer, reason.to_string()));
    }
}

/// A federal node's core on a fresh database of `cluster`, taking batches from R1 and R2.
fn federal(cluster: &TestCluster, db: &str, seen: Arc<Seen>, typed: bool) -> Core {
    let peers = [R1, R2].into_iter().map(|r| (r, key(r).verifying_key())).collect();
    let mut setup = NodeSetup::new(
        Node::Federal,
        key(Node::Federal),
        peers,
        SenderLimits::default(),
        &cluster.database(db),
    );
    setup.hooks = seen;
    if !typed {
        setup.rows_into = Arc::new(|_, _, _| Ok(()));
        setup.row_check = Arc::new(|_| None);
    }
    Core::open(setup).unwrap()
}

/// Region `me`'s signed batches of `rows` of `kind`, 2 rows to a batch.
fn batches(me: Node, kind: RecordKind, rows: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let limits = SenderLimits {
        window: usize::MAX,
        batch_rows: 2,
        ..SenderLimits::default()
    };
    let peers = [(Node::Federal, key(Node::Federal).verifying_key())].into();
    let mut ep = Endpoint::new(
        me,
        &key(me),
        peers,
        MIRROR_SCHEMA,
        MIRROR_SCHEMA..=MIRROR_SCHEMA,
        limits,
    )
    .unwrap();
    for row in rows {
        ep.push(Node::Federal, kind, row).unwrap();
    }
    ep.cut().unwrap();
    std::iter::from_fn(|| ep.poll_transmit(0).map(|t| t.bytes)).collect()
}

fn day() -> ExamDay {
    ExamDay {
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
    }
}

/// Every message's answer in a step is a receipt.
fn all_receipts(out: &StepOut) -> usize {
    out.sends
        .iter()
        .filter(|t| matches!(konvert_mirror::decode(&t.bytes), Ok(Message::Receipt(_))))
        .count()
}

#[test]
fn the_queued_messages_of_two_regions_are_stored_in_one_step_and_each_is_receipted() {
    let Some(cluster) = TestCluster::shared() else { return };
    let seen = Arc::new(Seen::default());
    let mut core = federal(cluster, "node_step_two", seen.clone(), false);
    let kind = RecordKind::ProcessingResults;
    let rows = |n: usize| (0..n).map(|i| format!("row {i}").into_bytes()).collect::<Vec<_>>();
    let (one, two) = (batches(R1, kind, rows(5)), batches(R2, kind, rows(4)));
    assert_eq!((one.len(), two.len()), (3, 2));
    // Interleaved, as two links fill one queue; R1's second batch comes again (a resend).
    let messages = vec![
        (R1, one[0].clone()),
        (R2, two[0].clone()),
        (R1, one[1].clone()),
        (R1, one[1].clone()),
        (R2, two[1].clone()),
        (R1, one[2].clone()),
    ];
    let out = core.step(Step::Bytes(messages));
    assert!(out.closes.is_empty(), "{:?}", out.closes);
    assert_eq!(all_receipts(&out), 6, "one answer per message, each a receipt");
    assert_eq!(
        *seen.applied.lock().unwrap(),
        vec![
            (R1, kind, 2),
            (R2, kind, 2),
            (R1, kind, 2),
            (R2, kind, 2),
            (R1, kind, 1)
        ],
        "each batch applied once, in the order it came"
    );
    // What is stored is what the node holds: a restart rebuilds the same node.
    let ep = core.ep.as_ref().expect("the step kept its endpoint");
    assert_eq!(core.store.load().unwrap().1, ep.state().1);
    assert_eq!(core.store.applied_rows(R1, kind).unwrap().len(), 5);
    assert_eq!(core.store.applied_rows(R2, kind).unwrap().len(), 4);
}

#[test]
fn a_peer_that_breaks_the_protocol_in_a_step_is_not_read_further_and_the_others_are() {
    let Some(cluster) = TestCluster::shared() else { return };
    let seen = Arc::new(Seen::default());
    let mut core = federal(cluster, "node_step_broken", seen.clone(), false);
    let kind = RecordKind::ProcessingResults;
    let one = batches(R1, kind, vec![b"a".to_vec(), b"b".to_vec()]);
    let two = batches(R2, kind, vec![b"c".to_vec()]);
    let out = core.step(Step::Bytes(vec![
        (R1, b"not a message".to_vec()),
        (R1, one[0].clone()),
        (R2, two[0].clone()),
    ]));
    assert_eq!(out.closes.len(), 1, "{:?}", out.closes);
    assert_eq!(out.closes[0].0, R1);
    assert_eq!(*seen.applied.lock().unwrap(), vec![(R2, kind, 1)]);
    assert!(core.store.applied_rows(R1, kind).unwrap().is_empty());
    assert_eq!(all_receipts(&out), 1);
}

#[test]
fn a_planning_batch_is_stored_before_the_results_after_it_in_the_same_step_are_checked() {
    let Some(cluster) = TestCluster::shared() else { return };
    let seen = Arc::new(Seen::default());
    let mut core = federal(cluster, "node_step_planning", seen.clone(), true);
    let participants: Vec<String> = (1..=3).map(|i| format!("P{i:08}")).collect();
    let seats = participants
        .iter()
        .zip(1u64..)
        .map(|(p, i)| {
            MirrorRow::Planning(PlanningRow::Seat {
                day: day(),
                participant: p.clone(),
                site: SiteId::new("0101").unwrap(),
                room: RoomId::new("0001").unwrap(),
                seat: i.to_string(),
                kit: 1000 + i,
            })
            .encode()
            .unwrap()
        })
        .collect();
    let results = participants
        .iter()
        .map(|p| {
            MirrorRow::ProcessingResult(ProcessingResultRow {
                day: day(),
                participant: p.clone(),
                site: SiteId::new("0101").unwrap(),
                pages: Vec::new(),
            })
            .encode()
            .unwrap()
        })
        .collect();
    let mut messages: Vec<_> = batches(R1, RecordKind::Planning, seats)
        .into_iter()
        .map(|b| (R1, b))
        .collect();
    messages.extend(
        batches(R1, RecordKind::ProcessingResults, results)
            .into_iter()
            .map(|b| (R1, b)),
    );
    let out = core.step(Step::Bytes(messages));
    assert!(
        seen.refused.lock().unwrap().is_empty(),
        "{:?}",
        seen.refused.lock().unwrap()
    );
    assert_eq!(all_receipts(&out), 4);
    let applied: usize = seen.applied.lock().unwrap().iter().map(|(_, _, n)| n).sum();
    assert_eq!(applied, 6, "3 seats and 3 results");
    assert_eq!(
        core.store
            .applied_rows(R1, RecordKind::ProcessingResults)
            .unwrap()
            .len(),
        3
    );
}
