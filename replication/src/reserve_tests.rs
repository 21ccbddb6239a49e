use konvert_crypto::SigningKey;

use super::*;
use crate::{OutboxState, ReceiptBody};

fn entry() -> OutboxEntry {
    OutboxEntry {
        offer: Offer {
            packet_id: "0101-2026-06-01-ege-0001-blanks".into(),
            version: 2,
            size: 1234,
            digest: [7; 32],
            priority: 1,
            sealed_at_unix_ms: 10,
            deadline_unix_ms: 20,
        },
        file_name: "0101-2026-06-01-ege-0001-blanks.v2.env".into(),
        label: "room 0001 blanks".into(),
        state: OutboxState::Sealed,
    }
}

#[test]
fn an_index_round_trips_and_gives_back_the_offer() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(DriveIndex::read(dir.path()).unwrap(), None);
    let e = entry();
    let index = DriveIndex {
        format: INDEX_FORMAT,
        site: "0101".into(),
        written_at_unix_ms: 5,
        packets: vec![DrivePacket::from_entry(&e)],
    };
    index.write(dir.path()).unwrap();
    let back = DriveIndex::read(dir.path()).unwrap().unwrap();
    assert_eq!(back, index);
    assert_eq!(back.packets[0].offer().unwrap(), e.offer);
    assert_eq!(
        back.packets[0].receipt_name(),
        "0101-2026-06-01-ege-0001-blanks.v2.receipt"
    );
    assert!(!dir.path().join("konvert-index.toml.part").exists());
}

#[test]
fn a_newer_oversized_or_unknown_index_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(INDEX_FILE);
    fs::write(&path, "format = 2\nsite = \"0101\"\n").unwrap();
    let e = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("index format 2"), "{e}");
    fs::write(
        &path,
        "format = 1\nsite = \"0101\"\nwritten_at_unix_ms = 1\npackets = []\nextra = 1\n",
    )
    .unwrap();
    let e = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("damaged drive index"), "{e}");
    fs::write(&path, vec![b'#'; MAX_INDEX_BYTES as usize + 1]).unwrap();
    let e = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("at most"), "{e}");
}

#[test]
fn file_names_from_a_drive_cannot_leave_the_envelope_folder() {
    for bad in [
        "../x.env",
        "/etc/x.env",
        ".hidden.env",
        "a/b.env",
        "x.txt",
        "",
        "a\\b.env",
    ] {
        assert!(check_file_name(bad, ".env").is_err(), "{bad}");
    }
    check_file_name("0101-2026-06-01-ege-0001-blanks.v1.env", ".env").unwrap();
    let mut p = DrivePacket::from_entry(&entry());
    p.file = "../../outside.env".into();
    assert!(p.offer().is_err());
    let mut p = DrivePacket::from_entry(&entry());
    p.digest = "zz".into();
    assert!(p.offer().unwrap_err().contains("64 hex digits"));
}

#[test]
fn a_receipt_file_round_trips_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let e = entry();
    let body = ReceiptBody {
        packet_id: e.offer.packet_id.clone(),
        version: e.offer.version,
        site: "0101".into(),
        digest: e.offer.digest,
        bytes: e.offer.size,
        received_at_unix_ms: 99,
        center_key: key.key_id(),
    };
    let receipt = Receipt::sign(body, &key).unwrap();
    let path = write_receipt(dir.path(), &DrivePacket::from_entry(&e), &receipt).unwrap();
    assert_eq!(receipt_files(dir.path()).unwrap(), vec![path.clone()]);
    assert_eq!(read_receipt(&path).unwrap(), receipt);
    let mut bytes = fs::read(&path).unwrap();
    bytes.push(0);
    fs::write(&path, &bytes).unwrap();
    assert!(read_receipt(&path).unwrap_err().to_string().contains("damaged"));
    fs::write(&path, b"hello").unwrap();
    assert!(read_receipt(&path)
        .unwrap_err()
        .to_string()
        .contains("not a konvert receipt"));
}
