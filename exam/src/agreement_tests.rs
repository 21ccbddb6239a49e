use super::*;
use crate::{ExamKind, PacketKind};

fn packet(site: &str, room: &str) -> PacketRef {
    PacketRef {
        site: site.parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        room: room.parse().unwrap(),
        kind: PacketKind::Blanks,
    }
}

fn claim(packet_id: &str) -> Claim<'_> {
    Claim {
        by: "receipted",
        packet_id,
        version: 1,
        site: Some("0101"),
        envelope_id: [7; 32],
        bytes: 1000,
    }
}

fn sealed<'a>(packet_id: &'a str, site: &'a str, metadata: &'a [u8]) -> Sealed<'a> {
    Sealed {
        envelope_id: [7; 32],
        bytes: 1000,
        packet_id,
        version: 1,
        sender_site: site,
        metadata,
    }
}

#[test]
fn names_that_agree_give_the_description() {
    let p = packet("0101", "0001");
    let id = p.packet_id();
    let meta = postcard::to_allocvec(&p).unwrap();
    assert_eq!(agree(&claim(&id), &sealed(&id, "0101", &meta)).unwrap(), p);
}

#[test]
fn other_bytes_than_the_named_ones_are_refused() {
    let p = packet("0101", "0001");
    let id = p.packet_id();
    let meta = postcard::to_allocvec(&p).unwrap();
    let mut s = sealed(&id, "0101", &meta);
    s.envelope_id = [8; 32];
    let e = agree(&claim(&id), &s).unwrap_err();
    assert!(e.is_about_bytes(), "{e}");
    assert!(e.to_string().contains("not the receipted ones"), "{e}");
    let mut s = sealed(&id, "0101", &meta);
    s.bytes = 999;
    assert!(agree(&claim(&id), &s).unwrap_err().is_about_bytes());
}

#[test]
fn another_packet_or_version_in_the_header_is_refused() {
    let p = packet("0101", "0001");
    let q = packet("0101", "0002");
    let (id, other) = (p.packet_id(), q.packet_id());
    let meta = postcard::to_allocvec(&q).unwrap();
    let e = agree(&claim(&id), &sealed(&other, "0101", &meta)).unwrap_err();
    assert!(matches!(e, Disagreement::Packet { .. }), "{e}");
    let meta = postcard::to_allocvec(&p).unwrap();
    let mut s = sealed(&id, "0101", &meta);
    s.version = 2;
    assert!(matches!(agree(&claim(&id), &s), Err(Disagreement::Packet { .. })));
}

#[test]
fn a_packet_id_its_description_does_not_derive_is_refused() {
    // A member of site 0101 seals site 0202's packet id with a description of 0101's own.
    let theirs = packet("0202", "0001").packet_id();
    let meta = postcard::to_allocvec(&packet("0101", "0001")).unwrap();
    let mut c = claim(&theirs);
    c.site = None;
    let e = agree(&c, &sealed(&theirs, "0101", &meta)).unwrap_err();
    assert!(matches!(e, Disagreement::NotDescribed { .. }), "{e}");
    assert!(e.to_string().contains("0101-2026-06-01-ege-0001-blanks"), "{e}");
    // Room, kind and day are bound the same way.
    let mut other_room = packet("0101", "0001");
    other_room.room = "0009".parse().unwrap();
    let meta = postcard::to_allocvec(&other_room).unwrap();
    let id = packet("0101", "0001").packet_id();
    assert!(matches!(
        agree(&claim(&id), &sealed(&id, "0101", &meta)),
        Err(Disagreement::NotDescribed { .. })
    ));
}

#[test]
fn a_description_of_another_site_or_none_is_refused() {
    let p = packet("0202", "0001");
    let id = p.packet_id();
    let meta = postcard::to_allocvec(&p).unwrap();
    let mut c = claim(&id);
    c.site = None;
    assert!(matches!(
        agree(&c, &sealed(&id, "0101", &meta)),
        Err(Disagreement::DescriptionSite { .. })
    ));
    let e = agree(&c, &sealed(&id, "0202", b"not a description")).unwrap_err();
    assert_eq!(e, Disagreement::NoDescription);
}

#[test]
fn a_record_of_another_site_is_refused() {
    let p = packet("0202", "0001");
    let id = p.packet_id();
    let meta = postcard::to_allocvec(&p).unwrap();
    let e = agree(&claim(&id), &sealed(&id, "0202", &meta)).unwrap_err();
    assert!(matches!(e, Disagreement::Site { .. }), "{e}");
}

#[test]
fn a_manifest_of_another_packet_is_refused() {
    let p = packet("0101", "0001");
    let manifest = Manifest {
        packet: packet("0101", "0002"),
        version: 1,
        files: Vec::new(),
        room: None,
    };
    assert!(matches!(
        agree_manifest(&p, 1, &manifest),
        Err(Disagreement::Manifest { .. })
    ));
    let manifest = Manifest {
        packet: p.clone(),
        ..manifest
    };
    assert!(agree_manifest(&p, 1, &manifest).is_ok());
    assert!(agree_manifest(&p, 2, &manifest).is_err());
}
