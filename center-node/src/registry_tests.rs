use konvert_crypto::{RecipientSecretKey, SigningKey};

use super::*;

const NOW: u64 = 1_780_000_000_000;

fn body(version: u64, officer: &SigningKey) -> RegistryBody {
    let center = RecipientSecretKey::generate().unwrap().public_key();
    crate::test_support::registry(version, officer, center, NOW)
}

#[test]
fn the_held_registry_is_the_newer_of_the_stored_and_the_imported_one() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(dir.path(), "c.test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let cfg = init.config;
    let officer = SigningKey::generate().unwrap();
    let write = |v: u64, signer: &SigningKey| {
        let signed = SignedRegistry::sign(&body(v, &officer), &[signer]).unwrap();
        std::fs::write(&cfg.registry, signed.to_bytes().unwrap()).unwrap();
        signed
    };
    // Nothing imported, nothing stored.
    assert!(held(&cfg, NOW).unwrap().is_none());
    let store = RegistryStore::open(&cfg.data_dir).unwrap();
    store.anchor(body(1, &officer).authority).unwrap();
    // Imported (`registry import`) but never taken by a serving center: the file's.
    let v1 = write(1, &officer);
    assert_eq!(held(&cfg, NOW).unwrap().unwrap().version, 1);
    // Taken into the store, and a newer one imported since: the newer.
    store.offer(&v1, NOW).unwrap();
    write(2, &officer);
    assert_eq!(held(&cfg, NOW).unwrap().unwrap().version, 2);
    // An imported file that does not verify never wins over the stored one.
    write(3, &SigningKey::generate().unwrap());
    assert_eq!(held(&cfg, NOW).unwrap().unwrap().version, 1);
    drop(store);
}
