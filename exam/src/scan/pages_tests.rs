use super::*;
use crate::scan::{render_page, write_scan, Degradation, PageMark, ScanFormat};

fn scan(format: ScanFormat, pages: usize) -> Vec<u8> {
    let pages: Vec<_> = (0..pages)
        .map(|i| {
            render_page(
                &PageMark::NoBarcode,
                i as u64,
                &Degradation {
                    dpi: 100,
                    ..Degradation::clean()
                },
            )
        })
        .collect();
    let mut out = Vec::new();
    write_scan(&pages, format, &mut out).unwrap();
    out
}

/// Reads every page; the first error, if any, as text.
fn read_all(bytes: &[u8]) -> Result<usize, String> {
    let pages = read_scan_pages(bytes).map_err(|e| e.to_string())?;
    let mut n = 0;
    for page in pages {
        page.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn empty_random_and_unknown_files_are_refused_in_words() {
    assert!(read_all(b"").unwrap_err().contains("empty"));
    assert!(read_all(b"%PDF-1.7 ...").unwrap_err().contains("not a TIFF or PNG"));
    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert!(read_all(&noise).unwrap_err().contains("rescan"));
}

#[test]
fn truncated_tiff_and_png_are_errors_not_panics() {
    for format in [ScanFormat::TiffG4, ScanFormat::Png] {
        let whole = scan(format, if format == ScanFormat::Png { 1 } else { 2 });
        assert!(read_all(&whole).is_ok());
        for cut in [8, 40, whole.len() / 3, whole.len() / 2, whole.len() - 20] {
            let err = read_all(&whole[..cut]);
            assert!(
                err.is_err(),
                "{format:?} cut at {cut} of {} read as {err:?}",
                whole.len()
            );
            assert!(err.unwrap_err().contains("rescan"));
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let whole = scan(ScanFormat::TiffG4, 2);
    for i in (0..whole.len()).step_by(whole.len() / 97 + 1) {
        let mut bad = whole.clone();
        bad[i] ^= 0xA5;
        let _ = read_all(&bad); // an error or, for a flipped pixel run, a page: never a panic
    }
}

/// Overwrites the value of `tag` in the first page's IFD with `value` (little endian).
fn patch_tag(tiff: &mut [u8], tag: u16, value: &[u8]) {
    let ifd = u32::from_le_bytes(tiff[4..8].try_into().unwrap()) as usize;
    let n = u16::from_le_bytes([tiff[ifd], tiff[ifd + 1]]) as usize;
    for e in 0..n {
        let at = ifd + 2 + 12 * e;
        if u16::from_le_bytes([tiff[at], tiff[at + 1]]) == tag {
            tiff[at + 8..at + 8 + value.len()].copy_from_slice(value);
        }
    }
}

#[test]
fn a_tiff_claiming_a_huge_page_is_refused_before_decoding() {
    let mut tiff = scan(ScanFormat::TiffG4, 1);
    // ImageWidth (tag 256) and ImageLength (257) of 60000 × 60000.
    patch_tag(&mut tiff, 256, &60_000u32.to_le_bytes());
    patch_tag(&mut tiff, 257, &60_000u32.to_le_bytes());
    let err = read_all(&tiff).unwrap_err();
    assert!(err.contains("rescan"), "{err}");
}

#[test]
fn g3_tiff_is_refused_with_advice() {
    let mut tiff = scan(ScanFormat::TiffG4, 1);
    patch_tag(&mut tiff, 259, &3u16.to_le_bytes()); // Compression: CCITT Group 3
    let err = read_all(&tiff).unwrap_err();
    assert!(err.contains("G3") && err.contains("set the scanner"), "{err}");
}

#[test]
fn resolution_is_read_from_the_file() {
    let tiff = scan(ScanFormat::TiffG4, 1);
    let page = read_scan_pages(&tiff).unwrap().next().unwrap().unwrap();
    assert_eq!(page.dpi, 100);
    let png = scan(ScanFormat::Png, 1);
    let page = read_scan_pages(&png).unwrap().next().unwrap().unwrap();
    assert_eq!(page.dpi, 100);
}

#[test]
fn group4_fast_path_matches_the_page_and_the_generic_decoder() {
    let page = render_page(
        &PageMark::Identity(crate::PageIdentity::Blank(
            crate::BlankId::for_kit(crate::BlankKind::Answer1, 1234567, 1).unwrap(),
        )),
        7,
        &Degradation::random(11),
    );
    let mut tiff = Vec::new();
    write_scan(std::slice::from_ref(&page), ScanFormat::TiffG4, &mut tiff).unwrap();
    let fast = read_scan_pages(&tiff).unwrap().next().unwrap().unwrap();
    let expected: Vec<u8> = page
        .image
        .as_raw()
        .iter()
        .map(|&v| if v < 128 { 0 } else { 255 })
        .collect();
    assert_eq!(fast.image.dimensions(), page.image.dimensions());
    assert!(fast.image.as_raw() == &expected, "G4 round trip changed pixels");

    // The tiff crate's own decoder (bit-packed, 1 = white) agrees pixel for pixel.
    let mut generic = Decoder::new(Cursor::new(&tiff[..])).unwrap();
    let DecodingResult::U8(bits) = generic.read_image().unwrap() else {
        panic!("bilevel page not 8-bit packed")
    };
    let (w, h) = page.image.dimensions();
    let stride = (w as usize).div_ceil(8);
    let unpacked: Vec<u8> = (0..h as usize)
        .flat_map(|y| {
            let row = &bits[y * stride..(y + 1) * stride];
            (0..w as usize).map(move |x| if row[x / 8] & (0x80 >> (x % 8)) != 0 { 255 } else { 0 })
        })
        .collect();
    assert!(unpacked == expected, "the generic decoder disagrees");

    // BlackIsZero: the same bits mean the inverse picture.
    let mut black_is_zero = tiff;
    patch_tag(&mut black_is_zero, 262, &1u16.to_le_bytes()); // PhotometricInterpretation
    let inverted = read_scan_pages(&black_is_zero).unwrap().next().unwrap().unwrap();
    assert!(inverted
        .image
        .as_raw()
        .iter()
        .zip(&expected)
        .all(|(a, b)| *a == 255 - b));
}
