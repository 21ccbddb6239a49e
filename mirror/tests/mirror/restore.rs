//! A node rebuilt from its stored state carries on where it was; a damaged store is
//! refused rather than sent from.

use konvert_mirror::{
    decode, Digest, Endpoint, Error, Event, Message, Node, Receiver, RecordKind, SendState, Sender, SenderLimits,
};

use crate::util::{batch, key, peers};

const R1: Node = Node::Region(1);
const FED: Node = Node::Federal;

fn limits() -> SenderLimits {
    SenderLimits {
        window: 4,
        resend_after: 1000,
        batch_rows: 2,
        ..SenderLimits::default()
    }
}

fn endpoint(n: Node) -> Endpoint {
    Endpoint::new(n, &key(n), peers(n), 1, 1..=1, limits()).unwrap()
}

#[test]
fn a_restarted_sender_resends_the_same_batches_and_the_receiver_replays_them() {
    let mut region = endpoint(R1);
    let mut fed = endpoint(FED);
    for i in 0..5u8 {
        region.push(FED, RecordKind::ProcessingResults, vec![i]).unwrap();
    }
    let cut = region.cut().unwrap();
    assert_eq!(cut.len(), 3, "rows 1-2, 3-4, 5");
    let first: Vec<_> = std::iter::from_fn(|| region.poll_transmit(0)).collect();
    // The federal node applies all three; the receipts are lost; the region restarts.
    for t in &first {
        fed.handle(R1, &t.bytes).unwrap();
    }
    while fed.poll_transmit(0).is_some() {}
    let (send, receive) = region.state();
    let mut region = endpoint(R1);
    region.restore(send, receive).unwrap();
    assert!(region.cut().unwrap().is_empty(), "nothing is cut again");
    let again: Vec<_> = std::iter::from_fn(|| region.poll_transmit(1)).collect();
    assert_eq!(again, first, "the same bytes, at once");
    // The federal node restarts too, then answers the replays from its stored receipts.
    let (send, receive) = fed.state();
    let mut fed = endpoint(FED);
    fed.restore(send, receive).unwrap();
    for t in &again {
        fed.handle(R1, &t.bytes).unwrap();
        assert!(matches!(fed.poll_event(), Some(Event::Replayed(_))));
        let reply = fed.poll_transmit(2).unwrap();
        region.handle(FED, &reply.bytes).unwrap();
    }
    assert_eq!(
        region
            .sender()
            .checkpoint(FED, RecordKind::ProcessingResults)
            .acked_through,
        5
    );
    assert!(region.sender().is_idle());
    // The next row continues the sequence and the chain.
    assert_eq!(region.push(FED, RecordKind::ProcessingResults, vec![6]).unwrap(), 6);
    region.cut().unwrap();
    let t = region.poll_transmit(3).unwrap();
    fed.handle(R1, &t.bytes).unwrap();
    assert!(matches!(fed.poll_event(), Some(Event::Applied(a)) if a.first_seq == 6));
}

#[test]
fn a_damaged_sender_store_is_refused() {
    let mut s = Sender::new(R1, key(R1), peers(R1), 1, limits()).unwrap();
    for i in 0..4u8 {
        s.push(FED, RecordKind::Planning, vec![i]).unwrap();
    }
    s.cut().unwrap();
    let state = s.state().remove(0);
    let fresh = || Sender::new(R1, key(R1), peers(R1), 1, limits()).unwrap();
    fresh().restore(state.clone()).unwrap();
    // A pending batch missing from the middle breaks the chain.
    let mut gap = state.clone();
    gap.pending.remove(0);
    assert!(matches!(fresh().restore(gap), Err(Error::Restore(_))));
    // A batch of another channel.
    let mut other = state.clone();
    let foreign = batch(
        R1,
        FED,
        RecordKind::ProcessingResults,
        1,
        Digest::ZERO,
        &[b"x"],
        &key(R1),
    );
    other.pending[0] = serde_bytes::ByteBuf::from(konvert_mirror::encode(&Message::Batch(foreign)).unwrap());
    assert!(matches!(fresh().restore(other), Err(Error::Restore(_))));
    // A row whose payload no longer matches its digest.
    let mut s2 = fresh();
    s2.push(FED, RecordKind::Planning, b"row".to_vec()).unwrap();
    let mut rotten: SendState = s2.state().remove(0);
    rotten.unbatched[0].payload = b"tampered".to_vec();
    assert!(matches!(fresh().restore(rotten), Err(Error::Restore(_))));
    // A pending batch whose signature was damaged in the store.
    let mut bad = state.clone();
    let Message::Batch(mut b) = decode(&bad.pending[0]).unwrap() else {
        panic!("a batch")
    };
    b.signature.0[0] ^= 1;
    bad.pending[0] = serde_bytes::ByteBuf::from(konvert_mirror::encode(&Message::Batch(b)).unwrap());
    assert!(matches!(fresh().restore(bad), Err(Error::Restore(_))));
    // A kind this node does not own.
    let mut stolen = state;
    stolen.kind = RecordKind::RecomputedScores;
    assert!(matches!(fresh().restore(stolen), Err(Error::NotOwner { .. })));
}

#[test]
fn a_damaged_receiver_store_is_refused() {
    let mut rx = Receiver::new(FED, key(FED), peers(FED), 1..=1).unwrap();
    let b = batch(R1, FED, RecordKind::Planning, 1, Digest::ZERO, &[b"p"], &key(R1));
    rx.handle(R1, &b).unwrap();
    let state = rx.state().remove(0);
    let fresh = || Receiver::new(FED, key(FED), peers(FED), 1..=1).unwrap();
    fresh().restore(state.clone()).unwrap();
    // A receipt beyond the checkpoint would answer a batch never applied.
    let mut behind = state.clone();
    behind.checkpoint = Default::default();
    assert!(matches!(fresh().restore(behind), Err(Error::Restore(_))));
    // A receipt of another channel.
    let mut other = state;
    other.kind = RecordKind::ProcessingResults;
    assert!(matches!(fresh().restore(other), Err(Error::Restore(_))));
}

#[test]
fn a_decoded_cut_batch_is_what_the_sender_signed() {
    let mut s = Sender::new(R1, key(R1), peers(R1), 1, limits()).unwrap();
    s.push(
        FED,
        RecordKind::AppealDecisions,
        b"appeal 17: image sha256:ab..".to_vec(),
    )
    .unwrap();
    let c = s.cut().unwrap().remove(0);
    let Message::Batch(b) = decode(&c.bytes).unwrap() else {
        panic!("a batch")
    };
    assert_eq!(b.body.digest().unwrap(), c.digest);
    assert_eq!((b.body.first_seq, b.body.last_seq()), (c.first_seq, c.last_seq));
    assert_eq!(b.signer, key(R1).key_id());
}

#[test]
fn after_a_key_rotation_pending_batches_are_signed_again_and_keep_their_digest() {
    let mut region = endpoint(R1);
    let mut fed = endpoint(FED);
    for i in 0..3u8 {
        region.push(FED, RecordKind::RegionalRechecks, vec![i]).unwrap();
    }
    let cut = region.cut().unwrap();
    let first: Vec<_> = std::iter::from_fn(|| region.poll_transmit(0)).collect();
    // The first batch is applied, its receipt lost; the second never arrives.
    fed.handle(R1, &first[0].bytes).unwrap();
    assert!(matches!(fed.poll_event(), Some(Event::Applied(_))));
    while fed.poll_transmit(0).is_some() {}

    // Region 1 rotates its key; the federal node is configured with the new one.
    let new_key = konvert_crypto::SigningKey::from_seed(&[101; 32]).unwrap();
    let (send, receive) = region.state();
    let mut region = Endpoint::new(R1, &new_key, peers(R1), 1, 1..=1, limits()).unwrap();
    region.restore(send, receive).unwrap();
    let (fs, fr) = fed.state();
    let mut fed_peers = peers(FED);
    fed_peers.insert(R1, new_key.verifying_key());
    let mut fed = Endpoint::new(FED, &key(FED), fed_peers, 1, 1..=1, limits()).unwrap();
    fed.restore(fs, fr).unwrap();

    let again: Vec<_> = std::iter::from_fn(|| region.poll_transmit(1)).collect();
    assert_eq!(again.len(), cut.len());
    for (t, c) in again.iter().zip(&cut) {
        let Message::Batch(b) = decode(&t.bytes).unwrap() else {
            panic!("a batch")
        };
        assert_eq!(b.signer, new_key.key_id());
        assert_eq!(b.body.digest().unwrap(), c.digest, "same body, same digest");
    }
    fed.handle(R1, &again[0].bytes).unwrap();
    assert!(
        matches!(fed.poll_event(), Some(Event::Replayed(_))),
        "the applied batch is a replay"
    );
    fed.handle(R1, &again[1].bytes).unwrap();
    assert!(matches!(fed.poll_event(), Some(Event::Applied(a)) if a.first_seq == 3));
    while let Some(t) = fed.poll_transmit(2) {
        region.handle(FED, &t.bytes).unwrap();
    }
    assert_eq!(
        region
            .sender()
            .checkpoint(FED, RecordKind::RegionalRechecks)
            .acked_through,
        3
    );
}
