use std::time::Duration;

use super::*;
use crate::scan::{read_answer_ink, read_marks, read_scan_pages, recognize, AnswerReading, MarkReading, Recognition};

fn plan(exam: ExamKind) -> SeatingPlan {
    let room: RoomId = "0012".parse().unwrap();
    synthetic_plan(
        &"0101".parse().unwrap(),
        "2026-06-01".parse().unwrap(),
        exam,
        &[(&room, 6)],
        4_000_000_000,
    )
}

/// Scans the room's pages degraded, reads the files back and recognizes every page,
/// checking identity, contents, marks and handwriting against what was written.
#[test]
fn a_room_scanned_from_its_attendance_reads_back_with_summary_acts_marks_and_empty_pages() {
    let plan = plan(ExamKind::Ege);
    let room: RoomId = "0012".parse().unwrap();
    let kits: Vec<u64> = plan.participants.iter().map(|p| p.kit).collect();
    let attendance = Attendance {
        absent: vec![kits[0]],
        removed: vec![kits[1]],
        early_finished: vec![kits[2]],
        empty_answers: vec![kits[3]],
        additional: vec![(kits[4], 2)],
    };
    let pages = room_scan(&plan, &room, &attendance);
    // Forms: 12-04, 13-02, one act 21, one act 22; then 5 present × 4 blanks + 2 ДБО.
    assert_eq!(pages.len(), 4 + 5 * 4 + 2);
    let dir = tempfile::tempdir().unwrap();
    let job = ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file: 7,
        degrade: true,
        dpi: 300,
        seed: 21,
    };
    let files = write_synth_pages(&pages, dir.path(), "batch", job).unwrap();
    let mut scanned = Vec::new();
    for f in &files {
        let bytes = fs::read(f).unwrap();
        for page in read_scan_pages(&bytes).unwrap() {
            scanned.push(page.unwrap());
        }
    }
    assert_eq!(scanned.len(), pages.len());
    let mut summary = None;
    let mut acts = Vec::new();
    for (page, want) in scanned.iter().zip(&pages) {
        let Recognition::Read {
            identity,
            orientation,
            contents,
            ..
        } = recognize(page, Duration::from_secs(3))
        else {
            panic!("{:?} unreadable", want.identity());
        };
        assert_eq!(Some(&identity), want.identity().as_ref());
        match &identity {
            PageIdentity::Form(id) => match id.form {
                Form::Ppe13_02Mash => summary = contents,
                Form::Ppe21 | Form::Ppe22 => acts.push((id.form, contents)),
                _ => assert_eq!(contents, None),
            },
            PageIdentity::Blank(id) => {
                assert_eq!(contents, None);
                if id.kind == BlankKind::Registration {
                    let marks = read_marks(page, orientation).map(|m| m.reading);
                    let want = [
                        attendance.removed.contains(&id.kit()),
                        attendance.early_finished.contains(&id.kit()),
                    ]
                    .map(|m| if m { MarkReading::Marked } else { MarkReading::Empty });
                    assert_eq!(marks, want, "{identity}");
                }
                if id.kind.has_written_answers() {
                    let ink = read_answer_ink(page, orientation);
                    let want = if attendance.empty_answers.contains(&id.kit()) {
                        AnswerReading::Empty
                    } else {
                        AnswerReading::Written
                    };
                    assert_eq!(ink.reading, want, "{identity}: {ink:?}");
                }
            }
        }
    }
    let Some(FormContents::RoomSummary(summary)) = summary else {
        panic!("no summary: {summary:?}");
    };
    assert_eq!(
        (summary.present, summary.absent, summary.removed, summary.early_finished),
        (5, 1, 1, 1)
    );
    assert_eq!(summary.blanks_of(BlankKind::Registration), 5);
    assert_eq!(summary.blanks_of(BlankKind::Answer2Sheet2), 5);
    assert_eq!(summary.blanks_of(BlankKind::Additional), 2);
    assert_eq!(
        acts,
        [
            (Form::Ppe21, Some(FormContents::Kits(vec![kits[1]]))),
            (Form::Ppe22, Some(FormContents::Kits(vec![kits[2]])))
        ]
    );
}

#[test]
fn an_essay_room_leaves_its_last_writing_blanks_empty_and_a_quiet_room_has_no_acts() {
    let plan = plan(ExamKind::Essay);
    let room: RoomId = "0012".parse().unwrap();
    let pages = room_scan(&plan, &room, &Attendance::default());
    assert_eq!(pages.len(), 2 + 6 * 5);
    let empty: Vec<u8> = pages
        .iter()
        .filter(|p| p.handwriting == Handwriting::Empty)
        .filter_map(|p| match p.identity() {
            Some(PageIdentity::Blank(id)) => Some(id.sheet()),
            _ => None,
        })
        .collect();
    assert_eq!(empty, [3, 4].repeat(6));
    assert!(pages.iter().all(|p| p.marks.is_empty()));
    match &pages[1].mark {
        PageMark::Form(qr) => {
            let s = qr.summary().unwrap();
            assert_eq!((s.present, s.absent), (6, 0));
            assert_eq!(s.blanks_of(BlankKind::EssayWriting), 24);
        }
        other => panic!("{other:?}"),
    }
    // The old generator still gives the same identities for a full room.
    let old: Vec<_> = room_pages(&plan, &room, 0);
    let new: Vec<_> = pages.iter().filter_map(SynthPage::identity).collect();
    assert_eq!(old, new);
}
