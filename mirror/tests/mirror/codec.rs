//! Every message round-trips through the codec; arbitrary bytes never panic it.

use konvert_mirror::{
    decode, encode, BatchBody, Digest, Message, Node, ReceiptBody, RecordKind, Refusal, RefusalNotice, SignedBatch,
    SignedReceipt,
};
use proptest::prelude::*;

use crate::util::key;

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![Just(Node::Federal), any::<u8>().prop_map(Node::Region)]
}

fn kind() -> impl Strategy<Value = RecordKind> {
    (0..RecordKind::ALL.len()).prop_map(|i| RecordKind::ALL[i])
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn refusal() -> impl Strategy<Value = Refusal> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(expected, got)| Refusal::OutOfSequence { expected, got }),
        (digest(), digest()).prop_map(|(expected, got)| Refusal::BrokenChain { expected, got }),
        any::<u64>().prop_map(|first_seq| Refusal::Conflict { first_seq }),
        Just(Refusal::BadSignature),
        (any::<u64>(), ".{0,40}").prop_map(|(seq, reason)| Refusal::RowRefused { seq, reason }),
        (node(), kind()).prop_map(|(sender, kind)| Refusal::NotOwner { sender, kind }),
        (node(), node()).prop_map(|(to, me)| Refusal::NotForUs { to, me }),
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(got, min, max)| Refusal::UnknownSchema { got, min, max }),
        ".{0,40}".prop_map(Refusal::Malformed),
        Just(Refusal::WrongSigner {
            node: Node::Region(3),
            expected: key(Node::Region(3)).key_id(),
            got: key(Node::Federal).key_id()
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let batch = (
        any::<u16>(),
        node(),
        node(),
        kind(),
        any::<u64>(),
        digest(),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    )
        .prop_map(|(schema, from, to, kind, first_seq, prev, rows)| {
            let body = BatchBody {
                schema,
                from,
                to,
                kind,
                first_seq,
                prev,
                rows: rows.into_iter().map(serde_bytes::ByteBuf::from).collect(),
            };
            Message::Batch(SignedBatch::sign(body, &key(from)).unwrap())
        });
    let receipt = (node(), node(), kind(), any::<u64>(), any::<u64>(), digest()).prop_map(
        |(from, to, kind, first_seq, last_seq, batch)| {
            let body = ReceiptBody {
                from,
                to,
                kind,
                first_seq,
                last_seq,
                batch,
            };
            Message::Receipt(SignedReceipt::sign(body, &key(from)).unwrap())
        },
    );
    let notice = (node(), node(), kind(), any::<u64>(), digest(), refusal()).prop_map(
        |(from, to, kind, first_seq, batch, reason)| {
            Message::Refusal(RefusalNotice {
                from,
                to,
                kind,
                first_seq,
                batch,
                reason,
            })
        },
    );
    prop_oneof![batch, receipt, notice]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = encode(&msg).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_are_an_error_never_a_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        // With the right version in front, the body parser is reached too.
        if bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&konvert_mirror::FORMAT_VERSION.to_le_bytes());
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn a_flipped_bit_in_a_signed_batch_is_never_applied(flip in 0usize..4096) {
        use konvert_mirror::{Outcome, Receiver};
        let from = Node::Region(1);
        let b = crate::util::batch(from, Node::Federal, RecordKind::ProcessingResults, 1, Digest::ZERO, &[b"score 72", b"score 64"], &key(from));
        let mut bytes = encode(&Message::Batch(b)).unwrap();
        let bit = flip % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let mut rx = Receiver::new(Node::Federal, key(Node::Federal), crate::util::peers(Node::Federal), 1..=1).unwrap();
        if let Ok(Message::Batch(b)) = decode(&bytes) {
            // A flip may land in a field the receiver refuses on its own (the sender, the
            // addressee), or make the batch another one; it is never applied.
            if let Ok(outcome) = rx.handle(from, &b) {
                prop_assert!(!matches!(outcome, Outcome::Applied(_)), "bit {} flipped and still applied", bit);
            }
        }
    }
}

#[test]
fn a_batch_signature_is_no_receipt_signature_and_back() {
    use konvert_crypto::Domain;
    let k = key(Node::Federal);
    let msg = [5u8; 32];
    let batch_sig = k.sign(Domain::MirrorBatch, &msg);
    let receipt_sig = k.sign(Domain::MirrorReceipt, &msg);
    let vk = k.verifying_key();
    assert!(vk.verify(Domain::MirrorBatch, &msg, &batch_sig).is_ok());
    assert!(vk.verify(Domain::MirrorReceipt, &msg, &batch_sig).is_err());
    assert!(vk.verify(Domain::MirrorBatch, &msg, &receipt_sig).is_err());
    assert!(
        vk.verify(Domain::Receipt, &msg, &receipt_sig).is_err(),
        "not a center receipt either"
    );
}
