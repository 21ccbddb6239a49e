use super::*;

#[test]
fn right_pin_unlocks_wrong_pin_is_a_clear_error_and_edits_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("member.token");
    let t = TokenFile::create(&p, "TK-1", "Иванова", "123456", 1000).unwrap();
    let back = TokenFile::read(&p).unwrap();
    assert_eq!(back.public, t.public);
    assert_eq!(back.unlock("123456").unwrap().verifying_key(), t.public);
    let err = back.unlock("654321").unwrap_err();
    assert!(matches!(err, Error::WrongPin { .. }));
    assert!(!err.to_string().contains("654321"));
    assert!(
        TokenFile::create(&p, "TK-1", "x", "123456", 1000).is_err(),
        "no overwrite"
    );
    assert!(
        TokenFile::create(&dir.path().join("b"), "TK-2", "x", "12345", 1000).is_err(),
        "short PIN"
    );
    // Flip a byte of the clear part (the holder's name): unlock must fail.
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() - 48 - 40;
    bytes[at] ^= 1;
    let edited = dir.path().join("edited.token");
    std::fs::write(&edited, &bytes).unwrap();
    assert!(TokenFile::read(&edited)
        .map(|t| t.unlock("123456"))
        .map_or(true, |r| r.is_err()));
    std::fs::write(&edited, &bytes[..20]).unwrap();
    assert!(TokenFile::read(&edited).is_err());
}
