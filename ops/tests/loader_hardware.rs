#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The loader's key on a center specialist's hardware token (SoftHSM2), through the real
//! commands: the officers issue the token (an Ed25519 identity and an X25519 key, both
//! generated on it), the center's decryption key is born on the loader's side wrapped for
//! it (without its PIN) and for another person's token file, never bare, and only that
//! token, with its PIN, unwraps it again. Where SoftHSM2 is not installed the test says
//! SKIPPED and passes.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use konvert_center::specialist::{self, SpecialistLogin};
use konvert_crypto::pkcs11::{module_path_from_env, Pkcs11Module, IDENTITY_KEY_LABEL, LOADER_KEY_LABEL};
use konvert_crypto::registry::TokenRole;
use konvert_devtools::quick_authority::QuickAuthority;

const KONVERT: &str = env!("CARGO_BIN_EXE_konvert");
const PIN: &str = common::TOKEN_PIN;
/// The other specialist's token file passphrase.
const SP_PASS: &str = "loader passphrase 1357";

fn run(conf: &Path, args: &[&str]) -> Output {
    Command::new(KONVERT)
        .args(args)
        .env("PIN", PIN)
        .env("SP_PIN", SP_PASS)
        .env("SOFTHSM2_CONF", conf)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn the_loader_key_wrapped_for_a_specialists_hardware_token_opens_only_with_it() {
    let module = module_path_from_env();
    if !module.is_file() {
        eprintln!("SKIPPED: SoftHSM2 not installed (install the Debian package softhsm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = konvert_crypto::pkcs11::write_softhsm_config(dir.path()).unwrap();
    common::init_softhsm_token(&conf, "SP-HW");
    common::init_softhsm_token(&conf, "STRANGER");
    let m = module.to_str().unwrap();

    let issue_specialist = |label: &str, token_id: &str| {
        let mut args = vec!["keys", "issue-token", "--pkcs11-module", m, "--pkcs11-token", label];
        args.extend(["--token-id", token_id, "--holder", "Смирнова О. Л. (РЦОИ)"]);
        args.extend(["--role", "specialist", "--pin-env", "PIN"]);
        ok(run(&conf, &args))
    };
    let other = dir.path().join("sp-1.token");
    let public_out = dir.path().join("center-key.pub");
    let new_key = |config: &str, labels: &[&str], with_file: bool| {
        let mut args = vec!["center", "loader", "new-key", "--config", config, "--pin-env", "SP_PIN"];
        args.extend(["--public-out", public_out.to_str().unwrap(), "--pkcs11-module", m]);
        for label in labels {
            args.extend(["--pkcs11-token", label]);
        }
        if with_file {
            args.extend(["--token", other.to_str().unwrap()]);
        }
        run(&conf, &args)
    };
    let wrap_key = |config: &str, label: &str| new_key(config, &[label], true);

    // The officers issue the specialist's hardware token, and a stranger's that is never
    // registered.
    let issued = issue_specialist("SP-HW", "SP-0002");
    assert!(issued.contains("X25519 key \"konvert-loader\""), "{issued}");
    assert!(
        issued.contains("loader new-key") && issued.contains("loader wrap-key") && !issued.contains("site.toml"),
        "{issued}"
    );
    issue_specialist("STRANGER", "SP-9999");

    // The center, and a registry that lists the token as an Issued specialist's.
    let center_dir = dir.path().join("center");
    let init = konvert_center::provision::init_center(&center_dir, "center.test", "127.0.0.1:0".parse().unwrap(), None)
        .unwrap();
    let sp_file = konvert_crypto::token::TokenFile::create_specialist(
        &other,
        "SP-0001",
        "Кузнецова М. И. (РЦОИ)",
        SP_PASS,
        konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    // SOFTHSM2_CONF is read by no other test in this binary.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let hw = Pkcs11Module::load(&module).unwrap();
    let identity = hw.signing_public("SP-HW", IDENTITY_KEY_LABEL).unwrap();
    let now = konvert_edge::cli::now_unix_ms();
    let mut officers = QuickAuthority::before_center_key(&init.config, now).unwrap();
    officers
        .issue_as(&sp_file, TokenRole::CenterSpecialist, &["0101"], &["2026-06-01"], now)
        .unwrap();
    officers
        .issue_key_as(
            "SP-0002",
            "Смирнова О. Л. (РЦОИ)",
            identity,
            TokenRole::CenterSpecialist,
            &["0101"],
            &["2026-06-01"],
            now,
        )
        .unwrap();
    officers.publish(now).unwrap();
    let config = init.config_path.to_str().unwrap();
    let registry_file = init.config.registry.to_str().unwrap();
    let import = || {
        ok(run(
            &conf,
            &[
                "center",
                "registry",
                "import",
                "--config",
                config,
                "--file",
                registry_file,
            ],
        ))
    };
    import();
    let refused_with = |label: &str| {
        let out = wrap_key(config, label);
        assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            !public_out.exists() && !center_dir.join("loader").exists(),
            "nothing made"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // The registry names no X25519 key for the token yet: nothing is wrapped.
    let e = refused_with("SP-HW");
    assert!(e.contains("names no X25519 key"), "{e}");
    // It names another one (the stranger's): a token showing the registered Ed25519 key
    // beside an X25519 key the officers never recorded gets nothing.
    let strangers = hw.agreement_public("STRANGER", LOADER_KEY_LABEL).unwrap();
    officers.draft_mut().set_agreement_key("SP-0002", strangers).unwrap();
    officers.publish(now).unwrap();
    import();
    let e = refused_with("SP-HW");
    assert!(e.contains("is not that specialist's token"), "{e}");
    // The key issue-token recorded: wrapped.
    let on_token = hw.agreement_public("SP-HW", LOADER_KEY_LABEL).unwrap();
    officers.draft_mut().set_agreement_key("SP-0002", on_token).unwrap();
    officers.publish(now).unwrap();
    import();

    // A token the registry does not list is refused before anything is written or destroyed.
    let refused = wrap_key(config, "STRANGER");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not in key registry"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The hardware token alone is one person's: refused.
    let e = String::from_utf8_lossy(&new_key(config, &["SP-HW"], false).stderr).into_owned();
    assert!(e.contains("at least 2 specialists"), "{e}");
    // Wrapping needs no PIN of the hardware token (stdin is closed): only its public keys.
    let wrapped = ok(wrap_key(config, "SP-HW"));
    assert!(
        wrapped.contains("wrapped for SP-0002")
            && wrapped.contains("SP-0002-")
            && wrapped.contains("wrapped for SP-0001"),
        "{wrapped}"
    );
    let born = konvert_center::center_key::read_public(&public_out).unwrap();
    officers.draft_mut().rotate_center_key(born, now).unwrap();
    officers.publish(now).unwrap();
    import();
    // The specialist logs in at the loader, as `test-packets preview --pkcs11-token` does.
    let registry = konvert_center::registry::held(&init.config, now).unwrap().unwrap();
    let loader_dir = center_dir.join("loader");
    let login = |label: &str| SpecialistLogin {
        token: None,
        pkcs11_module: Some(module.clone()),
        pkcs11_token: Some(label.to_owned()),
        loader_dir: loader_dir.clone(),
        pin_env: Some("LOADER_PIN".into()),
    };
    std::env::set_var("LOADER_PIN", PIN);
    let opened = specialist::login(&registry, &login("SP-HW"), &center_dir).unwrap();
    assert_eq!(opened.public_key(), born);
    let e = specialist::login(&registry, &login("STRANGER"), &center_dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not in key registry"), "{e}");
    // What sits on disk never holds the center's secret in the clear, nor as a key file.
    let secret = opened.to_bytes();
    for entry in std::fs::read_dir(&loader_dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(32).any(|w| w == secret.as_slice()));
        assert!(konvert_crypto::keyfile::read_recipient_key(&path).is_err());
    }
}
