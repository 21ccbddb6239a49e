use super::*;
use crate::{BlankId, ExamKind, FormId, Participant};

fn room(code: &str) -> RoomId {
    code.parse().unwrap()
}

fn plan(exam: ExamKind) -> SeatingPlan {
    let p = |code: &str, r: &str, seat: &str, kit: u64| Participant {
        code: code.into(),
        room: room(r),
        seat: seat.into(),
        kit,
    };
    SeatingPlan {
        site: "0101".parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam,
        participants: vec![
            p("P1", "0012", "1А", 4_000_000_001),
            p("P2", "0012", "1Б", 4_000_000_002),
            p("P3", "0012", "1В", 4_000_000_003),
            p("P4", "0013", "1А", 4_000_000_004),
        ],
    }
}

fn page(file: &str, n: u32, status: PageStatus) -> PageRecord {
    PageRecord {
        file: file.into(),
        page: n,
        file_sha256: [0; 32],
        status,
        scanned_at_unix_ms: 1,
    }
}

fn blank(file: &str, n: u32, kind: BlankKind, kit: u64, sheet: u8) -> PageRecord {
    page(
        file,
        n,
        PageStatus::Read(PageIdentity::Blank(BlankId::for_kit(kind, kit, sheet).unwrap())),
    )
}

fn form(file: &str, n: u32, form: Form, site: &str, r: &str) -> PageRecord {
    page(
        file,
        n,
        PageStatus::Read(PageIdentity::Form(FormId {
            form,
            site: site.parse().unwrap(),
            room: room(r),
            date: "2026-06-01".parse().unwrap(),
        })),
    )
}

/// The full EGE sets of `kits` in one file, then the room's two forms in another.
fn full_room(kits: &[u64], r: &str) -> Vec<PageRecord> {
    let mut pages = Vec::new();
    let mut n = 0;
    for &kit in kits {
        for (kind, count) in full_set(ExamKind::Ege) {
            for sheet in 0..*count {
                pages.push(blank(&format!("blanks-{r}.tif"), n, *kind, kit, sheet));
                n += 1;
            }
        }
    }
    pages.push(form(&format!("forms-{r}.tif"), 0, Form::Ppe12_04Mash, "0101", r));
    pages.push(form(&format!("forms-{r}.tif"), 1, Form::Ppe13_02Mash, "0101", r));
    pages
}

fn check(plan: &SeatingPlan, r: &str, pages: &[PageRecord], present: Option<u32>) -> RoomCheck {
    let refs: Vec<&PageRecord> = pages.iter().collect();
    let mine: Vec<&PageRecord> = pages
        .iter()
        .filter(|p| {
            let file: Vec<PageRecord> = pages.iter().filter(|q| q.file == p.file).cloned().collect();
            place_file(plan, &file).room == room(r)
        })
        .collect();
    check_room(plan, &room(r), &mine, &refs, present)
}

#[test]
fn a_complete_room_with_an_absent_participant_has_no_discrepancies() {
    let plan = plan(ExamKind::Ege);
    let pages = full_room(&[4_000_000_001, 4_000_000_002], "0012");
    let c = check(&plan, "0012", &pages, Some(2));
    assert!(c.is_complete(), "{:?}", c.discrepancies);
    assert_eq!(c.counts.seated, 3);
    assert_eq!(c.counts.registrations, 2);
    assert_eq!(c.counts.complete_sets, 2);
    assert_eq!(c.counts.blanks[&BlankKind::Answer2Sheet2], 2);
    assert_eq!(c.counts.forms[&Form::Ppe13_02Mash], 1);
    assert_eq!(c.counts.pages, 10);
}

#[test]
fn missing_blanks_forms_and_attendance_are_named() {
    let plan = plan(ExamKind::Ege);
    let mut pages = full_room(&[4_000_000_001, 4_000_000_002], "0012");
    // P2's empty answer blank 2 sheet 2 was not scanned, nor the room's ППЭ-12-04МАШ.
    pages.retain(|p| {
        p.identity()
            != Some(&PageIdentity::Blank(
                BlankId::for_kit(BlankKind::Answer2Sheet2, 4_000_000_002, 0).unwrap(),
            ))
            && !matches!(p.identity(), Some(PageIdentity::Form(f)) if f.form == Form::Ppe12_04Mash)
    });
    let c = check(&plan, "0012", &pages, Some(3));
    assert_eq!(c.counts.complete_sets, 1);
    let text: Vec<String> = c.discrepancies.iter().map(|d| d.to_string()).collect();
    assert!(
        c.discrepancies.contains(&Discrepancy::FormMissing {
            form: Form::Ppe12_04Mash
        }),
        "{text:?}"
    );
    assert!(c.discrepancies.contains(&Discrepancy::AttendanceMismatch {
        reported: 3,
        registrations: 2
    }));
    assert!(c.discrepancies.contains(&Discrepancy::BlankMissing {
        participant: "P2".into(),
        kind: BlankKind::Answer2Sheet2,
        found: 0,
        expected: 1
    }));
    assert!(
        text.iter().any(|t| t.contains("P2") && t.contains("empty blanks")),
        "{text:?}"
    );
    let unentered = check(&plan, "0012", &pages, None);
    assert!(unentered.discrepancies.contains(&Discrepancy::AttendanceNotEntered));
}

#[test]
fn answer_blanks_without_a_registration_blank_are_reported() {
    let plan = plan(ExamKind::Ege);
    let mut pages = full_room(&[4_000_000_001], "0012");
    pages.push(blank("blanks-0012.tif", 90, BlankKind::Answer1, 4_000_000_003, 1));
    let c = check(&plan, "0012", &pages, Some(1));
    assert_eq!(
        c.discrepancies,
        vec![Discrepancy::RegistrationMissing {
            participant: "P3".into()
        }]
    );
}

#[test]
fn duplicates_other_rooms_other_sites_and_unread_pages_are_flagged() {
    let plan = plan(ExamKind::Ege);
    let mut pages = full_room(&[4_000_000_001], "0012");
    // The same registration blank scanned again into another file.
    pages.push(blank("rescan.tif", 0, BlankKind::Registration, 4_000_000_001, 0));
    // A blank of room 0013 and one of a kit unknown at this site, in room 0012's batch.
    pages.push(blank("blanks-0012.tif", 50, BlankKind::Answer1, 4_000_000_004, 1));
    pages.push(blank("blanks-0012.tif", 51, BlankKind::Answer1, 9_000_000_009, 1));
    // A form printed for another site.
    pages.push(form("forms-0012.tif", 2, Form::Ppe18Mash, "0202", "0012"));
    pages.push(page(
        "blanks-0012.tif",
        52,
        PageStatus::Unreadable {
            reason: "no barcode".into(),
        },
    ));
    let c = check(&plan, "0012", &pages, Some(1));
    let d = &c.discrepancies;
    assert!(
        d.iter()
            .any(|x| matches!(x, Discrepancy::Duplicate { locations, .. } if locations == &["blanks-0012.tif p.1", "rescan.tif p.1"])),
        "{d:?}"
    );
    assert!(d
        .iter()
        .any(|x| matches!(x, Discrepancy::OtherRoom { room: r, location, .. } if r == &room("0013") && location == "blanks-0012.tif p.51")));
    let other_sites: Vec<_> = d
        .iter()
        .filter(|x| matches!(x, Discrepancy::OtherSite { .. }))
        .collect();
    assert_eq!(other_sites.len(), 1, "{d:?}");
    assert!(d.contains(&Discrepancy::NotInPlan {
        kits: vec![9_000_000_009],
        locations: vec!["blanks-0012.tif p.52".into()]
    }));
    assert_eq!(c.counts.unreadable, 1);
    assert!(d
        .iter()
        .any(|x| x.to_string().contains("blanks-0012.tif p.53: barcode not read")));
}

#[test]
fn files_go_to_the_room_most_of_their_pages_name() {
    let plan = plan(ExamKind::Ege);
    let mixed = vec![
        blank("a.tif", 0, BlankKind::Answer1, 4_000_000_004, 1),
        blank("a.tif", 1, BlankKind::Answer1, 4_000_000_001, 1),
        blank("a.tif", 2, BlankKind::Registration, 4_000_000_001, 0),
    ];
    assert_eq!(
        place_file(&plan, &mixed),
        Placement {
            room: room("0012"),
            kind: PacketKind::Blanks
        }
    );
    let forms = vec![form("f.tif", 0, Form::Ppe13_02Mash, "0101", "0013")];
    assert_eq!(place_file(&plan, &forms).kind, PacketKind::Forms);
    assert_eq!(place_file(&plan, &forms).room, room("0013"));
    let unread = vec![page("u.png", 0, PageStatus::Unreadable { reason: "x".into() })];
    assert_eq!(place_file(&plan, &unread).room.as_str(), UNSORTED_ROOM);
    let foreign = vec![form("g.tif", 0, Form::Ppe13_02Mash, "0202", "0013")];
    assert_eq!(place_file(&plan, &foreign).room.as_str(), UNSORTED_ROOM);
}

#[test]
fn an_essay_set_is_a_registration_blank_and_four_writing_blanks() {
    let plan = plan(ExamKind::Essay);
    let mut pages = vec![blank("e.tif", 0, BlankKind::Registration, 4_000_000_001, 0)];
    for sheet in 1..=3 {
        pages.push(blank(
            "e.tif",
            u32::from(sheet),
            BlankKind::EssayWriting,
            4_000_000_001,
            sheet,
        ));
    }
    pages.push(form("f.tif", 0, Form::Ppe12_04Mash, "0101", "0012"));
    pages.push(form("f.tif", 1, Form::Ppe13_02Mash, "0101", "0012"));
    let c = check(&plan, "0012", &pages, Some(1));
    assert_eq!(
        c.discrepancies,
        vec![Discrepancy::BlankMissing {
            participant: "P1".into(),
            kind: BlankKind::EssayWriting,
            found: 3,
            expected: 4
        }]
    );
    pages.push(blank("e.tif", 4, BlankKind::EssayWriting, 4_000_000_001, 4));
    assert!(check(&plan, "0012", &pages, Some(1)).is_complete());
}

#[test]
fn a_participant_missing_from_the_plan_holds_every_room_and_is_named_for_what_it_is() {
    let plan = plan(ExamKind::Ege);
    // Room 0012 complete as far as the plan goes; a stranger (kit 4_000_000_777) sat in it
    // and was scanned as a batch of their own.
    let mut pages = full_room(&[4_000_000_001, 4_000_000_002], "0012");
    for (kind, count) in full_set(ExamKind::Ege) {
        for sheet in 0..*count {
            let n = u32::try_from(pages.len()).unwrap();
            pages.push(blank("stranger.tif", n, *kind, 4_000_000_777, sheet));
        }
    }
    assert_eq!(place_file(&plan, &pages[10..]).room, unsorted_room());
    let room_0012 = check(&plan, "0012", &pages, Some(2));
    assert!(!room_0012.is_complete(), "sealed without the operator's word");
    let text: Vec<String> = room_0012.discrepancies.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(text[0].contains("kit 4000000777"), "{text:?}");
    assert!(text[0].contains("stranger.tif p.1"), "{text:?}");
    assert!(text[0].contains("no participant with that kit"), "{text:?}");
    // The unsorted batch says what it is, not "another site or day".
    let unsorted = check(&plan, UNSORTED_ROOM, &pages, None);
    let text: Vec<String> = unsorted.discrepancies.iter().map(ToString::to_string).collect();
    assert!(text.iter().all(|t| !t.contains("not of this site")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("seating plan has no participant")),
        "{text:?}"
    );
}
