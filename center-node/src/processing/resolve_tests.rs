#![allow(clippy::unwrap_used)]

use konvert_exam::{DayPlan, FormId, PlanParticipant, PlanRoom, PlanSite, SiteId, SiteKind};
use konvert_records::{AudioChoice, Decision, PageReading};

use super::*;
use crate::processing::desk::close_blockers;

const DATE: &str = "2026-06-01";

fn day(exam: ExamKind) -> ExamDay {
    ExamDay {
        date: DATE.parse().unwrap(),
        exam,
    }
}

fn plan(exam: ExamKind) -> DayPlan {
    DayPlan {
        date: DATE.parse().unwrap(),
        exam,
        region: "76".into(),
        expert_checking: true,
        sites: vec![PlanSite {
            code: SiteId::new("0101").unwrap(),
            kind: SiteKind::ExamSite,
            time_zone: "Europe/Moscow".into(),
        }],
        rooms: vec![PlanRoom {
            site: SiteId::new("0101").unwrap(),
            code: RoomId::new("0001").unwrap(),
            oral: false,
        }],
        participants: vec![PlanParticipant {
            code: "P1".into(),
            site: SiteId::new("0101").unwrap(),
            room: RoomId::new("0001").unwrap(),
            seat: "1А".into(),
            kit: 1,
            consent: true,
        }],
        members: vec![],
    }
}

fn packet(n: u8, kind: PacketKind, exam: ExamKind, received: u64) -> PacketEntry {
    PacketEntry {
        envelope: [n; 32],
        site: "0101".into(),
        packet_id: format!("0101-{}", kind.code()),
        version: 1,
        day: day(exam),
        room: RoomId::new("0001").unwrap(),
        kind,
        received_at_unix_ms: received,
        registered_at_unix_ms: 0,
        opening: Opening::Opened { files: 1, pages: 1 },
    }
}

fn page(n: u8, index: u32, identity: PageIdentity) -> PageEntry {
    PageEntry {
        key: PageKey {
            envelope: [n; 32],
            file: 0,
            page: index,
        },
        file_name: "scan.tif".into(),
        file_sha256: [n; 32],
        digest: konvert_records::page_digest(&[n; 32], index),
        reading: PageReading::Read {
            identity,
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

fn blank(kind: BlankKind, kit: u64, sheet: u8) -> PageIdentity {
    PageIdentity::Blank(BlankId::for_kit(kind, kit, sheet).unwrap())
}

fn form(form: Form) -> PageIdentity {
    PageIdentity::Form(FormId {
        form,
        site: SiteId::new("0101").unwrap(),
        room: RoomId::new("0001").unwrap(),
        date: DATE.parse().unwrap(),
    })
}

fn full_blanks(n: u8) -> Vec<PageEntry> {
    [
        BlankKind::Registration,
        BlankKind::Answer1,
        BlankKind::Answer2Sheet1,
        BlankKind::Answer2Sheet2,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, k)| page(n, i as u32, blank(k, 1, 0)))
    .collect()
}

fn forms_pages(n: u8) -> Vec<PageEntry> {
    vec![
        page(n, 0, form(Form::Ppe12_04Mash)),
        page(n, 1, form(Form::Ppe13_02Mash)),
        page(n, 2, form(Form::Ppe18Mash)),
    ]
}

fn stage_of(r: &Resolution, key: PageKey) -> PageStage {
    r.outcomes.iter().find(|o| o.key == key).unwrap().stage.clone()
}

#[test]
fn blanks_wait_for_their_rooms_summary_form_and_the_site_is_asked_for_it() {
    let plans = [plan(ExamKind::Ege)];
    let blanks = packet(1, PacketKind::Blanks, ExamKind::Ege, 10);
    let r = resolve(&plans, std::slice::from_ref(&blanks), &full_blanks(1), &[]);
    assert!(r.outcomes.iter().all(|o| o.stage == PageStage::AwaitingForms));
    assert_eq!(r.findings.len(), 1);
    assert!(matches!(&r.findings[0].kind, FindingKind::BlanksBeforeForms { form } if form == "ППЭ-13-02МАШ"));
    assert_eq!(r.answers.len(), 1);
    assert_eq!(
        r.answers[0].remarks()[0].action,
        RemarkAction::SendForm {
            form: "ППЭ-13-02МАШ".into()
        }
    );

    // The forms arrive: everything is verified and final; the finding stays made (once).
    let forms = packet(2, PacketKind::Forms, ExamKind::Ege, 20);
    let mut pages = full_blanks(1);
    pages.extend(forms_pages(2));
    let r = resolve(&plans, &[blanks, forms], &pages, &[]);
    assert!(
        r.outcomes
            .iter()
            .all(|o| o.stage == PageStage::Final(FinalState::Registered)),
        "{:#?}",
        r.outcomes
    );
    assert_eq!(r.findings.len(), 1);
    let room = &r.rooms[0];
    assert!(
        room.is_complete() && room.complete_sets == 1 && room.seated == 1,
        "{room:?}"
    );
    // Expert checking is the one thing left before closing.
    let blockers = close_blockers(&plans[0], &r, &[], false);
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(blockers[0].contains("expert checking"));
}

#[test]
fn the_order_of_registration_does_not_matter() {
    let plans = [plan(ExamKind::Ege)];
    let mut packets = vec![
        packet(1, PacketKind::Blanks, ExamKind::Ege, 10),
        packet(2, PacketKind::Forms, ExamKind::Ege, 5),
        PacketEntry {
            packet_id: "other".into(),
            ..packet(3, PacketKind::Blanks, ExamKind::Ege, 30)
        },
    ];
    let mut pages = full_blanks(1);
    pages.extend(forms_pages(2));
    pages.push(page(3, 0, blank(BlankKind::Answer1, 1, 0)));
    pages.push(page(3, 1, blank(BlankKind::Answer1, 2, 0)));
    let first = resolve(&plans, &packets, &pages, &[]);
    packets.reverse();
    pages.reverse();
    let second = resolve(&plans, &packets, &pages, &[]);
    let sorted = |r: &Resolution| {
        let mut o = r.outcomes.clone();
        o.sort_by_key(|o| o.key);
        o
    };
    assert_eq!(sorted(&first), sorted(&second));
    assert_eq!(first.findings, second.findings);
    // The copy that came later is the duplicate, whatever the order of registration.
    assert_eq!(
        stage_of(
            &first,
            PageKey {
                envelope: [3; 32],
                file: 0,
                page: 0
            }
        ),
        PageStage::Final(FinalState::Duplicate {
            of: PageKey {
                envelope: [1; 32],
                file: 0,
                page: 1
            }
        })
    );
}

#[test]
fn an_unsure_page_waits_for_a_verifier_and_a_senior_verifier_takes_what_is_passed_on() {
    let plans = [plan(ExamKind::Ege)];
    let packets = [
        packet(1, PacketKind::Blanks, ExamKind::Ege, 10),
        packet(2, PacketKind::Forms, ExamKind::Ege, 5),
    ];
    let mut pages = full_blanks(1);
    pages[1].reading = PageReading::Read {
        identity: blank(BlankKind::Answer1, 1, 0),
        orientation: 90,
        via_fallback: true,
        contents: None,
    };
    pages.extend(forms_pages(2));
    let key = pages[1].key;
    let r = resolve(&plans, &packets, &pages, &[]);
    assert_eq!(stage_of(&r, key), PageStage::AwaitingVerifier);
    assert!(
        r.answers.iter().all(|a| a.digest != [1; 32]),
        "a packet with pages in the queue is not answered yet"
    );

    let decide = |seq, role, verdict| Decision {
        seq,
        by: "x".into(),
        role,
        at_unix_ms: seq,
        kind: DecisionKind::Verify { page: key, verdict },
    };
    let passed = [decide(1, Role::Verifier, Verdict::ToSenior)];
    assert_eq!(
        stage_of(&resolve(&plans, &packets, &pages, &passed), key),
        PageStage::AwaitingSenior
    );
    let settled = [
        decide(1, Role::Verifier, Verdict::ToSenior),
        decide(2, Role::SeniorVerifier, Verdict::Is(blank(BlankKind::Answer1, 1, 0))),
        // A verifier does not overrule the senior verifier.
        decide(3, Role::Verifier, Verdict::Unreadable),
    ];
    let r = resolve(&plans, &packets, &pages, &settled);
    assert_eq!(stage_of(&r, key), PageStage::Final(FinalState::Registered));
    assert!(r.answers.iter().any(|a| a.digest == [1; 32] && a.remarks().is_empty()));
}

#[test]
fn presumed_empty_answer_pages_are_flagged_but_not_the_essays_and_foreign_blanks_are_not_this_exam() {
    let plans = [plan(ExamKind::Ege), plan(ExamKind::Essay)];
    let packets = [
        packet(1, PacketKind::Blanks, ExamKind::Ege, 10),
        packet(2, PacketKind::Forms, ExamKind::Ege, 5),
    ];
    let mut pages = full_blanks(1);
    pages[3].written = Some(Mark::No);
    pages.push(page(1, 9, blank(BlankKind::EssayWriting, 1, 1)));
    pages.extend(forms_pages(2));
    let r = resolve(&plans, &packets, &pages, &[]);
    let flagged: Vec<_> = r.outcomes.iter().filter(|o| o.presumed_empty).map(|o| o.key).collect();
    assert_eq!(flagged, vec![pages[3].key]);
    assert!(matches!(
        stage_of(&r, pages[4].key),
        PageStage::Final(FinalState::NotThisExam { .. })
    ));
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);

    // The essay: an empty writing blank is part of a full set, not flagged.
    let essay_packets = [
        packet(3, PacketKind::Blanks, ExamKind::Essay, 10),
        packet(4, PacketKind::Forms, ExamKind::Essay, 5),
    ];
    let mut essay = vec![page(3, 0, blank(BlankKind::Registration, 1, 0))];
    for sheet in 1..=4 {
        let mut p = page(3, u32::from(sheet), blank(BlankKind::EssayWriting, 1, sheet));
        p.written = Some(Mark::No);
        essay.push(p);
    }
    essay.extend(forms_pages(4));
    let r = resolve(&plans, &essay_packets, &essay, &[]);
    assert!(r.outcomes.iter().all(|o| !o.presumed_empty));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn a_region_where_nobody_sat_the_exam_can_be_closed() {
    let mut nobody = plan(ExamKind::Ege);
    nobody.expert_checking = false;
    let r = resolve(&[nobody.clone()], &[], &[], &[]);
    // Nothing received is not evidence: without the administrator's statement every
    // planned room's forms are awaited.
    assert!(!close_blockers(&nobody, &r, &[], false).is_empty());
    assert!(close_blockers(&nobody, &r, &[], true).is_empty());
    // But once anyone wrote, every room's forms and the site's ППЭ-18МАШ are needed.
    let packets = [
        packet(1, PacketKind::Blanks, ExamKind::Ege, 10),
        packet(2, PacketKind::Forms, ExamKind::Ege, 5),
    ];
    let mut pages = full_blanks(1);
    pages.push(page(2, 0, form(Form::Ppe13_02Mash)));
    let r = resolve(&[nobody.clone()], &packets, &pages, &[]);
    let blockers = close_blockers(&nobody, &r, &[], false);
    assert_eq!(blockers.len(), 2, "{blockers:?}");
    // The statement that nobody sat is refused once blanks are registered.
    let stated = close_blockers(&nobody, &r, &[], true);
    assert!(stated.iter().any(|b| b.contains("someone sat")), "{stated:?}");
    assert!(blockers.iter().any(|b| b.contains("ППЭ-12-04МАШ")) && blockers.iter().any(|b| b.contains("ППЭ-18МАШ")));
}

fn recording(n: u8, index: u32, kim: &str) -> PageEntry {
    PageEntry {
        reading: PageReading::Recording { kim: kim.into() },
        ..page(n, index, blank(BlankKind::Answer1, 1, 0))
    }
}

#[test]
fn recordings_sharing_a_kim_number_are_blocked_as_one_group_until_each_is_decided() {
    let plans = [plan(ExamKind::Ege)];
    let packets = [
        packet(1, PacketKind::Audio, ExamKind::Ege, 10),
        PacketEntry {
            packet_id: "0101-audio-later".into(),
            ..packet(2, PacketKind::Audio, ExamKind::Ege, 20)
        },
    ];
    // Two in one packet and one in a later packet share 123456; 654321 is alone.
    let pages = vec![
        recording(1, 0, "123456"),
        recording(1, 1, "123456"),
        recording(1, 2, "654321"),
        recording(2, 0, "123456"),
    ];
    let r = resolve(&plans, &packets, &pages, &[]);
    let groups: Vec<_> = r
        .findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::KimGroup { kim, recordings } => Some((kim.clone(), recordings.len())),
            _ => None,
        })
        .collect();
    assert_eq!(groups, vec![("123456".to_owned(), 3)], "{:#?}", r.findings);
    assert_eq!(r.findings.len(), 1);
    for p in [&pages[0], &pages[1], &pages[3]] {
        assert_eq!(stage_of(&r, p.key), PageStage::Blocked);
    }
    assert_eq!(stage_of(&r, pages[2].key), PageStage::Final(FinalState::Registered));

    let decide = |seq, key, choice| Decision {
        seq,
        by: "operator".into(),
        role: Role::AudioOperator,
        at_unix_ms: seq,
        kind: DecisionKind::Audio { recording: key, choice },
    };
    let decisions = [
        decide(1, pages[0].key, AudioChoice::Admit),
        decide(2, pages[1].key, AudioChoice::Annul),
        decide(3, pages[3].key, AudioChoice::Renumber("777777".into())),
    ];
    let r = resolve(&plans, &packets, &pages, &decisions);
    assert_eq!(stage_of(&r, pages[0].key), PageStage::Final(FinalState::Registered));
    assert!(matches!(
        stage_of(&r, pages[1].key),
        PageStage::Final(FinalState::Quarantined { .. })
    ));
    assert_eq!(stage_of(&r, pages[3].key), PageStage::Final(FinalState::Registered));
}

#[test]
fn removal_marks_are_reconciled_with_the_rooms_acts() {
    let mut plans = [plan(ExamKind::Ege)];
    plans[0].expert_checking = false;
    for kit in [2, 3] {
        plans[0].participants.push(PlanParticipant {
            code: format!("P{kit}"),
            site: SiteId::new("0101").unwrap(),
            room: RoomId::new("0001").unwrap(),
            seat: format!("{kit}А"),
            kit,
            consent: true,
        });
    }
    let packets = [
        packet(1, PacketKind::Blanks, ExamKind::Ege, 10),
        packet(2, PacketKind::Forms, ExamKind::Ege, 5),
    ];
    // Kit 1 marked removed and on ППЭ-21: agrees. Kit 2 marked, not on the act. Kit 3 on
    // the act, not marked.
    let mut pages = Vec::new();
    for (i, (kit, removed)) in [(1u64, Mark::Yes), (2, Mark::Yes), (3, Mark::No)]
        .into_iter()
        .enumerate()
    {
        let mut p = page(1, i as u32, blank(BlankKind::Registration, kit, 0));
        p.removed_mark = Some(removed);
        p.early_finish_mark = Some(Mark::No);
        pages.push(p);
    }
    pages.extend(forms_pages(2));
    let mut act = page(2, 5, form(Form::Ppe21));
    act.reading = PageReading::Read {
        identity: form(Form::Ppe21),
        orientation: 0,
        via_fallback: false,
        contents: Some(konvert_exam::FormContents::Kits(vec![1, 3])),
    };
    pages.push(act);
    let r = resolve(&plans, &packets, &pages, &[]);
    let marks: Vec<u64> = r
        .findings
        .iter()
        .filter_map(|f| match &f.kind {
            FindingKind::MarksDisagree { kit, .. } => Some(*kit),
            _ => None,
        })
        .collect();
    assert_eq!(marks, vec![2, 3], "{:#?}", r.findings);
    // Closing waits for both to be reconciled by a person.
    let blockers = close_blockers(&plans[0], &r, &[], false);
    assert_eq!(
        blockers.iter().filter(|b| b.contains("not reconciled")).count(),
        2,
        "{blockers:?}"
    );
    let settled: Vec<Decision> = r
        .findings
        .iter()
        .filter(|f| matches!(f.kind, FindingKind::MarksDisagree { .. }))
        .enumerate()
        .map(|(i, f)| Decision {
            seq: i as u64 + 1,
            by: "senior".into(),
            role: Role::SeniorVerifier,
            at_unix_ms: 0,
            kind: DecisionKind::Reconcile {
                finding: f.id.clone(),
                note: "checked against the act".into(),
            },
        })
        .collect();
    assert!(!close_blockers(&plans[0], &r, &settled, false)
        .iter()
        .any(|b| b.contains("not reconciled")));
}

#[test]
fn without_the_days_plan_nothing_is_checked_or_answered() {
    let packets = [
        packet(1, PacketKind::Blanks, ExamKind::Ege, 10),
        packet(2, PacketKind::Forms, ExamKind::Ege, 5),
    ];
    let mut pages = full_blanks(1);
    pages.extend(forms_pages(2));
    let r = resolve(&[], &packets, &pages, &[]);
    assert!(
        r.outcomes.iter().all(|o| o.stage == PageStage::AwaitingPlan),
        "{:#?}",
        r.outcomes
    );
    assert!(r.answers.is_empty(), "no \"loaded\" without a plan: {:#?}", r.answers);
    assert!(r
        .findings
        .iter()
        .all(|f| !matches!(f.kind, FindingKind::NotInPlan { .. })));
}
