use super::*;
use crate::{BlankId, FormId};

fn context(exam: ExamKind) -> ExamContext {
    ExamContext {
        exam,
        date: "2026-06-01".parse().unwrap(),
        site: "0101".parse().unwrap(),
        room: "0012".parse().unwrap(),
    }
}

fn form(form: Form, site: &str, room: &str, date: &str) -> PageIdentity {
    PageIdentity::Form(FormId {
        form,
        site: site.parse().unwrap(),
        room: room.parse().unwrap(),
        date: date.parse().unwrap(),
    })
}

fn blank(kind: BlankKind) -> PageIdentity {
    PageIdentity::Blank(BlankId::for_kit(kind, 4_000_000_001, 1).unwrap())
}

#[test]
fn an_essay_writing_blank_in_an_ege_packet_is_foreign_and_the_reverse_too() {
    let ege = context(ExamKind::Ege);
    let essay = context(ExamKind::Essay);
    match belongs_to(&blank(BlankKind::EssayWriting), &ege) {
        Belonging::Foreign(reason) => {
            assert_eq!(
                reason,
                ForeignReason::BlankOfAnotherExam {
                    kind: BlankKind::EssayWriting,
                    exam: ExamKind::Ege
                }
            );
            assert!(reason.to_string().contains("Бланк записи"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        belongs_to(&blank(BlankKind::Answer1), &essay),
        Belonging::Foreign(ForeignReason::BlankOfAnotherExam { .. })
    ));
    for kind in BlankKind::ALL {
        let in_ege = kind != BlankKind::EssayWriting;
        assert_eq!(
            belongs_to(&blank(kind), &ege) == Belonging::ThisExam,
            in_ege,
            "{kind:?}"
        );
        let in_essay = matches!(kind, BlankKind::Registration | BlankKind::EssayWriting);
        assert_eq!(
            belongs_to(&blank(kind), &essay) == Belonging::ThisExam,
            in_essay,
            "{kind:?}"
        );
    }
}

#[test]
fn forms_of_another_day_site_or_room_are_foreign_with_the_reason() {
    let ege = context(ExamKind::Ege);
    assert_eq!(
        belongs_to(&form(Form::Ppe13_02Mash, "0101", "0012", "2026-06-01"), &ege),
        Belonging::ThisExam
    );
    let cases = [
        (
            form(Form::Ppe13_02Mash, "0101", "0012", "2026-06-04"),
            "another day, 2026-06-04",
        ),
        (
            form(Form::Ppe12_04Mash, "0202", "0012", "2026-06-01"),
            "another site, 0202",
        ),
        (
            form(Form::Ppe18Mash, "0101", "0013", "2026-06-01"),
            "another room, 0013",
        ),
    ];
    for (page, says) in cases {
        match belongs_to(&page, &ege) {
            Belonging::Foreign(reason) => assert!(reason.to_string().contains(says), "{reason}"),
            other => panic!("{page}: {other:?}"),
        }
    }
    let oral = form(Form::Ppe13_03UMash, "0101", "0012", "2026-06-01");
    assert_eq!(belongs_to(&oral, &ege), Belonging::ThisExam);
    assert!(matches!(
        belongs_to(&oral, &context(ExamKind::Oge)),
        Belonging::Foreign(ForeignReason::FormOfAnotherExam { .. })
    ));
}
