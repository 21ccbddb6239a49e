use super::*;

#[test]
fn station_names_are_validated() {
    assert_eq!(station_dns_name("0101").unwrap(), "0101.station.konvert");
    assert!(station_dns_name("").is_err());
    assert!(station_dns_name("01.01").is_err());
    assert!(station_dns_name("a/b").is_err());
}

#[test]
fn ca_round_trips_and_mismatched_keys_are_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let again = Ca::from_pem(&ca.cert_pem, ca.key_pem()).unwrap();
    again.issue_station("0101").unwrap();
    let other = Ca::generate("other").unwrap();
    assert!(Ca::from_pem(&ca.cert_pem, other.key_pem()).is_err());
    assert!(Ca::from_pem("garbage", ca.key_pem()).is_err());
    assert!(Ca::from_pem(&ca.cert_pem, "garbage").is_err());
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}
