use konvert_crypto::{KeyId, SigningKey};

use super::*;
use crate::Verdict;

fn offer(version: u32, digest: u8) -> Offer {
    Offer {
        packet_id: "0101-2026-05-25-ege-0000-test".into(),
        version,
        size: 3,
        digest: [digest; 32],
        priority: 4,
        sealed_at_unix_ms: 1,
        deadline_unix_ms: 2,
    }
}

fn verdict(key: &SigningKey, version: u32, digest: u8) -> SignedNotice {
    let v = TestVerdict {
        packet_id: "0101-2026-05-25-ege-0000-test".into(),
        version,
        site: "0101".into(),
        digest: [digest; 32],
        verdict: Verdict::Confirmed,
        reason: String::new(),
        judged_by: "staff".into(),
        judged_at_unix_ms: 5,
    };
    SignedNotice::sign(Notice::TestVerdict(v), key).unwrap()
}

#[test]
fn a_verdict_is_kept_only_for_exactly_the_envelope_sent() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let staged = outbox.staging_path("x", 1);
    fs::write(&staged, b"env").unwrap();
    outbox.add(&staged, offer(1, 7), "test".into()).unwrap();
    let center = SigningKey::generate().unwrap();
    let vk = center.verifying_key();

    let err = outbox.record_verdict(&verdict(&center, 1, 8), &vk).unwrap_err();
    assert!(err.to_string().contains("other content"), "{err}");
    let err = outbox.record_verdict(&verdict(&center, 2, 7), &vk).unwrap_err();
    assert!(err.to_string().contains("never sent"), "{err}");
    let stranger = SigningKey::generate().unwrap();
    assert!(outbox.record_verdict(&verdict(&stranger, 1, 7), &vk).is_err());
    assert_eq!(outbox.verdict("0101-2026-05-25-ege-0000-test", 1).unwrap(), None);

    assert!(outbox.record_verdict(&verdict(&center, 1, 7), &vk).unwrap(), "new");
    assert!(
        !outbox.record_verdict(&verdict(&center, 1, 7), &vk).unwrap(),
        "kept once"
    );
    drop(outbox);
    // Durable: a reopened outbox still has it.
    let outbox = Outbox::open(dir.path()).unwrap();
    let kept = outbox.verdict("0101-2026-05-25-ege-0000-test", 1).unwrap().unwrap();
    assert_eq!(kept.verdict, Verdict::Confirmed);
}

fn offer_for(packet_id: &str, priority: u8, deadline: u64) -> Offer {
    Offer {
        packet_id: packet_id.into(),
        version: 1,
        size: 3,
        digest: [9; 32],
        priority,
        sealed_at_unix_ms: 1,
        deadline_unix_ms: deadline,
    }
}

fn receipt_for(offer: &Offer, key: &SigningKey) -> Receipt {
    Receipt::sign(
        crate::ReceiptBody {
            packet_id: offer.packet_id.clone(),
            version: offer.version,
            site: "0101".into(),
            digest: offer.digest,
            bytes: offer.size,
            received_at_unix_ms: 5,
            center_key: KeyId([0; 16]),
        },
        key,
    )
    .unwrap()
}

#[test]
fn pending_is_what_has_no_receipt_yet_in_sending_order_and_survives_a_lost_index() {
    let dir = tempfile::tempdir().unwrap();
    let center = SigningKey::generate().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let add = |id: &str, priority: u8, deadline: u64| {
        let staged = outbox.staging_path(id, 1);
        fs::write(&staged, b"env").unwrap();
        outbox
            .add(&staged, offer_for(id, priority, deadline), "t".into())
            .unwrap()
    };
    let blanks = add("0101-2026-06-01-ege-0001-blanks", 2, 100);
    let forms = add("0101-2026-06-01-ege-0001-forms", 1, 100);
    let early = add("0101-2026-05-31-ege-0001-blanks", 2, 50);
    let done = add("0101-2026-06-01-ege-0002-blanks", 2, 100);
    let refused = add("0101-2026-06-01-ege-0003-blanks", 2, 100);
    outbox
        .mark_delivered(&done.offer, receipt_for(&done.offer, &center))
        .unwrap();
    outbox
        .mark_rejected(&refused.offer, RejectReason::BadSignature, "x".into())
        .unwrap();
    let ids = |o: &Outbox| -> Vec<String> { o.pending().unwrap().into_iter().map(|e| e.offer.packet_id).collect() };
    let expected = vec![
        forms.offer.packet_id.clone(),
        early.offer.packet_id.clone(),
        blanks.offer.packet_id.clone(),
    ];
    assert_eq!(ids(&outbox), expected);
    assert_eq!(outbox.entries().unwrap().len(), 5);

    // An outbox written before the index existed (or whose index was lost) is indexed
    // again when it is opened: nothing pending is forgotten, nothing delivered comes back.
    outbox
        .trees
        .write(|t| {
            t.db.drop_tree("sealed").map_err(storage_err)?;
            t.db.flush().map(drop).map_err(storage_err)
        })
        .unwrap();
    drop(outbox);
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(ids(&outbox), expected);
    // A stale index entry (its packet receipted meanwhile) is dropped too.
    outbox
        .trees
        .write(|t| {
            t.sealed
                .insert(packet_key(&done.offer.packet_id, 1), &[])
                .map(drop)
                .map_err(storage_err)
        })
        .unwrap();
    drop(outbox);
    let outbox = Outbox::open(dir.path()).unwrap();
    assert_eq!(ids(&outbox), expected);
}

#[test]
fn an_outbox_closed_and_opened_again_at_once_waits_for_its_own_lock_but_not_for_another_holder() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..20 {
        let outbox = Outbox::open(dir.path()).unwrap();
        drop(outbox);
    }
    // Held for good by a live handle: refused after the wait, with the advice.
    let held = Outbox::open(dir.path()).unwrap();
    let err = Outbox::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("is another konvert-edge running?"), "{err}");
    drop(held);
}
