//! Scripts that drive a sender and a receiver against each other in memory.
use konvert_crypto::{KeyId, SigningKey};

use super::*;
use crate::frame::{encode, FrameDecoder, DATA_CHUNK, MAX_FRAME_LEN};
use crate::sender::{PacketSender, SenderEvent};
use crate::ReceiptBody;

fn offer(size: u64) -> Offer {
    Offer {
        packet_id: "0101-2026-06-01-ege-0001-blanks".into(),
        version: 1,
        size,
        digest: [9; 32],
        priority: 1,
        sealed_at_unix_ms: 1,
        deadline_unix_ms: 2,
    }
}

fn receipt_for(o: &Offer, key: &SigningKey) -> Receipt {
    let body = ReceiptBody {
        packet_id: o.packet_id.clone(),
        version: o.version,
        site: "0101".into(),
        digest: o.digest,
        bytes: o.size,
        received_at_unix_ms: 3,
        center_key: KeyId([0; 16]),
    };
    Receipt::sign(body, key).unwrap()
}

/// Every message crosses the wire as a frame, so the codec is exercised too.
fn wire(msg: Message) -> Message {
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    d.push(&encode(&msg).unwrap());
    d.next_message().unwrap().unwrap()
}

/// Runs a whole exchange where the center accepts at `resume_at`; returns the bytes
/// the center wrote and the sender's final event.
fn drive(payload: &[u8], resume_at: u64, center: &SigningKey) -> (Vec<u8>, SenderEvent) {
    let o = offer(payload.len() as u64);
    let mut tx = PacketSender::new(o.clone(), center.verifying_key());
    let mut rx = PacketReceiver::new(1 << 40);
    let mut staged = payload[..resume_at as usize].to_vec();
    let ReceiverEvent::Offered(got) = rx.handle(wire(tx.start().unwrap())).unwrap() else {
        panic!("no offer")
    };
    assert_eq!(got, o);
    let ev = tx.handle(wire(rx.accept(resume_at).unwrap())).unwrap();
    assert_eq!(ev, SenderEvent::SendFrom(resume_at));
    while let Some((at, n)) = tx.next_chunk() {
        assert!(n <= DATA_CHUNK);
        let msg = tx.data(at, payload[at as usize..at as usize + n].to_vec());
        match rx.handle(wire(msg)).unwrap() {
            ReceiverEvent::Write { offset, bytes } => {
                assert_eq!(offset as usize, staged.len());
                staged.extend_from_slice(&bytes);
            }
            other => panic!("expected Write, got {other:?}"),
        }
    }
    assert_eq!(rx.handle(wire(tx.finish().unwrap())).unwrap(), ReceiverEvent::Complete);
    let done = tx.handle(wire(rx.receipt(receipt_for(&o, center)).unwrap())).unwrap();
    assert!(tx.is_finished());
    (staged, done)
}

#[test]
fn whole_transfers_at_chunk_boundaries() {
    let center = SigningKey::generate().unwrap();
    for len in [0, 1, DATA_CHUNK - 1, DATA_CHUNK, DATA_CHUNK + 1, 3 * DATA_CHUNK + 5] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (staged, done) = drive(&payload, 0, &center);
        assert_eq!(staged, payload, "length {len}");
        assert!(matches!(done, SenderEvent::Delivered(_)));
    }
}

#[test]
fn resume_sends_only_the_rest() {
    let center = SigningKey::generate().unwrap();
    let payload: Vec<u8> = (0..2 * DATA_CHUNK + 10).map(|i| (i % 13) as u8).collect();
    for resume in [1, DATA_CHUNK as u64, payload.len() as u64] {
        let (staged, done) = drive(&payload, resume, &center);
        assert_eq!(staged, payload);
        assert!(matches!(done, SenderEvent::Delivered(_)));
    }
}

#[test]
fn already_have_with_a_valid_receipt_is_delivery() {
    let center = SigningKey::generate().unwrap();
    let o = offer(10);
    let mut tx = PacketSender::new(o.clone(), center.verifying_key());
    let mut rx = PacketReceiver::new(100);
    rx.handle(tx.start().unwrap()).unwrap();
    let ev = tx.handle(rx.already_have(receipt_for(&o, &center)).unwrap()).unwrap();
    assert!(matches!(ev, SenderEvent::Delivered(r) if r.body.digest == o.digest));
}

#[test]
fn receipts_from_another_key_or_for_other_bytes_are_refused() {
    let center = SigningKey::generate().unwrap();
    let impostor = SigningKey::generate().unwrap();
    let o = offer(10);
    let mut tx = PacketSender::new(o.clone(), center.verifying_key());
    tx.start().unwrap();
    let forged = Message::AlreadyHave {
        receipt: receipt_for(&o, &impostor),
    };
    assert!(matches!(tx.handle(forged), Err(Error::BadReceipt(_))));
    let mut tx = PacketSender::new(o.clone(), center.verifying_key());
    tx.start().unwrap();
    let mut other = o.clone();
    other.digest = [1; 32];
    let wrong = Message::AlreadyHave {
        receipt: receipt_for(&other, &center),
    };
    assert!(matches!(tx.handle(wrong), Err(Error::BadReceipt(_))));
}

#[test]
fn reject_ends_the_exchange() {
    let center = SigningKey::generate().unwrap();
    let mut tx = PacketSender::new(offer(10), center.verifying_key());
    let mut rx = PacketReceiver::new(100);
    rx.handle(tx.start().unwrap()).unwrap();
    let ev = tx.handle(rx.reject(RejectReason::Conflict, "other content")).unwrap();
    assert_eq!(
        ev,
        SenderEvent::Rejected {
            reason: RejectReason::Conflict,
            detail: "other content".into()
        }
    );
    assert!(tx.is_finished());
}

fn accepted(size: u64) -> PacketReceiver {
    let mut rx = PacketReceiver::new(1 << 30);
    rx.handle(Message::Offer(offer(size))).unwrap();
    rx.accept(0).unwrap();
    rx
}

fn protocol_error(r: Result<ReceiverEvent>) -> String {
    match r {
        Err(Error::Protocol { expected, got }) => format!("expected {expected}, got {got}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn out_of_order_messages_are_protocol_errors_naming_both_sides() {
    let data = |offset, n| Message::Data {
        offset,
        bytes: vec![0; n],
    };
    // Data before Accept.
    let mut rx = PacketReceiver::new(100);
    rx.handle(Message::Offer(offer(10))).unwrap();
    assert!(protocol_error(rx.handle(data(0, 1))).contains("got Data at 0"));
    // Data before any Offer.
    assert!(protocol_error(PacketReceiver::new(100).handle(data(0, 1))).contains("expected Offer"));
    // A gap, an overlap, past the size, empty.
    assert!(protocol_error(accepted(10).handle(data(1, 1))).contains("expected offset 0"));
    let mut rx = accepted(10);
    rx.handle(data(0, 4)).unwrap();
    assert!(protocol_error(rx.handle(data(2, 4))).contains("expected offset 4"));
    assert!(protocol_error(accepted(10).handle(data(0, 11))).contains("of 10"));
    assert!(!protocol_error(accepted(10).handle(data(0, 0))).is_empty());
    // Done early; a second Offer; Receipt before Done (sender side).
    assert!(protocol_error(accepted(10).handle(Message::Done)).contains("Done at 0 of 10"));
    assert!(protocol_error(accepted(10).handle(Message::Offer(offer(10)))).contains("got Offer"));
    let center = SigningKey::generate().unwrap();
    let o = offer(10);
    let mut tx = PacketSender::new(o.clone(), center.verifying_key());
    tx.start().unwrap();
    tx.handle(Message::Accept { resume_at: 0 }).unwrap();
    let early = tx.handle(Message::Receipt {
        receipt: receipt_for(&o, &center),
    });
    assert!(matches!(early, Err(Error::Protocol { .. })));
    assert!(tx.finish().is_err(), "Done before all bytes were handed out");
    let mut tx = PacketSender::new(o, center.verifying_key());
    tx.start().unwrap();
    assert!(
        tx.handle(Message::Accept { resume_at: 11 }).is_err(),
        "resume past the end"
    );
    assert!(
        accepted(10).receipt(receipt_for(&offer(10), &center)).is_err(),
        "receipt before Complete"
    );
}
