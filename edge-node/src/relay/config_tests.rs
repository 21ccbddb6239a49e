use super::*;

const GOOD: &str = r#"
relay = "mouo-01"
listen = "127.0.0.1:0"
data_dir = "data"
carry = ["0101", "0102"]
server_cert = "relay-server.pem"
server_key = "relay-server.key"
[upstream]
address = "127.0.0.1:4433"
server_name = "center.konvert"
ca_cert = "ca.pem"
station_cert = "station.pem"
station_key = "station.key"
receipt_key = "fd8b1b42df6e708fe69c877029651eec1852fec7de5f6155a8cdd2a96ea75bb3"
"#;

fn load(text: &str) -> Result<RelayConfig> {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "ca.pem",
        "station.pem",
        "station.key",
        "relay-server.pem",
        "relay-server.key",
    ] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    RelayConfig::load(&path)
}

#[test]
fn a_good_config_loads_with_paths_next_to_it() {
    let cfg = load(GOOD).unwrap();
    assert_eq!(cfg.relay, "mouo-01");
    assert!(cfg.upstream.station_cert.is_absolute());
    assert!(cfg.carries("0102") && !cfg.carries("0103"));
    assert!(!cfg.is_downstream_relay("relay-02"));
    assert_eq!(cfg.hold_wait_ms, 3000);
    assert_eq!(cfg.min_free_percent, 5.0, "the regulations' floor unless set");
    assert_eq!(cfg.link().unwrap().station, "mouo-01");
}

#[test]
fn mistakes_are_named() {
    let cases = [
        (GOOD.replace("carry =", "cary = [\"0101\"]\ncarry ="), "cary"),
        (
            GOOD.replace("carry = [\"0101\", \"0102\"]", "carry = []"),
            "carry is empty",
        ),
        (GOOD.replace("relay = \"mouo-01\"", "relay = \"mouo 01\""), "relay"),
        (GOOD.replace("receipt_key = \"fd", "receipt_key = \"zz"), "receipt_key"),
        (GOOD.replace("ca.pem", "missing.pem"), "does not exist"),
        (
            GOOD.replace("data_dir", "hold_wait_ms = 600000\ndata_dir"),
            "hold_wait_ms",
        ),
        (
            GOOD.replace("data_dir", "min_free_percent = 100\ndata_dir"),
            "min_free_percent = 100 is not a share of the disk",
        ),
        (
            GOOD.replace("data_dir", "min_free_procent = 5\ndata_dir"),
            "min_free_procent",
        ),
    ];
    for (text, needle) in cases {
        let e = load(&text).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}
