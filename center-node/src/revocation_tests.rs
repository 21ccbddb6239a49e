use super::*;

#[test]
fn a_missing_or_foreign_revocation_list_stops_the_center_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(
        &dir.path().join("c"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let cfg = init.config;
    let crl = load_crl(&cfg).unwrap();
    assert!(crl.revoked.is_empty());
    assert!(!crl.is_expired(OffsetDateTime::now_utc()));
    let other = pki::Ca::generate("another center").unwrap();
    let now = OffsetDateTime::now_utc();
    let foreign = other.revocation_list(&[], now, now + Duration::days(1)).unwrap();
    std::fs::write(&cfg.crl, &foreign.pem).unwrap();
    let err = load_crl(&cfg).unwrap_err().to_string();
    assert!(err.contains("not signed by this center's CA"), "{err}");
    std::fs::remove_file(&cfg.crl).unwrap();
    let err = load_crl(&cfg).unwrap_err().to_string();
    assert!(err.contains("konvert keys renew-crl"), "{err}");
}
