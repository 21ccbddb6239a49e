//! Scripts that drive an edge's `PacketSender` and a center's `PacketReceiver` against
//! each other through in-memory byte pipes (every message crosses as a frame), in the
//! manner of quinn-proto's `Pair`: set up, `drive()`, assert on what each side saw.
use konvert_crypto::{KeyId, SigningKey};

use super::*;
use crate::frame::{encode, FrameDecoder, DATA_CHUNK, MAX_FRAME_LEN};
use crate::sender::{PacketSender, SenderEvent};
use crate::ReceiptBody;

const C: usize = DATA_CHUNK;

fn center_key() -> SigningKey {
    SigningKey::from_seed(&[1; 32]).unwrap()
}

fn impostor_key() -> SigningKey {
    SigningKey::from_seed(&[2; 32]).unwrap()
}

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

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The byte ranges a sender must hand out from `from` to `size`, computed independently.
fn ranges(from: usize, size: usize) -> Vec<(u64, usize)> {
    (from..size)
        .step_by(C)
        .map(|at| (at as u64, C.min(size - at)))
        .collect()
}

/// What the center answers to the Offer.
enum Decision {
    Accept(u64),
    AlreadyHave,
    Reject(RejectReason),
    /// A relay that holds the packet but has no center receipt for it yet.
    Held,
}

/// One edge and one center exchanging one packet.
struct Pair {
    edge: PacketSender,
    center: PacketReceiver,
    payload: Vec<u8>,
    decision: Decision,
    /// The key the center signs receipts with; swap it to play a forged center.
    receipt_key: SigningKey,
    /// The center rejects with Unavailable once it staged this many bytes.
    reject_after: Option<u64>,
    /// The center rejects instead of issuing a receipt (its verification failed).
    reject_on_complete: Option<RejectReason>,
    /// The center is a relay and answers Held instead of a receipt.
    hold_on_complete: bool,
    to_center: FrameDecoder,
    to_edge: FrameDecoder,
    /// Whether the edge is still pumping Data (one chunk per drive step, so the center's
    /// answers can interleave).
    pumping: bool,
    /// The center's staging file.
    staged: Vec<u8>,
    /// Ranges the edge handed out, in order.
    sent: Vec<(u64, usize)>,
    edge_events: Vec<SenderEvent>,
    center_events: Vec<&'static str>,
}

impl Pair {
    fn new(payload: Vec<u8>, decision: Decision) -> Self {
        let o = offer(payload.len() as u64);
        let mut pair = Pair {
            edge: PacketSender::new(o, center_key().verifying_key()),
            center: PacketReceiver::new(1 << 40),
            payload,
            decision,
            receipt_key: center_key(),
            reject_after: None,
            reject_on_complete: None,
            hold_on_complete: false,
            to_center: FrameDecoder::new(MAX_FRAME_LEN),
            to_edge: FrameDecoder::new(MAX_FRAME_LEN),
            pumping: false,
            staged: Vec::new(),
            sent: Vec::new(),
            edge_events: Vec::new(),
            center_events: Vec::new(),
        };
        let hello = pair.edge.start().unwrap();
        pair.to_center.push(&encode(&hello).unwrap());
        pair
    }

    /// Runs both sides until neither has anything left to do; the first error stops it.
    fn drive(&mut self) -> Result<()> {
        loop {
            let mut progress = false;
            while let Some(msg) = self.to_center.next()? {
                progress = true;
                self.at_center(msg)?;
            }
            while let Some(msg) = self.to_edge.next()? {
                progress = true;
                self.at_edge(msg)?;
            }
            if self.pumping {
                progress = true;
                self.pump()?;
            }
            if !progress {
                self.to_center.finish()?;
                return self.to_edge.finish();
            }
        }
    }

    fn send_to_edge(&mut self, msg: &Message) {
        self.to_edge.push(&encode(msg).unwrap());
    }

    fn receipt(&self) -> Receipt {
        receipt_for(self.edge.offer(), &self.receipt_key)
    }

    fn pump(&mut self) -> Result<()> {
        let msg = match self.edge.next_chunk() {
            Some((at, n)) => {
                assert!(n > 0 && n <= C, "chunk of {n} bytes");
                self.sent.push((at, n));
                let (at, n) = (at as usize, n);
                self.edge.data(at as u64, self.payload[at..at + n].to_vec())
            }
            None => {
                self.pumping = false;
                self.edge.finish()?
            }
        };
        self.to_center.push(&encode(&msg)?);
        Ok(())
    }

    fn at_center(&mut self, msg: Message) -> Result<()> {
        match self.center.handle(msg)? {
            ReceiverEvent::Offered(o) => {
                self.center_events.push("Offered");
                assert_eq!(&o, self.edge.offer());
                let reply = match self.decision {
                    Decision::Accept(k) => {
                        let reply = self.center.accept(k)?;
                        self.staged = self.payload[..k as usize].to_vec();
                        reply
                    }
                    Decision::AlreadyHave => self.center.already_have(self.receipt())?,
                    Decision::Reject(reason) => self.center.reject(reason, "decided by the test"),
                    Decision::Held => self.center.held("relay-01", "waiting for the center")?,
                };
                self.send_to_edge(&reply);
            }
            ReceiverEvent::Write { offset, bytes } => {
                self.center_events.push("Write");
                assert_eq!(offset, self.staged.len() as u64, "writes are contiguous");
                self.staged.extend_from_slice(&bytes);
                if self.reject_after.is_some_and(|n| self.staged.len() as u64 >= n) {
                    let reply = self.center.reject(RejectReason::Unavailable, "disk full");
                    self.send_to_edge(&reply);
                }
            }
            ReceiverEvent::Complete => {
                self.center_events.push("Complete");
                assert_eq!(self.staged, self.payload, "everything staged at Complete");
                let reply = match self.reject_on_complete {
                    Some(reason) => self.center.reject(reason, "verification failed"),
                    None if self.hold_on_complete => self.center.held("relay-01", "waiting for the center")?,
                    None => self.center.receipt(self.receipt())?,
                };
                self.send_to_edge(&reply);
            }
        }
        Ok(())
    }

    fn at_edge(&mut self, msg: Message) -> Result<()> {
        let event = self.edge.handle(msg)?;
        match &event {
            SenderEvent::SendFrom(_) => self.pumping = true,
            SenderEvent::Rejected { .. } | SenderEvent::Delivered(_) | SenderEvent::Held { .. } => self.pumping = false,
        }
        self.edge_events.push(event);
        Ok(())
    }
}

fn writes(n: usize) -> Vec<&'static str> {
    let mut v = vec!["Offered"];
    v.extend(std::iter::repeat_n("Write", n));
    v.push("Complete");
    v
}

// ---- whole exchanges ----

#[test]
fn whole_packets_arrive_at_every_chunk_boundary() {
    for len in [1, C - 1, C, C + 1, 2 * C - 1, 2 * C, 2 * C + 1] {
        let mut p = Pair::new(payload(len), Decision::Accept(0));
        p.drive().unwrap();
        assert_eq!(p.staged, p.payload, "length {len}");
        assert_eq!(p.sent, ranges(0, len), "length {len}");
        assert_eq!(p.center_events, writes(p.sent.len()));
        assert!(
            matches!(&p.edge_events[..], [SenderEvent::SendFrom(0), SenderEvent::Delivered(r)] if r.body.bytes == len as u64)
        );
        assert!(p.edge.is_finished());
    }
}

#[test]
fn an_empty_packet_is_offer_accept_done_receipt() {
    let mut p = Pair::new(Vec::new(), Decision::Accept(0));
    p.drive().unwrap();
    assert!(p.sent.is_empty());
    assert_eq!(p.center_events, ["Offered", "Complete"]);
    assert!(matches!(
        &p.edge_events[..],
        [SenderEvent::SendFrom(0), SenderEvent::Delivered(_)]
    ));
}

#[test]
fn a_resumed_packet_sends_only_the_rest() {
    let len = 2 * C + 10;
    for k in [1, C - 1, C, C + 1, len - 1, len] {
        let mut p = Pair::new(payload(len), Decision::Accept(k as u64));
        p.drive().unwrap();
        assert_eq!(p.staged, p.payload, "resume at {k}");
        assert_eq!(p.sent, ranges(k, len), "resume at {k}");
        assert_eq!(p.sent.first().map(|r| r.0), (k < len).then_some(k as u64));
        assert!(
            matches!(&p.edge_events[..], [SenderEvent::SendFrom(at), SenderEvent::Delivered(_)] if *at == k as u64)
        );
    }
}

#[test]
fn already_have_with_a_valid_receipt_is_delivery_without_data() {
    let mut p = Pair::new(payload(10), Decision::AlreadyHave);
    p.drive().unwrap();
    assert!(p.sent.is_empty());
    assert_eq!(p.center_events, ["Offered"]);
    assert!(matches!(&p.edge_events[..], [SenderEvent::Delivered(r)] if r.body.digest == [9; 32]));
    assert!(p.edge.is_finished());
}

#[test]
fn receipts_signed_by_another_key_are_refused() {
    let mut p = Pair::new(payload(10), Decision::AlreadyHave);
    p.receipt_key = impostor_key();
    assert!(matches!(p.drive(), Err(Error::BadReceipt(_))));
    assert!(p.edge_events.is_empty() && !p.edge.is_finished());

    let mut p = Pair::new(payload(10), Decision::Accept(0));
    p.receipt_key = impostor_key();
    assert!(matches!(p.drive(), Err(Error::BadReceipt(_))));
    assert_eq!(p.staged, p.payload, "the bytes arrived; only the receipt is bad");
    assert!(matches!(&p.edge_events[..], [SenderEvent::SendFrom(0)]));
}

#[test]
fn receipts_for_other_bytes_are_refused_by_both_sides() {
    let center = center_key();
    let mut other = offer(10);
    other.digest = [1; 32];
    let alien = receipt_for(&other, &center);

    // A center that would answer with it is stopped before it goes on the wire…
    let mut rx = PacketReceiver::new(100);
    rx.handle(Message::Offer(offer(10))).unwrap();
    assert!(matches!(rx.already_have(alien.clone()), Err(Error::BadReceipt(_))));

    // …and an edge refuses it anyway, after AlreadyHave and after Done.
    let mut tx = PacketSender::new(offer(10), center.verifying_key());
    tx.start().unwrap();
    let forged = Message::AlreadyHave { receipt: alien.clone() };
    assert!(matches!(tx.handle(forged), Err(Error::BadReceipt(_))));
    let mut tx = PacketSender::new(offer(10), center.verifying_key());
    tx.start().unwrap();
    tx.handle(Message::Accept { resume_at: 10 }).unwrap();
    tx.finish().unwrap();
    assert!(matches!(
        tx.handle(Message::Receipt { receipt: alien }),
        Err(Error::BadReceipt(_))
    ));
    // A receipt for the same packet with a different size is just as foreign.
    let mut shorter = offer(9);
    shorter.size = 9;
    let r = receipt_for(&shorter, &center);
    assert!(matches!(
        tx.handle(Message::Receipt { receipt: r }),
        Err(Error::BadReceipt(_))
    ));
    assert!(!tx.is_finished());
}

#[test]
fn reject_at_the_offer_ends_the_exchange() {
    let mut p = Pair::new(payload(10), Decision::Reject(RejectReason::Conflict));
    p.drive().unwrap();
    assert_eq!(
        p.edge_events,
        [SenderEvent::Rejected {
            reason: RejectReason::Conflict,
            detail: "decided by the test".into()
        }]
    );
    assert!(p.sent.is_empty());
    assert!(p.edge.is_finished());
}

#[test]
fn held_at_the_offer_ends_the_exchange_without_data_or_delivery() {
    let mut p = Pair::new(payload(10), Decision::Held);
    p.drive().unwrap();
    assert_eq!(
        p.edge_events,
        [SenderEvent::Held {
            relay: "relay-01".into(),
            detail: "waiting for the center".into()
        }]
    );
    assert!(p.sent.is_empty());
    assert!(p.edge.is_finished());
}

#[test]
fn held_after_done_is_the_outcome_and_not_a_delivery() {
    let mut p = Pair::new(payload(C + 1), Decision::Accept(0));
    p.hold_on_complete = true;
    p.drive().unwrap();
    assert_eq!(p.center_events, writes(2));
    assert!(matches!(
        &p.edge_events[..],
        [SenderEvent::SendFrom(0), SenderEvent::Held { relay, .. }] if relay == "relay-01"
    ));
}

#[test]
fn held_is_refused_mid_transfer_and_before_an_offer() {
    let mut rx = accepted(10);
    assert!(matches!(rx.held("r", ""), Err(Error::Unexpected { .. })));
    let mut fresh = PacketReceiver::new(100);
    assert!(matches!(fresh.held("r", ""), Err(Error::Unexpected { .. })));
}

#[test]
fn reject_mid_transfer_stops_the_edge() {
    let mut p = Pair::new(payload(3 * C), Decision::Accept(0));
    p.reject_after = Some(1);
    p.drive().unwrap();
    assert_eq!(p.sent, ranges(0, C), "one chunk, then the Reject arrived");
    assert!(matches!(
        &p.edge_events[..],
        [
            SenderEvent::SendFrom(0),
            SenderEvent::Rejected {
                reason: RejectReason::Unavailable,
                ..
            }
        ]
    ));
    assert_eq!(p.edge.next_chunk(), None);
    assert!(p.edge.finish().is_err());
}

#[test]
fn reject_after_done_is_the_outcome() {
    let mut p = Pair::new(payload(C + 1), Decision::Accept(0));
    p.reject_on_complete = Some(RejectReason::DigestMismatch);
    p.drive().unwrap();
    assert_eq!(p.center_events, writes(2));
    assert!(matches!(
        &p.edge_events[..],
        [
            SenderEvent::SendFrom(0),
            SenderEvent::Rejected {
                reason: RejectReason::DigestMismatch,
                ..
            }
        ]
    ));
}

#[test]
fn offers_above_the_maximum_are_shown_to_the_caller_who_must_refuse() {
    let mut rx = PacketReceiver::new(100);
    assert_eq!(rx.max_size(), 100);
    assert_eq!(
        rx.handle(Message::Offer(offer(101))).unwrap(),
        ReceiverEvent::Offered(offer(101))
    );
    assert_eq!(rx.offer(), Some(&offer(101)));
    assert!(
        matches!(rx.accept(0), Err(Error::Unexpected { got, .. }) if got.contains("maximum 100")),
        "accepting by mistake is caught"
    );
    assert!(matches!(
        rx.reject(RejectReason::TooLarge, "101 > 100"),
        Message::Reject {
            reason: RejectReason::TooLarge,
            ..
        }
    ));
}

// ---- every message in every state ----

/// One message of every kind, legal in at least one state of the tests below (a Data at
/// 4 of 1 byte, an Accept at 0, receipts for `offer(10)` signed by the center).
fn one_of_each() -> Vec<Message> {
    let r = receipt_for(&offer(10), &center_key());
    vec![
        crate::handshake::hello("0101", "t"),
        Message::Welcome {
            version: 1,
            center: "c".into(),
        },
        Message::Offer(offer(10)),
        Message::Accept { resume_at: 0 },
        Message::AlreadyHave { receipt: r.clone() },
        Message::Reject {
            reason: RejectReason::Conflict,
            detail: String::new(),
        },
        Message::Data {
            offset: 4,
            bytes: vec![7],
        },
        Message::Done,
        Message::Receipt { receipt: r },
        Message::Held {
            relay: "relay-01".into(),
            detail: String::new(),
        },
    ]
}

/// A protocol error that names what arrived.
fn assert_protocol_error<T: std::fmt::Debug>(r: Result<T>, got_kind: &str, context: &str) {
    match r {
        Err(Error::Unexpected { expected, got }) => {
            assert!(!expected.is_empty(), "{context}");
            assert!(
                got.starts_with(got_kind),
                "{context}: got {got:?}, expected it to name {got_kind}"
            );
        }
        other => panic!("{context}: expected a protocol error naming {got_kind}, got {other:?}"),
    }
}

/// A state's name, a constructor for a machine in it, and the message kinds it takes.
type StateCase<M> = (&'static str, fn() -> M, &'static [&'static str]);

/// A receiver in each state, with offer(10): name, constructor, the kinds it accepts.
fn receivers() -> Vec<StateCase<PacketReceiver>> {
    fn expect_offer() -> PacketReceiver {
        PacketReceiver::new(100)
    }
    fn deciding() -> PacketReceiver {
        let mut rx = expect_offer();
        rx.handle(Message::Offer(offer(10))).unwrap();
        rx
    }
    fn receiving_at_4() -> PacketReceiver {
        let mut rx = deciding();
        rx.accept(0).unwrap();
        rx.handle(Message::Data {
            offset: 0,
            bytes: vec![0; 4],
        })
        .unwrap();
        rx
    }
    fn completing() -> PacketReceiver {
        let mut rx = deciding();
        rx.accept(10).unwrap();
        assert_eq!(rx.handle(Message::Done).unwrap(), ReceiverEvent::Complete);
        rx
    }
    fn finished() -> PacketReceiver {
        let mut rx = completing();
        rx.receipt(receipt_for(&offer(10), &center_key())).unwrap();
        rx
    }
    vec![
        ("ExpectOffer", expect_offer, &["Offer"]),
        ("Deciding", deciding, &[]),
        ("Receiving", receiving_at_4, &["Data"]),
        ("Completing", completing, &[]),
        ("Finished", finished, &[]),
    ]
}

#[test]
fn the_receiver_refuses_every_message_that_is_wrong_for_its_state() {
    for (state, make, legal) in receivers() {
        for msg in one_of_each() {
            let kind = msg.kind();
            let result = make().handle(msg);
            if legal.contains(&kind) {
                assert!(result.is_ok(), "{state} must take {kind}: {result:?}");
            } else {
                assert_protocol_error(result, kind, &format!("{kind} in {state}"));
            }
        }
    }
}

/// A sender in each state, with offer(10): name, constructor, the kinds it accepts.
fn senders() -> Vec<StateCase<PacketSender>> {
    fn start() -> PacketSender {
        PacketSender::new(offer(10), center_key().verifying_key())
    }
    fn await_decision() -> PacketSender {
        let mut tx = start();
        tx.start().unwrap();
        tx
    }
    fn sending() -> PacketSender {
        let mut tx = await_decision();
        tx.handle(Message::Accept { resume_at: 0 }).unwrap();
        tx
    }
    fn await_receipt() -> PacketSender {
        let mut tx = sending();
        while tx.next_chunk().is_some() {}
        tx.finish().unwrap();
        tx
    }
    fn finished() -> PacketSender {
        let mut tx = await_decision();
        tx.handle(Message::Reject {
            reason: RejectReason::Conflict,
            detail: String::new(),
        })
        .unwrap();
        tx
    }
    vec![
        ("Start", start, &[]),
        (
            "AwaitDecision",
            await_decision,
            &["Accept", "AlreadyHave", "Reject", "Held"],
        ),
        ("Sending", sending, &["Reject"]),
        ("AwaitReceipt", await_receipt, &["Receipt", "Reject", "Held"]),
        ("Finished", finished, &[]),
    ]
}

#[test]
fn the_sender_refuses_every_message_that_is_wrong_for_its_state() {
    for (state, make, legal) in senders() {
        for msg in one_of_each() {
            let kind = msg.kind();
            let result = make().handle(msg);
            if legal.contains(&kind) {
                assert!(result.is_ok(), "{state} must take {kind}: {result:?}");
            } else {
                assert_protocol_error(result, kind, &format!("{kind} in {state}"));
            }
        }
    }
}

// ---- the named violations, one by one ----

fn accepted(size: u64) -> PacketReceiver {
    let mut rx = PacketReceiver::new(1 << 30);
    rx.handle(Message::Offer(offer(size))).unwrap();
    rx.accept(0).unwrap();
    rx
}

fn data(offset: u64, n: usize) -> Message {
    Message::Data {
        offset,
        bytes: vec![0; n],
    }
}

/// "expected …, got …", as the operator's log shows it.
fn violation(r: Result<ReceiverEvent>) -> String {
    match r {
        Err(e @ Error::Unexpected { .. }) => e.to_string(),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn data_before_accept() {
    let mut rx = PacketReceiver::new(100);
    rx.handle(Message::Offer(offer(10))).unwrap();
    let v = violation(rx.handle(data(0, 1)));
    assert!(
        v.contains("expected nothing until the center decides, got Data at 0 (1 bytes)"),
        "{v}"
    );
    let v = violation(PacketReceiver::new(100).handle(data(0, 1)));
    assert!(v.contains("expected Offer, got Data"), "{v}");
}

#[test]
fn data_with_a_gap_or_an_overlap() {
    let v = violation(accepted(10).handle(data(1, 1)));
    assert!(
        v.contains("exactly where the previous ended") && v.contains("expected offset 0"),
        "{v}"
    );
    let mut rx = accepted(10);
    rx.handle(data(0, 4)).unwrap();
    let v = violation(rx.handle(data(2, 4)));
    assert!(v.contains("Data at 2 (4 bytes), expected offset 4 of 10"), "{v}");
    // The refused Data changed nothing: the right one is still welcome.
    assert!(matches!(
        rx.handle(data(4, 6)).unwrap(),
        ReceiverEvent::Write { offset: 4, .. }
    ));
}

#[test]
fn data_past_the_size_or_empty() {
    let v = violation(accepted(10).handle(data(0, 11)));
    assert!(v.contains("within the offered size") && v.contains("of 10"), "{v}");
    let mut rx = accepted(10);
    rx.handle(data(0, 10)).unwrap();
    assert!(violation(rx.handle(data(10, 1))).contains("within the offered size"));
    assert!(violation(accepted(10).handle(data(0, 0))).contains("non-empty"));
    // An offset near u64::MAX must not overflow into "fits".
    let mut rx = PacketReceiver::new(u64::MAX);
    rx.handle(Message::Offer(offer(u64::MAX))).unwrap();
    rx.accept(u64::MAX - 1).unwrap();
    assert!(violation(rx.handle(data(u64::MAX - 1, 2))).contains("within the offered size"));
}

#[test]
fn done_early() {
    let v = violation(accepted(10).handle(Message::Done));
    assert!(
        v.contains("expected all offered bytes before Done, got Done at 0 of 10"),
        "{v}"
    );
    let mut tx = PacketSender::new(offer(10), center_key().verifying_key());
    tx.start().unwrap();
    tx.handle(Message::Accept { resume_at: 0 }).unwrap();
    assert!(
        tx.finish().is_err(),
        "the edge will not say Done before handing out every byte"
    );
    assert_eq!(tx.next_chunk(), Some((0, 10)));
    assert_eq!(tx.next_chunk(), None);
    assert_eq!(tx.finish().unwrap(), Message::Done);
}

#[test]
fn a_second_offer() {
    let mut rx = PacketReceiver::new(100);
    rx.handle(Message::Offer(offer(10))).unwrap();
    assert!(violation(rx.handle(Message::Offer(offer(10)))).contains("got Offer"));
    assert!(violation(accepted(10).handle(Message::Offer(offer(10)))).contains("expected Data or Done, got Offer"));
}

#[test]
fn receipt_before_done() {
    let o = offer(10);
    let mut tx = PacketSender::new(o.clone(), center_key().verifying_key());
    tx.start().unwrap();
    tx.handle(Message::Accept { resume_at: 0 }).unwrap();
    let early = tx.handle(Message::Receipt {
        receipt: receipt_for(&o, &center_key()),
    });
    assert!(matches!(early, Err(Error::Unexpected { got, .. }) if got == "Receipt"));
    // And the center cannot issue one before Complete.
    assert!(matches!(
        accepted(10).receipt(receipt_for(&o, &center_key())),
        Err(Error::Unexpected { .. })
    ));
}

#[test]
fn accept_out_of_range_or_out_of_turn() {
    let mut tx = PacketSender::new(offer(10), center_key().verifying_key());
    tx.start().unwrap();
    assert!(
        matches!(tx.handle(Message::Accept { resume_at: 11 }), Err(Error::Unexpected { got, .. }) if got.contains("11 of 10"))
    );
    let mut rx = PacketReceiver::new(100);
    assert!(rx.accept(0).is_err(), "no offer yet");
    rx.handle(Message::Offer(offer(10))).unwrap();
    assert!(rx.accept(11).is_err());
    assert_eq!(rx.accept(10).unwrap(), Message::Accept { resume_at: 10 });
    assert!(rx.accept(10).is_err(), "decided already");
    assert!(rx.already_have(receipt_for(&offer(10), &center_key())).is_err());
}

#[test]
fn api_misuse_on_the_sender() {
    let mut tx = PacketSender::new(offer(10), center_key().verifying_key());
    assert_eq!(tx.next_chunk(), None, "nothing to send before Accept");
    assert!(tx.finish().is_err());
    assert_eq!(tx.start().unwrap(), Message::Offer(offer(10)));
    assert!(tx.start().is_err(), "one Offer per exchange");
    assert_eq!(
        tx.data(3, vec![1]),
        Message::Data {
            offset: 3,
            bytes: vec![1]
        }
    );
}

#[test]
fn reject_is_legal_in_every_receiver_state_and_ends_it() {
    for (state, make, _) in receivers() {
        let mut rx = make();
        assert!(matches!(
            rx.reject(RejectReason::ProtocolViolation, "x"),
            Message::Reject { .. }
        ));
        assert_protocol_error(rx.handle(data(4, 1)), "Data", state);
        assert!(rx.accept(0).is_err(), "{state}");
    }
}

// ---- random message sequences against a model ----

mod random {
    use proptest::prelude::*;

    use super::*;

    /// Messages an edge might send, with small sizes and offsets so sequences collide.
    fn edge_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (0u64..20).prop_map(|size| Message::Offer(offer(size))),
            (0u64..24, 0usize..8).prop_map(|(offset, n)| data(offset, n)),
            Just(Message::Done),
            Just(Message::Accept { resume_at: 0 }),
        ]
    }

    /// Messages a center might send for `offer(10)`, including forged receipts.
    fn center_message() -> impl Strategy<Value = Message> {
        let good = receipt_for(&offer(10), &center_key());
        let forged = receipt_for(&offer(10), &impostor_key());
        prop_oneof![
            (0u64..14).prop_map(|resume_at| Message::Accept { resume_at }),
            Just(Message::AlreadyHave { receipt: good.clone() }),
            Just(Message::AlreadyHave {
                receipt: forged.clone()
            }),
            Just(Message::Receipt { receipt: good }),
            Just(Message::Receipt { receipt: forged }),
            Just(Message::Reject {
                reason: RejectReason::Unavailable,
                detail: String::new()
            }),
            Just(Message::Held {
                relay: "relay-01".into(),
                detail: String::new()
            }),
            Just(Message::Done),
        ]
    }

    proptest! {
        /// Whatever the edge sends, the center only ever writes one contiguous run from
        /// `resume_at`, inside the offered size, and completes only when it is whole.
        #[test]
        fn the_receiver_writes_contiguously_and_completes_only_when_whole(
            msgs in proptest::collection::vec(edge_message(), 0..24),
            resume in 0u64..20,
        ) {
            let mut rx = PacketReceiver::new(15);
            let mut cursor: Option<u64> = None;
            let mut completed = false;
            for msg in msgs {
                match rx.handle(msg) {
                    Ok(ReceiverEvent::Offered(o)) => {
                        prop_assert!(cursor.is_none());
                        if o.size > rx.max_size() {
                            rx.reject(RejectReason::TooLarge, "");
                        } else {
                            let at = resume.min(o.size);
                            rx.accept(at).unwrap();
                            cursor = Some(at);
                        }
                    }
                    Ok(ReceiverEvent::Write { offset, bytes }) => {
                        prop_assert!(!completed);
                        prop_assert_eq!(Some(offset), cursor);
                        let end = offset + bytes.len() as u64;
                        prop_assert!(!bytes.is_empty() && end <= rx.offer().unwrap().size);
                        cursor = Some(end);
                    }
                    Ok(ReceiverEvent::Complete) => {
                        prop_assert!(!completed);
                        prop_assert_eq!(cursor, rx.offer().map(|o| o.size));
                        completed = true;
                    }
                    Err(e) => prop_assert!(matches!(e, Error::Unexpected { .. }), "{e:?}"),
                }
            }
        }

        /// Whatever the center sends, the edge hands out one contiguous run up to the
        /// size and reports delivery only with a receipt from the center's key.
        #[test]
        fn the_sender_delivers_only_on_a_genuine_receipt(
            script in proptest::collection::vec((center_message(), 0usize..3), 0..12),
        ) {
            let key = center_key().verifying_key();
            let mut tx = PacketSender::new(offer(10), key);
            tx.start().unwrap();
            let mut cursor: Option<u64> = None;
            let mut outcome = false;
            for (msg, pulls) in script {
                match tx.handle(msg) {
                    Ok(SenderEvent::SendFrom(at)) => {
                        prop_assert!(cursor.is_none() && at <= 10);
                        cursor = Some(at);
                    }
                    Ok(SenderEvent::Delivered(r)) => {
                        prop_assert!(!outcome);
                        prop_assert!(r.verify_for(&key, &offer(10)).is_ok());
                        outcome = true;
                    }
                    Ok(SenderEvent::Rejected { .. } | SenderEvent::Held { .. }) => {
                        prop_assert!(!outcome);
                        outcome = true;
                    }
                    Err(e) => prop_assert!(matches!(e, Error::Unexpected { .. } | Error::BadReceipt(_)), "{e:?}"),
                }
                prop_assert_eq!(tx.is_finished(), outcome);
                for _ in 0..pulls {
                    if let Some((at, n)) = tx.next_chunk() {
                        prop_assert_eq!(Some(at), cursor);
                        prop_assert!(n > 0 && at + n as u64 <= 10);
                        cursor = Some(at + n as u64);
                    }
                }
                if cursor == Some(10) && tx.finish().is_ok() {
                    prop_assert!(!outcome);
                }
            }
        }
    }
}
