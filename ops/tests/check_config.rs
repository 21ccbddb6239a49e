#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `check-config` at the edge and the center, run as the binary on real enrolled folders:
//! it must catch a site that is not the certificate's, a missing token file, a key path that
//! names a certificate, and warn about private keys others can read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use konvert_center::provision::{self, CenterFacts};

const KONVERT: &str = env!("CARGO_BIN_EXE_konvert");

fn run(args: &[&str]) -> Output {
    Command::new(KONVERT).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn edge_check_config_catches_wrong_site_missing_token_wrong_key_and_exposed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let center = dir.path().join("center");
    provision::init_center_with_key(&center, "center.konvert", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let facts = CenterFacts::read(&center, "127.0.0.1:4433", "center.konvert").unwrap();
    let site_dir = dir.path().join("site-0101");
    let toml = provision::enroll_station(&center, "0101", &facts, &site_dir).unwrap();
    let original = std::fs::read_to_string(&toml).unwrap();
    let t = toml.to_str().unwrap();
    let check = || run(&["edge", "check-config", "--config", t]);

    // No token file yet: not ok.
    let out = check();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("member.token does not exist"), "{}", text(&out));

    // With the token (mode 0600) everything is in order, without a warning.
    std::fs::write(site_dir.join("member.token"), b"token").unwrap();
    chmod(&site_dir.join("member.token"), 0o600);
    let out = check();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));

    // The site disagrees with the station certificate.
    std::fs::write(&toml, original.replace("site = \"0101\"", "site = \"0303\"")).unwrap();
    let out = check();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not for site 0303"), "{}", text(&out));

    // The station key names the CA's certificate.
    std::fs::write(
        &toml,
        original.replace("station_key = \"station.key\"", "station_key = \"ca.pem\""),
    )
    .unwrap();
    let out = check();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not a PEM private key"), "{}", text(&out));

    // Another station's key beside this certificate.
    let other = provision::enroll_station(&center, "0202", &facts, &dir.path().join("site-0202")).unwrap();
    let other_key = other.parent().unwrap().join("station.key");
    std::fs::write(
        &toml,
        original.replace(
            "station_key = \"station.key\"",
            &format!("station_key = \"{}\"", other_key.display()),
        ),
    )
    .unwrap();
    let out = check();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("do not fit together"), "{}", text(&out));

    // Keys others can read: ok, with a warning naming each and the fix.
    std::fs::write(&toml, &original).unwrap();
    chmod(&site_dir.join("station.key"), 0o644);
    chmod(&site_dir.join("member.token"), 0o644);
    let out = check();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("station key"), "{said}");
    assert!(said.contains("readable by others (mode 0644)"), "{said}");
    assert!(said.contains("chmod 600"), "{said}");
    assert!(said.contains("member token file"), "{said}");
}

#[test]
fn center_check_config_warns_about_private_keys_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let center = dir.path().join("center");
    let (init, _key) =
        provision::init_center_with_key(&center, "center.konvert", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let c = init.config_path.to_str().unwrap();
    let out = run(&["center", "check-config", "--config", c]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("readable by others"), "{}", text(&out));
    chmod(&center.join("pki/ca.key"), 0o644);
    chmod(&center.join("keys/receipt.key"), 0o640);
    let out = run(&["center", "check-config", "--config", c]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("station CA's key (ca_key)"), "{said}");
    assert!(said.contains("mode 0644"), "{said}");
    assert!(said.contains("receipt key (receipt_key)"), "{said}");
    assert!(said.contains("mode 0640"), "{said}");
    assert!(!said.contains("TLS key"), "{said}");
}

#[test]
fn a_relays_check_config_checks_its_station_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let center = dir.path().join("center");
    provision::init_center_with_key(&center, "center.konvert", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let facts = CenterFacts::read(&center, "127.0.0.1:4433", "center.konvert").unwrap();
    let enrollment = provision::RelayEnrollment {
        relay: "mouo-01".into(),
        carries: vec!["0101".into()],
        downstream_relays: vec![],
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let relay_dir = dir.path().join("relay");
    let toml = provision::enroll_relay(&center, &enrollment, &facts, &relay_dir).unwrap();
    let t = toml.to_str().unwrap();
    let out = run(&["edge", "check-config", "--config", t]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    chmod(&relay_dir.join("relay-server.key"), 0o644);
    let out = run(&["edge", "check-config", "--config", t]);
    assert!(text(&out).contains("relay's server key"), "{}", text(&out));
    // The relay's station key swapped for its server key: refused before the first start.
    let original = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        original.replace("station_key = \"station.key\"", "station_key = \"relay-server.key\""),
    )
    .unwrap();
    let out = run(&["edge", "check-config", "--config", t]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("do not fit together"), "{}", text(&out));
}
