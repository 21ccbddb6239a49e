use super::*;

const GOOD: &str = r#"
site = "0101"
time_zone = "Europe/Moscow"
data_dir = "data"
token = "member.token"
[center]
address = "127.0.0.1:4433"
server_name = "center.konvert"
ca_cert = "ca.pem"
station_cert = "station.pem"
station_key = "station.key"
recipient_key = "d1b93e4337c0af928b30783fdfd29885eecb6418a1024cf882b3941298f5322d"
receipt_key = "fd8b1b42df6e708fe69c877029651eec1852fec7de5f6155a8cdd2a96ea75bb3"
"#;

fn load(text: &str) -> Result<SiteConfig> {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "station.pem", "station.key"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let path = dir.path().join("site.toml");
    std::fs::write(&path, text).unwrap();
    SiteConfig::load(&path)
}

#[test]
fn a_good_config_loads_with_paths_next_to_it() {
    let cfg = load(GOOD).unwrap();
    assert_eq!(cfg.site.as_str(), "0101");
    assert!(cfg.center.ca_cert.is_absolute());
    assert_eq!(cfg.push.parallel, 4);
}

#[test]
fn mistakes_are_named() {
    let unknown = load(&GOOD.replace("site = \"0101\"", "site = \"0101\"\nsiet = 1"))
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown field `siet`"), "{unknown}");
    let key = load(&GOOD.replace("fd8b1b42", "zz")).unwrap_err().to_string();
    assert!(key.contains("receipt_key must be 64 hex digits"), "{key}");
    let site = load(&GOOD.replace("\"0101\"", "\"01/01\"")).unwrap_err().to_string();
    assert!(site.contains("site code"), "{site}");
    let missing = load(&GOOD.replace("station.key\"", "nowhere.key\""))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("enroll this station"), "{missing}");
}

#[test]
fn a_hardware_token_replaces_the_token_file_and_its_module_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("libtoken.so");
    std::fs::write(&module, "x").unwrap();
    let hw = GOOD.replace("token = \"member.token\"\n", "")
        + &format!(
            "[pkcs11]\nmodule = \"{}\"\ntoken_label = \"GEK-17\"\n",
            module.display()
        );
    let cfg = load(&hw).unwrap();
    assert!(cfg.token.is_none());
    let t = cfg.pkcs11.as_ref().unwrap();
    assert_eq!(
        (t.token_label.as_str(), t.key_label.as_str()),
        ("GEK-17", DEFAULT_KEY_LABEL)
    );
    assert!(cfg.token_file().is_err());

    let missing = load(&hw.replace(&module.display().to_string(), "/nowhere/libtoken.so"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("pkcs11.module = /nowhere/libtoken.so does not exist") && missing.contains("softhsm2"),
        "{missing}"
    );
    let unknown = load(&(hw.clone() + "slot = 3\n")).unwrap_err().to_string();
    assert!(unknown.contains("unknown field `slot`"), "{unknown}");
    let both = load(&(GOOD.to_owned() + &hw[hw.find("[pkcs11]").unwrap()..]))
        .unwrap_err()
        .to_string();
    assert!(both.contains("both token and [pkcs11]"), "{both}");
    let neither = load(&GOOD.replace("token = \"member.token\"\n", ""))
        .unwrap_err()
        .to_string();
    assert!(neither.contains("no member token"), "{neither}");
}

#[test]
fn a_reconnect_wait_out_of_range_is_named() {
    for bad in ["0", "-1", "45", "inf", "nan"] {
        let text = format!("{GOOD}[push]\nretry_seconds = {bad}\n");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("push.retry_seconds") && err.contains("0.05 to 30"),
            "{bad}: {err}"
        );
    }
    let ok = load(&format!("{GOOD}[push]\nretry_seconds = 2.5\n")).unwrap();
    assert_eq!(ok.push.retry_seconds, 2.5);
}
