#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `konvert-edge seal` with the member key on a PKCS#11 token (SoftHSM2 in a temporary
//! folder): the envelope verifies with the token's public key; a wrong PIN seals nothing.
//! Where SoftHSM2 is not installed the test says SKIPPED and passes.

use std::process::Command;

use konvert_crypto::envelope;
use konvert_crypto::pkcs11::{module_path_from_env, Pkcs11Module};
use konvert_crypto::{KeyId, RecipientSecretKey};
use konvert_replication::Outbox;

const EDGE: &str = env!("CARGO_BIN_EXE_konvert-edge");
const PIN: &str = "493817";

#[test]
fn a_room_is_sealed_with_the_key_on_the_hardware_token() {
    let module = module_path_from_env();
    if !module.is_file() {
        eprintln!("SKIPPED: SoftHSM2 not installed (install the Debian package softhsm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let conf = konvert_crypto::pkcs11::write_softhsm_config(root).unwrap();
    // SOFTHSM2_CONF is read by no other test in this binary.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let hsm = Pkcs11Module::load(&module).unwrap();
    hsm.init_token("GEK-21", "12345678", PIN).unwrap();
    let public = hsm.generate_member_key("GEK-21", PIN, "konvert-member").unwrap();

    for f in ["ca.pem", "station.pem", "station.key"] {
        std::fs::write(root.join(f), "x").unwrap();
    }
    let center = RecipientSecretKey::generate().unwrap();
    let receipt = konvert_crypto::SigningKey::generate().unwrap().verifying_key();
    let toml = root.join("site.toml");
    std::fs::write(
        &toml,
        format!(
            "site = \"0101\"\ntime_zone = \"Europe/Moscow\"\ndata_dir = \"data\"\n\
             [pkcs11]\nmodule = \"{}\"\ntoken_label = \"GEK-21\"\n\
             [center]\naddress = \"127.0.0.1:4433\"\nserver_name = \"center.konvert\"\n\
             ca_cert = \"ca.pem\"\nstation_cert = \"station.pem\"\nstation_key = \"station.key\"\n\
             recipient_key = \"{}\"\nreceipt_key = \"{receipt}\"\n",
            module.display(),
            center.public_key()
        ),
    )
    .unwrap();
    let room = root.join("room");
    std::fs::create_dir(&room).unwrap();
    // One real scan (a form page): `seal` refuses files that are not scans in a blanks packet.
    let room_id: konvert_exam::RoomId = "0012".parse().unwrap();
    let plan = konvert_exam::scan::synthetic_plan(
        &"0101".parse().unwrap(),
        "2026-06-01".parse().unwrap(),
        konvert_exam::ExamKind::Ege,
        &[(&room_id, 1)],
        0,
    );
    let pages = konvert_exam::scan::room_pages(&plan, &room_id, 0);
    let job = konvert_exam::scan::ScanJob {
        format: konvert_exam::scan::ScanFormat::TiffG4,
        pages_per_file: 1,
        degrade: false,
        dpi: 200,
        seed: 1,
    };
    konvert_exam::scan::write_pages(&pages[..1], &room, "0001", job).unwrap();
    let seal = |pin: &str| {
        Command::new(EDGE)
            .args([
                "seal",
                "--config",
                toml.to_str().unwrap(),
                "--room-dir",
                room.to_str().unwrap(),
            ])
            .args(["--room", "0012", "--date", "2026-06-01", "--pin-env", "KONVERT_PIN"])
            .env("KONVERT_PIN", pin)
            .env("SOFTHSM2_CONF", &conf)
            .env("KONVERT_LOG", "error")
            .output()
            .unwrap()
    };

    let wrong = seal("000000");
    assert!(!wrong.status.success());
    let e = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        e.contains("wrong PIN") && e.contains("GEK-21") && !e.contains("000000"),
        "{e}"
    );

    let out = seal(PIN);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signed by token GEK-21"));

    let outbox = Outbox::open(&root.join("data")).unwrap();
    let pending = outbox.pending().unwrap();
    assert_eq!(pending.len(), 1, "the wrong PIN sealed nothing");
    let bytes = std::fs::read(outbox.envelope_path(&pending[0])).unwrap();
    let trusted = |id: &KeyId| (*id == public.key_id()).then_some(public);
    let verified = envelope::verify(std::io::Cursor::new(&bytes), &trusted).unwrap();
    assert_eq!(verified.signer(), &public);
}
