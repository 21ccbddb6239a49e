#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The loader's answers signed by a center specialist's hardware token (SoftHSM2),
//! through the real command: the officers issue the token, `konvert center loader answers
//! export` signs with the key that never leaves it, and the batch on the drive verifies
//! against the registry; a token the registry does not list signs nothing. Where SoftHSM2
//! is not installed the test says SKIPPED and passes.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use konvert_center::answer_file::{AnswerBatch, EXTENSION};
use konvert_crypto::pkcs11::{module_path_from_env, Pkcs11Module, IDENTITY_KEY_LABEL};
use konvert_crypto::registry::TokenRole;
use konvert_devtools::quick_authority::QuickAuthority;
use konvert_replication::{AnswerOutcome, PacketAnswer};

const KONVERT: &str = env!("CARGO_BIN_EXE_konvert");
const PIN: &str = common::TOKEN_PIN;

fn run(conf: &Path, args: &[&str]) -> Output {
    Command::new(KONVERT)
        .args(args)
        .env("PIN", PIN)
        .env("SOFTHSM2_CONF", conf)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn answers_signed_on_a_specialists_hardware_token_verify_and_a_strangers_token_signs_nothing() {
    let module = module_path_from_env();
    if !module.is_file() {
        eprintln!("SKIPPED: SoftHSM2 not installed (install the Debian package softhsm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = konvert_crypto::pkcs11::write_softhsm_config(dir.path()).unwrap();
    common::init_softhsm_token(&conf, "SP-HW");
    common::init_softhsm_token(&conf, "STRANGER");
    // SOFTHSM2_CONF is read by no other test in this binary.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let hw = Pkcs11Module::load(&module).unwrap();
    let identity = hw.generate_member_key("SP-HW", PIN, IDENTITY_KEY_LABEL).unwrap();
    hw.generate_member_key("STRANGER", PIN, IDENTITY_KEY_LABEL).unwrap();

    let center_dir = dir.path().join("center");
    let init = konvert_center::provision::init_center(&center_dir, "center.test", "127.0.0.1:0".parse().unwrap(), None)
        .unwrap();
    let now = konvert_edge::cli::now_unix_ms();
    let mut officers = QuickAuthority::before_center_key(&init.config, now).unwrap();
    officers
        .issue_key_as(
            "SP-0003",
            "Смирнова О. Л. (РЦОИ)",
            identity,
            TokenRole::CenterSpecialist,
            &["0101"],
            &["2026-06-01"],
            now,
        )
        .unwrap();
    let body = officers.publish(now).unwrap().decode_body().unwrap();
    let config = init.config_path.to_str().unwrap();
    let imported = run(
        &conf,
        &[
            "center",
            "registry",
            "import",
            "--config",
            config,
            "--file",
            init.config.registry.to_str().unwrap(),
        ],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let answers = [PacketAnswer {
        site: "0101".into(),
        packet_id: "0101-2026-06-01-ege-0007-blanks".into(),
        version: 1,
        digest: [3; 32],
        outcome: AnswerOutcome::Loaded,
        pages: 40,
        answered_at_unix_ms: now,
    }];
    let source = dir.path().join("answers.json");
    std::fs::write(&source, serde_json::to_vec(&answers).unwrap()).unwrap();
    let m = module.to_str().unwrap();
    let export = |label: &str, drive: &Path| {
        std::fs::create_dir_all(drive).unwrap();
        run(
            &conf,
            &[
                "center",
                "loader",
                "answers",
                "export",
                "--config",
                config,
                "--answers",
                source.to_str().unwrap(),
                "--to",
                drive.to_str().unwrap(),
                "--pkcs11-module",
                m,
                "--pkcs11-token",
                label,
                "--pin-env",
                "PIN",
            ],
        )
    };

    let drive = dir.path().join("drive");
    let out = export("SP-HW", &drive);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("1 answer(s) signed by token SP-0003"), "{said}");
    let file = std::fs::read_dir(&drive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(EXTENSION))
        .unwrap();
    let batch = AnswerBatch::decode(&std::fs::read(&file).unwrap(), "batch").unwrap();
    assert_eq!(batch.center, init.receipt_public.key_id(), "for this center");
    assert_eq!(batch.answers[0].answer, answers[0]);
    assert_eq!(batch.answers[0].verify(&body).unwrap(), "SP-0003");

    let elsewhere = dir.path().join("stranger-drive");
    let out = export("STRANGER", &elsewhere);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not in key registry"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing written");
}
