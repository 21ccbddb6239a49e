#![allow(clippy::unwrap_used)]

use konvert_exam::{BlankId, BlankKind, ExamKind, PacketKind, PageIdentity, RoomId};
use konvert_replication::{AnswerOutcome, PacketAnswer};

use super::*;
use crate::{ExamDay, FindingKind, Opening, PageKey, PageReading, PageStage};

fn day() -> ExamDay {
    ExamDay {
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
    }
}

fn packet(envelope: u8) -> PacketEntry {
    PacketEntry {
        envelope: [envelope; 32],
        site: "0101".into(),
        packet_id: "p".into(),
        version: 1,
        day: day(),
        room: RoomId::new("0001").unwrap(),
        kind: PacketKind::Blanks,
        received_at_unix_ms: 1,
        registered_at_unix_ms: 2,
        opening: Opening::Opened { files: 1, pages: 2 },
    }
}

fn page(envelope: u8, n: u32) -> PageEntry {
    let id = BlankId::for_kit(BlankKind::Answer1, 7, 1).unwrap();
    PageEntry {
        key: PageKey {
            envelope: [envelope; 32],
            file: 0,
            page: n,
        },
        file_name: "a.tif".into(),
        file_sha256: [9; 32],
        digest: crate::page_digest(&[9; 32], n),
        reading: PageReading::Read {
            identity: PageIdentity::Blank(id),
            orientation: 0,
            via_fallback: false,
            contents: None,
        },
        site_reading: None,
        removed_mark: None,
        early_finish_mark: None,
        written: None,
    }
}

#[test]
fn registration_is_whole_idempotent_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = SledRecords::open(dir.path()).unwrap();
        assert!(r.register(&packet(1), &[page(1, 0), page(1, 1)]).unwrap());
        // Again, even at another loader time: nothing changes.
        let later = PacketEntry {
            registered_at_unix_ms: 99,
            ..packet(1)
        };
        assert!(!r.register(&later, &[page(1, 0), page(1, 1)]).unwrap());
        // The same envelope with other contents is a conflict, not an overwrite.
        let other = PacketEntry {
            site: "0202".into(),
            ..packet(1)
        };
        assert!(matches!(r.register(&other, &[]), Err(Error::Conflict { .. })));
    }
    let r = SledRecords::open(dir.path()).unwrap();
    assert!(r.is_registered(&[1; 32]).unwrap());
    assert_eq!(r.packets().unwrap(), vec![packet(1)]);
    assert_eq!(r.pages().unwrap(), vec![page(1, 0), page(1, 1)]);
}

#[test]
fn findings_are_kept_and_resolved_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let r = SledRecords::open(dir.path()).unwrap();
    let f = |id: &str| Finding {
        id: id.into(),
        day: day(),
        site: "0101".into(),
        room: None,
        packet: None,
        page: None,
        participant: None,
        kind: FindingKind::MissingForm {
            form: "ППЭ-13-02МАШ".into(),
        },
    };
    assert_eq!(r.put_findings(&[f("a"), f("b")], 10).unwrap(), vec!["a", "b"]);
    assert!(r.put_findings(&[f("a"), f("b")], 20).unwrap().is_empty());
    assert!(r.put_findings(&[f("a")], 30).unwrap().is_empty());
    let all = r.findings().unwrap();
    assert_eq!(all.len(), 2);
    let b = all.iter().find(|x| x.finding.id == "b").unwrap();
    assert_eq!((b.first_seen_unix_ms, b.resolved_at_unix_ms), (10, Some(30)));
    let a = all.iter().find(|x| x.finding.id == "a").unwrap();
    assert_eq!((a.first_seen_unix_ms, a.resolved_at_unix_ms), (10, None));
}

#[test]
fn decisions_are_numbered_in_order_and_outcomes_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let r = SledRecords::open(dir.path()).unwrap();
    let d1 = r
        .decide(
            "Иванова",
            Role::Verifier,
            5,
            DecisionKind::ExpertCheckingDone { day: day() },
        )
        .unwrap();
    let d2 = r
        .decide("Петров", Role::Administrator, 6, DecisionKind::Close { day: day() })
        .unwrap();
    assert_eq!((d1.seq, d2.seq), (1, 2));
    assert_eq!(r.decisions().unwrap(), vec![d1, d2]);

    let outcome = |n: u32| PageOutcome {
        key: page(1, n).key,
        digest: page(1, n).digest,
        day: day(),
        site: "0101".into(),
        room: RoomId::new("0001").unwrap(),
        participant: None,
        what: "x".into(),
        stage: PageStage::AwaitingForms,
        presumed_empty: false,
    };
    r.put_outcomes(&[outcome(0), outcome(1)]).unwrap();
    r.put_outcomes(&[outcome(1)]).unwrap();
    assert_eq!(r.outcomes().unwrap(), vec![outcome(1)]);
}

#[test]
fn an_answer_travels_again_only_when_it_says_something_new() {
    let dir = tempfile::tempdir().unwrap();
    let r = SledRecords::open(dir.path()).unwrap();
    let answer = PacketAnswer {
        site: "0101".into(),
        packet_id: "p".into(),
        version: 1,
        digest: [1; 32],
        outcome: AnswerOutcome::Loaded,
        pages: 2,
        answered_at_unix_ms: 1,
    };
    assert!(r.put_answer(&answer).unwrap());
    let later = PacketAnswer {
        answered_at_unix_ms: 2,
        ..answer.clone()
    };
    assert!(!r.put_answer(&later).unwrap());
    assert_eq!(r.answers().unwrap(), vec![answer]);
}

#[test]
fn page_keys_print_and_parse_back() {
    let key = PageKey {
        envelope: [0xab; 32],
        file: 3,
        page: 4,
    };
    let full = format!("{}:3:5", hex::encode(key.envelope));
    assert_eq!(full.parse::<PageKey>().unwrap(), key);
    assert!("ab:3:5".parse::<PageKey>().is_err());
    assert!(format!("{}:3:0", hex::encode(key.envelope)).parse::<PageKey>().is_err());
}
