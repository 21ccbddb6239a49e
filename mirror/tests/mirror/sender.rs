//! The sender's pacing: the window, resends on the fed clock, receipts and refusals.

use konvert_mirror::{
    decode, Endpoint, Error, Event, Message, Node, RecordKind, Refusal, SendEvent, Sender, SenderLimits, Transmit,
};

use crate::util::{key, peers};

const R1: Node = Node::Region(1);
const FED: Node = Node::Federal;

fn limits(window: usize, batch_rows: usize) -> SenderLimits {
    SenderLimits {
        window,
        resend_after: 1000,
        batch_rows,
        ..SenderLimits::default()
    }
}

fn region_sender(window: usize, batch_rows: usize) -> Sender {
    Sender::new(R1, key(R1), peers(R1), 1, limits(window, batch_rows)).unwrap()
}

fn drain(s: &mut Sender, now: u64) -> Vec<Transmit> {
    s.cut().unwrap();
    std::iter::from_fn(|| s.poll_transmit(now)).collect()
}

fn endpoint(node: Node) -> Endpoint {
    Endpoint::new(node, &key(node), peers(node), 1, 1..=1, limits(2, 1)).unwrap()
}

#[test]
fn never_more_than_the_window_in_flight_and_receipts_open_it() {
    let mut s = region_sender(2, 1);
    for i in 0..5u8 {
        s.push(FED, RecordKind::ProcessingResults, vec![i]).unwrap();
    }
    let sent = drain(&mut s, 0);
    assert_eq!(sent.len(), 2);
    assert_eq!(s.in_flight(), 2);
    assert!(drain(&mut s, 10).is_empty(), "the window is full");
    // The federal node applies them; its receipts open the window.
    let mut fed = endpoint(FED);
    for t in &sent {
        fed.handle(R1, &t.bytes).unwrap();
    }
    while let Some(reply) = fed.poll_transmit(0) {
        let Message::Receipt(r) = decode(&reply.bytes).unwrap() else {
            panic!("a receipt")
        };
        assert!(matches!(
            s.handle_receipt(FED, &r).unwrap(),
            Some(SendEvent::Acked { .. })
        ));
    }
    assert_eq!(s.checkpoint(FED, RecordKind::ProcessingResults).acked_through, 2);
    assert_eq!(s.lag(FED, RecordKind::ProcessingResults), 3);
    assert_eq!(drain(&mut s, 20).len(), 2);
}

#[test]
fn an_unreceipted_batch_is_resent_byte_for_byte_after_the_timeout() {
    let mut s = region_sender(4, 10);
    s.push(FED, RecordKind::Planning, b"site 0101".to_vec()).unwrap();
    let first = drain(&mut s, 5);
    assert_eq!(first.len(), 1);
    assert_eq!(s.poll_timeout(), Some(1005));
    assert!(drain(&mut s, 1004).is_empty());
    let again = drain(&mut s, 1005);
    assert_eq!(again, first, "a resend is the same bytes");
}

#[test]
fn receipts_are_verified_and_the_checkpoint_only_moves_forward() {
    let mut s = region_sender(4, 1);
    for i in 0..3u8 {
        s.push(FED, RecordKind::AppealDecisions, vec![i]).unwrap();
    }
    let sent = drain(&mut s, 0);
    let mut fed = endpoint(FED);
    let mut receipts = Vec::new();
    for t in &sent {
        fed.handle(R1, &t.bytes).unwrap();
        let reply = fed.poll_transmit(0).unwrap();
        let Message::Receipt(r) = decode(&reply.bytes).unwrap() else {
            panic!("a receipt")
        };
        receipts.push(r);
    }
    // A receipt signed by another key is refused and moves nothing.
    let mut forged = receipts[2].clone();
    forged.signature = konvert_crypto::SigningKey::from_seed(&[9; 32])
        .unwrap()
        .sign(konvert_crypto::Domain::MirrorReceipt, b"x");
    assert!(matches!(s.handle_receipt(FED, &forged), Err(Error::BadReceipt(_))));
    assert_eq!(s.checkpoint(FED, RecordKind::AppealDecisions).acked_through, 0);
    // The last receipt acknowledges all three; the earlier ones, late, change nothing.
    s.handle_receipt(FED, &receipts[2]).unwrap();
    assert_eq!(s.checkpoint(FED, RecordKind::AppealDecisions).acked_through, 3);
    assert_eq!(s.handle_receipt(FED, &receipts[0]).unwrap(), None);
    assert_eq!(s.checkpoint(FED, RecordKind::AppealDecisions).acked_through, 3);
    assert!(s.is_idle());
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn a_refusal_that_resending_cannot_fix_stalls_the_channel() {
    let mut s = region_sender(4, 1);
    s.push(FED, RecordKind::Planning, b"p".to_vec()).unwrap();
    let sent = drain(&mut s, 0);
    // A federal node that only knows schema 2 refuses it.
    let mut fed = Endpoint::new(FED, &key(FED), peers(FED), 2, 2..=2, limits(2, 1)).unwrap();
    fed.handle(R1, &sent[0].bytes).unwrap();
    assert!(matches!(fed.poll_event(), Some(Event::Refused(_))));
    let reply = fed.poll_transmit(0).unwrap();
    let Message::Refusal(n) = decode(&reply.bytes).unwrap() else {
        panic!("a refusal")
    };
    assert!(matches!(
        s.handle_refusal(FED, &n).unwrap(),
        Some(SendEvent::Stalled {
            reason: Refusal::UnknownSchema { got: 1, .. },
            ..
        })
    ));
    assert!(s.stalled(FED, RecordKind::Planning).is_some());
    assert!(drain(&mut s, 100_000).is_empty(), "a stalled channel sends nothing");
    assert_eq!(s.poll_timeout(), None);
    // The federal node is upgraded to read schema 1 too; the channel is resumed.
    let mut fed = Endpoint::new(FED, &key(FED), peers(FED), 2, 1..=2, limits(2, 1)).unwrap();
    s.resume(FED, RecordKind::Planning);
    assert!(s.stalled(FED, RecordKind::Planning).is_none());
    let again = drain(&mut s, 100_001);
    assert_eq!(again, sent, "the same batch again");
    fed.handle(R1, &again[0].bytes).unwrap();
    assert!(matches!(fed.poll_event(), Some(Event::Applied(_))));
    let Message::Receipt(r) = decode(&fed.poll_transmit(0).unwrap().bytes).unwrap() else {
        panic!("a receipt")
    };
    s.handle_receipt(FED, &r).unwrap();
    assert!(s.is_idle());
}

#[test]
fn an_out_of_sequence_refusal_makes_the_missing_batch_due_at_once() {
    let mut s = region_sender(4, 1);
    for i in 0..2u8 {
        s.push(FED, RecordKind::ProcessingResults, vec![i]).unwrap();
    }
    let sent = drain(&mut s, 0);
    assert_eq!(sent.len(), 2);
    let mut fed = endpoint(FED);
    // The first batch is lost; the second arrives and is refused.
    fed.handle(R1, &sent[1].bytes).unwrap();
    let reply = fed.poll_transmit(0).unwrap();
    let Message::Refusal(n) = decode(&reply.bytes).unwrap() else {
        panic!("a refusal")
    };
    assert_eq!(n.reason, Refusal::OutOfSequence { expected: 1, got: 2 });
    assert_eq!(s.handle_refusal(FED, &n).unwrap(), None);
    // Well before the timeout, batch 1 goes again.
    let again = drain(&mut s, 10);
    assert_eq!(again, vec![sent[0].clone()]);
}

#[test]
fn a_sender_writes_only_its_own_kinds_to_its_peers() {
    let mut s = region_sender(4, 1);
    assert!(matches!(
        s.push(FED, RecordKind::CentralizedChecking, vec![]),
        Err(Error::NotOwner { .. })
    ));
    assert!(matches!(
        s.push(Node::Region(2), RecordKind::Planning, vec![]),
        Err(Error::NotAPeer { .. })
    ));
    assert!(matches!(
        s.push(FED, RecordKind::Planning, vec![0; konvert_mirror::MAX_ROW_PAYLOAD + 1]),
        Err(Error::RowTooLarge { .. })
    ));
    let row = s.push(FED, RecordKind::Planning, b"x".to_vec()).unwrap();
    assert_eq!((row.seq, row.peer, row.kind), (1, FED, RecordKind::Planning));
}
