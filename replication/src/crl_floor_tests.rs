use super::*;
use crate::pki::{verify_crl, Ca, RevokedStation, Serial};
use time::{Duration, OffsetDateTime};

fn list(ca: &Ca, at: OffsetDateTime, revoked: &[RevokedStation]) -> VerifiedCrl {
    let crl = ca.revocation_list(revoked, at, at + Duration::days(7)).unwrap();
    verify_crl(&ca.cert_pem, &crl.der).unwrap()
}

#[test]
fn an_older_list_is_refused_after_a_newer_one_was_in_force_and_the_floor_only_rises() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("test CA").unwrap();
    let now = OffsetDateTime::now_utc();
    let old = list(&ca, now - Duration::hours(1), &[]);
    let revoked = RevokedStation {
        serial: Serial::random().unwrap(),
        revoked_at: now,
    };
    let new = list(&ca, now, &[revoked]);
    let floor = CrlFloor::in_dir(dir.path());
    floor.check(&old, Path::new("stations.crl")).unwrap();
    floor.raise(&new).unwrap();
    let e = floor.check(&old, Path::new("stations.crl")).unwrap_err().to_string();
    assert!(e.contains("older than the list already put in force"), "{e}");
    floor.check(&new, Path::new("stations.crl")).unwrap();
    floor.raise(&old).unwrap();
    assert_eq!(floor.number().unwrap(), Some(new.number), "never lowered");
    std::fs::write(floor.path(), b"garbage").unwrap();
    assert!(floor
        .check(&new, Path::new("x"))
        .unwrap_err()
        .to_string()
        .contains("damaged"));
    floor.raise_complete(&new).unwrap();
    assert_eq!(
        floor.number().unwrap(),
        Some(new.number),
        "a complete list replaces damage"
    );
}

#[test]
fn a_missing_floor_is_refused_only_where_the_server_ran_before() {
    let dir = tempfile::tempdir().unwrap();
    let floor = CrlFloor::in_dir(dir.path());
    floor.require(false).unwrap();
    let e = floor.require(true).unwrap_err().to_string();
    assert!(e.contains("is missing"), "{e}");
    assert!(!e.contains("delete"), "{e}");
    let ca = Ca::generate("test CA").unwrap();
    floor.raise(&list(&ca, OffsetDateTime::now_utc(), &[])).unwrap();
    floor.require(true).unwrap();
}
