use super::*;
use crate::scan::{
    read_scan_pages, render_page_with, write_scan, Degradation, MarkStroke, PageFill, PageMark, ScanFormat,
};
use crate::{BlankId, BlankKind, PageIdentity};

fn registration(kit: u64) -> PageMark {
    PageMark::Identity(PageIdentity::Blank(
        BlankId::for_kit(BlankKind::Registration, kit, 0).unwrap(),
    ))
}

/// Renders a registration blank with `marks`, stores it as `format` and reads it back.
fn scanned(marks: Vec<(MarkBox, MarkStroke)>, d: Degradation, format: ScanFormat, seed: u64) -> PageImage {
    let fill = PageFill {
        marks,
        ..PageFill::seeded(seed)
    };
    let page = render_page_with(&registration(4_000_000_000 + seed), &fill, &d);
    let mut file = Vec::new();
    write_scan(&[page], format, &mut file).unwrap();
    read_scan_pages(&file).unwrap().next().unwrap().unwrap()
}

fn readings(page: &PageImage, orientation: u16) -> [MarkReading; 2] {
    read_marks(page, orientation).map(|m| m.reading)
}

#[test]
fn crosses_read_as_marked_and_empty_boxes_as_empty_in_every_orientation() {
    let cases = [
        (vec![], [MarkReading::Empty, MarkReading::Empty]),
        (
            vec![(MarkBox::Removed, MarkStroke::Cross)],
            [MarkReading::Marked, MarkReading::Empty],
        ),
        (
            vec![(MarkBox::EarlyFinish, MarkStroke::Cross)],
            [MarkReading::Empty, MarkReading::Marked],
        ),
        (
            vec![
                (MarkBox::Removed, MarkStroke::Cross),
                (MarkBox::EarlyFinish, MarkStroke::Cross),
            ],
            [MarkReading::Marked, MarkReading::Marked],
        ),
    ];
    for (i, (marks, want)) in cases.into_iter().enumerate() {
        for rotation in [0, 90, 180, 270] {
            let d = Degradation {
                rotation,
                ..Degradation::clean()
            };
            let page = scanned(marks.clone(), d, ScanFormat::TiffG4, i as u64);
            let got = read_marks(&page, rotation);
            assert!(got.iter().all(|m| m.frame_found), "{got:?}");
            assert_eq!(got.map(|m| m.reading), want, "case {i} at {rotation}°: {got:?}");
        }
    }
}

#[test]
fn marks_read_on_degraded_scans() {
    for seed in 0..32u64 {
        let mut d = Degradation::random(seed);
        // The extremes: both skew limits at the lowest resolution with dust and blur.
        if seed < 4 {
            d.skew_deg = if seed % 2 == 0 { 3.0 } else { -3.0 };
            d.dpi = 200;
            d.speckle = 0.004;
            d.blur = true;
        }
        let marks = match seed % 3 {
            0 => vec![(MarkBox::Removed, MarkStroke::Cross)],
            1 => vec![(MarkBox::EarlyFinish, MarkStroke::Cross)],
            _ => vec![],
        };
        let want = MarkBox::ALL.map(|b| {
            if marks.iter().any(|(m, _)| *m == b) {
                MarkReading::Marked
            } else {
                MarkReading::Empty
            }
        });
        let format = if seed % 2 == 0 {
            ScanFormat::TiffG4
        } else {
            ScanFormat::Png
        };
        let page = scanned(marks, d, format, seed);
        let got = read_marks(&page, d.rotation);
        assert_eq!(got.map(|m| m.reading), want, "seed {seed}: {d:?} {got:?}");
    }
}

#[test]
fn a_stray_touch_or_a_page_without_boxes_goes_to_a_verifier() {
    for seed in 0..6u64 {
        let d = Degradation::random(seed + 100);
        let page = scanned(
            vec![(MarkBox::EarlyFinish, MarkStroke::Touch)],
            d,
            ScanFormat::TiffG4,
            seed,
        );
        let got = read_marks(&page, d.rotation);
        assert_eq!(got[0].reading, MarkReading::Empty, "{d:?} {got:?}");
        assert_eq!(got[1].reading, MarkReading::Unsure, "{d:?} {got:?}");
    }
    // An answer blank has no boxes: nothing is found, and nothing is claimed.
    let answer = PageMark::Identity(PageIdentity::Blank(
        BlankId::for_kit(BlankKind::Answer1, 4_000_000_001, 1).unwrap(),
    ));
    let page = render_page_with(&answer, &PageFill::seeded(1), &Degradation::clean());
    let got = read_marks(&page, 0);
    assert!(
        got.iter().all(|m| !m.frame_found && m.reading == MarkReading::Unsure),
        "{got:?}"
    );
}

#[test]
fn reading_a_page_the_wrong_way_up_does_not_claim_a_mark() {
    let page = scanned(
        vec![(MarkBox::Removed, MarkStroke::Cross)],
        Degradation::clean(),
        ScanFormat::TiffG4,
        3,
    );
    // Upside down, the boxes' windows fall on empty paper at the bottom right.
    assert_eq!(readings(&page, 180), [MarkReading::Unsure, MarkReading::Unsure]);
}
