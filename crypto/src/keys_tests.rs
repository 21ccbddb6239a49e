use super::*;

#[test]
fn signature_is_bound_to_domain_and_key() {
    let k = SigningKey::generate().unwrap();
    let sig = k.sign(Domain::Receipt, b"hello");
    let vk = k.verifying_key();
    vk.verify(Domain::Receipt, b"hello", &sig).unwrap();
    assert!(vk.verify(Domain::Envelope, b"hello", &sig).is_err());
    assert!(vk.verify(Domain::Notice, b"hello", &sig).is_err());
    assert!(vk.verify(Domain::Receipt, b"hellp", &sig).is_err());
    let other = SigningKey::generate().unwrap().verifying_key();
    assert!(other.verify(Domain::Receipt, b"hello", &sig).is_err());
}

#[test]
fn seed_round_trip_gives_same_key() {
    let k = SigningKey::generate().unwrap();
    let k2 = SigningKey::from_seed(k.seed()).unwrap();
    assert_eq!(k.verifying_key(), k2.verifying_key());
    assert_eq!(k.key_id(), KeyId::from_hex(&k.key_id().to_string()).unwrap());
}

#[test]
fn recipient_agreement_matches_and_rejects_low_order() {
    let a = RecipientSecretKey::generate().unwrap();
    let b = RecipientSecretKey::generate().unwrap();
    let ab = a.agree(&b.public_key().0).unwrap();
    let ba = b.agree(&a.public_key().0).unwrap();
    assert_eq!(*ab, *ba);
    assert!(a.agree(&[0u8; 32]).is_none());
    assert!(!format!("{a:?}").contains(&hex::encode(*a.to_bytes())));
}

#[test]
fn signature_serde_round_trip() {
    let k = SigningKey::generate().unwrap();
    let sig = k.sign(Domain::Receipt, b"x");
    let bytes = postcard::to_allocvec(&sig).unwrap();
    let back: Signature = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(sig, back);
    assert!(postcard::from_bytes::<Signature>(&bytes[..10]).is_err());
}
