use super::*;

#[test]
fn ec_points_are_read_wrapped_or_bare_and_nothing_else() {
    let key: Vec<u8> = (1..=32).collect();
    let wrapped = [&[0x04, 0x20][..], &key].concat();
    assert_eq!(ed25519_point(&wrapped).unwrap().0.to_vec(), key);
    assert_eq!(ed25519_point(&key).unwrap().0.to_vec(), key);
    for bad in [
        &wrapped[..33],
        &[0x04, 0x21][..],
        &[][..],
        &[&wrapped[..], &[0][..]].concat()[..],
    ] {
        assert!(matches!(ed25519_point(bad), Err(Error::BadKey(_))), "{bad:?}");
    }
}

#[test]
fn a_missing_module_is_named_with_what_to_install() {
    let e = Pkcs11Module::load(Path::new("/nowhere/libtoken.so"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nowhere/libtoken.so does not exist") && e.contains("softhsm2"),
        "{e}"
    );
}

#[test]
fn the_curve_parameters_are_the_der_of_the_ed25519_oid() {
    // 1.3.101.112: 06 (OID) 03 (length) 2b (1.3) 65 (101) 70 (112).
    assert_eq!(ED25519_EC_PARAMS, [0x06, 0x03, 43, 101, 112]);
}
