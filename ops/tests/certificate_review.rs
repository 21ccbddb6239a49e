#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The officers review the token certificate data a region received from ФИС against their
//! registry: matches, another key, unknown tokens are told apart, and the signed registry
//! (published and draft) is byte for byte what it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use konvert_crypto::RecipientSecretKey;
use konvert_ops::authority::Workspace;
use konvert_records::mirror_rows::{CertificateImport, TokenCertificateRow};

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

/// Every file under `dir` but the audit log, with its bytes.
fn snapshot(dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            snapshot(&e.path(), out);
        } else if !e.file_name().to_string_lossy().contains("audit") {
            out.insert(e.path().display().to_string(), std::fs::read(e.path()).unwrap());
        }
    }
}

fn cert(token_id: &str, key: &str) -> TokenCertificateRow {
    TokenCertificateRow {
        token_id: token_id.into(),
        holder: "Иванов И. И.".into(),
        public_key_hex: key.into(),
        valid_from: "2026-01-01".into(),
        valid_until: "2027-01-01".into(),
    }
}

#[test]
fn a_review_of_fis_certificates_tells_them_apart_and_leaves_the_registry_as_it_was() {
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
    init.extend_from_slice(&["--threshold", "2", "--center-key", &center]);
    init.extend_from_slice(&fast);
    ok(&keys(&init));
    let token = dir.path().join("T1.token");
    let mut issue = vec!["issue-token", "--out", token.to_str().unwrap(), "--token-id", "T1"];
    issue.extend_from_slice(&["--holder", "Иванов И. И.", "--authority", a]);
    issue.extend_from_slice(&fast);
    ok(&keys(&issue));
    let publish = [
        "publish",
        "--authority",
        a,
        "--officer",
        "Орлов",
        "--officer",
        "Белова",
        "--pin-env",
        "PIN",
    ];
    ok(&keys(&publish));
    assert!(auth.join("published/registry.bin").exists());

    let t1 = Workspace::open(&auth).unwrap().draft().unwrap().tokens[0]
        .public
        .to_string();
    let import = CertificateImport {
        region: "76".into(),
        certificates: vec![
            cert("T1", &t1),
            cert("T1", &"ab".repeat(32)),
            cert("T9", &"cd".repeat(32)),
        ],
    };
    let file = dir.path().join("certificates.toml");
    std::fs::write(&file, toml::to_string(&import).unwrap()).unwrap();

    let mut before = BTreeMap::new();
    snapshot(&auth, &mut before);
    let out = ok(&keys(&[
        "review-certificates",
        "--authority",
        a,
        file.to_str().unwrap(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("3 token certificate(s) from ФИС for region 76"),
        "{out}"
    );
    assert!(
        lines[1].contains("T1") && lines[1].contains("matches the registry"),
        "{out}"
    );
    assert!(lines[2].contains("T1") && lines[2].contains("DIFFERS"), "{out}");
    assert!(
        lines[3].contains("T9") && lines[3].contains("not in the registry"),
        "{out}"
    );
    let mut after = BTreeMap::new();
    snapshot(&auth, &mut after);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    assert!(before == after, "the registry's files are unchanged");
    assert!(before.keys().any(|k| k.ends_with("published/registry.bin")));
    assert!(before.keys().any(|k| k.ends_with("draft.registry")));

    // Malformed certificates are flagged invalid, never written as matching, even for a
    // token the registry has with that key.
    let with = |from: &str, until: &str, key: &str| TokenCertificateRow {
        valid_from: from.into(),
        valid_until: until.into(),
        ..cert("T1", key)
    };
    let import = CertificateImport {
        region: "76".into(),
        certificates: vec![
            with("2026-01-01", "2027-01-01", "zz"),
            with("2026-02-30", "2027-01-01", &t1),
            with("2027-01-01", "2026-01-01", &t1),
            with("2026-01-01", "2027-01-01", &t1),
        ],
    };
    std::fs::write(&file, toml::to_string(&import).unwrap()).unwrap();
    let out = ok(&keys(&[
        "review-certificates",
        "--authority",
        a,
        file.to_str().unwrap(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].contains("INVALID") && lines[1].contains("public_key_hex"),
        "{out}"
    );
    assert!(lines[2].contains("INVALID") && lines[2].contains("valid_from"), "{out}");
    assert!(
        lines[3].contains("INVALID") && lines[3].contains("before valid_from"),
        "{out}"
    );
    assert!(lines[4].contains("matches the registry"), "{out}");
    assert_eq!(out.matches("matches the registry").count(), 1, "{out}");
    let import = CertificateImport {
        region: "abc".into(),
        certificates: vec![cert("T1", &t1)],
    };
    std::fs::write(&file, toml::to_string(&import).unwrap()).unwrap();
    let out = ok(&keys(&[
        "review-certificates",
        "--authority",
        a,
        file.to_str().unwrap(),
    ]));
    assert!(
        out.contains("INVALID") && out.contains("region") && !out.contains("matches"),
        "{out}"
    );

    // A file that is not a certificate file is refused with what it is.
    std::fs::write(&file, "region = \"76\"\nfoo = 1\n").unwrap();
    let out = keys(&["review-certificates", "--authority", a, file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a certificate file"));
}
