#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hot-folder intake with real generated scans, real recognition and a real sled journal.

use std::fs;
use std::path::Path;
use std::time::Duration;

use konvert_edge::intake::{scan_recognizer, Intake, IntakeEvent, IntakeTuning};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{ExamKind, PageIdentity, RoomId, SeatingPlan};

const TUNING: IntakeTuning = IntakeTuning {
    settle_ms: 100,
    incomplete_wait_ms: 2_000,
};

fn plan(rooms: &[(&str, usize)]) -> SeatingPlan {
    let rooms: Vec<(RoomId, usize)> = rooms.iter().map(|(r, n)| (r.parse().unwrap(), *n)).collect();
    let refs: Vec<(&RoomId, usize)> = rooms.iter().map(|(r, n)| (r, *n)).collect();
    synthetic_plan(
        &"0101".parse().unwrap(),
        "2026-06-01".parse().unwrap(),
        ExamKind::Ege,
        &refs,
        4_000_000_000,
    )
}

fn job(pages_per_file: usize) -> ScanJob {
    ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file,
        degrade: false,
        dpi: 150,
        seed: 1,
    }
}

fn open(hot: &Path, data: &Path) -> Intake {
    Intake::open(hot, data, TUNING, scan_recognizer(Duration::from_millis(1500))).unwrap()
}

/// Polls with the real clock until nothing is settling; returns every event.
fn drain(intake: &mut Intake) -> Vec<IntakeEvent> {
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let now = konvert_edge::cli::now_unix_ms();
        events.extend(intake.poll(now).unwrap());
        if !intake.is_settling() && started.elapsed() > Duration::from_millis(250) {
            return events;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "intake never settled");
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn taken_identities(intake: &Intake) -> Vec<PageIdentity> {
    let mut ids: Vec<_> = intake
        .journal()
        .files()
        .unwrap()
        .iter()
        .flat_map(|f| f.pages.iter().filter_map(|p| p.identity().cloned()))
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_file_written_slowly_in_pieces_is_taken_once_and_only_when_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (hot, data) = (dir.path().join("hot"), dir.path().join("data"));
    fs::create_dir_all(&hot).unwrap();
    let plan = plan(&[("0012", 2)]);
    let pages = room_pages(&plan, &"0012".parse().unwrap(), 0);
    let staging = dir.path().join("staging");
    fs::create_dir_all(&staging).unwrap();
    let written = write_pages(&pages, &staging, "batch", job(pages.len())).unwrap();
    let bytes = fs::read(&written[0]).unwrap();

    let mut intake = open(&hot, &data);
    let target = hot.join("batch-0001.tif");
    let mut f = fs::File::create(&target).unwrap();
    use std::io::Write;
    // Three pieces with pauses longer than the settle time: the size is stable between
    // them, but the file does not parse to its end, so it is not taken.
    for piece in bytes.chunks(bytes.len() / 3 + 1).take(2) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        for _ in 0..6 {
            let events = intake.poll(konvert_edge::cli::now_unix_ms()).unwrap();
            assert!(events.is_empty(), "taken before complete: {events:?}");
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    f.write_all(&bytes[2 * (bytes.len() / 3 + 1)..]).unwrap();
    drop(f);
    let events = drain(&mut intake);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0], IntakeEvent::Taken { pages: n, unreadable: 0, problem: None, .. } if *n == pages.len())
    );
    let mut want = pages.clone();
    want.sort();
    assert_eq!(taken_identities(&intake), want);
    // Polling again takes nothing more.
    assert!(drain(&mut intake).is_empty());
}

#[test]
fn the_same_file_copied_in_twice_is_taken_once_and_the_copy_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (hot, data) = (dir.path().join("hot"), dir.path().join("data"));
    fs::create_dir_all(&hot).unwrap();
    let plan = plan(&[("0012", 1)]);
    let pages = room_pages(&plan, &"0012".parse().unwrap(), 0);
    write_pages(&pages, &hot, "scan", job(pages.len())).unwrap();
    let mut intake = open(&hot, &data);
    assert_eq!(drain(&mut intake).len(), 1);
    fs::copy(hot.join("scan-0001.tif"), hot.join("scan-0001 (copy).tif")).unwrap();
    let events = drain(&mut intake);
    assert_eq!(
        events,
        vec![IntakeEvent::Copy {
            name: "scan-0001 (copy).tif".into(),
            of: "scan-0001.tif".into()
        }]
    );
    assert_eq!(intake.journal().files().unwrap().len(), 1);
}

#[test]
fn a_thousand_files_dropped_at_once_are_all_taken_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (hot, data) = (dir.path().join("hot"), dir.path().join("data"));
    fs::create_dir_all(&hot).unwrap();
    // 250 participants × 4 blanks = 1,000 blank pages, one page per file, plus forms.
    let plan = plan(&[("0012", 125), ("0013", 125)]);
    let mut pages = room_pages(&plan, &"0012".parse().unwrap(), 0);
    pages.extend(room_pages(&plan, &"0013".parse().unwrap(), 0));
    let small = ScanJob { dpi: 100, ..job(1) };
    write_pages(&pages, &hot, "p", small).unwrap();
    assert_eq!(fs::read_dir(&hot).unwrap().count(), pages.len());
    let mut intake = open(&hot, &data);
    let events = drain(&mut intake);
    let taken = events.iter().filter(|e| matches!(e, IntakeEvent::Taken { .. })).count();
    assert_eq!(
        taken,
        pages.len(),
        "{:?}",
        events.iter().find(|e| !matches!(e, IntakeEvent::Taken { .. }))
    );
    let mut want = pages.clone();
    want.sort();
    assert_eq!(taken_identities(&intake), want, "every page recognized, none twice");
    // Reopened, nothing is taken again.
    drop(intake);
    let mut intake = open(&hot, &data);
    assert!(drain(&mut intake).is_empty());
    assert_eq!(intake.journal().files().unwrap().len(), pages.len());
}

#[test]
fn corrupt_and_unknown_files_are_taken_flagged_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (hot, data) = (dir.path().join("hot"), dir.path().join("data"));
    fs::create_dir_all(&hot).unwrap();
    let plan = plan(&[("0012", 1)]);
    let pages = room_pages(&plan, &"0012".parse().unwrap(), 0);
    let staging = dir.path().join("staging");
    fs::create_dir_all(&staging).unwrap();
    let full = write_pages(&pages, &staging, "s", job(pages.len())).unwrap();
    let bytes = fs::read(&full[0]).unwrap();
    fs::write(hot.join("cut.tif"), &bytes[..bytes.len() / 2]).unwrap();
    fs::write(hot.join("notes.pdf"), b"%PDF-1.7 not a scan").unwrap();
    let mut intake = open(&hot, &data);
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    while events.len() < 2 {
        events.extend(intake.poll(konvert_edge::cli::now_unix_ms()).unwrap());
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.elapsed() >= Duration::from_millis(TUNING.incomplete_wait_ms),
        "waited for the writer"
    );
    let files = intake.journal().files().unwrap();
    assert_eq!(files.len(), 2);
    for f in &files {
        let problem = f.problem.as_deref().unwrap();
        assert!(problem.contains("rescan"), "{problem}");
        assert!(
            f.pages.last().unwrap().identity().is_none(),
            "the unreadable rest is a flagged page"
        );
        assert!(fs::read(intake.spool_path(f)).is_ok(), "the bytes are kept");
    }
    let cut = files.iter().find(|f| f.name == "cut.tif").unwrap();
    assert!(
        cut.pages.len() >= 2,
        "pages before the damage are kept and read: {}",
        cut.pages.len()
    );
}
