#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Member keys on a PKCS#11 token, against SoftHSM2 in a temporary folder. Each test
//! makes its own token (its own label); where SoftHSM2 is not installed each test says
//! SKIPPED and passes.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use konvert_crypto::envelope::{self, SealRequest};
use konvert_crypto::pkcs11::{module_path_from_env, Pkcs11Module};
use konvert_crypto::{Domain, Error, MemberSigner, RecipientSecretKey};

const SO_PIN: &str = "12345678";
const PIN: &str = "493817";

struct Hsm {
    module: Pkcs11Module,
    _dir: tempfile::TempDir,
}

/// One SoftHSM2 configuration per test process (SOFTHSM2_CONF is process-global and must
/// be set before the module's C_Initialize).
fn hsm() -> Option<&'static Hsm> {
    static HSM: OnceLock<Option<Hsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let path: PathBuf = module_path_from_env();
        if !path.is_file() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = konvert_crypto::pkcs11::write_softhsm_config(dir.path()).unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let module = Pkcs11Module::load(&path).unwrap();
        Some(Hsm { module, _dir: dir })
    })
    .as_ref()
}

/// A fresh token labelled `label` with a member key `member`, or `None` (test skipped).
fn token(label: &str) -> Option<&'static Pkcs11Module> {
    let Some(hsm) = hsm() else {
        eprintln!("SKIPPED: SoftHSM2 not installed (install the Debian package softhsm2)");
        return None;
    };
    // Initializing takes the one free slot; tests running in parallel take turns.
    static INIT: Mutex<()> = Mutex::new(());
    {
        let _turn = INIT.lock().unwrap();
        hsm.module.init_token(label, SO_PIN, PIN).unwrap();
    }
    hsm.module.generate_member_key(label, PIN, "member").unwrap();
    Some(&hsm.module)
}

#[test]
fn a_token_signature_verifies_under_its_domain_only() {
    let Some(m) = token("sign-verify") else { return };
    assert!(m.token_labels().unwrap().iter().any(|l| l == "sign-verify"));
    let signer = m.login("sign-verify", "member", PIN).unwrap();
    let public = signer.verifying_key();
    let sig = signer.sign(Domain::Envelope, b"digest").unwrap();
    public.verify(Domain::Envelope, b"digest", &sig).unwrap();
    assert!(matches!(
        public.verify(Domain::Receipt, b"digest", &sig),
        Err(Error::BadSignature)
    ));
    assert!(public.verify(Domain::Envelope, b"other", &sig).is_err());
    // The public key read back at generation is the one the signer uses.
    assert!(format!("{signer:?}").contains(&public.key_id().to_string()));
}

#[test]
fn a_wrong_pin_is_refused_and_signs_nothing() {
    let Some(m) = token("wrong-pin") else { return };
    let e = m.login("wrong-pin", "member", "000000").unwrap_err();
    assert!(
        matches!(&e, Error::WrongPin { token_id, .. } if token_id == "wrong-pin"),
        "{e:?}"
    );
    assert!(!e.to_string().contains("000000") && !format!("{e:?}").contains("000000"));
    // The right PIN still works afterwards.
    assert!(m.login("wrong-pin", "member", PIN).is_ok());
    // Unknown key labels and tokens are plain errors.
    assert!(matches!(m.login("wrong-pin", "nobody", PIN), Err(Error::Pkcs11(_))));
    assert!(matches!(m.login("no-such-token", "member", PIN), Err(Error::Pkcs11(_))));
    // A second key with the same label is refused.
    assert!(m.generate_member_key("wrong-pin", PIN, "member").is_err());
}

#[test]
fn the_private_key_cannot_be_read_from_the_token() {
    let Some(m) = token("sensitive") else { return };
    let signer = m.login("sensitive", "member", PIN).unwrap();
    assert!(!signer.private_key_readable().unwrap());
}

#[test]
fn an_envelope_sealed_on_the_token_verifies_and_opens() {
    let Some(m) = token("envelope") else { return };
    let signer = m.login("envelope", "member", PIN).unwrap();
    let center = RecipientSecretKey::generate().unwrap();
    let recipients = [center.public_key()];
    let req = SealRequest {
        packet_id: "0101-2026-06-01-ege-0012-blanks",
        version: 1,
        sender_site: "0101",
        sealed_at_unix_ms: 1,
        metadata: b"meta",
        recipients: &recipients,
    };
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut sealed = Vec::new();
    // Through the trait object, as the edge holds it.
    let dyn_signer: &dyn MemberSigner = &signer;
    envelope::seal(&req, dyn_signer, Cursor::new(&payload), &mut sealed).unwrap();
    let public = signer.verifying_key();
    let trusted = |id: &konvert_crypto::KeyId| (*id == public.key_id()).then_some(public);
    let verified = envelope::verify(Cursor::new(&sealed), &trusted).unwrap();
    assert_eq!(verified.signer(), &public);
    let mut out = Vec::new();
    envelope::open(Cursor::new(&sealed), &center, &trusted, &mut out).unwrap();
    assert_eq!(out, payload);
}

#[test]
fn a_loader_key_wrapped_for_a_hardware_token_opens_only_with_that_token_logged_in() {
    use konvert_crypto::loader_key::{self, Specialist};
    use konvert_crypto::pkcs11::LOADER_KEY_LABEL;
    let Some(m) = token("specialist-hw") else { return };
    let Some(other) = token("specialist-other") else { return };
    let x25519 = m
        .generate_agreement_key("specialist-hw", PIN, LOADER_KEY_LABEL)
        .unwrap();
    // The public half is readable without the PIN: wrapping needs no specialist present.
    assert_eq!(m.agreement_public("specialist-hw", LOADER_KEY_LABEL).unwrap(), x25519);
    assert!(m
        .generate_agreement_key("specialist-hw", PIN, LOADER_KEY_LABEL)
        .unwrap_err()
        .to_string()
        .contains("already holds"));
    let identity = m
        .login("specialist-hw", "member", PIN)
        .unwrap()
        .verifying_key()
        .key_id();
    let center = RecipientSecretKey::generate().unwrap();
    let wrapped = loader_key::wrap_for_hardware(&center, "SP-HW", identity, &x25519).unwrap();

    let agreement = m.login_agreement("specialist-hw", LOADER_KEY_LABEL, PIN).unwrap();
    let specialist = Specialist::Hardware {
        token_key: identity,
        agreement: &agreement,
    };
    let opened = loader_key::unwrap(&wrapped, specialist).unwrap();
    assert_eq!(opened.public_key(), center.public_key());
    // The token agrees exactly as X25519 does (the edge's sealing side uses ring).
    let peer = RecipientSecretKey::generate().unwrap();
    let on_token = agreement.agree(&peer.public_key().0).unwrap();
    let eph = x25519_dalek::StaticSecret::from(*peer.to_bytes());
    let expected = eph.diffie_hellman(&x25519_dalek::PublicKey::from(x25519.0));
    assert_eq!(on_token.as_slice(), expected.as_bytes());
    // A low-order point agrees on nothing and is refused.
    assert!(agreement.agree(&[0u8; 32]).is_err());

    // Another token's X25519 key, even claiming the same identity, does not open it.
    other
        .generate_agreement_key("specialist-other", PIN, LOADER_KEY_LABEL)
        .unwrap();
    let stranger = other
        .login_agreement("specialist-other", LOADER_KEY_LABEL, PIN)
        .unwrap();
    let e = loader_key::unwrap(
        &wrapped,
        Specialist::Hardware {
            token_key: identity,
            agreement: &stranger,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("another X25519 key"), "{e}");
    // The member's Ed25519 key is not an X25519 key, whatever its label.
    let e = m
        .login_agreement("specialist-hw", "member", PIN)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an X25519 key"), "{e}");
}
