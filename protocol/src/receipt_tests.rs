use super::*;

fn offer() -> Offer {
    Offer {
        packet_id: "0101-r1".into(),
        version: 1,
        size: 10,
        digest: [7; 32],
        priority: 1,
        sealed_at_unix_ms: 1,
        deadline_unix_ms: 2,
    }
}

#[test]
fn receipt_verifies_and_detects_tampering() {
    let key = SigningKey::generate().unwrap();
    let o = offer();
    let body = ReceiptBody {
        packet_id: o.packet_id.clone(),
        version: 1,
        site: "0101".into(),
        digest: o.digest,
        bytes: 10,
        received_at_unix_ms: 5,
        center_key: KeyId([0; 16]),
    };
    let r = Receipt::sign(body, &key).unwrap();
    r.verify_for(&key.verifying_key(), &o).unwrap();
    let mut bad = r.clone();
    bad.body.bytes = 11;
    assert!(bad.verify(&key.verifying_key()).is_err());
    let other = SigningKey::generate().unwrap();
    assert!(r.verify(&other.verifying_key()).is_err());
    let mut o2 = o.clone();
    o2.version = 2;
    assert!(r.verify_for(&key.verifying_key(), &o2).is_err());
}
