use std::fs;

use konvert_crypto::SigningKey;

use crate::{AnswerOutcome, Notice, Offer, Outbox, PacketAnswer, Remark, RemarkAction, SignedNotice};

const PACKET: &str = "0101-2026-05-25-ege-0007-blanks";

fn offer(version: u32, digest: u8) -> Offer {
    Offer {
        packet_id: PACKET.into(),
        version,
        size: 3,
        digest: [digest; 32],
        priority: 2,
        sealed_at_unix_ms: u64::from(version),
        deadline_unix_ms: 2,
    }
}

fn add(outbox: &Outbox, version: u32, digest: u8) {
    let staged = outbox.staging_path(PACKET, version);
    fs::write(&staged, b"env").unwrap();
    outbox.add(&staged, offer(version, digest), "0007".into()).unwrap();
}

fn answer(key: &SigningKey, version: u32, digest: u8, at: u64, remarks: bool) -> SignedNotice {
    let outcome = if remarks {
        AnswerOutcome::Remarks(vec![Remark {
            id: "r1".into(),
            room: Some("0007".into()),
            participant: None,
            page: Some("scan-001.tif p.3".into()),
            what: "the barcode zone is unreadable".into(),
            action: RemarkAction::RescanAndResend,
        }])
    } else {
        AnswerOutcome::Loaded
    };
    let a = PacketAnswer {
        site: "0101".into(),
        packet_id: PACKET.into(),
        version,
        digest: [digest; 32],
        outcome,
        pages: 12,
        answered_at_unix_ms: at,
    };
    SignedNotice::sign(Notice::PacketAnswer(a), key).unwrap()
}

#[test]
fn an_answer_is_kept_for_exactly_the_envelope_sent_and_a_later_version_answers_its_remarks() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    add(&outbox, 1, 7);
    let center = SigningKey::generate().unwrap();
    let vk = center.verifying_key();

    let err = outbox.record_answer(&answer(&center, 1, 8, 10, true), &vk).unwrap_err();
    assert!(err.to_string().contains("other content"), "{err}");
    let err = outbox.record_answer(&answer(&center, 2, 7, 10, true), &vk).unwrap_err();
    assert!(err.to_string().contains("never sent"), "{err}");
    let stranger = SigningKey::generate().unwrap();
    assert!(outbox.record_answer(&answer(&stranger, 1, 7, 10, true), &vk).is_err());
    assert!(outbox.answers().unwrap().is_empty());

    assert!(outbox.record_answer(&answer(&center, 1, 7, 10, true), &vk).unwrap());
    assert!(
        !outbox.record_answer(&answer(&center, 1, 7, 10, true), &vk).unwrap(),
        "kept once"
    );
    assert!(
        !outbox.record_answer(&answer(&center, 1, 7, 9, false), &vk).unwrap(),
        "an older answer loses"
    );
    let kept = outbox.answers().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].answer.remarks().len(), 1);
    assert_eq!(kept[0].answered_by, None, "open until a new version is sealed");

    // The site rescans and seals version 2: the remark on version 1 is answered by it.
    add(&outbox, 2, 9);
    drop(outbox);
    let outbox = Outbox::open(dir.path()).unwrap();
    let kept = outbox.answers().unwrap();
    assert_eq!(kept[0].answered_by, Some((2, false)));
    // A version 3 the center refused answers nothing: version 2 still does.
    add(&outbox, 3, 10);
    outbox
        .mark_rejected(&offer(3, 10), crate::RejectReason::BadSignature, "forged".into())
        .unwrap();
    assert_eq!(outbox.answers().unwrap()[0].answered_by, Some((2, false)));
    // A verdict's reader does not mistake an answer for a verdict.
    assert!(outbox.record_verdict(&answer(&center, 1, 7, 11, false), &vk).is_err());
}
