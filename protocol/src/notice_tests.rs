use super::*;

fn verdict(verdict: Verdict, reason: &str) -> Notice {
    Notice::TestVerdict(TestVerdict {
        packet_id: "0101-2026-05-25-ege-test-test".into(),
        version: 1,
        site: "0101".into(),
        digest: [9; 32],
        verdict,
        reason: reason.into(),
        judged_by: "Иванова А. П.".into(),
        judged_at_unix_ms: 1_780_000_000_000,
    })
}

#[test]
fn a_signed_verdict_verifies_and_any_change_is_caught() {
    let key = SigningKey::generate().unwrap();
    let signed = SignedNotice::sign(verdict(Verdict::Confirmed, ""), &key).unwrap();
    assert_eq!(signed.verify(&key.verifying_key()).unwrap().site(), "0101");

    let mut flipped = signed.clone();
    let Notice::TestVerdict(v) = &mut flipped.notice else {
        unreachable!("signed a verdict")
    };
    v.verdict = Verdict::Rejected;
    v.reason = "streaks".into();
    assert!(flipped.verify(&key.verifying_key()).is_err());

    let mut other_site = signed.clone();
    let Notice::TestVerdict(v) = &mut other_site.notice else {
        unreachable!("signed a verdict")
    };
    v.site = "0102".into();
    assert!(other_site.verify(&key.verifying_key()).is_err());

    let stranger = SigningKey::generate().unwrap();
    let err = signed.verify(&stranger.verifying_key()).unwrap_err().to_string();
    assert!(err.contains("expected the center's key"), "{err}");
}

#[test]
fn a_receipt_signature_is_not_a_notice_signature() {
    // Same key, same bytes, other domain: a receipt can never be replayed as a verdict.
    let key = SigningKey::generate().unwrap();
    let notice = verdict(Verdict::Confirmed, "");
    let bytes = postcard::to_allocvec(&(&notice, &key.key_id())).unwrap();
    let forged = SignedNotice {
        notice,
        center_key: key.key_id(),
        signature: key.sign(Domain::Receipt, &bytes),
    };
    assert!(forged.verify(&key.verifying_key()).is_err());
}

#[test]
fn a_rejection_needs_a_reason_and_text_is_bounded() {
    let key = SigningKey::generate().unwrap();
    let err = SignedNotice::sign(verdict(Verdict::Rejected, "  "), &key).unwrap_err();
    assert!(err.to_string().contains("must say what is wrong"), "{err}");
    let long = "x".repeat(MAX_VERDICT_TEXT + 1);
    let err = SignedNotice::sign(verdict(Verdict::Rejected, &long), &key).unwrap_err();
    assert!(err.to_string().contains("shorten"), "{err}");
    assert!(SignedNotice::sign(verdict(Verdict::Rejected, "faint print on page 2"), &key).is_ok());
}
