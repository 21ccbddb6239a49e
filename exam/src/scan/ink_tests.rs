use super::*;
use crate::scan::{
    read_scan_pages, render_page_with, write_scan, Degradation, Handwriting, PageFill, PageMark, ScanFormat,
};
use crate::{BlankId, BlankKind, PageIdentity};

fn scanned(kind: BlankKind, handwriting: Handwriting, d: Degradation, format: ScanFormat, seed: u64) -> PageImage {
    let mark = PageMark::Identity(PageIdentity::Blank(BlankId::for_kit(kind, 4_000_000_001, 2).unwrap()));
    let fill = PageFill {
        handwriting,
        ..PageFill::seeded(seed)
    };
    let page = render_page_with(&mark, &fill, &d);
    let mut file = Vec::new();
    write_scan(&[page], format, &mut file).unwrap();
    read_scan_pages(&file).unwrap().next().unwrap().unwrap()
}

fn degraded(seed: u64) -> Degradation {
    let mut d = Degradation::random(seed);
    if seed < 3 {
        d.skew_deg = [3.0, -3.0, 2.0][seed as usize];
        d.dpi = 200;
        d.speckle = 0.004;
        d.blur = true;
    }
    d
}

#[test]
fn written_and_empty_answer_pages_are_told_apart_on_degraded_scans() {
    let kinds = [
        BlankKind::Answer2Sheet1,
        BlankKind::Answer2Sheet2,
        BlankKind::Additional,
        BlankKind::EssayWriting,
    ];
    for seed in 0..16u64 {
        let kind = kinds[seed as usize % kinds.len()];
        let d = degraded(seed);
        let format = if seed % 2 == 0 {
            ScanFormat::TiffG4
        } else {
            ScanFormat::Png
        };
        let empty = read_answer_ink(&scanned(kind, Handwriting::Empty, d, format, seed), d.rotation);
        assert_eq!(
            empty.reading,
            AnswerReading::Empty,
            "{kind:?} seed {seed}: {d:?} {empty:?}"
        );
        let written = read_answer_ink(&scanned(kind, Handwriting::Seeded, d, format, seed), d.rotation);
        assert_eq!(
            written.reading,
            AnswerReading::Written,
            "{kind:?} seed {seed}: {d:?} {written:?}"
        );
        let words = read_answer_ink(&scanned(kind, Handwriting::Strokes(12), d, format, seed), d.rotation);
        assert_eq!(
            words.reading,
            AnswerReading::Written,
            "{kind:?} seed {seed}: {d:?} {words:?}"
        );
    }
}

#[test]
fn a_single_scribble_goes_to_a_verifier() {
    for seed in 0..8u64 {
        let d = degraded(seed + 40);
        let page = scanned(
            BlankKind::Additional,
            Handwriting::Strokes(1),
            d,
            ScanFormat::TiffG4,
            seed,
        );
        let ink = read_answer_ink(&page, d.rotation);
        assert_eq!(ink.reading, AnswerReading::Unsure, "seed {seed}: {d:?} {ink:?}");
    }
}

#[test]
fn the_measure_grows_with_the_writing() {
    let d = Degradation::clean();
    let ink = |h| answer_ink_mm2(&scanned(BlankKind::Answer2Sheet1, h, d, ScanFormat::TiffG4, 5), 0);
    let (none, few, page) = (
        ink(Handwriting::Empty),
        ink(Handwriting::Strokes(12)),
        ink(Handwriting::Seeded),
    );
    assert!(none < 0.5, "{none}");
    assert!(few > 20.0 && page > 10.0 * few, "{few} {page}");
    assert_eq!(judge_answer_ink(0.0), AnswerReading::Empty);
    assert_eq!(judge_answer_ink(10.0), AnswerReading::Unsure);
    assert_eq!(judge_answer_ink(500.0), AnswerReading::Written);
    assert!(BlankKind::Additional.flagged_when_empty() && !BlankKind::EssayWriting.flagged_when_empty());
    assert!(BlankKind::EssayWriting.has_written_answers() && !BlankKind::Answer1.has_written_answers());
}
