use std::time::Duration;

use super::*;
use crate::scan::{read_scan_pages, render_page, write_scan, Degradation, PageMark, ScanFormat};
use crate::{BlankId, BlankKind, Form, FormId};

const BUDGET: Duration = Duration::from_millis(3000);

fn blank(kind: BlankKind, kit: u64, sheet: u8) -> PageIdentity {
    PageIdentity::Blank(BlankId::for_kit(kind, kit, sheet).unwrap())
}

fn form(form: Form) -> PageIdentity {
    PageIdentity::Form(FormId {
        form,
        site: "0101".parse().unwrap(),
        room: "0012".parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
    })
}

fn every_identity() -> Vec<PageIdentity> {
    let mut ids: Vec<_> = BlankKind::ALL
        .into_iter()
        .enumerate()
        .map(|(i, k)| blank(k, 4_000_000_001 + i as u64, 1))
        .collect();
    ids.extend(Form::ALL.into_iter().map(form));
    ids
}

/// Renders, stores as `format`, reads back and recognizes.
fn round_trip(identity: &PageIdentity, d: Degradation, format: ScanFormat, seed: u64) -> Recognition {
    let page = render_page(&PageMark::Identity(identity.clone()), seed, &d);
    let mut file = Vec::new();
    write_scan(&[page], format, &mut file).unwrap();
    let pages: Vec<_> = read_scan_pages(&file).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(pages.len(), 1);
    recognize(&pages[0], BUDGET)
}

fn assert_read(r: &Recognition, want: &PageIdentity, context: &str) {
    match r {
        Recognition::Read { identity, .. } => assert_eq!(identity, want, "{context}"),
        other => panic!("{context}: {other:?}"),
    }
}

#[test]
fn every_blank_kind_and_form_reads_in_every_orientation_from_tiff() {
    for (i, id) in every_identity().iter().enumerate() {
        for rotation in [0, 90, 180, 270] {
            let d = Degradation {
                rotation,
                ..Degradation::clean()
            };
            let r = round_trip(id, d, ScanFormat::TiffG4, i as u64);
            assert_read(&r, id, &format!("{id} at {rotation}°"));
            if let Recognition::Read {
                orientation,
                via_fallback,
                ..
            } = r
            {
                assert_eq!(orientation, rotation, "{id}");
                assert!(!via_fallback, "{id} at {rotation}° needed the full-page search");
            }
        }
    }
}

#[test]
fn grayscale_png_pages_read() {
    for (i, id) in every_identity().iter().enumerate().step_by(3) {
        let d = Degradation {
            rotation: [0, 90, 180, 270][i % 4],
            ..Degradation::clean()
        };
        assert_read(&round_trip(id, d, ScanFormat::Png, i as u64), id, &format!("{id}"));
    }
}

#[test]
fn degraded_pages_read() {
    let ids = every_identity();
    for seed in 0..24u64 {
        let id = &ids[seed as usize % ids.len()];
        let mut d = Degradation::random(seed);
        // Cover the extremes: both skew limits at the lowest resolution.
        if seed < 2 {
            d.skew_deg = if seed == 0 { 3.0 } else { -3.0 };
            d.dpi = 200;
            d.speckle = 0.004;
            d.blur = true;
        }
        let format = if seed % 2 == 0 {
            ScanFormat::TiffG4
        } else {
            ScanFormat::Png
        };
        let r = round_trip(id, d, format, seed);
        assert_read(&r, id, &format!("seed {seed}: {d:?}"));
    }
}

#[test]
fn a_page_without_a_barcode_is_unreadable_within_its_budget() {
    let page = render_page(&PageMark::NoBarcode, 7, &Degradation::clean());
    let started = std::time::Instant::now();
    let r = recognize(&page, Duration::from_millis(400));
    assert!(matches!(r, Recognition::Unreadable { .. }), "{r:?}");
    // A generous bound: it catches a search that ignores its budget (a full-page "try
    // harder" search takes seconds per page), not a slow machine (it failed at 1.5 s under
    // a load of 11 on 2 cores).
    assert!(
        started.elapsed() < Duration::from_millis(5000),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_multi_page_tiff_reads_back_page_by_page_in_order() {
    let ids = [
        blank(BlankKind::Registration, 4_000_000_007, 0),
        form(Form::Ppe18Mash),
        blank(BlankKind::Answer1, 4_000_000_007, 1),
    ];
    let pages: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| render_page(&PageMark::Identity(id.clone()), i as u64, &Degradation::clean()))
        .collect();
    let mut file = Vec::new();
    write_scan(&pages, ScanFormat::TiffG4, &mut file).unwrap();
    assert!(file.len() < 3 * 400_000, "G4 pages are small: {} bytes", file.len());
    let back: Vec<_> = read_scan_pages(&file).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(back.len(), 3);
    for (page, id) in back.iter().zip(&ids) {
        assert_eq!(page.dpi, 300);
        assert_read(&recognize(page, BUDGET), id, "multi-page");
    }
}

#[test]
fn rendering_is_deterministic() {
    let id = blank(BlankKind::Answer2Sheet1, 4_000_000_009, 2);
    let d = Degradation::random(11);
    let a = render_page(&PageMark::Identity(id.clone()), 5, &d);
    let b = render_page(&PageMark::Identity(id), 5, &d);
    assert_eq!(a, b);
    assert_eq!(Degradation::random(11), d);
}

#[test]
fn tiff_g4_keeps_black_and_white() {
    let page = render_page(&PageMark::NoBarcode, 1, &Degradation::clean());
    let mut file = Vec::new();
    write_scan(std::slice::from_ref(&page), ScanFormat::TiffG4, &mut file).unwrap();
    let back: Vec<_> = read_scan_pages(&file).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(back[0].image.dimensions(), page.image.dimensions());
    let bilevel = |v: &u8| *v < 128;
    let differ = page
        .image
        .as_raw()
        .iter()
        .zip(back[0].image.as_raw())
        .filter(|(a, b)| bilevel(a) != bilevel(b))
        .count();
    assert_eq!(differ, 0);
}

/// A form's QR text as the given character set's bytes.
fn form_text_bytes(f: Form, encoding: &'static encoding_rs::Encoding) -> (String, Vec<u8>) {
    let text = match form(f) {
        PageIdentity::Form(id) => id.to_string(),
        PageIdentity::Blank(_) => unreachable!(),
    };
    let (bytes, _, unmappable) = encoding.encode(&text);
    assert!(!unmappable, "{text} in {}", encoding.name());
    let bytes = bytes.into_owned();
    (text, bytes)
}

#[test]
fn forms_encoded_in_shift_jis_or_windows_1251_read_with_or_without_an_eci() {
    for f in [Form::Ppe13_02Mash, Form::Ppe12_04Mash] {
        let want = form(f);
        let (text, sjis) = form_text_bytes(f, encoding_rs::SHIFT_JIS);
        assert!(text.contains("МАШ"), "the test needs Cyrillic: {text}");
        assert_ne!(sjis, text.as_bytes(), "Shift_JIS bytes differ from UTF-8");
        // rxing's encoder with the CHARACTER_SET hint: Shift_JIS bytes and an ECI saying so.
        let declared = crate::scan::render::render_form_with_qr(f, &text, Some("Shift_JIS"), 200);
        assert_read(&recognize(&declared, BUDGET), &want, "Shift_JIS with ECI");
        // An encoder that writes Shift_JIS bytes and declares nothing.
        let latin1: String = sjis.iter().map(|&b| char::from(b)).collect();
        let undeclared = crate::scan::render::render_form_with_qr(f, &latin1, None, 200);
        assert_read(&recognize(&undeclared, BUDGET), &want, "Shift_JIS without ECI");
        let (_, cp1251) = form_text_bytes(f, encoding_rs::WINDOWS_1251);
        let latin1: String = cp1251.iter().map(|&b| char::from(b)).collect();
        let undeclared = crate::scan::render::render_form_with_qr(f, &latin1, None, 200);
        assert_read(&recognize(&undeclared, BUDGET), &want, "windows-1251 without ECI");
    }
}

#[test]
fn a_qr_code_that_is_no_form_says_what_it_read() {
    let page = crate::scan::render::render_form_with_qr(Form::Ppe13_02Mash, "https://example.org/\u{7}x", None, 200);
    match recognize(&page, BUDGET) {
        Recognition::Unreadable { reason } => {
            assert!(reason.contains("QR code"), "{reason}");
            assert!(reason.contains("https://example.org/\\u{7}x"), "{reason}");
            assert!(reason.contains("not a form code"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn forms_carrying_a_summary_or_a_full_act_read_with_their_contents() {
    use crate::{FormContents, FormQr, RoomSummary, MAX_ACT_KITS};
    let summary = FormContents::RoomSummary(RoomSummary {
        present: 1234,
        absent: 56,
        removed: 7,
        early_finished: 8,
        blanks: BlankKind::ALL.into_iter().map(|k| (k, 9999)).collect(),
    });
    let kits = FormContents::Kits((0..MAX_ACT_KITS as u64).map(|i| 9_999_999_990 + i).collect());
    let id = |f| match form(f) {
        PageIdentity::Form(id) => id,
        PageIdentity::Blank(_) => unreachable!(),
    };
    let qrs = [
        FormQr::new(id(Form::Ppe13_02Mash), Some(summary)).unwrap(),
        FormQr::new(id(Form::Ppe21), Some(kits)).unwrap(),
    ];
    for (i, qr) in qrs.iter().enumerate() {
        for seed in 0..6u64 {
            let mut d = Degradation::random(seed + 10 * i as u64);
            if seed == 0 {
                d.dpi = 200;
                d.skew_deg = 3.0;
                d.speckle = 0.004;
                d.blur = true;
            }
            let page = render_page(&PageMark::Form(qr.clone()), seed, &d);
            match recognize(&page, BUDGET) {
                Recognition::Read { identity, contents, .. } => {
                    assert_eq!(identity, PageIdentity::Form(qr.id.clone()), "{d:?}");
                    assert_eq!(contents, qr.contents, "{d:?}");
                }
                other => panic!("{qr} {d:?}: {other:?}"),
            }
        }
    }
}
