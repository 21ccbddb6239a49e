use std::fs;

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
    let (folder, names) = receipt_files(dir.path()).unwrap().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(names, vec![name.to_owned()]);
    assert_eq!(read_receipt(&folder, name).unwrap(), receipt);
    let mut bytes = fs::read(&path).unwrap();
    bytes.push(0);
    fs::write(&path, &bytes).unwrap();
    assert!(read_receipt(&folder, name).unwrap_err().to_string().contains("damaged"));
    fs::write(&path, b"hello").unwrap();
    assert!(read_receipt(&folder, name)
        .unwrap_err()
        .to_string()
        .contains("not a konvert receipt"));
}

fn signed_receipt(e: &OutboxEntry) -> Receipt {
    let key = SigningKey::generate().unwrap();
    let body = ReceiptBody {
        packet_id: e.offer.packet_id.clone(),
        version: e.offer.version,
        site: "0101".into(),
        digest: e.offer.digest,
        bytes: e.offer.size,
        received_at_unix_ms: 99,
        center_key: key.key_id(),
    };
    Receipt::sign(body, &key).unwrap()
}

#[test]
fn a_link_planted_at_the_receipts_part_file_is_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"keep me").unwrap();
    let e = entry();
    let packet = DrivePacket::from_entry(&e);
    fs::create_dir(dir.path().join(RECEIPTS)).unwrap();
    let part = dir
        .path()
        .join(RECEIPTS)
        .join(format!("{}.part", packet.receipt_name()));
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    // A link at the receipt's own name too: the rename replaces the link, not its target.
    let final_name = dir.path().join(RECEIPTS).join(packet.receipt_name());
    let victim2 = outside.path().join("victim2");
    fs::write(&victim2, b"keep me too").unwrap();
    std::os::unix::fs::symlink(&victim2, &final_name).unwrap();

    let receipt = signed_receipt(&e);
    let path = write_receipt(dir.path(), &packet, &receipt).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    assert_eq!(fs::read(&victim2).unwrap(), b"keep me too");
    assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert!(
        !part.exists() && fs::symlink_metadata(&part).is_err(),
        "the planted link is gone"
    );
    let (folder, names) = receipt_files(dir.path()).unwrap().unwrap();
    assert_eq!(read_receipt(&folder, &names[0]).unwrap(), receipt);
}

#[test]
fn a_receipts_folder_that_is_a_link_is_refused_and_nothing_written_where_it_points() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join(RECEIPTS)).unwrap();
    let e = entry();
    let err = write_receipt(dir.path(), &DrivePacket::from_entry(&e), &signed_receipt(&e))
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
    // Reading receipts back refuses it the same way.
    let err = receipt_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

#[test]
fn receipts_that_are_links_fifos_or_devices_are_not_listed_nor_read() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join(RECEIPTS);
    fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink("/dev/zero", folder.join("zero.receipt")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        folder.join("fifo.receipt").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let (drive, names) = receipt_files(dir.path()).unwrap().unwrap();
    assert!(names.is_empty(), "{names:?}");
    // Named directly (a race with the listing), they are refused unread and at once.
    let started = std::time::Instant::now();
    let err = read_receipt(&drive, "fifo.receipt").unwrap_err().to_string();
    assert!(err.contains("FIFO"), "{err}");
    let err = read_receipt(&drive, "zero.receipt").unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn an_index_that_is_a_link_or_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let real = outside.path().join("index.toml");
    fs::write(
        &real,
        "format = 1\nsite = \"0101\"\nwritten_at_unix_ms = 1\npackets = []\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join(INDEX_FILE)).unwrap();
    let err = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    // Writing the index replaces the link, and leaves its target alone.
    let index = DriveIndex {
        format: INDEX_FORMAT,
        site: "0202".into(),
        written_at_unix_ms: 5,
        packets: vec![],
    };
    index.write(dir.path()).unwrap();
    assert!(fs::read_to_string(&real).unwrap().contains("0101"));
    assert_eq!(DriveIndex::read(dir.path()).unwrap().unwrap(), index);

    fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join(INDEX_FILE).as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let err = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("FIFO"), "{err}");
}

#[test]
fn an_index_naming_a_file_or_a_packet_version_twice_or_too_many_packets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = entry();
    let one = DrivePacket::from_entry(&e);
    let mut index = DriveIndex {
        format: INDEX_FORMAT,
        site: "0101".into(),
        written_at_unix_ms: 5,
        packets: vec![one.clone(), one.clone()],
    };
    index.write(dir.path()).unwrap();
    let err = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("more than once"), "{err}");
    // The same packet version under another file name.
    let mut renamed = one.clone();
    renamed.file = "other.v2.env".into();
    index.packets = vec![one.clone(), renamed];
    index.write(dir.path()).unwrap();
    let err = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("version 2 more than once"), "{err}");
    // Distinct entries, one more than the bound.
    index.packets = (0..=MAX_INDEX_PACKETS)
        .map(|i| DrivePacket {
            file: format!("p{i}.v1.env"),
            packet_id: format!("p{i}"),
            ..one.clone()
        })
        .collect();
    index.write(dir.path()).unwrap();
    let err = DriveIndex::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("at most {MAX_INDEX_PACKETS}")), "{err}");
    index.packets.pop();
    index.write(dir.path()).unwrap();
    assert_eq!(
        DriveIndex::read(dir.path()).unwrap().unwrap().packets.len(),
        MAX_INDEX_PACKETS
    );
}
