use super::*;
use konvert_crypto::KeyId;
use konvert_replication::{Receipt, ReceiptBody};

fn stored(key: &SigningKey, site: &str, packet: &str, version: u32, digest: u8, at: u64) -> InboxRecord {
    let body = ReceiptBody {
        packet_id: packet.into(),
        version,
        site: site.into(),
        digest: [digest; 32],
        bytes: 1234,
        received_at_unix_ms: at,
        center_key: KeyId([0; 16]),
    };
    InboxRecord {
        receipt: Receipt::sign(body, key).unwrap(),
        signer: KeyId([3; 16]),
        sealed_at_unix_ms: at - 10,
        test_packet: true,
        late: false,
        packet: None,
    }
}

#[test]
fn received_packets_are_listed_judged_once_and_sent_only_to_their_site() {
    let dir = tempfile::tempdir().unwrap();
    let desk = TestDesk::open(dir.path()).unwrap();
    let key = SigningKey::generate().unwrap();
    let a1 = TestPacketRecord::from_inbox(&stored(&key, "0101", "0101-test", 1, 1, 100));
    let a2 = TestPacketRecord::from_inbox(&stored(&key, "0101", "0101-test", 2, 2, 200));
    let b1 = TestPacketRecord::from_inbox(&stored(&key, "0102", "0102-test", 1, 3, 150));
    for r in [&a1, &a2, &b1, &a1] {
        desk.record_received(r).unwrap();
    }
    let list = desk.list().unwrap();
    let order: Vec<_> = list
        .iter()
        .map(|p| (p.record.site.as_str(), p.record.version))
        .collect();
    assert_eq!(order, [("0101", 1), ("0102", 1), ("0101", 2)]);
    assert!(list.iter().all(|p| p.verdict.is_none()));

    // By packet id the newest version is meant; an envelope id names exactly one.
    assert_eq!(desk.find("0101-test", None).unwrap().record.version, 2);
    assert_eq!(desk.find("0101-test", Some(1)).unwrap().record, a1);
    assert_eq!(desk.find(&b1.envelope_id, None).unwrap().record, b1);
    let err = desk.find("0103-test", None).unwrap_err().to_string();
    assert!(
        err.contains("no test packet 0103-test") && err.contains("test-packets list"),
        "{err}"
    );

    let p = desk.find("0101-test", Some(1)).unwrap();
    let err = desk.judge(&p, Verdict::Rejected, "", "Петров", &key, 300).unwrap_err();
    assert!(err.to_string().contains("must say what is wrong"), "{err}");
    desk.judge(
        &p,
        Verdict::Rejected,
        "grey background, rescan at 300 dpi",
        "Петров",
        &key,
        300,
    )
    .unwrap();
    let again = desk.find("0101-test", Some(1)).unwrap();
    let err = desk
        .judge(&again, Verdict::Confirmed, "", "Сидоров", &key, 310)
        .unwrap_err();
    assert!(err.to_string().contains("already rejected by Петров"), "{err}");
    desk.judge(
        &desk.find("0101-test", None).unwrap(),
        Verdict::Confirmed,
        "",
        "Петров",
        &key,
        400,
    )
    .unwrap();

    let notices = desk.notices_for("0101").unwrap();
    let verdicts: Vec<_> = notices
        .iter()
        .map(|n| match n.verify(&key.verifying_key()).unwrap() {
            Notice::TestVerdict(v) => (v.version, v.verdict),
            Notice::PacketAnswer(a) => panic!("the test desk served an answer to {}", a.packet_id),
        })
        .collect();
    assert_eq!(
        verdicts,
        [(2, Verdict::Confirmed), (1, Verdict::Rejected)],
        "newest first"
    );
    assert!(desk.notices_for("0102").unwrap().is_empty(), "0102 was not judged");
}

#[test]
fn a_damaged_desk_file_is_reported_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let desk = TestDesk::open(dir.path()).unwrap();
    std::fs::write(
        dir.path()
            .join("test-packets")
            .join(format!("{}.toml", "ab".repeat(32))),
        "garbage = [",
    )
    .unwrap();
    let err = desk.list().unwrap_err().to_string();
    assert!(
        err.contains("not a test-packet record") && err.contains("move the damaged file"),
        "{err}"
    );
}
