use konvert_crypto::{KeyId, SigningKey};
use proptest::prelude::*;

use super::*;
use crate::{Offer, Receipt, ReceiptBody, RejectReason};

fn receipt() -> Receipt {
    let key = SigningKey::from_seed(&[3; 32]).unwrap();
    let body = ReceiptBody {
        packet_id: "p".into(),
        version: 2,
        site: "0101".into(),
        digest: [1; 32],
        bytes: 9,
        received_at_unix_ms: 77,
        center_key: KeyId([0; 16]),
    };
    Receipt::sign(body, &key).unwrap()
}

fn arb_message() -> impl Strategy<Value = Message> {
    let offer = (
        ".{0,40}",
        any::<u32>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(packet_id, version, size, digest, priority, sealed_at_unix_ms, deadline_unix_ms)| Offer {
                packet_id,
                version,
                size,
                digest,
                priority,
                sealed_at_unix_ms,
                deadline_unix_ms,
            },
        );
    prop_oneof![
        (any::<u16>(), any::<u16>(), ".{0,20}", ".{0,20}").prop_map(|(min_version, max_version, site, agent)| {
            Message::Hello {
                min_version,
                max_version,
                site,
                agent,
            }
        }),
        (any::<u16>(), ".{0,20}").prop_map(|(version, center)| Message::Welcome { version, center }),
        offer.prop_map(Message::Offer),
        any::<u64>().prop_map(|resume_at| Message::Accept { resume_at }),
        Just(Message::AlreadyHave { receipt: receipt() }),
        (0usize..10, ".{0,30}").prop_map(|(r, detail)| Message::Reject {
            reason: RejectReason::ALL[r],
            detail
        }),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..3000))
            .prop_map(|(offset, bytes)| Message::Data { offset, bytes }),
        Just(Message::Done),
        Just(Message::Receipt { receipt: receipt() }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips_in_random_pieces(msgs in proptest::collection::vec(arb_message(), 1..8), cut in 1usize..97) {
        let mut wire = Vec::new();
        for m in &msgs {
            encode_into(m, &mut wire).unwrap();
        }
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        let mut out = Vec::new();
        for piece in wire.chunks(cut) {
            dec.push(piece);
            while let Some(m) = dec.next_message().unwrap() {
                out.push(m);
            }
        }
        dec.finish().unwrap();
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&bytes);
        for _ in 0..8 {
            match dec.next_message() {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }
}

#[test]
fn oversized_length_is_refused_before_allocation() {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.push(&u32::MAX.to_le_bytes());
    assert!(matches!(dec.next_message(), Err(Error::FrameTooLarge { len, .. }) if len == u32::MAX as usize));
    assert!(check_len(((MAX_FRAME_LEN + 1) as u32).to_le_bytes(), MAX_FRAME_LEN).is_err());
    let big = Message::Data {
        offset: 0,
        bytes: vec![0; MAX_FRAME_LEN + 1],
    };
    assert!(matches!(encode(&big), Err(Error::FrameTooLarge { .. })));
}

#[test]
fn truncated_and_garbage_frames() {
    let wire = encode(&Message::Done).unwrap();
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.push(&wire[..wire.len() - 1]);
    assert!(dec.next_message().unwrap().is_none());
    assert!(matches!(dec.finish(), Err(Error::TruncatedFrame)));
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.push(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
    assert!(matches!(dec.next_message(), Err(Error::MalformedFrame(_))));
    assert!(matches!(decode_body(&[7, 1, 2]), Err(Error::MalformedFrame(_))));
}
