use super::*;

#[test]
fn station_names_are_validated() {
    assert_eq!(station_dns_name("0101").unwrap(), "0101.station.konvert");
    assert_eq!(station_dns_name("Ab-9").unwrap(), "ab-9.station.konvert");
    assert!(station_dns_name(&"7".repeat(32)).is_ok());
    for bad in ["", "01.01", "a/b", "a b", "0101\n", "сайт", &"7".repeat(33)] {
        let err = station_dns_name(bad).unwrap_err().to_string();
        assert!(err.contains("site code"), "{bad:?}: {err}");
    }
    assert!(Ca::generate("ca").unwrap().issue_station("01.01").is_err());
}

#[test]
fn ca_round_trips_through_pem() {
    let ca = Ca::generate("test CA").unwrap();
    assert!(ca.cert_pem.contains("BEGIN CERTIFICATE"));
    assert!(ca.key_pem().contains("PRIVATE KEY"));
    let again = Ca::from_pem(&ca.cert_pem, ca.key_pem()).unwrap();
    assert_eq!(again.cert_pem, ca.cert_pem);
    assert_eq!(again.key_pem(), ca.key_pem());
    let station = again.issue_station("0101").unwrap();
    assert!(station.cert_pem.contains("BEGIN CERTIFICATE"));
    again.issue_center("center.konvert").unwrap();
    again.issue_center("127.0.0.1").unwrap();
}

#[test]
fn mismatched_or_garbage_pem_is_refused_without_leaking_keys() {
    let ca = Ca::generate("test CA").unwrap();
    let other = Ca::generate("other").unwrap();
    let station = ca.issue_station("0101").unwrap();
    let cases = [
        (ca.cert_pem.as_str(), other.key_pem(), "does not belong"),
        ("garbage", ca.key_pem(), "no PEM certificate"),
        ("", ca.key_pem(), "no PEM certificate"),
        (ca.key_pem(), ca.key_pem(), "no PEM certificate"),
        (ca.cert_pem.as_str(), "garbage", "not a PEM private key"),
        (ca.cert_pem.as_str(), &ca.cert_pem, "not a PEM private key"),
        (station.cert_pem.as_str(), &station.key_pem, "not a CA certificate"),
    ];
    for (cert, key, expect) in cases {
        let err = Ca::from_pem(cert, key).unwrap_err().to_string();
        assert!(err.contains(expect), "expected {expect:?} in {err:?}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
    let truncated = &ca.cert_pem[..ca.cert_pem.len() / 2];
    assert!(Ca::from_pem(truncated, ca.key_pem()).is_err());
}

#[test]
fn debug_output_redacts_private_keys() {
    let ca = Ca::generate("test CA").unwrap();
    let issued = ca.issue_station("0101").unwrap();
    for shown in [format!("{ca:?}"), format!("{issued:?}")] {
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}

#[test]
fn bad_center_names_are_refused() {
    let ca = Ca::generate("test CA").unwrap();
    assert!(ca.issue_center("").is_err());
    assert!(ca.issue_center("центр").is_err());
    assert!(Ca::generate(" ").is_err());
}
