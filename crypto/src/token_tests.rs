use super::*;

fn fast() -> KdfParams {
    KdfParams::insecure_fast_for_tests()
}

#[test]
fn right_pin_unlocks_wrong_pin_is_a_clear_error_and_edits_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("member.token");
    let t = TokenFile::create(&p, "TK-1", "Иванова", "123456", fast()).unwrap();
    let back = TokenFile::read(&p).unwrap();
    assert_eq!(back.public, t.public);
    assert_eq!(back.unlock("123456").unwrap().verifying_key(), t.public);
    let err = back.unlock("654321").unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPin {
                remaining_tries: Some(9),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("654321"));
    assert!(
        TokenFile::create(&p, "TK-1", "x", "123456", fast()).is_err(),
        "no overwrite"
    );
    assert!(
        TokenFile::create(&dir.path().join("b"), "TK-2", "x", "12345", fast()).is_err(),
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
        TokenFile::create(&p, "TK-3", "x", "12345", fast()),
        Err(Error::PinTooShort { min: 6 })
    ));
    assert!(!p.exists());
    assert!(KdfParams::with_memory_mib(32).is_err());
    assert!(KdfParams::with_memory_mib(2048).is_err());
    assert!(TokenFile::create_pbkdf2(&p, "TK-3", "123456", 0).is_err());
    assert!(TokenFile::create_pbkdf2(&p, "TK-3", "123456", MAX_KDF_ITERATIONS + 1).is_err());
    // Six Cyrillic letters are six characters (12 bytes).
    let t = TokenFile::create(&p, "TK-3", "x", "пароль", fast()).unwrap();
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
    let t = TokenFile::create_pbkdf2(&p, "TK-4", "123456", 1000).unwrap();
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

#[test]
fn ten_wrong_pins_lock_the_token_even_for_the_right_pin() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("member.token");
    TokenFile::create(&p, "TK-5", "h", "123456", fast()).unwrap();
    for i in 1..=MAX_PIN_TRIES {
        // Each attempt re-reads the file, as a new process would.
        let e = TokenFile::unlock_at(&p, "000000").unwrap_err();
        match &e {
            Error::WrongPin {
                token_id,
                remaining_tries,
            } => {
                assert_eq!(token_id, "TK-5");
                assert_eq!(*remaining_tries, Some(MAX_PIN_TRIES - i));
            }
            other => panic!("attempt {i}: {other:?}"),
        }
        assert!(!e.to_string().contains("000000"));
    }
    assert!(TokenFile::read(&p).unwrap().remaining_tries().unwrap() == 0);
    let e = TokenFile::unlock_at(&p, "123456").unwrap_err();
    assert!(
        matches!(&e, Error::TokenLocked { token_id } if token_id == "TK-5"),
        "{e:?}"
    );
    assert!(e.to_string().contains("security officer"), "{e}");
    // Still locked on the next try, and the counter file is private.
    assert!(matches!(
        TokenFile::unlock_at(&p, "123456"),
        Err(Error::TokenLocked { .. })
    ));
    let t = TokenFile::read(&p).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(t.tries_path()).unwrap().permissions()) & 0o777,
        0o600
    );
}

#[test]
fn wrong_pin_errors_count_down_and_a_right_pin_resets_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("member.token");
    let t = TokenFile::create(&p, "TK-6", "h", "123456", fast()).unwrap();
    assert_eq!(t.remaining_tries().unwrap(), MAX_PIN_TRIES);
    for _ in 0..MAX_PIN_TRIES - 2 {
        assert!(t.unlock("111111").is_err());
    }
    let e = t.unlock("111111").unwrap_err();
    assert!(e.to_string().contains("1 try left"), "{e}");
    let e = TokenFile::read(&p).unwrap().unlock("111111").unwrap_err();
    assert!(e.to_string().contains("last try"), "{e}");
    let e = TokenFile::read(&p).unwrap().unlock("222222").unwrap_err();
    assert!(matches!(e, Error::TokenLocked { .. }), "{e:?}");

    // A right PIN before the limit resets it: nine wrong, one right, nine wrong again.
    let q = dir.path().join("other.token");
    let t = TokenFile::create(&q, "TK-7", "h", "123456", fast()).unwrap();
    for _ in 0..MAX_PIN_TRIES - 1 {
        assert!(matches!(t.unlock("111111"), Err(Error::WrongPin { .. })));
    }
    assert_eq!(TokenFile::read(&q).unwrap().remaining_tries().unwrap(), 1);
    assert_eq!(t.unlock("123456").unwrap().verifying_key(), t.public);
    assert_eq!(TokenFile::read(&q).unwrap().remaining_tries().unwrap(), MAX_PIN_TRIES);
    for _ in 0..MAX_PIN_TRIES - 1 {
        assert!(matches!(t.unlock("111111"), Err(Error::WrongPin { .. })));
    }
    assert!(TokenFile::unlock_at(&q, "123456").is_ok());
}

#[test]
fn the_counter_is_kept_beside_the_token_and_bound_to_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.token");
    let t = TokenFile::create(&p, "TK-8", "h", "123456", fast()).unwrap();
    assert!(t.unlock("999999").is_err());
    assert_eq!(t.tries_path(), dir.path().join("m.token.tries"));
    let bytes = std::fs::read(t.tries_path()).unwrap();
    assert_eq!(&bytes[..8], b"KNVRTTRY");
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
    assert_eq!(&bytes[12..], &t.key_id().0);
    // A new token at the same path does not inherit the old token's count.
    std::fs::write(t.tries_path(), [&bytes[..8], &9u32.to_le_bytes(), &[0u8; 16]].concat()).unwrap();
    assert_eq!(TokenFile::read(&p).unwrap().remaining_tries().unwrap(), MAX_PIN_TRIES);
    // A damaged counter is refused, not read as zero.
    std::fs::write(t.tries_path(), b"junk").unwrap();
    assert!(matches!(t.unlock("123456"), Err(Error::BadFile { .. })));
}

#[test]
fn new_files_use_argon2id_and_an_absurd_memory_cost_is_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.token");
    let t = TokenFile::create(&p, "TK-9", "h", "123456", fast()).unwrap();
    assert_eq!(t.argon2_params(), Some(fast()));
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[8..10], &[2, 0], "version 2: Argon2id");
    // Memory 64 KiB (varint 40), passes 1, lanes 1 right after the public key.
    let at = 14 + find(&bytes[14..], &t.public.0) + 32;
    assert_eq!(&bytes[at..at + 3], &[64, 1, 1]);
    // Raise the memory to 4 GiB − 1 KiB: refused before any allocation.
    let mut b = bytes[..at].to_vec();
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.extend_from_slice(&bytes[at + 1..]);
    let len = (u32::from_le_bytes(b[10..14].try_into().unwrap()) + 4).to_le_bytes();
    b[10..14].copy_from_slice(&len);
    let edited = dir.path().join("e.token");
    std::fs::write(&edited, &b).unwrap();
    let e = TokenFile::read(&edited).unwrap_err().to_string();
    assert!(e.contains("Argon2id"), "{e}");
    // Passes 1 → 2: reads, but the PIN no longer opens it (the parameters are in the AAD).
    let mut b = bytes.clone();
    b[at + 1] = 2;
    std::fs::write(&edited, &b).unwrap();
    assert!(matches!(
        TokenFile::read(&edited).unwrap().unlock("123456"),
        Err(Error::WrongPin { .. })
    ));
}

#[test]
fn a_pbkdf2_token_file_still_opens_and_is_upgraded_to_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.token");
    let old = TokenFile::create_pbkdf2(&p, "TK-10", "271828", 1000).unwrap();
    assert_eq!(&std::fs::read(&p).unwrap()[8..10], &[1, 0]);
    let read = TokenFile::read(&p).unwrap();
    assert_eq!(read.argon2_params(), None);
    // A wrong PIN does not upgrade it.
    assert!(read.unlock("000000").is_err());
    assert_eq!(&std::fs::read(&p).unwrap()[8..10], &[1, 0]);
    assert_eq!(read.unlock("271828").unwrap().verifying_key(), old.public);
    let upgraded = TokenFile::read(&p).unwrap();
    assert_eq!(&std::fs::read(&p).unwrap()[8..10], &[2, 0]);
    assert_eq!(upgraded.argon2_params(), Some(KdfParams::default()));
    assert_eq!((upgraded.token_id.as_str(), upgraded.public), ("TK-10", old.public));
    assert_eq!(upgraded.unlock("271828").unwrap().verifying_key(), old.public);
    assert!(upgraded.unlock("000000").is_err());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions()) & 0o777,
        0o600
    );
}

#[test]
fn a_specialist_needs_a_long_passphrase_not_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    // Twelve spaces and one letter twelve times were taken before: long, but no secret.
    let (spaces, repeated) = (" ".repeat(12), "a".repeat(12));
    for weak in [
        "314159",
        "12345678901234567890",
        "shortphrase",
        &spaces,
        &repeated,
        "abab abab abab",
    ] {
        let e = TokenFile::create_specialist(&dir.path().join("s.token"), "SP-1", "h", weak, fast()).unwrap_err();
        assert!(matches!(e, Error::WeakPassphrase { min: 12, .. }), "{weak:?}: {e:?}");
        assert!(!e.to_string().contains(weak));
    }
    assert!(!dir.path().join("s.token").exists());
    let t = TokenFile::create_specialist(&dir.path().join("s.token"), "SP-1", "h", "сосна у реки 7", fast()).unwrap();
    assert!(t.unlock("сосна у реки 7").is_ok());
    // Members keep PINs of six characters, but not six spaces or one digit six times.
    for weak in ["      ", "000000", "7777777"] {
        let e = TokenFile::create(&dir.path().join("m.token"), "TK-11", "h", weak, fast()).unwrap_err();
        assert!(matches!(e, Error::WeakPin), "{weak:?}: {e:?}");
    }
    assert!(TokenFile::create(&dir.path().join("m.token"), "TK-11", "h", "314159", fast()).is_ok());
}

#[test]
fn thirty_concurrent_wrong_pins_are_all_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.token");
    TokenFile::create(&p, "TK-12", "h", "123456", fast()).unwrap();
    let barrier = std::sync::Barrier::new(30);
    let results: Vec<Result<SigningKey>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..30)
            .map(|_| {
                s.spawn(|| {
                    let t = TokenFile::read(&p).unwrap();
                    barrier.wait();
                    t.unlock("000000")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong = results
        .iter()
        .filter(|r| matches!(r, Err(Error::WrongPin { .. })))
        .count();
    let locked = results
        .iter()
        .filter(|r| matches!(r, Err(Error::TokenLocked { .. })))
        .count();
    assert_eq!((wrong, locked), (MAX_PIN_TRIES as usize, 30 - MAX_PIN_TRIES as usize));
    assert_eq!(TokenFile::read(&p).unwrap().remaining_tries().unwrap(), 0);
    assert!(matches!(
        TokenFile::unlock_at(&p, "123456"),
        Err(Error::TokenLocked { .. })
    ));
}

/// What an offline guesser pays per core with the production parameters:
/// `cargo test -p konvert-crypto --release --lib kdf_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run in release"]
fn kdf_cost() {
    let salt = [7u8; 16];
    for (name, kdf) in [
        ("argon2id 64 MiB t=3 p=1", Kdf::Argon2id(KdfParams::default())),
        (
            "pbkdf2 600000",
            Kdf::Pbkdf2 {
                iterations: DEFAULT_KDF_ITERATIONS,
            },
        ),
    ] {
        let n = 10;
        let t = std::time::Instant::now();
        for i in 0..n {
            pin_key(&format!("{i:06}"), &salt, kdf).unwrap();
        }
        let per = t.elapsed().as_secs_f64() / n as f64;
        println!("{name}: {:.3} s per guess, {:.2} guesses/s per core", per, 1.0 / per);
    }
}

#[test]
fn a_pin_from_the_environment_is_removed_from_it_at_the_first_read() {
    let var = "KONVERT_TEST_PIN_FROM_ENV";
    std::env::set_var(var, "135790");
    assert_eq!(pin_from_env(var).as_deref().map(String::as_str), Some("135790"));
    assert!(std::env::var_os(var).is_none(), "child processes no longer inherit it");
    // Later reads in this process still get it.
    assert_eq!(pin_from_env(var).as_deref().map(String::as_str), Some("135790"));
    assert!(pin_from_env("KONVERT_TEST_PIN_NEVER_SET").is_none());
}
