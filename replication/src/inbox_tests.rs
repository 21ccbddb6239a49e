use super::*;

fn offer(packet_id: &str, size: u64, digest: u8) -> Offer {
    Offer {
        packet_id: packet_id.into(),
        version: 1,
        size,
        digest: [digest; 32],
        priority: 1,
        sealed_at_unix_ms: 1,
        deadline_unix_ms: 2,
    }
}

/// `len` bytes that differ from position to position and from `seed` to `seed`.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn stage(inbox: &Inbox, offer: &Offer, data: &[u8]) -> Staged {
    let mut staged = inbox.resume_staging(offer, |_| {}).unwrap();
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        inbox.write_staged(&mut staged, (i << 20) as u64, chunk).unwrap();
    }
    inbox.abandon_staged(&staged);
    staged
}

#[test]
fn a_resumed_offer_replays_exactly_its_durable_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    let size = SEGMENT + (3 << 20);
    let a = offer("0101-2026-06-01-ege-0001-blanks", size, 7);
    let data = bytes(size as usize - 1000, 1);
    let first = stage(&inbox, &a, &data);
    assert_eq!(first.held, SEGMENT, "one whole segment was made durable");

    let mut replayed = Vec::new();
    let again = inbox.resume_staging(&a, |b| replayed.extend_from_slice(b)).unwrap();
    assert_eq!((again.held, again.written), (SEGMENT, SEGMENT));
    assert_eq!(
        replayed,
        data[..SEGMENT as usize],
        "the replay is the durable prefix, in order"
    );
    assert_eq!(again.file.metadata().unwrap().len(), SEGMENT, "cut to what is durable");
}

#[test]
fn an_offer_naming_another_packets_digest_cannot_spoil_its_staging() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    let size = 2 * SEGMENT;
    let honest = offer("0101-2026-06-01-ege-0001-blanks", size, 7);
    let data = bytes(SEGMENT as usize + 10, 1);
    stage(&inbox, &honest, &data);

    // Another station (or a crafted drive index) offers its own packet id with the
    // honest packet's digest, and writes garbage well past the honest durable length.
    let spoiler = offer("0202-2026-06-01-ege-0001-blanks", size, 7);
    let mut replayed = 0;
    let mut spoiled = inbox.resume_staging(&spoiler, |b| replayed += b.len()).unwrap();
    assert_eq!(
        (spoiled.held, replayed),
        (0, 0),
        "nothing of the honest prefix is offered to it"
    );
    let garbage = bytes(2 * SEGMENT as usize, 99);
    inbox.write_staged(&mut spoiled, 0, &garbage).unwrap();
    // A drive import of the same spoiler starts from nothing, and touches only its own file.
    let fresh = inbox.fresh_staging(&spoiler).unwrap();
    assert_eq!(fresh.file.metadata().unwrap().len(), 0);

    let mut replayed = Vec::new();
    let resumed = inbox
        .resume_staging(&honest, |b| replayed.extend_from_slice(b))
        .unwrap();
    assert_eq!(resumed.held, SEGMENT);
    assert_eq!(replayed, data[..SEGMENT as usize], "the honest prefix is untouched");
}

#[test]
fn a_durable_prefix_longer_than_the_offer_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    let long = offer("0101-2026-06-01-ege-0001-blanks", 2 * SEGMENT, 7);
    stage(&inbox, &long, &bytes(SEGMENT as usize + 1, 1));
    let short = Offer { size: 10, ..long };
    let mut replayed = 0;
    let staged = inbox.resume_staging(&short, |b| replayed += b.len()).unwrap();
    assert_eq!((staged.held, replayed), (0, 0));
    assert_eq!(staged.file.metadata().unwrap().len(), 0);
}

#[test]
fn fresh_staging_forgets_what_a_network_attempt_held() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    let a = offer("0101-2026-06-01-ege-0001-blanks", 2 * SEGMENT, 7);
    stage(&inbox, &a, &bytes(SEGMENT as usize + 1, 1));
    let fresh = inbox.fresh_staging(&a).unwrap();
    assert_eq!((fresh.held, fresh.file.metadata().unwrap().len()), (0, 0));
    drop(fresh);
    let resumed = inbox.resume_staging(&a, |_| {}).unwrap();
    assert_eq!(resumed.held, 0, "the held marker went with the drive's fresh start");
}

#[test]
fn an_inbox_held_by_another_opener_is_refused_without_touching_its_staging() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    // A transfer in flight: bytes written, none durable yet (no held marker).
    let o = offer("0101-2026-06-01-ege-0001-blanks", 100, 1);
    let mut staged = inbox.fresh_staging(&o).unwrap();
    inbox.write_staged(&mut staged, 0, &bytes(10, 1)).unwrap();
    assert!(staged.path.exists());
    // A loader or `status` beside the serving center: refused, and the file survives.
    let err = Inbox::open(dir.path()).err().expect("the inbox is held");
    assert!(err.to_string().contains("another konvert-center"), "{err}");
    assert!(staged.path.exists(), "a second opener deleted a staging file in use");
}

#[test]
fn a_record_stored_before_late_existed_reads_as_on_time_and_a_new_one_keeps_its_flag() {
    #[derive(serde::Serialize)]
    struct Old {
        receipt: Receipt,
        signer: KeyId,
        sealed_at_unix_ms: u64,
        test_packet: bool,
    }
    let key = konvert_crypto::SigningKey::generate().unwrap();
    let body = crate::ReceiptBody {
        packet_id: "0101-2026-06-01-ege-0001-blanks".into(),
        version: 1,
        site: "0101".into(),
        digest: [3; 32],
        bytes: 10,
        received_at_unix_ms: 5,
        center_key: key.key_id(),
    };
    let receipt = Receipt::sign(body, &key).unwrap();
    let old = Old {
        receipt: receipt.clone(),
        signer: key.key_id(),
        sealed_at_unix_ms: 4,
        test_packet: false,
    };
    let read = decode(&postcard::to_allocvec(&old).unwrap()).unwrap();
    assert_eq!((read.receipt, read.late), (receipt.clone(), false));
    let new = InboxRecord {
        receipt,
        signer: key.key_id(),
        sealed_at_unix_ms: 4,
        test_packet: false,
        late: true,
        packet: None,
    };
    assert_eq!(decode(&postcard::to_allocvec(&new).unwrap()).unwrap(), new);
    assert!(decode(b"\x01\x02").is_err());
}

#[test]
fn a_record_keeps_the_packets_signed_description_and_one_stored_before_it_still_reads() {
    #[derive(serde::Serialize)]
    struct BeforePacket {
        receipt: Receipt,
        signer: KeyId,
        sealed_at_unix_ms: u64,
        test_packet: bool,
        late: bool,
    }
    let key = konvert_crypto::SigningKey::generate().unwrap();
    let body = crate::ReceiptBody {
        packet_id: "0101-2026-06-01-ege-0007-forms".into(),
        version: 2,
        site: "0101".into(),
        digest: [4; 32],
        bytes: 10,
        received_at_unix_ms: 5,
        center_key: key.key_id(),
    };
    let receipt = Receipt::sign(body, &key).unwrap();
    let old = BeforePacket {
        receipt: receipt.clone(),
        signer: key.key_id(),
        sealed_at_unix_ms: 4,
        test_packet: false,
        late: true,
    };
    let read = decode(&postcard::to_allocvec(&old).unwrap()).unwrap();
    assert_eq!((read.late, read.packet), (true, None));
    let packet = konvert_exam::PacketRef {
        site: "0101".parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: konvert_exam::ExamKind::Ege,
        room: "0007".parse().unwrap(),
        kind: konvert_exam::PacketKind::Forms,
    };
    let new = InboxRecord {
        packet: Some(packet.clone()),
        ..read
    };
    let back = decode(&postcard::to_allocvec(&new).unwrap()).unwrap();
    assert_eq!(back.packet.as_ref(), Some(&packet));
    assert_eq!(back.packet.map(|p| p.packet_id()), Some(receipt.body.packet_id.clone()));
    assert_eq!(back.receipt.body.version, 2);
}
