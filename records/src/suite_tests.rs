//! The records' contract, as one suite that every backend runs: each function takes `open`,
//! which opens the backend's records (again) on the same storage, and
//! [`records_suite!`](crate::records_suite) turns the functions into `#[test]`s for one
//! backend.
#![allow(clippy::unwrap_used)]

use konvert_exam::{BlankId, BlankKind, DayPlan, ExamKind, PacketKind, PageIdentity, RoomId};
use konvert_replication::{AnswerOutcome, PacketAnswer};

use crate::{
    Decision, DecisionKind, Error, ExamDay, Finding, FindingKind, HoldReason, HoldTarget, ImageRef, NewHold, Opening,
    PacketEntry, PageEntry, PageKey, PageOutcome, PageReading, PageStage, Records, Release, Removal, Role,
};

/// Opens the records under test (again, on the same storage).
pub(crate) type Open<'a> = &'a dyn Fn() -> Box<dyn Records>;

/// One `#[test]` per suite function for a backend: `$make(test_name)` gives that test's
/// opener, or `None` when the backend is not available here (the test says so and passes).
#[macro_export]
#[doc(hidden)]
macro_rules! records_suite {
    ($make:path) => {
        $crate::records_suite!(@tests $make,
            registration_is_whole_idempotent_and_survives_reopening,
            findings_are_kept_and_resolved_never_deleted,
            decisions_are_numbered_without_gaps_across_reopening,
            outcomes_are_replaced_whole,
            an_answer_travels_again_only_when_it_says_something_new,
            listings_come_in_key_order,
            plans_are_replaced_per_day_and_exam,
            a_key_twice_in_one_call_keeps_the_last,
            image_references_are_kept_once_and_deletions_only_marked,
            holds_are_numbered_released_once_and_never_removed,
        );
    };
    (@tests $make:path, $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if let Some(open) = $make(stringify!($name)) {
                    $crate::suite_tests::$name(&*open);
                }
            }
        )*
    };
}

pub(crate) fn day() -> ExamDay {
    ExamDay {
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
    }
}

pub(crate) fn packet(envelope: u8) -> PacketEntry {
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

pub(crate) fn page(envelope: u8, n: u32) -> PageEntry {
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

fn finding(id: &str) -> Finding {
    Finding {
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
    }
}

fn outcome(n: u32, what: &str) -> PageOutcome {
    PageOutcome {
        key: page(1, n).key,
        digest: page(1, n).digest,
        day: day(),
        site: "0101".into(),
        room: RoomId::new("0001").unwrap(),
        participant: None,
        what: what.into(),
        stage: PageStage::AwaitingForms,
        presumed_empty: false,
    }
}

fn answer(digest: u8) -> PacketAnswer {
    PacketAnswer {
        site: "0101".into(),
        packet_id: "p".into(),
        version: 1,
        digest: [digest; 32],
        outcome: AnswerOutcome::Loaded,
        pages: 2,
        answered_at_unix_ms: 1,
    }
}

fn plan(date: &str, exam: ExamKind, region: &str) -> DayPlan {
    DayPlan {
        date: date.parse().unwrap(),
        exam,
        region: region.into(),
        expert_checking: false,
        sites: Vec::new(),
        rooms: Vec::new(),
        participants: Vec::new(),
        members: Vec::new(),
    }
}

pub(crate) fn registration_is_whole_idempotent_and_survives_reopening(open: Open<'_>) {
    {
        let r = open();
        assert!(!r.is_registered(&[1; 32]).unwrap());
        assert!(r.register(&packet(1), &[page(1, 0), page(1, 1)]).unwrap());
        // Again, even at another loader time: nothing changes.
        let later = PacketEntry {
            registered_at_unix_ms: 99,
            ..packet(1)
        };
        assert!(!r.register(&later, &[page(1, 0), page(1, 1), page(1, 2)]).unwrap());
        // The same envelope with other contents is a conflict, not an overwrite.
        let other = PacketEntry {
            site: "0202".into(),
            ..packet(1)
        };
        assert!(matches!(r.register(&other, &[]), Err(Error::Conflict { .. })));
    }
    let r = open();
    assert!(r.is_registered(&[1; 32]).unwrap());
    assert!(!r.is_registered(&[2; 32]).unwrap());
    assert_eq!(r.packets().unwrap(), vec![packet(1)]);
    assert_eq!(r.pages().unwrap(), vec![page(1, 0), page(1, 1)]);
}

pub(crate) fn findings_are_kept_and_resolved_never_deleted(open: Open<'_>) {
    let r = open();
    assert_eq!(
        r.put_findings(&[finding("a"), finding("b")], 10).unwrap(),
        vec!["a", "b"]
    );
    assert!(r.put_findings(&[finding("a"), finding("b")], 20).unwrap().is_empty());
    assert!(r.put_findings(&[finding("a")], 30).unwrap().is_empty());
    let all = r.findings().unwrap();
    assert_eq!(all.len(), 2);
    let b = all.iter().find(|x| x.finding.id == "b").unwrap();
    assert_eq!((b.first_seen_unix_ms, b.resolved_at_unix_ms), (10, Some(30)));
    let a = all.iter().find(|x| x.finding.id == "a").unwrap();
    assert_eq!((a.first_seen_unix_ms, a.resolved_at_unix_ms), (10, None));

    // A resolved finding found again opens again, as first seen, and is not new; a changed
    // one is rewritten in place.
    let changed = Finding {
        site: "0202".into(),
        ..finding("a")
    };
    assert!(r.put_findings(&[changed.clone(), finding("b")], 40).unwrap().is_empty());
    let all = open().findings().unwrap();
    let b = all.iter().find(|x| x.finding.id == "b").unwrap();
    assert_eq!((b.first_seen_unix_ms, b.resolved_at_unix_ms), (10, None));
    let a = all.iter().find(|x| x.finding.id == "a").unwrap();
    assert_eq!(
        (&a.finding, a.first_seen_unix_ms, a.resolved_at_unix_ms),
        (&changed, 10, None)
    );
    // A run that finds nothing resolves everything open, and deletes nothing.
    assert!(r.put_findings(&[], 50).unwrap().is_empty());
    let all = r.findings().unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|x| x.resolved_at_unix_ms == Some(50)));
}

pub(crate) fn decisions_are_numbered_without_gaps_across_reopening(open: Open<'_>) {
    let d1 = open()
        .decide(
            "Иванова",
            Role::Verifier,
            5,
            DecisionKind::ExpertCheckingDone { day: day() },
        )
        .unwrap();
    let r = open();
    let d2 = r
        .decide("Петров", Role::Administrator, 6, DecisionKind::Close { day: day() })
        .unwrap();
    assert_eq!((d1.seq, d2.seq), (1, 2));
    assert_eq!(d2.by, "Петров");
    assert_eq!(open().decisions().unwrap(), vec![d1, d2]);
    // Concurrent deciders still get 3, 4, … without a gap or a repeat.
    let r: std::sync::Arc<dyn Records> = open().into();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let r = r.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|j| {
                        r.decide(&format!("v{i}"), Role::Verifier, j, DecisionKind::Close { day: day() })
                            .unwrap()
                            .seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (3..=22).collect::<Vec<_>>());
    let all: Vec<u64> = r.decisions().unwrap().iter().map(|d: &Decision| d.seq).collect();
    assert_eq!(all, (1..=22).collect::<Vec<_>>());
}

pub(crate) fn outcomes_are_replaced_whole(open: Open<'_>) {
    let r = open();
    r.put_outcomes(&[outcome(0, "x"), outcome(1, "x")]).unwrap();
    r.put_outcomes(&[outcome(1, "y"), outcome(2, "x")]).unwrap();
    assert_eq!(open().outcomes().unwrap(), vec![outcome(1, "y"), outcome(2, "x")]);
    r.put_outcomes(&[]).unwrap();
    assert!(open().outcomes().unwrap().is_empty());
}

pub(crate) fn an_answer_travels_again_only_when_it_says_something_new(open: Open<'_>) {
    let r = open();
    assert!(r.put_answer(&answer(1)).unwrap());
    let later = PacketAnswer {
        answered_at_unix_ms: 2,
        ..answer(1)
    };
    assert!(!r.put_answer(&later).unwrap());
    assert_eq!(open().answers().unwrap(), vec![answer(1)]);
    let fewer = PacketAnswer {
        pages: 1,
        answered_at_unix_ms: 3,
        ..answer(1)
    };
    assert!(r.put_answer(&fewer).unwrap());
    assert_eq!(open().answers().unwrap(), vec![fewer]);
}

pub(crate) fn listings_come_in_key_order(open: Open<'_>) {
    let r = open();
    for e in [3u8, 0xf0, 1, 2] {
        let p = PacketEntry {
            envelope: [e; 32],
            ..packet(1)
        };
        assert!(r.register(&p, &[page(e, 10), page(e, 2)]).unwrap());
        assert!(r.put_answer(&answer(e)).unwrap());
    }
    let envelopes: Vec<u8> = r.packets().unwrap().iter().map(|p| p.envelope[0]).collect();
    assert_eq!(envelopes, vec![1, 2, 3, 0xf0]);
    let pages: Vec<(u8, u32)> = r
        .pages()
        .unwrap()
        .iter()
        .map(|p| (p.key.envelope[0], p.key.page))
        .collect();
    assert_eq!(
        pages,
        vec![(1, 2), (1, 10), (2, 2), (2, 10), (3, 2), (3, 10), (0xf0, 2), (0xf0, 10)]
    );
    let answers: Vec<u8> = r.answers().unwrap().iter().map(|a| a.digest[0]).collect();
    assert_eq!(answers, vec![1, 2, 3, 0xf0]);
    // Finding ids in byte order, whatever a locale would say.
    let ids = ["я", "b", "B", "a", "Z", "ё", "a2", "a10"];
    let found: Vec<Finding> = ids.iter().map(|id| finding(id)).collect();
    r.put_findings(&found, 1).unwrap();
    let listed: Vec<String> = r.findings().unwrap().into_iter().map(|f| f.finding.id).collect();
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, sorted);
    // Outcomes by page key: envelope, then file, then page, as numbers.
    let o = |file: u32, page: u32| PageOutcome {
        key: PageKey {
            envelope: [1; 32],
            file,
            page,
        },
        ..outcome(0, "x")
    };
    r.put_outcomes(&[o(1, 0), o(0, 256), o(0, 1)]).unwrap();
    assert_eq!(r.outcomes().unwrap(), vec![o(0, 1), o(0, 256), o(1, 0)]);
}

pub(crate) fn plans_are_replaced_per_day_and_exam(open: Open<'_>) {
    let r = open();
    r.put_plan(&plan("2026-06-02", ExamKind::Ege, "76")).unwrap();
    r.put_plan(&plan("2026-06-01", ExamKind::Ege, "76")).unwrap();
    r.put_plan(&plan("2026-06-01", ExamKind::Oge, "76")).unwrap();
    r.put_plan(&plan("2026-06-01", ExamKind::Ege, "77")).unwrap();
    let plans: Vec<(String, ExamKind, String)> = open()
        .plans()
        .unwrap()
        .into_iter()
        .map(|p| (p.date.to_string(), p.exam, p.region))
        .collect();
    let mut expected = vec![
        ("2026-06-01".to_owned(), ExamKind::Ege, "77".to_owned()),
        ("2026-06-01".to_owned(), ExamKind::Oge, "76".to_owned()),
        ("2026-06-02".to_owned(), ExamKind::Ege, "76".to_owned()),
    ];
    // sled's key is "<date>/<exam code>": the order of those bytes.
    expected.sort_by(|a, b| format!("{}/{}", a.0, a.1.code()).cmp(&format!("{}/{}", b.0, b.1.code())));
    assert_eq!(plans, expected);
}

pub(crate) fn a_key_twice_in_one_call_keeps_the_last(open: Open<'_>) {
    let r = open();
    let second = PageEntry {
        file_name: "b.tif".into(),
        ..page(1, 0)
    };
    assert!(r.register(&packet(1), &[page(1, 0), second.clone()]).unwrap());
    assert_eq!(r.pages().unwrap(), vec![second]);
    r.put_outcomes(&[outcome(0, "first"), outcome(0, "last")]).unwrap();
    assert_eq!(r.outcomes().unwrap(), vec![outcome(0, "last")]);
    // The same new finding twice: reported new twice (as sled's run does), kept once.
    assert_eq!(
        r.put_findings(&[finding("a"), finding("a")], 1).unwrap(),
        vec!["a", "a"]
    );
    assert_eq!(r.findings().unwrap().len(), 1);
}

fn image(sha: u8, since: u64) -> ImageRef {
    ImageRef {
        sha256: [sha; 32],
        bytes: 100 + u64::from(sha),
        held_since_unix_ms: since,
        deleted: None,
    }
}

pub(crate) fn image_references_are_kept_once_and_deletions_only_marked(open: Open<'_>) {
    let r = open();
    assert_eq!(r.hold_images(&[image(2, 10), image(1, 10)]).unwrap(), 2);
    // Held again later (a second run, a second packet with the same file): the first
    // record stands; a digest twice in one call counts once.
    assert_eq!(r.hold_images(&[image(1, 20), image(3, 20), image(3, 30)]).unwrap(), 1);
    assert_eq!(open().images().unwrap(), vec![image(1, 10), image(2, 10), image(3, 20)]);
    let removal = Removal {
        at_unix_ms: 40,
        by: "Сидорова".into(),
    };
    r.images_deleted(&[[2; 32], [9; 32]], &removal).unwrap();
    // A second deletion keeps the first one's record.
    r.images_deleted(
        &[[2; 32]],
        &Removal {
            at_unix_ms: 50,
            by: "x".into(),
        },
    )
    .unwrap();
    let all = open().images().unwrap();
    assert_eq!(all.len(), 3, "a deleted image keeps its reference");
    assert_eq!(all[1].deleted, Some(removal));
    assert!(all[0].deleted.is_none() && all[2].deleted.is_none());
    // Holding a deleted image again does not bring it back: the record says what happened.
    assert_eq!(r.hold_images(&[image(2, 60)]).unwrap(), 0);
    assert!(open().images().unwrap()[1].deleted.is_some());
}

pub(crate) fn holds_are_numbered_released_once_and_never_removed(open: Open<'_>) {
    let new = |reason, target, by: &str| NewHold {
        reason,
        target,
        by: by.into(),
        at_unix_ms: 5,
        note: "апелляция № 17".into(),
    };
    let r = open();
    let h1 = r
        .add_hold(new(HoldReason::Appeal, HoldTarget::Participant("P1".into()), "Иванова"))
        .unwrap();
    let h2 = open()
        .add_hold(new(HoldReason::Investigation, HoldTarget::Day(day()), "Петров"))
        .unwrap();
    let h3 = r
        .add_hold(new(HoldReason::Annulment, HoldTarget::Packet([7; 32]), "Петров"))
        .unwrap();
    assert_eq!((h1.id, h2.id, h3.id), (1, 2, 3));
    assert_eq!(h2.target, HoldTarget::Day(day()));
    let release = Release {
        by: "Сидорова".into(),
        at_unix_ms: 9,
        note: "апелляция отклонена".into(),
    };
    let lifted = r.release_hold(1, release.clone()).unwrap();
    assert_eq!(lifted.released, Some(release.clone()));
    assert!(matches!(
        r.release_hold(1, release.clone()),
        Err(Error::HoldReleased { id: 1 })
    ));
    assert!(matches!(
        r.release_hold(99, release),
        Err(Error::UnknownHold { id: 99 })
    ));
    let all = open().holds().unwrap();
    assert_eq!(all, vec![lifted, h2, h3]);
    // After reopening, numbering goes on.
    let h4 = open()
        .add_hold(new(HoldReason::Removal, HoldTarget::Participant("P2".into()), "x"))
        .unwrap();
    assert_eq!(h4.id, 4);
}
