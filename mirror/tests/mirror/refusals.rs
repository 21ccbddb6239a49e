//! Each refusal of the receiver, and the codec's bounds.

use konvert_mirror::{
    decode, encode, Checkpoint, Digest, Endpoint, Error, Message, Node, Outcome, Receiver, RecordKind, Refusal,
    SenderLimits, SignedBatch, FORMAT_VERSION, MAX_MESSAGE_LEN,
};

use crate::util::{batch, key, peers};

const R1: Node = Node::Region(1);
const R2: Node = Node::Region(2);
const FED: Node = Node::Federal;

fn federal() -> Receiver {
    Receiver::new(FED, key(FED), peers(FED), 1..=2).unwrap()
}

fn region(node: Node) -> Receiver {
    Receiver::new(node, key(node), peers(node), 1..=2).unwrap()
}

fn refusal(outcome: Outcome) -> Refusal {
    match outcome {
        Outcome::Refused(n) => n.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn applied(outcome: Outcome) -> konvert_mirror::AppliedBatch {
    match outcome {
        Outcome::Applied(a) => a,
        other => panic!("expected the batch applied, got {other:?}"),
    }
}

fn results(first_seq: u64, prev: Digest, rows: &[&[u8]]) -> SignedBatch {
    batch(R1, FED, RecordKind::ProcessingResults, first_seq, prev, rows, &key(R1))
}

#[test]
fn applies_in_order_and_a_replay_gets_the_same_receipt_and_applies_nothing() {
    let mut rx = federal();
    let b1 = results(1, Digest::ZERO, &[b"a", b"b"]);
    let a1 = applied(rx.handle(R1, &b1).unwrap());
    assert_eq!(a1.rows, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(a1.receipt.body.batch, b1.body.digest().unwrap());
    a1.receipt.verify(&key(FED).verifying_key()).unwrap();
    let b2 = results(3, a1.digest, &[b"c"]);
    let a2 = applied(rx.handle(R1, &b2).unwrap());
    let cp = rx.checkpoint(R1, RecordKind::ProcessingResults);
    assert_eq!(
        cp,
        Checkpoint {
            next_seq: 4,
            last_batch: a2.digest,
            batches: 2
        }
    );
    for (b, a) in [(&b1, &a1), (&b2, &a2)] {
        match rx.handle(R1, b).unwrap() {
            Outcome::Replayed(r) => {
                assert_eq!(
                    encode(&Message::Receipt(r)).unwrap(),
                    encode(&Message::Receipt(a.receipt.clone())).unwrap()
                )
            }
            other => panic!("expected a replay, got {other:?}"),
        }
    }
    assert_eq!(
        rx.checkpoint(R1, RecordKind::ProcessingResults),
        cp,
        "a replay moves nothing"
    );
}

#[test]
fn a_batch_out_of_sequence_is_refused_retryably_and_applies_once_the_gap_is_filled() {
    let mut rx = federal();
    let b1 = results(1, Digest::ZERO, &[b"a"]);
    let b2 = results(2, b1.body.digest().unwrap(), &[b"b"]);
    let r = refusal(rx.handle(R1, &b2).unwrap());
    assert_eq!(r, Refusal::OutOfSequence { expected: 1, got: 2 });
    assert!(r.is_retryable());
    assert_eq!(rx.checkpoint(R1, RecordKind::ProcessingResults), Checkpoint::default());
    applied(rx.handle(R1, &b1).unwrap());
    applied(rx.handle(R1, &b2).unwrap());
    assert_eq!(rx.checkpoint(R1, RecordKind::ProcessingResults).next_seq, 3);
}

#[test]
fn a_broken_hash_chain_is_refused() {
    let mut rx = federal();
    let b1 = results(1, Digest::ZERO, &[b"a"]);
    let a1 = applied(rx.handle(R1, &b1).unwrap());
    let forged = results(2, Digest([7; 32]), &[b"b"]);
    let r = refusal(rx.handle(R1, &forged).unwrap());
    assert_eq!(
        r,
        Refusal::BrokenChain {
            expected: a1.digest,
            got: Digest([7; 32])
        }
    );
    assert!(!r.is_retryable());
    // A first batch must start the chain.
    let mut rx = federal();
    let r = refusal(rx.handle(R1, &results(1, Digest([1; 32]), &[b"a"])).unwrap());
    assert!(matches!(r, Refusal::BrokenChain { .. }), "{r:?}");
    assert_eq!(rx.checkpoint(R1, RecordKind::ProcessingResults), Checkpoint::default());
}

#[test]
fn another_batch_for_applied_rows_is_a_conflict_not_a_replay() {
    let mut rx = federal();
    applied(rx.handle(R1, &results(1, Digest::ZERO, &[b"a", b"b"])).unwrap());
    let other = results(1, Digest::ZERO, &[b"a", b"B"]);
    assert_eq!(
        refusal(rx.handle(R1, &other).unwrap()),
        Refusal::Conflict { first_seq: 1 }
    );
    // A batch starting inside an applied one is no replay either.
    let inside = results(2, Digest::ZERO, &[b"b"]);
    assert_eq!(
        refusal(rx.handle(R1, &inside).unwrap()),
        Refusal::Conflict { first_seq: 2 }
    );
    assert_eq!(rx.checkpoint(R1, RecordKind::ProcessingResults).next_seq, 3);
}

#[test]
fn a_wrong_signer_is_refused_and_a_bad_signature_too() {
    let mut rx = federal();
    // Region 1's batch signed by region 2's (valid, configured) key.
    let b = batch(
        R1,
        FED,
        RecordKind::ProcessingResults,
        1,
        Digest::ZERO,
        &[b"a"],
        &key(R2),
    );
    assert_eq!(
        refusal(rx.handle(R1, &b).unwrap()),
        Refusal::WrongSigner {
            node: R1,
            expected: key(R1).key_id(),
            got: key(R2).key_id()
        }
    );
    // The right key id over a tampered body.
    let mut t = results(1, Digest::ZERO, &[b"a"]);
    t.body.rows[0] = serde_bytes::ByteBuf::from(b"tampered".to_vec());
    assert_eq!(refusal(rx.handle(R1, &t).unwrap()), Refusal::BadSignature);
    // A region's batch signed by the federal key is no better.
    let f = batch(R1, FED, RecordKind::Planning, 1, Digest::ZERO, &[b"a"], &key(FED));
    assert!(matches!(
        refusal(rx.handle(R1, &f).unwrap()),
        Refusal::WrongSigner { .. }
    ));
    assert_eq!(rx.checkpoint(R1, RecordKind::ProcessingResults), Checkpoint::default());
}

#[test]
fn a_kind_the_sender_does_not_own_is_refused_and_never_merged() {
    // A region sends federal kinds up, signed with its own configured key.
    let mut rx = federal();
    for kind in RecordKind::owned_by(konvert_mirror::Side::Federal) {
        let b = batch(R1, FED, kind, 1, Digest::ZERO, &[b"forged score"], &key(R1));
        assert_eq!(
            refusal(rx.handle(R1, &b).unwrap()),
            Refusal::NotOwner { sender: R1, kind }
        );
        assert_eq!(rx.checkpoint(R1, kind), Checkpoint::default());
    }
    // The federal node sends regional kinds down.
    let mut rx = region(R1);
    for kind in RecordKind::owned_by(konvert_mirror::Side::Region) {
        let b = batch(FED, R1, kind, 1, Digest::ZERO, &[b"x"], &key(FED));
        assert_eq!(
            refusal(rx.handle(FED, &b).unwrap()),
            Refusal::NotOwner { sender: FED, kind }
        );
    }
    // And an owner's own sender will not write such a row.
    let mut ep = Endpoint::new(R1, &key(R1), peers(R1), 1, 1..=1, SenderLimits::default()).unwrap();
    assert!(matches!(
        ep.push(FED, RecordKind::RecomputedScores, b"x".to_vec()),
        Err(Error::NotOwner { .. })
    ));
}

#[test]
fn every_kind_has_exactly_one_owner_as_the_issue_lists_them() {
    use konvert_mirror::Side::{Federal, Region};
    let up = [
        RecordKind::Planning,
        RecordKind::ProcessingResults,
        RecordKind::AppealDecisions,
        RecordKind::RegionalRechecks,
        RecordKind::PersonalDataCorrections,
    ];
    let down = [
        RecordKind::CentralizedChecking,
        RecordKind::RecomputedScores,
        RecordKind::TokenCertificates,
        RecordKind::DocumentRequests,
    ];
    assert_eq!(RecordKind::owned_by(Region).collect::<Vec<_>>(), up);
    assert_eq!(RecordKind::owned_by(Federal).collect::<Vec<_>>(), down);
    // Codes are positions: a kind inserted in the middle would renumber the others.
    for (i, k) in RecordKind::ALL.iter().enumerate() {
        assert_eq!(k.code() as usize, i);
    }
}

#[test]
fn an_unknown_schema_version_is_refused_and_not_retryable() {
    let mut rx = federal();
    let mut body = results(1, Digest::ZERO, &[b"a"]).body;
    body.schema = 9;
    let b = SignedBatch::sign(body, &key(R1)).unwrap();
    let r = refusal(rx.handle(R1, &b).unwrap());
    assert_eq!(r, Refusal::UnknownSchema { got: 9, min: 1, max: 2 });
    assert!(!r.is_retryable());
    assert_eq!(rx.checkpoint(R1, RecordKind::ProcessingResults), Checkpoint::default());
}

#[test]
fn an_unknown_wire_format_is_refused_before_its_body_is_read() {
    let mut bytes = encode(&Message::Batch(results(1, Digest::ZERO, &[b"a"]))).unwrap();
    assert_eq!(bytes[..2], FORMAT_VERSION.to_le_bytes());
    bytes[..2].copy_from_slice(&2u16.to_le_bytes());
    assert!(matches!(decode(&bytes), Err(Error::UnknownFormat { got: 2, known: 1 })));
    // The version alone with a garbage body: still the version that is reported.
    assert!(matches!(
        decode(&[9, 0, 0xff, 0xff]),
        Err(Error::UnknownFormat { got: 9, .. })
    ));
    let mut ep = Endpoint::new(FED, &key(FED), peers(FED), 1, 1..=1, SenderLimits::default()).unwrap();
    assert!(matches!(ep.handle(R1, &bytes), Err(Error::UnknownFormat { .. })));
    assert!(ep.poll_event().is_none());
    assert_eq!(
        ep.receiver().checkpoint(R1, RecordKind::ProcessingResults),
        Checkpoint::default()
    );
}

#[test]
fn oversized_truncated_and_padded_messages_are_refused() {
    let mut big = vec![0u8; MAX_MESSAGE_LEN + 1];
    big[..2].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    assert!(matches!(decode(&big), Err(Error::TooLarge { .. })));
    let bytes = encode(&Message::Batch(results(1, Digest::ZERO, &[b"a", b"b"]))).unwrap();
    for cut in [0, 1, 2, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(decode(&bytes[..cut]), Err(Error::Malformed(_))),
            "cut at {cut}"
        );
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(matches!(decode(&padded), Err(Error::Malformed(_))));
    assert!(decode(&bytes).is_ok());
}

#[test]
fn a_batch_over_the_limits_is_refused() {
    let mut rx = federal();
    let empty = results(1, Digest::ZERO, &[]);
    assert!(matches!(refusal(rx.handle(R1, &empty).unwrap()), Refusal::Malformed(_)));
    let big = vec![0u8; konvert_mirror::MAX_ROW_PAYLOAD + 1];
    let b = results(1, Digest::ZERO, &[&big]);
    assert!(matches!(refusal(rx.handle(R1, &b).unwrap()), Refusal::Malformed(_)));
    let zero = results(0, Digest::ZERO, &[b"a"]);
    assert!(matches!(refusal(rx.handle(R1, &zero).unwrap()), Refusal::Malformed(_)));
}

#[test]
fn a_region_takes_only_batches_addressed_to_it() {
    let mut r1 = region(R1);
    let to_r2 = batch(
        FED,
        R2,
        RecordKind::RecomputedScores,
        1,
        Digest::ZERO,
        &[b"r2's score"],
        &key(FED),
    );
    assert_eq!(
        refusal(r1.handle(FED, &to_r2).unwrap()),
        Refusal::NotForUs { to: R2, me: R1 }
    );
    let to_r1 = batch(
        FED,
        R1,
        RecordKind::RecomputedScores,
        1,
        Digest::ZERO,
        &[b"r1's score"],
        &key(FED),
    );
    applied(r1.handle(FED, &to_r1).unwrap());
}

#[test]
fn a_batch_claiming_another_sender_than_its_connection_closes_the_connection() {
    let mut rx = federal();
    // Region 2's connection carries a batch that says it is region 1's.
    let b = results(1, Digest::ZERO, &[b"a"]);
    assert!(matches!(
        rx.handle(R2, &b),
        Err(Error::Misaddressed { claimed: R1, peer: R2 })
    ));
    // A node that is not configured at all.
    assert!(matches!(rx.handle(Node::Region(50), &b), Err(Error::UnknownPeer(_))));
    // Regions do not exchange with each other.
    assert!(matches!(
        Receiver::new(R1, key(R1), peers(FED), 1..=1),
        Err(Error::NotAPeer { .. })
    ));
}

#[test]
fn a_row_failing_the_receivers_check_refuses_the_whole_batch() {
    let mut rx = federal();
    // The federal node's own check: no participant outside the plan (here: no "canary").
    rx.set_row_check(Box::new(|from, kind, seq, row| {
        if row.windows(6).any(|w| w == b"canary") {
            Err(format!("{from} {kind} row {seq} names a participant outside the plan"))
        } else {
            Ok(())
        }
    }));
    let b = results(
        1,
        Digest::ZERO,
        &[b"participant 1", b"canary without consent", b"participant 3"],
    );
    let r = refusal(rx.handle(R1, &b).unwrap());
    assert!(
        matches!(&r, Refusal::RowRefused { seq: 2, reason } if reason.contains("outside the plan")),
        "{r:?}"
    );
    assert!(!r.is_retryable());
    assert_eq!(
        rx.checkpoint(R1, RecordKind::ProcessingResults),
        Checkpoint::default(),
        "nothing applied half"
    );
    applied(
        rx.handle(R1, &results(1, Digest::ZERO, &[b"participant 1", b"participant 3"]))
            .unwrap(),
    );
    // A long-winded check is cut short on the wire.
    rx.set_row_check(Box::new(|_, _, _, _| Err("ы".repeat(10_000))));
    let head = rx.checkpoint(R1, RecordKind::ProcessingResults).last_batch;
    let r = refusal(rx.handle(R1, &results(3, head, &[b"x"])).unwrap());
    assert!(
        matches!(&r, Refusal::RowRefused { reason, .. } if reason.chars().count() == 300),
        "{r:?}"
    );
}
