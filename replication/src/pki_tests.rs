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

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

#[test]
fn station_serials_are_random_and_read_back() {
    let ca = Ca::generate("test CA").unwrap();
    let a = Serial::of_cert_pem(&ca.issue_station("0101").unwrap().cert_pem).unwrap();
    let b = Serial::of_cert_pem(&ca.issue_station("0101").unwrap().cert_pem).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.as_bytes().len(), 16);
    assert_eq!(a.to_string().len(), 32);
    assert_eq!(a.to_string().parse::<Serial>().unwrap(), a);
    assert_eq!(a.to_string().to_uppercase().parse::<Serial>().unwrap(), a);
    let colons = a
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(colons.parse::<Serial>().unwrap(), a);
    assert_eq!("00ab".parse::<Serial>().unwrap(), Serial::from_bytes(&[0xab]));
    for bad in ["", "xyz", &"ab".repeat(21)] {
        assert!(bad.parse::<Serial>().is_err(), "{bad:?}");
    }
    assert!(Serial::of_cert_pem("garbage").is_err());
}

#[test]
fn revocation_list_names_the_revoked_serials_and_verifies_against_its_ca() {
    let ca = Ca::generate("test CA").unwrap();
    let s1 = Serial::of_cert_pem(&ca.issue_station("0101").unwrap().cert_pem).unwrap();
    let s2 = Serial::of_cert_pem(&ca.issue_station("0202").unwrap().cert_pem).unwrap();
    let revoked = [
        RevokedStation {
            serial: s1.clone(),
            revoked_at: at(1_780_000_000),
        },
        RevokedStation {
            serial: s2.clone(),
            revoked_at: at(1_780_000_100),
        },
    ];
    let crl = ca
        .revocation_list(&revoked, at(1_780_000_200), at(1_780_604_200))
        .unwrap();
    assert!(crl.pem.contains("BEGIN X509 CRL"));
    for bytes in [crl.pem.as_bytes(), crl.der.as_ref()] {
        let v = verify_crl(&ca.cert_pem, bytes).unwrap();
        assert_eq!(v.this_update, at(1_780_000_200));
        assert_eq!(v.next_update, at(1_780_604_200));
        assert_eq!(v.revoked.len(), 2);
        assert_eq!(v.revoked[&s1], at(1_780_000_000));
        let mut expected = revoked.to_vec();
        expected.sort_by(|a, b| a.serial.cmp(&b.serial));
        assert_eq!(v.revoked_stations(), expected);
        assert!(!v.is_expired(at(1_780_604_199)));
        assert!(v.is_expired(at(1_780_604_200)));
    }
    let empty = ca.revocation_list(&[], at(1_780_000_200), at(1_780_000_201)).unwrap();
    assert!(verify_crl(&ca.cert_pem, empty.pem.as_bytes())
        .unwrap()
        .revoked
        .is_empty());
    // next_update must follow this_update.
    assert!(ca.revocation_list(&[], at(1_780_000_200), at(1_780_000_200)).is_err());
}

#[test]
fn two_lists_signed_within_one_second_still_tell_which_is_newer() {
    let ca = Ca::generate("test CA").unwrap();
    let first = at(1_780_000_200) + time::Duration::milliseconds(100);
    let second = first + time::Duration::milliseconds(700);
    let read = |t: OffsetDateTime| {
        let crl = ca.revocation_list(&[], t, at(1_780_604_200)).unwrap();
        verify_crl(&ca.cert_pem, crl.der.as_ref()).unwrap()
    };
    let (a, b) = (read(first), read(second));
    assert_eq!(a.this_update, b.this_update, "the same second in the list's own dates");
    assert_eq!(a.number, 1_780_000_200_100);
    assert_eq!(b.number, 1_780_000_200_800);
    assert!(b.as_update().version > a.as_update().version);
}

#[test]
fn revocation_list_of_another_ca_or_altered_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let other = Ca::generate("test CA").unwrap();
    let theirs = other
        .revocation_list(&[], at(1_780_000_000), at(1_780_600_000))
        .unwrap();
    let err = verify_crl(&ca.cert_pem, theirs.pem.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("not signed by this center's CA"), "{err}");
    let ours = ca.revocation_list(&[], at(1_780_000_000), at(1_780_600_000)).unwrap();
    let mut altered = ours.der.to_vec();
    let n = altered.len();
    altered[n - 5] ^= 1;
    assert!(verify_crl(&ca.cert_pem, &altered).is_err());
    for garbage in [
        &b""[..],
        b"garbage",
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    ] {
        assert!(verify_crl(&ca.cert_pem, garbage).is_err());
    }
}
