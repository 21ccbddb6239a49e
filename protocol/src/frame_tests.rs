use konvert_crypto::{KeyId, Signature, SigningKey};
use proptest::prelude::*;

use super::*;
use crate::schedule::DeadlineRisk;
use crate::{Notice, Offer, Receipt, ReceiptBody, RejectReason, Share, SignedNotice, SiteStatus, TestVerdict, Verdict};

fn receipt(packet_id: String, digest: [u8; 32], bytes: u64) -> Receipt {
    let key = SigningKey::from_seed(&[3; 32]).unwrap();
    let body = ReceiptBody {
        packet_id,
        version: 2,
        site: "0101".into(),
        digest,
        bytes,
        received_at_unix_ms: 77,
        center_key: KeyId([0; 16]),
    };
    Receipt::sign(body, &key).unwrap()
}

fn arb_receipt() -> impl Strategy<Value = Receipt> {
    (".{0,40}", any::<[u8; 32]>(), any::<u64>()).prop_map(|(id, digest, bytes)| receipt(id, digest, bytes))
}

fn arb_offer() -> impl Strategy<Value = Offer> {
    (
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
        )
}

/// One strategy per `Message` variant; the exhaustive match below fails to compile when a
/// variant is added without a strategy here.
fn arb_message() -> impl Strategy<Value = Message> {
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
        arb_offer().prop_map(Message::Offer),
        any::<u64>().prop_map(|resume_at| Message::Accept { resume_at }),
        arb_receipt().prop_map(|receipt| Message::AlreadyHave { receipt }),
        (0..RejectReason::ALL.len(), ".{0,30}").prop_map(|(r, detail)| Message::Reject {
            reason: RejectReason::ALL[r],
            detail
        }),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..3000))
            .prop_map(|(offset, bytes)| Message::Data { offset, bytes }),
        Just(Message::Done),
        arb_receipt().prop_map(|receipt| Message::Receipt { receipt }),
        Just(Message::AskNotices),
        proptest::collection::vec(arb_notice(), 0..4).prop_map(|notices| Message::Notices { notices }),
        any::<u64>().prop_map(|have_version| Message::WatchRegistry { have_version }),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(|signed| Message::Registry { signed }),
        (any::<[u64; 7]>(), 0..DeadlineRisk::ALL.len()).prop_map(|(v, r)| Message::SiteStatus(SiteStatus {
            backlog_bytes: v[0],
            expected_bytes: v[6],
            goodput_bytes_per_s: v[1],
            link_bytes_per_s: v[2],
            deadline_unix_ms: v[3],
            eta_unix_ms: v[4],
            risk: DeadlineRisk::ALL[r],
            at_unix_ms: v[5],
        })),
        (any::<u64>(), any::<u64>(), 0..DeadlineRisk::ALL.len()).prop_map(|(rate, until, r)| Message::Share(Share {
            rate_bytes_per_s: rate,
            valid_until_unix_ms: until,
            risk: DeadlineRisk::ALL[r],
        })),
        (".{0,20}", ".{0,60}").prop_map(|(relay, detail)| Message::Held { relay, detail }),
        any::<u64>().prop_map(|have_number| Message::WatchRevocations { have_number }),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(|crl| Message::Revocations { crl }),
    ]
}

fn arb_notice() -> impl Strategy<Value = SignedNotice> {
    (
        ".{0,40}",
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<bool>(),
        ".{0,60}",
        any::<u64>(),
    )
        .prop_map(
            |(packet_id, version, digest, confirmed, reason, judged_at_unix_ms)| SignedNotice {
                notice: Notice::TestVerdict(TestVerdict {
                    packet_id,
                    version,
                    site: "0101".into(),
                    digest,
                    verdict: if confirmed {
                        Verdict::Confirmed
                    } else {
                        Verdict::Rejected
                    },
                    reason,
                    judged_by: "staff".into(),
                    judged_at_unix_ms,
                }),
                center_key: KeyId([1; 16]),
                signature: Signature([2; 64]),
            },
        )
}

/// Position of a message's variant; the match is exhaustive, so adding a variant to
/// `Message` breaks this test file until `arb_message` learns it.
fn variant(m: &Message) -> usize {
    match m {
        Message::Hello { .. } => 0,
        Message::Welcome { .. } => 1,
        Message::Offer(_) => 2,
        Message::Accept { .. } => 3,
        Message::AlreadyHave { .. } => 4,
        Message::Reject { .. } => 5,
        Message::Data { .. } => 6,
        Message::Done => 7,
        Message::Receipt { .. } => 8,
        Message::AskNotices => 9,
        Message::Notices { .. } => 10,
        Message::WatchRegistry { .. } => 11,
        Message::Registry { .. } => 12,
        Message::SiteStatus(_) => 13,
        Message::Share(_) => 14,
        Message::Held { .. } => 15,
        Message::WatchRevocations { .. } => 16,
        Message::Revocations { .. } => 17,
    }
}

#[test]
fn the_strategy_yields_every_variant() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_message();
    let mut seen = [false; 18];
    for _ in 0..500 {
        seen[variant(&strategy.new_tree(&mut runner).unwrap().current())] = true;
    }
    assert_eq!(seen, [true; 18]);
}

/// Splits `wire` at the given cut points (taken modulo its length), so pieces have random
/// sizes, including empty ones and cuts inside the length prefix.
fn pieces(wire: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    let n = wire.len().max(1);
    for c in &mut cuts {
        *c %= n;
    }
    cuts.push(0);
    cuts.push(wire.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

proptest! {
    #[test]
    fn every_message_round_trips_in_random_pieces(
        msgs in proptest::collection::vec(arb_message(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let mut wire = Vec::new();
        for m in &msgs {
            let before = wire.len();
            encode_into(m, &mut wire).unwrap();
            prop_assert_eq!(&wire[before..], &encode(m).unwrap()[..]);
        }
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        let mut out = Vec::new();
        for piece in pieces(&wire, cuts) {
            dec.push(piece);
            while let Some(m) = dec.next().unwrap() {
                out.push(m);
            }
        }
        dec.finish().unwrap();
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut dec = FrameDecoder::new(1024);
        for piece in pieces(&bytes, cuts) {
            dec.push(piece);
            // Each Ok(Some) consumes at least the 4-byte prefix, so this ends.
            while let Ok(Some(_)) = dec.next() {}
        }
        let _ = dec.finish();
    }

    #[test]
    fn random_bodies_are_malformed_or_a_message(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        match decode_body(&body) {
            // Not necessarily byte-identical (postcard tolerates some overlong varints),
            // but whatever decodes must survive a round trip.
            Ok(m) => prop_assert_eq!(decode_body(&encode(&m).unwrap()[4..]).unwrap(), m),
            Err(e) => prop_assert!(matches!(e, Error::MalformedFrame(_)), "{e:?}"),
        }
    }
}

#[test]
fn oversized_length_is_refused_before_allocation() {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.push(&u32::MAX.to_le_bytes());
    let err = dec.next().unwrap_err();
    assert!(matches!(err, Error::FrameTooLarge { len, max } if len == u32::MAX as usize && max == MAX_FRAME_LEN));
    assert!(dec.buf.capacity() < 1024, "nothing reserved for the announced body");
    // The error is sticky: the stream cannot be resynchronised.
    assert!(matches!(dec.next(), Err(Error::FrameTooLarge { .. })));

    assert_eq!(check_len(7u32.to_le_bytes(), 7).unwrap(), 7);
    assert!(matches!(
        check_len(8u32.to_le_bytes(), 7),
        Err(Error::FrameTooLarge { len: 8, max: 7 })
    ));
    // A decoder's own maximum applies, not only the global one.
    let mut small = FrameDecoder::new(3);
    small.push(&encode(&Message::Accept { resume_at: u64::MAX }).unwrap());
    assert!(matches!(small.next(), Err(Error::FrameTooLarge { max: 3, .. })));
}

#[test]
fn encoding_refuses_oversized_messages_and_leaves_the_buffer_alone() {
    let big = Message::Data {
        offset: 0,
        bytes: vec![0; MAX_FRAME_LEN + 1],
    };
    assert!(matches!(encode(&big), Err(Error::FrameTooLarge { .. })));
    let mut out = vec![1, 2, 3];
    assert!(encode_into(&big, &mut out).is_err());
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn a_full_data_chunk_fits_in_a_frame() {
    let full = Message::Data {
        offset: u64::MAX,
        bytes: vec![0xa5; DATA_CHUNK],
    };
    let wire = encode(&full).unwrap();
    assert!(wire.len() - 4 <= MAX_FRAME_LEN);
    assert_eq!(
        check_len([wire[0], wire[1], wire[2], wire[3]], MAX_FRAME_LEN).unwrap(),
        wire.len() - 4
    );
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.push(&wire);
    assert_eq!(dec.next().unwrap(), Some(full));
}

#[test]
fn truncated_input_is_incomplete_then_an_error_at_the_end() {
    let wire = encode(&Message::Accept { resume_at: 5 }).unwrap();
    for cut in 0..wire.len() {
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        dec.push(&wire[..cut]);
        assert!(dec.next().unwrap().is_none(), "cut at {cut}");
        if cut == 0 {
            dec.finish().unwrap();
        } else {
            assert!(matches!(dec.finish(), Err(Error::TruncatedFrame)), "cut at {cut}");
        }
        dec.push(&wire[cut..]);
        assert_eq!(dec.next().unwrap(), Some(Message::Accept { resume_at: 5 }));
        assert!(dec.next().unwrap().is_none());
        dec.finish().unwrap();
    }
}

#[test]
fn garbage_bodies_are_malformed() {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.push(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
    assert!(matches!(dec.next(), Err(Error::MalformedFrame(_))));
    assert!(matches!(decode_body(&[]), Err(Error::MalformedFrame(_))));
    // Variant 7 is Done: one byte too many is trailing garbage.
    assert_eq!(decode_body(&[7]).unwrap(), Message::Done);
    assert!(matches!(decode_body(&[7, 1, 2]), Err(Error::MalformedFrame(_))));
    // Data announcing more bytes than the body holds.
    assert!(matches!(
        decode_body(&[6, 0, 0xff, 0xff, 0x03, 1]),
        Err(Error::MalformedFrame(_))
    ));
}

#[test]
fn bandwidth_messages_round_trip_after_the_existing_variants() {
    let status = Message::SiteStatus(SiteStatus {
        backlog_bytes: 3_000_000_000,
        expected_bytes: 900_000_000,
        goodput_bytes_per_s: 1_250_000,
        link_bytes_per_s: 2_500_000,
        deadline_unix_ms: 1_780_000_000_000,
        eta_unix_ms: 1_779_990_000_000,
        risk: DeadlineRisk::AtRisk,
        at_unix_ms: 1_779_980_000_000,
    });
    let share = Message::Share(Share {
        rate_bytes_per_s: 625_000,
        valid_until_unix_ms: 1_779_980_030_000,
        risk: DeadlineRisk::OnTrack,
    });
    for (msg, index) in [(status, 13u8), (share, 14u8)] {
        let wire = encode(&msg).unwrap();
        // Appended at the end: the postcard variant index of every older message is unchanged.
        assert_eq!(wire[4], index, "{}", msg.kind());
        let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
        dec.push(&wire);
        assert_eq!(dec.next().unwrap(), Some(msg));
        dec.finish().unwrap();
    }
}

proptest! {
    #[test]
    fn a_data_frame_built_from_its_head_is_the_frame_encode_writes(offset in any::<u64>(), len in 0usize..70_000, byte in any::<u8>()) {
        let bytes = vec![byte; len];
        let mut built = data_frame_head(offset, len).unwrap();
        built.extend_from_slice(&bytes);
        let encoded = encode(&Message::Data { offset, bytes: bytes.clone() }).unwrap();
        prop_assert_eq!(&built, &encoded);
        let body = &encoded[PREFIX..];
        let (o, l, head) = data_head(&body[..body.len().min(DATA_HEAD_MAX)]).unwrap();
        prop_assert_eq!((o, l), (offset, len));
        prop_assert_eq!(&body[head..], &bytes[..]);
    }

    #[test]
    fn data_head_reads_what_decode_body_reads_or_nothing(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some((offset, len, head)) = data_head(&body) {
            if head.checked_add(len) == Some(body.len()) {
                let decoded = decode_body(&body);
                prop_assert!(
                    matches!(&decoded, Ok(Message::Data { offset: o, bytes }) if *o == offset && bytes[..] == body[head..]),
                    "{decoded:?}"
                );
            }
        }
    }
}

#[test]
fn data_head_is_none_for_other_messages_and_a_data_frame_over_the_limit_is_refused() {
    let done = encode(&Message::Done).unwrap();
    assert_eq!(data_head(&done[PREFIX..]), None);
    assert!(matches!(
        data_frame_head(0, MAX_FRAME_LEN),
        Err(Error::FrameTooLarge { .. })
    ));
}
