use std::path::{Path, PathBuf};

use konvert_crypto::registry::{Binding, RegistryBody, TokenRecord, TokenRole, TokenStatus};
use konvert_crypto::token::KdfParams;

use super::*;

const NOW: u64 = 1_780_000_000_000;
const PASS: &str = "loader passphrase 314";

fn token(dir: &Path, id: &str, person: &str) -> TokenFile {
    TokenFile::create_specialist(
        &dir.join(format!("{id}.token")),
        id,
        person,
        PASS,
        KdfParams::insecure_fast_for_tests(),
    )
    .unwrap()
}

/// A registry before any center key, with each token an Issued specialist's bound to its
/// holder.
fn registry(tokens: &[&TokenFile]) -> RegistryBody {
    let mut body = crate::test_support::registry(
        1,
        &SigningKey::generate().unwrap(),
        RecipientSecretKey::generate().unwrap().public_key(),
        NOW,
    );
    body.center_keys.clear();
    for t in tokens {
        body.add_token(&t.token_id, TokenRole::CenterSpecialist, t.public, NOW)
            .unwrap();
        for step in [
            TokenStatus::ReceivedByCenter,
            TokenStatus::Bound,
            TokenStatus::StatementPrinted,
            TokenStatus::Issued,
        ] {
            let binding = (step == TokenStatus::Bound).then(|| Binding {
                person: t.holder.clone(),
                sites: vec!["0101".into()],
                dates: vec!["2026-06-01".into()],
            });
            body.set_status(&t.token_id, step, binding, NOW).unwrap();
        }
    }
    body
}

fn holder(t: &TokenFile) -> Holder {
    Holder::File {
        token: Box::new(t.clone()),
        key: t.unlock(PASS).unwrap(),
    }
}

/// Every regular file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_new_key_is_wrapped_to_two_peoples_tokens_opens_with_either_and_is_never_written_bare() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    let init = crate::provision::init_center(&center_dir, "center.test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let (a, b) = (
        token(dir.path(), "SP-1", "Кузнецова М. И."),
        token(dir.path(), "SP-2", "Лебедев А. Р."),
    );
    let mut body = registry(&[&a, &b]);
    let loader_dir = center_dir.join("loader");
    let public_file = dir.path().join("center-key.pub");
    let made = new_key(&body, &[holder(&a), holder(&b)], &loader_dir, &public_file).unwrap();
    assert_eq!(made.wrapped.len(), 2);
    assert_eq!(
        made.holders,
        vec![
            ("SP-1".to_owned(), "Кузнецова М. И.".to_owned()),
            ("SP-2".to_owned(), "Лебедев А. Р.".to_owned())
        ]
    );
    // The public half is what the receiver takes, and all it takes.
    assert_eq!(read_public(&public_file).unwrap(), made.public);
    crate::provision::install_recipient_key(&center_dir, &read_public(&public_file).unwrap()).unwrap();
    let facts = crate::provision::CenterFacts::read(&center_dir, "127.0.0.1:4433", "center.test").unwrap();
    assert_eq!(facts.recipient_public, made.public);

    // Published by the officers, the key opens with either specialist's token.
    body.rotate_center_key(made.public, NOW).unwrap();
    let opened: Vec<RecipientSecretKey> = [&a, &b]
        .iter()
        .map(|t| {
            let key = t.unlock(PASS).unwrap();
            let mut keys = loader::unwrap_for(&loader_dir, &body, Specialist::File(&key), NOW).unwrap();
            assert_eq!(keys.len(), 1);
            keys.remove(0)
        })
        .collect();
    assert!(opened.iter().all(|k| k.public_key() == made.public));
    // A packet sealed to the key opens with what either specialist unwrapped.
    let signer = SigningKey::generate().unwrap();
    let mut sealed = Vec::new();
    let recipients = [made.public];
    let req = konvert_crypto::envelope::SealRequest {
        packet_id: "0101-2026-06-01-ege-0001-blanks",
        version: 1,
        sender_site: "0101",
        sealed_at_unix_ms: NOW,
        metadata: b"",
        recipients: &recipients,
    };
    konvert_crypto::envelope::seal(&req, &signer, &b"scan"[..], &mut sealed).unwrap();
    for key in &opened {
        let mut out = Vec::new();
        konvert_crypto::envelope::open(
            std::io::Cursor::new(&sealed),
            key,
            &|_| Some(signer.verifying_key()),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"scan");
    }

    // No file in the center's folder (the loader's folder inside it) or beside it holds the
    // key bare: none reads as a recipient key, and none holds its 32 secret bytes.
    let secret = opened[0].to_bytes();
    let all: Vec<PathBuf> = files_under(dir.path());
    assert!(all.len() > 10, "the whole center is walked: {all:?}");
    for path in &all {
        assert!(
            keyfile::read_recipient_key(path).is_err(),
            "{} reads as a key",
            path.display()
        );
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == secret.as_slice()),
            "{} holds the key's bytes",
            path.display()
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&hex::encode(secret.as_slice())),
            "{} holds the key in hex",
            path.display()
        );
    }
    drop(init);
}

#[test]
fn one_token_two_tokens_of_one_person_or_one_token_twice_are_refused_and_nothing_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        token(dir.path(), "SP-1", "Кузнецова М. И."),
        token(dir.path(), "SP-2", "Кузнецова М. И."),
    );
    let stranger = token(dir.path(), "SP-9", "Орлов Н. Н.");
    let mut body = registry(&[&a]);
    // Two unblocked tokens of one person are malformed in a registry; one that says so
    // anyway (signed by hand, say) still gets no key.
    let mut second: TokenRecord = body.tokens[0].clone();
    second.token_id = "SP-2".into();
    second.public = b.public;
    body.tokens.push(second);
    let loader_dir = dir.path().join("loader");
    let public_file = dir.path().join("center-key.pub");
    let refused = |holders: &[Holder]| {
        let e = new_key(&body, holders, &loader_dir, &public_file)
            .unwrap_err()
            .to_string();
        assert!(!loader_dir.exists() && !public_file.exists(), "nothing made: {e}");
        e
    };
    let e = refused(&[holder(&a)]);
    assert!(e.contains("at least 2 specialists") && e.contains("1 given"), "{e}");
    let e = refused(&[holder(&a), holder(&b)]);
    assert!(
        e.contains("all held by Кузнецова М. И.") && e.contains("different people"),
        "{e}"
    );
    let e = refused(&[holder(&a), holder(&a)]);
    assert!(e.contains("SP-1 is named twice"), "{e}");
    let e = refused(&[holder(&a), holder(&stranger)]);
    assert!(e.contains("not in key registry"), "{e}");
    // The check before any PIN is asked says the same.
    let e = check_tokens(&body, &[(a.key_id(), "SP-1"), (b.key_id(), "SP-2")], &loader_dir).unwrap_err();
    assert!(e.to_string().contains("different people"), "{e}");
}

#[test]
fn a_holder_wraps_the_key_for_one_more_specialist_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        token(dir.path(), "SP-1", "Кузнецова М. И."),
        token(dir.path(), "SP-2", "Лебедев А. Р."),
        token(dir.path(), "SP-3", "Орлова Т. В."),
    );
    let mut body = registry(&[&a, &b]);
    let loader_dir = dir.path().join("loader");
    let made = new_key(&body, &[holder(&a), holder(&b)], &loader_dir, &dir.path().join("k.pub")).unwrap();
    body.rotate_center_key(made.public, NOW).unwrap();
    let held = loader::unwrap_for(&loader_dir, &body, Specialist::File(&a.unlock(PASS).unwrap()), NOW).unwrap();
    // The new token must be an issued specialist's first.
    let e = wrap_for_more(&body, &held, &[holder(&c)], &loader_dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not in key registry"), "{e}");
    let mut with_c = registry(&[&a, &b, &c]);
    with_c.rotate_center_key(made.public, NOW).unwrap();
    let wrapped = wrap_for_more(&with_c, &held, &[holder(&c)], &loader_dir).unwrap();
    assert_eq!(wrapped.len(), 1);
    assert_eq!((wrapped[0].0, wrapped[0].1.as_str()), (made.public, "SP-3"));
    let opened = loader::unwrap_for(&loader_dir, &with_c, Specialist::File(&c.unlock(PASS).unwrap()), NOW).unwrap();
    assert_eq!(opened[0].public_key(), made.public);
}

#[test]
fn the_receiver_takes_a_public_half_and_refuses_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = RecipientSecretKey::generate().unwrap();
    let private = dir.path().join("recipient.key");
    keyfile::write_recipient_key(&private, &key).unwrap();
    let e = read_public(&private).unwrap_err().to_string();
    assert!(e.contains("private key file") && e.contains("public half"), "{e}");
    let garbage = dir.path().join("garbage.pub");
    std::fs::write(&garbage, "not a key\n").unwrap();
    assert!(read_public(&garbage).unwrap_err().to_string().contains("64 hex digits"));
    let public = dir.path().join("ok.pub");
    write_public(&public, &key.public_key()).unwrap();
    assert_eq!(read_public(&public).unwrap(), key.public_key());
    // A center without a key has nothing for stations to seal to, and says what to do.
    let center = dir.path().join("center");
    crate::provision::init_center(&center, "center.test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let e = crate::provision::CenterFacts::read(&center, "127.0.0.1:4433", "center.test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("loader new-key") && e.contains("set-center-key"), "{e}");
}
