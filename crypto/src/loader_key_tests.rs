use super::*;

#[test]
fn only_the_specialists_token_unwraps_and_any_edit_is_refused() {
    let secret = RecipientSecretKey::generate().unwrap();
    let specialist = SigningKey::generate().unwrap();
    let wrapped = wrap(&secret, "SP-1", &specialist).unwrap();
    let h = header(&wrapped).unwrap();
    assert_eq!((h.token_id.as_str(), h.center_key), ("SP-1", secret.public_key()));
    assert_eq!(
        unwrap(&wrapped, Specialist::File(&specialist)).unwrap().public_key(),
        secret.public_key()
    );
    // Another token: refused by name; a forged header naming it: refused by the AEAD.
    let other = SigningKey::generate().unwrap();
    assert!(unwrap(&wrapped, Specialist::File(&other))
        .unwrap_err()
        .to_string()
        .contains("another specialist"));
    for at in [9, 20, wrapped.len() - 1, wrapped.len() - 30] {
        let mut edited = wrapped.clone();
        edited[at] ^= 1;
        assert!(
            unwrap(&edited, Specialist::File(&specialist)).is_err(),
            "edit at {at} not refused"
        );
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
        proptest::prop_assert!(unwrap(&framed, Specialist::File(&specialist)).is_err());
    }
}

#[test]
fn a_token_file_wrap_keeps_format_1_and_a_hardware_wrap_names_the_tokens_x25519_key() {
    let secret = RecipientSecretKey::generate().unwrap();
    let file_token = SigningKey::generate().unwrap();
    let v1 = wrap(&secret, "SP-1", &file_token).unwrap();
    // Files wrapped before hardware tokens existed read the same: version 1, no holder.
    assert_eq!(&v1[8..10], &[1, 0]);
    assert_eq!(header(&v1).unwrap().holder, Holder::TokenFile);

    let token_x25519 = RecipientSecretKey::generate().unwrap().public_key();
    // The same specialist identity as the token file, so only the holder differs.
    let identity = file_token.key_id();
    let v2 = wrap_for_hardware(&secret, "SP-2", identity, &token_x25519).unwrap();
    assert_eq!(&v2[8..10], &[2, 0]);
    let h = header(&v2).unwrap();
    assert_eq!(
        (h.token_id.as_str(), h.token_key, h.center_key),
        ("SP-2", identity, secret.public_key())
    );
    assert!(matches!(h.holder, Holder::HardwareToken { agreement_key, .. } if agreement_key == token_x25519));
    assert!(!v2.windows(32).any(|w| w == secret.to_bytes().as_slice()));
    // A token file with the right identity still cannot open a hardware wrap, and says why.
    let e = unwrap(&v2, Specialist::File(&file_token)).unwrap_err().to_string();
    assert!(e.contains("hardware token, not a token file"), "{e}");
    // A hardware header relabelled as version 1 no longer parses as a token-file header.
    let mut relabelled = v2.clone();
    relabelled[8] = 1;
    assert!(header(&relabelled).is_err() || unwrap(&relabelled, Specialist::File(&file_token)).is_err());
}
