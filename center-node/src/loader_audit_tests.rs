use konvert_crypto::audit::{self, Record};

use super::*;
use crate::test_packets::{TestPacket, TestPacketRecord};

fn entries(cfg: &CenterConfig) -> Vec<audit::AuditEntry> {
    let log = std::fs::read(cfg.data_dir.join(AUDIT_LOG)).unwrap();
    audit::parse(&log)
        .records
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Entry { entry, .. } => Some(entry),
            Record::Checkpoint(_) => None,
        })
        .collect()
}

#[test]
fn openings_and_wraps_are_logged_by_token_packet_and_key_id_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(
        &dir.path().join("c"),
        "center.test",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let cfg = init.config;
    let key = RecipientSecretKey::generate().unwrap();
    let audit = LoaderAudit::open(&cfg).unwrap();
    audit
        .born(
            &key.public_key(),
            &vec![("SP-1".into(), "Кузнецова".into()), ("SP-2".into(), "Лебедев".into())],
        )
        .unwrap();
    audit
        .login("SP-1", std::slice::from_ref(&key), "unpack into /loader/packets")
        .unwrap();
    // An unpacked folder as `unpack` leaves it, and one whose packet.json is gone.
    let unpacked = dir.path().join("out/0101/P-1/v2");
    std::fs::create_dir_all(&unpacked).unwrap();
    let envelope = "ab".repeat(32);
    std::fs::write(
        unpacked.join("packet.json"),
        format!(r#"{{"envelope_id":"{envelope}","site":"0101","packet_id":"P-1","version":2}}"#),
    )
    .unwrap();
    let report = UnpackReport {
        unpacked: vec![(unpacked.clone(), 1234), (dir.path().join("out/0202/P-2/v1"), 5)],
        failed: vec![("P-3 v1".into(), "the envelope is damaged".into())],
        ..Default::default()
    };
    audit.unpacked("SP-1", &report).unwrap();
    let packet = TestPacket {
        record: TestPacketRecord {
            packet_id: "0101-2026-05-25-ege-0000-test".into(),
            version: 1,
            site: "0101".into(),
            envelope_id: "cd".repeat(32),
            bytes: 10,
            received_at_unix_ms: 1,
            signer: "x".into(),
        },
        verdict: None,
    };
    let previews = [PacketPreview {
        packet,
        pages: Ok(Vec::new()),
    }];
    audit.previewed("SP-2", &previews).unwrap();
    audit.wrapped("SP-2", &key.public_key(), "SP-3").unwrap();
    audit.finish();
    drop(audit);

    let got = entries(&cfg);
    let shown: Vec<(String, &str, String)> = got
        .iter()
        .map(|e| (e.actor.clone(), e.action.as_str(), e.subject.clone()))
        .collect();
    let id = key.public_key().key_id().to_string();
    assert_eq!(
        shown,
        vec![
            ("specialists SP-1, SP-2".into(), KEY_NEW, format!("center key {id}")),
            ("specialist SP-1".into(), LOGIN, "SP-1".into()),
            ("specialist SP-1".into(), UNPACK, format!("P-1 v2 envelope {envelope}")),
            (
                "specialist SP-1".into(),
                UNPACK,
                dir.path().join("out/0202/P-2/v1").display().to_string()
            ),
            ("specialist SP-1".into(), UNPACK_FAILED, "P-3 v1".into()),
            (
                "specialist SP-2".into(),
                PREVIEW,
                format!("0101-2026-05-25-ege-0000-test v1 envelope {}", "cd".repeat(32))
            ),
            ("specialist SP-2".into(), KEY_WRAP, format!("center key {id}")),
        ]
    );
    assert!(
        got[0].detail.contains("SP-1 (Кузнецова), SP-2 (Лебедев)"),
        "{}",
        got[0].detail
    );
    assert!(got[1].detail.contains(&id), "{}", got[1].detail);
    // The whole log, checkpoint included, holds no key material.
    let log = std::fs::read(cfg.data_dir.join(AUDIT_LOG)).unwrap();
    let secret = key.to_bytes();
    assert!(!log.windows(32).any(|w| w == secret.as_slice()));
    assert!(!String::from_utf8_lossy(&log).contains(&hex::encode(secret.as_slice())));
    let receipt = keyfile::read_signing_key(&cfg.receipt_key).unwrap().verifying_key();
    let head = audit::read_head(&audit::head_path(&cfg.data_dir.join(AUDIT_LOG))).unwrap();
    assert!(audit::verify(&log, head.as_ref(), &[receipt]).is_intact());
}

#[test]
fn an_overlong_reason_is_cut_to_the_logs_bounds() {
    let long = "ж".repeat(5000);
    let cut = bounded(&long, MAX_DETAIL);
    assert!(cut.len() <= MAX_DETAIL && cut.ends_with('…'));
    assert_eq!(bounded("short", MAX_DETAIL), "short");
}
