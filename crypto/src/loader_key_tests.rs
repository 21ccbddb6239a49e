use super::*;

#[test]
fn only_the_specialists_token_unwraps_and_any_edit_is_refused() {
    let secret = RecipientSecretKey::generate().unwrap();
    let specialist = SigningKey::generate().unwrap();
    let wrapped = wrap(&secret, "SP-1", &specialist).unwrap();
    let h = header(&wrapped).unwrap();
    assert_eq!((h.token_id.as_str(), h.center_key), ("SP-1", secret.public_key()));
    assert_eq!(unwrap(&wrapped, &specialist).unwrap().public_key(), secret.public_key());
    // Another token: refused by name; a forged header naming it: refused by the AEAD.
    let other = SigningKey::generate().unwrap();
    assert!(unwrap(&wrapped, &other)
        .unwrap_err()
        .to_string()
        .contains("another specialist"));
    for at in [9, 20, wrapped.len() - 1, wrapped.len() - 30] {
        let mut edited = wrapped.clone();
        edited[at] ^= 1;
        assert!(unwrap(&edited, &specialist).is_err(), "edit at {at} not refused");
    }
    assert!(header(&wrapped[..wrapped.len() - 1]).is_err());
    assert!(header(&vec![0u8; MAX_WRAPPED_LEN + 1]).is_err());
    // The secret never shows in the file.
    let raw = secret.to_bytes();
    assert!(!wrapped.windows(32).any(|w| w == raw.as_slice()));
}

proptest::proptest! {
    /// A wrapped key file of any content is refused or read, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic_the_header_reader(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)
    ) {
        let mut framed = b"KNVRTLDR\x01\x00".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = header(&bytes);
        let _ = header(&framed);
        let specialist = SigningKey::generate().unwrap();
        proptest::prop_assert!(unwrap(&framed, &specialist).is_err());
    }
}
