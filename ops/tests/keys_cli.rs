#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The officers' `konvert keys` commands, run as the binary: an authority of three with a
//! threshold of two, a member token walked through the regulations' statuses, a registry
//! published and accepted as an edge would accept it.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use konvert_crypto::registry::{RegistryTrust, SignedRegistry, TokenStatus};
use konvert_crypto::RecipientSecretKey;
use konvert_edge::cli::now_unix_ms as now;
use konvert_ops::authority::Workspace;

const KONVERT: &str = env!("CARGO_BIN_EXE_konvert");

fn keys(args: &[&str]) -> Output {
    Command::new(KONVERT)
        .arg("keys")
        .args(args)
        .env("PIN", "246813")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status(auth: &Path, token: &str, status: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "set-status",
        "--authority",
        auth.to_str().unwrap(),
        "--token-id",
        token,
        "--status",
        status,
    ];
    args.extend_from_slice(extra);
    keys(&args)
}

#[test]
fn officers_issue_bind_publish_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("authority");
    let a = auth.to_str().unwrap();
    let center = RecipientSecretKey::generate().unwrap().public_key().to_string();
    let fast = ["--pin-env", "PIN", "--insecure-fast-kdf"];
    let mut init = vec![
        "init-authority",
        "--dir",
        a,
        "--officer",
        "Орлов",
        "--officer",
        "Белова",
    ];
    init.extend_from_slice(&["--officer", "Зайцев", "--threshold", "2", "--center-key", &center]);
    init.extend_from_slice(&fast);
    ok(&keys(&init));
    assert!(err(&keys(&init)).contains("already holds an authority"));

    let token = dir.path().join("T1.token");
    let mut issue = vec!["issue-token", "--out", token.to_str().unwrap(), "--token-id", "T1"];
    issue.extend_from_slice(&["--holder", "Иванов И. И.", "--authority", a]);
    issue.extend_from_slice(&fast);
    ok(&keys(&issue));

    let e = err(&status(&auth, "T1", "issued", &[]));
    assert!(
        e.contains("a loaded token cannot become issued; allowed: received-by-center"),
        "{e}"
    );
    ok(&status(&auth, "T1", "received-by-center", &[]));
    let e = err(&status(&auth, "T1", "bound", &[]));
    assert!(e.contains("binding needs"), "{e}");
    let bind = ["--person", "Иванов И. И.", "--site", "0101", "--date", "2026-06-01"];
    ok(&status(&auth, "T1", "bound", &bind));
    // The issue statement: printed for the bound token, then recorded once signed.
    let page = dir.path().join("statement.html");
    let out = ok(&keys(&[
        "statement",
        "--authority",
        a,
        "--out",
        page.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let id = v["statement_id"].as_str().unwrap().to_owned();
    assert_eq!(v["tokens"][0].as_str(), Some("T1"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Иванов И. И.") && html.contains("T1") && html.contains(&id),
        "{html}"
    );
    let e = err(&keys(&["statement", "--authority", a, "--out", page.to_str().unwrap()]));
    assert!(e.contains("no token is Bound"), "{e}");
    let shown = ok(&keys(&["show", "--authority", a, "--json"]));
    assert!(shown.contains("\"statement-printed\""), "{shown}");
    let e = err(&keys(&[
        "record-statement",
        "--authority",
        a,
        "--statement-id",
        "abc123",
    ]));
    assert!(e.contains("no printed statement abc123"), "{e}");
    let out = ok(&keys(&[
        "record-statement",
        "--authority",
        a,
        "--statement-id",
        &id,
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["issued"][0].as_str(), Some("T1"));
    let shown = ok(&keys(&["show", "--authority", a, "--json"]));
    let v: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(
        (v["tokens"][0]["status"].as_str(), v["tokens"][0]["status_ru"].as_str()),
        (Some("issued"), Some("Выдан"))
    );
    assert_eq!(v["tokens"][0]["sites"][0].as_str(), Some("0101"));

    // One officer is not enough; two are.
    let e = err(&keys(&[
        "publish",
        "--authority",
        a,
        "--officer",
        "Орлов",
        "--pin-env",
        "PIN",
    ]));
    assert!(
        e.contains("would not be accepted") && e.contains("1 valid officer signature(s), 2 needed"),
        "{e}"
    );
    let out = ok(&keys(&[
        "publish",
        "--authority",
        a,
        "--officer",
        "Орлов",
        "--officer",
        "Зайцев",
        "--pin-env",
        "PIN",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["version"].as_u64(), Some(1));

    // An edge anchored in authority.toml accepts it, and T1 may sign for its site and day.
    let ws = Workspace::open(&auth).unwrap();
    let trust = RegistryTrust::anchored(ws.authority_file().unwrap().authority().unwrap()).unwrap();
    let bytes = std::fs::read(auth.join("published/registry-v1.bin")).unwrap();
    let (body, trust) = trust
        .accept(&SignedRegistry::from_bytes(&bytes).unwrap(), now())
        .unwrap();
    let signer = konvert_crypto::token::TokenFile::read(&token).unwrap().key_id();
    let registry = konvert_crypto::registry::Registry::from(body);
    assert!(registry.may_sign(&signer, "0101", "2026-06-01").is_ok());

    // Blocking asks first; without a terminal it needs --yes.
    let e = err(&status(&auth, "T1", "compromised", &[]));
    assert!(e.contains("confirm with --yes"), "{e}");
    ok(&status(&auth, "T1", "compromised", &["--yes"]));
    ok(&keys(&[
        "publish",
        "--authority",
        a,
        "--officer",
        "Белова",
        "--officer",
        "Зайцев",
        "--pin-env",
        "PIN",
    ]));
    let bytes = std::fs::read(auth.join("published/registry-v2.bin")).unwrap();
    let (body, _) = trust
        .accept(&SignedRegistry::from_bytes(&bytes).unwrap(), now())
        .unwrap();
    let registry = konvert_crypto::registry::Registry::from(body);
    assert_eq!(
        registry.may_sign(&signer, "0101", "2026-06-01").unwrap_err(),
        konvert_crypto::registry::SignRefusal::NotIssued(TokenStatus::Compromised)
    );
    // A wrong PIN signs nothing.
    let e = String::from_utf8_lossy(
        &Command::new(KONVERT)
            .args([
                "keys",
                "publish",
                "--authority",
                a,
                "--officer",
                "Орлов",
                "--officer",
                "Белова",
                "--pin-env",
                "PIN",
            ])
            .env("PIN", "000000")
            .output()
            .unwrap()
            .stderr,
    )
    .into_owned();
    assert!(e.contains("wrong PIN"), "{e}");
    assert!(!auth.join("published/registry-v3.bin").exists());
}

#[test]
fn the_center_key_rotates_and_the_retired_private_key_is_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("authority");
    let a = auth.to_str().unwrap();
    let old_secret = RecipientSecretKey::generate().unwrap();
    let old_file = dir.path().join("old-recipient.key");
    konvert_crypto::keyfile::write_recipient_key(&old_file, &old_secret).unwrap();
    let old = old_secret.public_key().to_string();
    ok(&keys(&[
        "init-authority",
        "--dir",
        a,
        "--officer",
        "Орлов",
        "--threshold",
        "1",
        "--center-key",
        &old,
        "--pin-env",
        "PIN",
        "--insecure-fast-kdf",
    ]));
    let new = RecipientSecretKey::generate().unwrap().public_key();
    let e = err(&keys(&["rotate-center-key", "--authority", a, "--new-key", &old]));
    assert!(e.contains("used before"), "{e}");
    ok(&keys(&[
        "rotate-center-key",
        "--authority",
        a,
        "--new-key",
        &new.to_string(),
        "--grace-days",
        "0",
    ]));
    let kept = dir.path().join("new-recipient.key");
    let new_secret = RecipientSecretKey::generate().unwrap();
    konvert_crypto::keyfile::write_recipient_key(&kept, &new_secret).unwrap();
    // The old key also sits wrapped for a specialist's token at the loader: that goes too.
    let specialist = konvert_crypto::SigningKey::generate().unwrap();
    let wrapped_old = dir.path().join("SP-1-old.loader-key");
    let wrapped_new = dir.path().join("SP-1-new.loader-key");
    let wrap = konvert_crypto::loader_key::wrap;
    std::fs::write(&wrapped_old, wrap(&old_secret, "SP-1", &specialist).unwrap()).unwrap();
    std::fs::write(&wrapped_new, wrap(&new_secret, "SP-1", &specialist).unwrap()).unwrap();
    let out = ok(&keys(&[
        "retire-center-keys",
        "--authority",
        a,
        "--key-file",
        old_file.to_str().unwrap(),
        "--key-file",
        kept.to_str().unwrap(),
        "--key-file",
        wrapped_old.to_str().unwrap(),
        "--key-file",
        wrapped_new.to_str().unwrap(),
    ]));
    assert!(out.contains("1 center key(s) marked destroyed"), "{out}");
    assert!(!old_file.exists(), "the retired private key is gone");
    assert!(!wrapped_old.exists(), "the retired key wrapped for the loader is gone");
    assert!(
        kept.exists() && wrapped_new.exists(),
        "keys that were not retired are kept"
    );
    ok(&keys(&[
        "publish",
        "--authority",
        a,
        "--officer",
        "Орлов",
        "--pin-env",
        "PIN",
    ]));
    let bytes = std::fs::read(auth.join("published/registry-v1.bin")).unwrap();
    let body = SignedRegistry::from_bytes(&bytes).unwrap().decode_body().unwrap();
    assert_eq!(body.active_center_key(), Some(&new));
    assert!(!body.center_key_opens(&old_secret.public_key(), now()));
    let public = std::fs::read_to_string(auth.join("audit.pub")).unwrap();
    let log = auth.join("audit.log");
    let out = ok(&keys(&[
        "audit",
        "verify",
        "--log",
        log.to_str().unwrap(),
        "--key",
        public.trim(),
    ]));
    assert!(out.contains("is intact: 4 entries"), "{out}");
    let shown = ok(&keys(&["audit", "show", "--log", log.to_str().unwrap()]));
    assert!(
        shown.contains("center_key.rotate") && shown.contains("center_key.retire"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("private key files destroyed: {}", old_file.display())),
        "{shown}"
    );
}

fn audit(args: &[&str]) -> Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    keys(&all)
}

#[test]
fn the_officers_audit_log_records_every_command_and_names_an_edited_entry() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("authority");
    let a = auth.to_str().unwrap();
    let center = RecipientSecretKey::generate().unwrap().public_key().to_string();
    let out = ok(&keys(&[
        "init-authority",
        "--dir",
        a,
        "--officer",
        "Орлов",
        "--threshold",
        "1",
        "--center-key",
        &center,
        "--pin-env",
        "PIN",
        "--insecure-fast-kdf",
    ]));
    let public = std::fs::read_to_string(auth.join("audit.pub"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(out.contains(&public), "{out}");
    let token = dir.path().join("T1.token");
    ok(&keys(&[
        "issue-token",
        "--out",
        token.to_str().unwrap(),
        "--token-id",
        "T1",
        "--holder",
        "Иванов И. И.",
        "--authority",
        a,
        "--pin-env",
        "PIN",
        "--insecure-fast-kdf",
    ]));
    let moved = status(&auth, "T1", "received-by-center", &[]);
    ok(&moved);
    // Each command hands the officers the anchor of its checkpoint.
    let told = String::from_utf8_lossy(&moved.stderr);
    assert!(
        told.contains("audit log: entry 3 recorded; anchor: seq=3 head="),
        "{told}"
    );
    ok(&keys(&[
        "publish",
        "--authority",
        a,
        "--officer",
        "Орлов",
        "--pin-env",
        "PIN",
    ]));

    let log = auth.join("audit.log");
    let l = log.to_str().unwrap();
    let out = ok(&audit(&["verify", "--log", l, "--key", &public]));
    assert!(out.contains("is intact: 4 entries"), "{out}");
    assert!(out.contains("the newest checkpoint covers entry 4"), "{out}");

    let shown = ok(&audit(&["show", "--log", l, "--json"]));
    let v: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
    let entries: Vec<_> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "entry")
        .collect();
    let actions: Vec<_> = entries.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["authority.init", "token.issue", "token.status", "registry.publish"]
    );
    assert_eq!(entries[2]["detail"], "loaded -> received-by-center");

    // Another key does not vouch for the log.
    let stranger = konvert_crypto::SigningKey::generate()
        .unwrap()
        .verifying_key()
        .to_string();
    let e = err(&audit(&["verify", "--log", l, "--key", &stranger]));
    assert!(e.contains("not signed by a trusted key"), "{e}");

    // Edit entry 3's bytes in place: the CLI names it.
    let clean = std::fs::read(&log).unwrap();
    let mut bytes = clean.clone();
    let at = bytes
        .windows(b"received-by-center".len())
        .position(|w| w == b"received-by-center")
        .unwrap();
    bytes[at..at + 6].copy_from_slice(b"issued");
    std::fs::write(&log, &bytes).unwrap();
    let e = err(&audit(&["verify", "--log", l, "--key", &public]));
    assert!(e.contains("NOT intact: entry 3 was edited"), "{e}");
    assert!(e.contains("action token.status on \"T1\""), "{e}");
    let out = audit(&["verify", "--log", l, "--key", &public, "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["finding"]["kind"].as_str(), v["finding"]["seq"].as_u64()),
        (Some("edited"), Some(3))
    );
    // The writer refuses to append to the edited log, so the next command changes nothing.
    let e = err(&status(&auth, "T1", "lost", &["--yes"]));
    assert!(
        e.contains("nothing was changed") && e.contains("entry 3 was edited"),
        "{e}"
    );
    let draft = ok(&keys(&["show", "--authority", a, "--json"]));
    assert!(draft.contains("\"status\":\"received-by-center\""), "{draft}");

    // Cutting off the tail is caught by the head file.
    let (_, entry4) = clean.split_at(
        konvert_crypto::audit::parse(&clean)
            .records
            .iter()
            .find(|r| matches!(&r.record, konvert_crypto::audit::Record::Entry { entry, .. } if entry.seq == 4))
            .unwrap()
            .offset as usize,
    );
    std::fs::write(&log, &clean[..clean.len() - entry4.len()]).unwrap();
    let e = err(&audit(&["verify", "--log", l, "--key", &public]));
    assert!(
        e.contains("cut short: it ends at entry 3, but a signed checkpoint covers 4"),
        "{e}"
    );
}

#[test]
fn issue_token_generates_the_member_key_on_a_hardware_token() {
    let module = konvert_crypto::pkcs11::module_path_from_env();
    if !module.is_file() {
        eprintln!("SKIPPED: SoftHSM2 not installed (install the Debian package softhsm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = konvert_crypto::pkcs11::write_softhsm_config(dir.path()).unwrap();
    common::init_softhsm_token(&conf, "GEK-17");

    let auth = dir.path().join("authority");
    let a = auth.to_str().unwrap();
    let center = RecipientSecretKey::generate().unwrap().public_key().to_string();
    ok(&keys(&[
        "init-authority",
        "--dir",
        a,
        "--officer",
        "Орлов",
        "--threshold",
        "1",
        "--center-key",
        &center,
        "--pin-env",
        "PIN",
        "--insecure-fast-kdf",
    ]));
    let m = module.to_str().unwrap();
    let issue = |token_id: &str| {
        Command::new(KONVERT)
            .args(["keys", "issue-token", "--pkcs11-module", m, "--pkcs11-token", "GEK-17"])
            .args(["--token-id", token_id, "--holder", "Иванов И. И.", "--authority", a])
            .args(["--pin-env", "PIN"])
            .env("PIN", "246813")
            .env("SOFTHSM2_CONF", &conf)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = ok(&issue("HW-1"));
    assert!(
        out.contains("generated on hardware token") && out.contains("token_label = \"GEK-17\""),
        "{out}"
    );
    let draft = Workspace::open(&auth).unwrap().draft().unwrap();
    let record = draft.tokens.iter().find(|t| t.token_id == "HW-1").unwrap();
    assert_eq!(record.status, TokenStatus::Loaded);
    assert!(out.contains(&record.public.to_string()), "{out}");
    // The same key label again is refused, and nothing more is recorded.
    let e = err(&issue("HW-2"));
    assert!(e.contains("already holds a key"), "{e}");
    assert_eq!(Workspace::open(&auth).unwrap().draft().unwrap().tokens.len(), 1);
    // --out and --pkcs11-module exclude each other.
    let e = err(&keys(&[
        "issue-token",
        "--out",
        "x.token",
        "--pkcs11-module",
        m,
        "--pkcs11-token",
        "GEK-17",
        "--token-id",
        "HW-3",
        "--holder",
        "h",
    ]));
    assert!(e.contains("cannot be used with"), "{e}");

    // A specialist's hardware token gets an X25519 key for the loader's key too, and the
    // audit log names it.
    common::init_softhsm_token(&conf, "SP-1");
    let out = ok(&Command::new(KONVERT)
        .args([
            "keys",
            "issue-token",
            "--pkcs11-module",
            m,
            "--pkcs11-token",
            "SP-1",
            "--role",
            "specialist",
        ])
        .args([
            "--token-id",
            "SP-1",
            "--holder",
            "Смирнова О. Л.",
            "--authority",
            a,
            "--pin-env",
            "PIN",
        ])
        .env("PIN", "246813")
        .env("SOFTHSM2_CONF", &conf)
        .stdin(Stdio::null())
        .output()
        .unwrap());
    assert!(out.contains("X25519 key \"konvert-loader\""), "{out}");
    let shown = ok(&keys(&[
        "audit",
        "show",
        "--log",
        auth.join("audit.log").to_str().unwrap(),
    ]));
    assert!(shown.contains("loader X25519 key"), "{shown}");

    // The key on the token signs what the registry's public key verifies. SOFTHSM2_CONF
    // is read by no other test in this binary.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let hw = konvert_crypto::pkcs11::Pkcs11Module::load(&module).unwrap();
    // The registry draft names the X25519 key generated on the specialist's token: the
    // only key `loader wrap-key` will wrap to for SP-1.
    let on_token = hw
        .agreement_public("SP-1", konvert_crypto::pkcs11::LOADER_KEY_LABEL)
        .unwrap();
    let draft = Workspace::open(&auth).unwrap().draft().unwrap();
    assert_eq!(draft.agreement_key("SP-1"), Some(&on_token));
    assert_eq!(draft.agreement_key("GEK-17"), None);
    // A token issued before issue-token recorded the key (a format-1 draft): the officers
    // record it with the token in hand, and only from the token the draft lists.
    let ws = Workspace::open(&auth).unwrap();
    let mut old = draft.clone();
    old.agreement_keys.clear();
    ws.save_draft(&old).unwrap();
    let record_from = |label: &str, token_id: &str| {
        Command::new(KONVERT)
            .args(["keys", "record-loader-key", "--authority", a, "--token-id", token_id])
            .args(["--pkcs11-module", m, "--pkcs11-token", label])
            .env("SOFTHSM2_CONF", &conf)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let e = err(&record_from("GEK-17", "SP-1"));
    assert!(e.contains("not this token"), "{e}");
    let e = err(&record_from("SP-1", "NOT-ISSUED"));
    assert!(e.contains("not in the registry draft"), "{e}");
    assert_eq!(ws.draft().unwrap().agreement_key("SP-1"), None);
    let out = ok(&record_from("SP-1", "SP-1"));
    assert!(out.contains("recorded in the registry draft"), "{out}");
    assert_eq!(ws.draft().unwrap().agreement_key("SP-1"), Some(&on_token));
    let signer = hw.login("GEK-17", "konvert-member", "246813").unwrap();
    use konvert_crypto::MemberSigner;
    let sig = signer.sign(konvert_crypto::Domain::Envelope, b"digest").unwrap();
    record
        .public
        .verify(konvert_crypto::Domain::Envelope, b"digest", &sig)
        .unwrap();
}

#[test]
fn station_certificates_enrolled_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let center = dir.path().join("center");
    let (init, _key) = konvert_center::provision::init_center_with_key(
        &center,
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let c = center.to_str().unwrap();
    for site in ["0101", "0202"] {
        let out_dir = dir.path().join(site);
        let printed = ok(&keys(&[
            "enroll-station",
            "--center",
            c,
            "--site",
            site,
            "--address",
            "127.0.0.1:4433",
            "--out",
            out_dir.to_str().unwrap(),
        ]));
        assert!(printed.contains("certificate serial"), "{printed}");
        assert!(out_dir.join("station.key").is_file());
    }
    let listed: serde_json::Value = serde_json::from_str(&ok(&keys(&["stations", "--center", c, "--json"]))).unwrap();
    let stations = listed["stations"].as_array().unwrap();
    assert_eq!(stations.len(), 2);
    assert!(stations.iter().all(|s| s["status"] == "valid"));
    assert_eq!(listed["crl"]["revoked"], 0);

    // Without a terminal, revoking needs --yes; nothing changes.
    let refused = err(&keys(&["revoke-station", "--center", c, "--site", "0101"]));
    assert!(refused.contains("confirm with --yes"), "{refused}");
    let none = err(&keys(&["revoke-station", "--center", c]));
    assert!(none.contains("--site"), "{none}");
    assert!(konvert_center::revocation::load_crl(&init.config)
        .unwrap()
        .revoked
        .is_empty());

    let revoked: serde_json::Value = serde_json::from_str(&ok(&keys(&[
        "revoke-station",
        "--center",
        c,
        "--site",
        "0101",
        "--reason",
        "laptop stolen",
        "--yes",
        "--json",
    ])))
    .unwrap();
    assert_eq!(revoked["revoked"][0]["site"], "0101");
    assert_eq!(revoked["revoked"][0]["reason"], "laptop stolen");
    assert_eq!(revoked["crl"]["revoked"], 1);
    let again = err(&keys(&["revoke-station", "--center", c, "--site", "0101", "--yes"]));
    assert!(again.contains("already revoked"), "{again}");

    // By serial, as openssl prints it (upper case with colons).
    let serial = stations[1]["serial"].as_str().unwrap();
    let openssl_style = hex::decode(serial)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    ok(&keys(&[
        "revoke-station",
        "--center",
        c,
        "--serial",
        &openssl_style,
        "--yes",
    ]));
    let text = ok(&keys(&["stations", "--center", c]));
    assert!(text.contains("2 station certificate(s), 2 revoked"), "{text}");
    assert!(text.contains("laptop stolen"), "{text}");

    let renewed = ok(&keys(&["renew-crl", "--center", c]));
    assert!(renewed.contains("2 revoked"), "{renewed}");
    assert_eq!(
        konvert_center::revocation::load_crl(&init.config)
            .unwrap()
            .revoked
            .len(),
        2
    );
}

#[test]
fn relays_enrolled_with_the_sites_they_carry_and_sites_sent_through_them() {
    let dir = tempfile::tempdir().unwrap();
    let center = dir.path().join("center");
    konvert_center::provision::init_center_with_key(&center, "center.konvert", "127.0.0.1:0".parse().unwrap(), None)
        .unwrap();
    let c = center.to_str().unwrap();
    let relay_dir = dir.path().join("relay");
    let printed = ok(&keys(&[
        "enroll-relay",
        "--center",
        c,
        "--relay",
        "mouo-01",
        "--carry",
        "0101",
        "--carry",
        "0102",
        "--listen",
        "127.0.0.1:4434",
        "--address",
        "127.0.0.1:4433",
        "--out",
        relay_dir.to_str().unwrap(),
    ]));
    assert!(printed.contains("mouo-01.relay.konvert"), "{printed}");
    let cfg = konvert_edge::relay::RelayConfig::load(&relay_dir.join("relay.toml")).unwrap();
    assert_eq!(cfg.carry, ["0101", "0102"]);
    assert_eq!(cfg.upstream.server_name, "center.konvert");
    assert!(relay_dir.join("relay-server.key").is_file());

    // A site sending through the relay checks the relay's certificate name.
    let site_dir = dir.path().join("0101");
    ok(&keys(&[
        "enroll-station",
        "--center",
        c,
        "--site",
        "0101",
        "--address",
        "127.0.0.1:4434",
        "--via-relay",
        "mouo-01",
        "--out",
        site_dir.to_str().unwrap(),
    ]));
    let site_toml = std::fs::read_to_string(site_dir.join("site.toml")).unwrap();
    assert!(
        site_toml.contains("server_name = \"mouo-01.relay.konvert\""),
        "{site_toml}"
    );

    let listed: serde_json::Value = serde_json::from_str(&ok(&keys(&["stations", "--center", c, "--json"]))).unwrap();
    let stations = listed["stations"].as_array().unwrap();
    assert_eq!(stations[0]["site"], "mouo-01");
    assert_eq!(stations[0]["carries"], serde_json::json!(["0101", "0102"]));
    assert_eq!(stations[1]["carries"], serde_json::json!([]));
    let text = ok(&keys(&["stations", "--center", c]));
    assert!(
        text.contains("relay mouo-01") && text.contains("carries 0101, 0102"),
        "{text}"
    );

    // A site's station id is no relay id, and a relay carries at least one site.
    let taken = err(&keys(&[
        "enroll-relay",
        "--center",
        c,
        "--relay",
        "0101",
        "--carry",
        "0102",
        "--listen",
        "127.0.0.1:4434",
        "--address",
        "127.0.0.1:4433",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]));
    assert!(taken.contains("site's station"), "{taken}");
    let relay_id = err(&keys(&[
        "enroll-station",
        "--center",
        c,
        "--site",
        "mouo-01",
        "--address",
        "127.0.0.1:4433",
        "--out",
        dir.path().join("z").to_str().unwrap(),
    ]));
    assert!(relay_id.contains("relay's id"), "{relay_id}");
    let nothing = err(&keys(&[
        "enroll-relay",
        "--center",
        c,
        "--relay",
        "mouo-02",
        "--listen",
        "127.0.0.1:4434",
        "--address",
        "127.0.0.1:4433",
        "--out",
        dir.path().join("y").to_str().unwrap(),
    ]));
    assert!(nothing.contains("--carry"), "{nothing}");
}

#[test]
fn audit_verify_catches_a_rolled_back_log_and_show_escapes_control_characters() {
    use konvert_crypto::audit::{head_path, parse, AuditAction, AuditLog, Record};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let l = log.to_str().unwrap();
    let key = konvert_crypto::SigningKey::from_seed(&[3; 32]).unwrap();
    let public = key.verifying_key().to_string();
    let writer = AuditLog::open(&log, Some(konvert_crypto::SigningKey::from_seed(&[3; 32]).unwrap()), 3).unwrap();
    for i in 1..=6 {
        writer
            .append("center", AuditAction::PacketAccept, &format!("p{i}"), "accepted")
            .unwrap();
    }
    // An import's statement as the operator typed it: a newline that would forge a line.
    let forged = "drive from site 0101\n     8  2026-06-01 10:02 UTC  packet.accept  center  forged";
    writer
        .append("operator", AuditAction::Other("reserve.import".into()), "drive", forged)
        .unwrap();
    drop(writer);

    let out = ok(&audit(&["verify", "--log", l, "--key", &public]));
    assert!(out.contains("is intact: 7 entries"), "{out}");
    let anchor = out
        .lines()
        .find_map(|line| line.strip_prefix("anchor: "))
        .unwrap_or_else(|| panic!("no anchor line: {out}"))
        .to_owned();
    assert!(anchor.starts_with("seq=7 head="), "{anchor}");

    let shown = ok(&audit(&["show", "--log", l]));
    assert_eq!(shown.lines().filter(|l| l.contains("forged")).count(), 1, "{shown}");
    assert!(shown.contains(r"drive from site 0101\n     8"), "{shown}");

    // Roll the log and its head file back to checkpoint 3, as whoever can write the
    // folder could: it looks intact, but not against the anchor kept elsewhere.
    let bytes = std::fs::read(&log).unwrap();
    let parsed = parse(&bytes);
    let i = parsed
        .records
        .iter()
        .position(|r| matches!(&r.record, Record::Checkpoint(cp) if cp.seq == 3))
        .unwrap();
    let Record::Checkpoint(cp3) = &parsed.records[i].record else {
        unreachable!()
    };
    let end = parsed.records[i + 1].offset as usize;
    std::fs::write(&log, &bytes[..end]).unwrap();
    let mut head = b"KNVRTAHD".to_vec();
    head.extend_from_slice(&postcard::to_allocvec(cp3).unwrap());
    std::fs::write(head_path(&log), head).unwrap();
    ok(&audit(&["verify", "--log", l, "--key", &public]));
    let e = err(&audit(&["verify", "--log", l, "--key", &public, "--anchor", &anchor]));
    assert!(
        e.contains("rolled back") && e.contains("covers 3 entries, but 7"),
        "{e}"
    );
    let e = err(&audit(&[
        "verify",
        "--log",
        l,
        "--key",
        &public,
        "--expect-at-least",
        "7",
    ]));
    assert!(e.contains("rolled back"), "{e}");
    ok(&audit(&[
        "verify",
        "--log",
        l,
        "--key",
        &public,
        "--expect-at-least",
        "3",
    ]));
}

#[test]
fn enrolling_into_a_sites_folder_is_refused_unless_forced_and_names_the_old_serial() {
    let dir = tempfile::tempdir().unwrap();
    let center = dir.path().join("center");
    konvert_center::provision::init_center_with_key(&center, "center.konvert", "127.0.0.1:0".parse().unwrap(), None)
        .unwrap();
    let c = center.to_str().unwrap();
    let out = dir.path().join("site-0101");
    let o = out.to_str().unwrap();
    let enroll = |site: &str, extra: &[&str]| {
        let mut args = vec![
            "enroll-station",
            "--center",
            c,
            "--site",
            site,
            "--address",
            "127.0.0.1:4433",
            "--out",
            o,
        ];
        args.extend_from_slice(extra);
        keys(&args)
    };
    ok(&enroll("0101", &[]));
    let key = std::fs::read(out.join("station.key")).unwrap();
    let cert = std::fs::read_to_string(out.join("station.pem")).unwrap();
    let toml = std::fs::read_to_string(out.join("site.toml")).unwrap();
    let old_serial = konvert_replication::pki::Serial::of_cert_pem(&cert)
        .unwrap()
        .to_string();

    // Another site into 0101's folder: refused, nothing changed, the old station named.
    let refused = err(&enroll("0303", &[]));
    assert!(refused.contains("already holds a station's files"), "{refused}");
    assert!(refused.contains("station 0101"), "{refused}");
    assert!(refused.contains(&old_serial), "{refused}");
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(std::fs::read(out.join("station.key")).unwrap(), key);
    assert_eq!(std::fs::read_to_string(out.join("station.pem")).unwrap(), cert);
    assert_eq!(std::fs::read_to_string(out.join("site.toml")).unwrap(), toml);
    // Only the one certificate was issued.
    let listed: serde_json::Value = serde_json::from_str(&ok(&keys(&["stations", "--center", c, "--json"]))).unwrap();
    assert_eq!(listed["stations"].as_array().unwrap().len(), 1);

    // A relay into the same folder is refused the same way.
    let relay = err(&keys(&[
        "enroll-relay",
        "--center",
        c,
        "--relay",
        "mouo-01",
        "--carry",
        "0101",
        "--listen",
        "127.0.0.1:4434",
        "--address",
        "127.0.0.1:4433",
        "--out",
        o,
    ]));
    assert!(relay.contains("already holds a station's files"), "{relay}");

    // --force replaces them and names the serial it replaced.
    let forced = ok(&enroll("0303", &["--force"]));
    assert!(
        forced.contains(&format!(
            "replaced the files of station 0101, certificate serial {old_serial}"
        )),
        "{forced}"
    );
    assert!(forced.contains("revoke-station"), "{forced}");
    assert!(std::fs::read_to_string(out.join("site.toml"))
        .unwrap()
        .contains("site = \"0303\""));
    assert_ne!(std::fs::read(out.join("station.key")).unwrap(), key);
}

#[test]
fn a_specialists_token_file_takes_a_passphrase_and_new_files_use_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sp.token");
    let issue = |pin_var: &str| {
        let o = out.to_str().unwrap();
        let mut args = vec![
            "issue-token",
            "--out",
            o,
            "--token-id",
            "SP-7",
            "--holder",
            "Смирнова О. Л.",
        ];
        args.extend(["--role", "specialist", "--pin-env", pin_var, "--insecure-fast-kdf"]);
        Command::new(KONVERT)
            .arg("keys")
            .args(&args)
            .env("PIN", "246813")
            .env("PASSPHRASE", "берёза у реки 42")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let e = err(&issue("PIN"));
    assert!(e.contains("passphrase of at least 12 characters"), "{e}");
    assert!(!out.exists());
    ok(&issue("PASSPHRASE"));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[8..10], &[2, 0], "version 2: Argon2id");
    // An absurd memory cost is refused, and the PBKDF2 iteration flag is gone.
    let e = err(&keys(&[
        "issue-token",
        "--out",
        dir.path().join("m.token").to_str().unwrap(),
        "--token-id",
        "T9",
        "--holder",
        "h",
        "--pin-env",
        "PIN",
        "--kdf-memory-mib",
        "8",
    ]));
    assert!(e.contains("64 to 1024 MiB"), "{e}");
    let e = err(&keys(&[
        "issue-token",
        "--out",
        dir.path().join("m.token").to_str().unwrap(),
        "--token-id",
        "T9",
        "--holder",
        "h",
        "--pin-env",
        "PIN",
        "--kdf-iterations",
        "1",
    ]));
    assert!(e.contains("--kdf-iterations"), "{e}");
}
