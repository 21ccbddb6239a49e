use crate::registry::{CenterKeyRecord, CenterKeyState, RegistryRefusal};
use crate::{RecipientSecretKey, SigningKey};

use super::*;

const NOW: u64 = 1_780_000_000_000;

fn signed(officer: &SigningKey, version: u64) -> SignedRegistry {
    let body = RegistryBody {
        version,
        issued_at_unix_ms: NOW,
        expires_at_unix_ms: NOW + 86_400_000,
        authority: Authority {
            officers: vec![officer.verifying_key()],
            threshold: 1,
        },
        tokens: vec![],
        center_keys: vec![CenterKeyRecord {
            key: RecipientSecretKey::generate().unwrap().public_key(),
            state: CenterKeyState::Active,
        }],
        agreement_keys: Vec::new(),
    };
    SignedRegistry::sign(&body, &[officer]).unwrap()
}

fn refusal(e: Error) -> RegistryRefusal {
    match e {
        Error::Registry { reason, .. } => reason,
        other => panic!("{other}"),
    }
}

#[test]
fn the_station_keeps_the_highest_version_across_restarts_and_freezes_at_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let officer = SigningKey::generate().unwrap();
    let store = RegistryStore::open(dir.path()).unwrap();
    let err = store.offer(&signed(&officer, 1), NOW).unwrap_err().to_string();
    assert!(err.contains("no trusted authority yet"), "{err}");
    store
        .anchor(Authority {
            officers: vec![officer.verifying_key()],
            threshold: 1,
        })
        .unwrap();
    assert!(store
        .anchor(Authority {
            officers: vec![officer.verifying_key()],
            threshold: 1
        })
        .is_err());
    store.offer(&signed(&officer, 2), NOW).unwrap();
    let v1 = signed(&officer, 1);
    drop(store);

    // A restarted station still refuses the older version, and keeps the newer one.
    let store = RegistryStore::open(dir.path()).unwrap();
    assert_eq!(refusal(store.offer(&v1, NOW).unwrap_err()), RegistryRefusal::Rollback);
    assert_eq!(store.current(NOW).unwrap().unwrap().version, 2);
    assert_eq!(store.trust().unwrap().unwrap().version, 2);
    // Past its expiry the stored registry is not used.
    assert_eq!(
        refusal(store.current(NOW + 86_400_000).unwrap_err()),
        RegistryRefusal::Expired
    );
    // A stranger's registry changes nothing.
    let stranger = SigningKey::generate().unwrap();
    assert_eq!(
        refusal(store.offer(&signed(&stranger, 9), NOW).unwrap_err()),
        RegistryRefusal::NotEnoughSignatures
    );
    assert_eq!(store.trust().unwrap().unwrap().version, 2);
}
