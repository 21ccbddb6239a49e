use konvert_crypto::SigningKey;

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
