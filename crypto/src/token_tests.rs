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

#[test]
fn short_pins_and_absurd_iterations_are_refused_and_debug_hides_the_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.token");
    assert!(matches!(
        TokenFile::create(&p, "TK-3", "x", "12345", 1000),
        Err(Error::PinTooShort { min: 6 })
    ));
    assert!(!p.exists());
    assert!(TokenFile::create(&p, "TK-3", "x", "123456", 0).is_err());
    assert!(TokenFile::create(&p, "TK-3", "x", "123456", MAX_KDF_ITERATIONS + 1).is_err());
    // Six Cyrillic letters are six characters (12 bytes).
    let t = TokenFile::create(&p, "TK-3", "x", "пароль", 1000).unwrap();
    assert_eq!(t.unlock("пароль").unwrap().key_id(), t.key_id());
    let dbg = format!("{t:?}");
    assert!(dbg.contains("TK-3") && !dbg.contains("ciphertext"), "{dbg}");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions()) & 0o777,
        0o600
    );
}

#[test]
fn edited_iterations_public_key_or_length_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.token");
    let t = TokenFile::create(&p, "TK-4", "h", "123456", 1000).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let clear = &bytes[14..bytes.len() - 48];
    let edited = dir.path().join("e.token");
    // The public key (32 bytes after the two strings): unlock fails.
    let at = 14 + find(clear, &t.public.0) + 3;
    let mut b = bytes.clone();
    b[at] ^= 0x80;
    std::fs::write(&edited, &b).unwrap();
    let e = TokenFile::read(&edited).unwrap().unlock("123456").unwrap_err();
    assert!(matches!(e, Error::WrongPin { .. }), "{e:?}");
    // Iterations (varint 1000 = e8 07) raised to an absurd count: refused on read.
    let it = 14 + find(clear, &[0xe8, 0x07]);
    let mut b = bytes[..it].to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&bytes[it + 2..]);
    let len = (u32::from_le_bytes(b[10..14].try_into().unwrap()) + 3).to_le_bytes();
    b[10..14].copy_from_slice(&len);
    std::fs::write(&edited, &b).unwrap();
    assert!(matches!(TokenFile::read(&edited), Err(Error::BadFile { .. })));
    // Lowered to 999: reads, but unlock fails.
    let mut b = bytes.clone();
    b[it] = 0xe7;
    std::fs::write(&edited, &b).unwrap();
    assert!(TokenFile::read(&edited).unwrap().unlock("123456").is_err());
    // Appended or cut bytes.
    for b in [[&bytes[..], &[0u8][..]].concat(), bytes[..bytes.len() - 1].to_vec()] {
        std::fs::write(&edited, &b).unwrap();
        let e = TokenFile::read(&edited).unwrap_err().to_string();
        assert!(e.contains("e.token") && e.contains("wrong length"), "{e}");
    }
    // Oversized files are refused before reading.
    std::fs::write(&edited, vec![0u8; 70_000]).unwrap();
    assert!(TokenFile::read(&edited).is_err());
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}
