//! Recognizing a page: the template says where the barcode is and in which symbology,
//! so each attempt decodes one small crop with one reader (milliseconds) instead of
//! searching the page with every reader (seconds, and it still misses). The page may
//! have gone through the scanner in any of four orientations, so the zone is mapped for
//! each; only when no zone reads is the whole page searched, within what is left of the
//! time budget. rxing has panicked and hung on odd images: every call runs under
//! `catch_unwind`, and the full-page search on a thread that is abandoned when the
//! budget runs out.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::GrayImage;
use rxing::{BarcodeFormat, DecodeHints};

use super::{mm_px, PageImage};
use crate::{BlankId, BlankKind, Form, FormContents, FormQr, PageIdentity, PageTemplate, Symbology, ZoneMm};

/// What recognition made of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognition {
    /// The barcode was read and names a blank or form.
    Read {
        /// What it names.
        identity: PageIdentity,
        /// How the page lay in the scan, degrees clockwise.
        orientation: u16,
        /// Whether the full-page search found it (the zone did not).
        via_fallback: bool,
        /// What a form's QR code reports besides its identity (ППЭ-13-02МАШ's room
        /// summary, the kits of acts ППЭ-21/22); `None` for blanks and other forms.
        contents: Option<FormContents>,
    },
    /// Nothing readable; the page travels flagged for a manual check.
    Unreadable {
        /// Why, in words.
        reason: String,
    },
}

/// Extra room around the zone: a 3° skew about the page centre moves the top corners by
/// up to 10 mm, and feeders shift pages by a few more.
const ZONE_MARGIN_MM: f32 = 11.0;

/// Recognizes `page` within `budget`.
pub fn recognize(page: &PageImage, budget: Duration) -> Recognition {
    let started = Instant::now();
    let (w, h) = page.image.dimensions();
    let orientations: [u16; 2] = if w <= h { [0, 180] } else { [90, 270] };
    let templates = [BlankKind::Registration.template(), Form::Ppe13_02Mash.template()];
    // The zone that holds the barcode is far inkier than the same place on any other
    // orientation or template, so the inkiest candidate first usually makes the first
    // decoder call the one that reads.
    let mut candidates: Vec<(u16, &PageTemplate, u32)> = orientations
        .iter()
        .flat_map(|&o| templates.iter().map(move |t| (o, t)))
        .map(|(o, t)| (o, t, ink(&page.image, page.dpi, t.barcode_zone, o)))
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.2));
    let mut panicked = false;
    // A code that was read but names no blank or form: said in the reason, so a form
    // printed with a foreign encoder is not just "not scanned".
    let mut misread: Option<(String, Symbology)> = None;
    // Raw crops first; then the same crops despeckled, for dusty pages at low resolution,
    // where single-pixel noise breaks the finder patterns' run lengths.
    for despeckled in [false, true] {
        for &(orientation, template, _) in &candidates {
            let mut crop = zone_crop(&page.image, page.dpi, template.barcode_zone, orientation);
            if despeckled {
                crop = median3(&crop);
            }
            match decode(&crop, &[template.symbology]) {
                Attempt::Read(text, symbology) => {
                    if let Some((identity, contents)) = parse(&text, symbology) {
                        return Recognition::Read {
                            identity,
                            orientation,
                            via_fallback: false,
                            contents,
                        };
                    }
                    misread.get_or_insert((text, symbology));
                }
                Attempt::Panicked => panicked = true,
                Attempt::Nothing => {}
            }
        }
    }
    let left = budget.saturating_sub(started.elapsed());
    if left > Duration::from_millis(20) {
        if let Some((identity, contents)) = full_page(page, left) {
            return Recognition::Read {
                identity,
                orientation: 0,
                via_fallback: true,
                contents,
            };
        }
    }
    Recognition::Unreadable {
        reason: if let Some((text, symbology)) = misread {
            not_an_identity(&text, symbology)
        } else if panicked {
            "the barcode reader failed on this page".into()
        } else if started.elapsed() >= budget {
            format!("no barcode found within {} ms", budget.as_millis())
        } else {
            "no barcode found in the blank or form zone".into()
        },
    }
}

/// The zone of the upright page, found in a page rotated by `orientation`, cut out and
/// turned upright.
fn zone_crop(img: &GrayImage, dpi: u32, zone: ZoneMm, orientation: u16) -> GrayImage {
    zone_crop_with(img, dpi, zone, orientation, ZONE_MARGIN_MM)
}

/// [`zone_crop`] with the zone grown by `margin_mm`.
pub(super) fn zone_crop_with(img: &GrayImage, dpi: u32, zone: ZoneMm, orientation: u16, margin_mm: f32) -> GrayImage {
    let (x, y, w, h) = zone_rect_with(img, dpi, zone, orientation, margin_mm);
    let crop = image::imageops::crop_imm(img, x, y, w, h).to_image();
    match orientation {
        90 => image::imageops::rotate270(&crop),
        180 => image::imageops::rotate180(&crop),
        270 => image::imageops::rotate90(&crop),
        _ => crop,
    }
}

/// Where the zone, grown by the margin, lies in a page rotated by `orientation`:
/// (x, y, width, height) in the image's pixels.
fn zone_rect(img: &GrayImage, dpi: u32, zone: ZoneMm, orientation: u16) -> (u32, u32, u32, u32) {
    zone_rect_with(img, dpi, zone, orientation, ZONE_MARGIN_MM)
}

/// [`zone_rect`] with the zone grown by `margin_mm` (negative shrinks it).
pub(super) fn zone_rect_with(
    img: &GrayImage,
    dpi: u32,
    zone: ZoneMm,
    orientation: u16,
    margin_mm: f32,
) -> (u32, u32, u32, u32) {
    let (iw, ih) = img.dimensions();
    // Upright page size in pixels.
    let (uw, uh) = if orientation.is_multiple_of(180) {
        (iw, ih)
    } else {
        (ih, iw)
    };
    let px = |mm: f32| mm_px(mm, dpi);
    let clamp_x = |v: i64| v.clamp(0, i64::from(uw));
    let clamp_y = |v: i64| v.clamp(0, i64::from(uh));
    let (x0, y0) = (clamp_x(px(zone.x - margin_mm)), clamp_y(px(zone.y - margin_mm)));
    let (x1, y1) = (
        clamp_x(px(zone.x + zone.width + margin_mm)),
        clamp_y(px(zone.y + zone.height + margin_mm)),
    );
    // Map the upright rectangle into the image's coordinates.
    let (uw, uh) = (i64::from(uw), i64::from(uh));
    let (rx0, ry0, rx1, ry1) = match orientation {
        90 => (uh - y1, x0, uh - y0, x1),
        180 => (uw - x1, uh - y1, uw - x0, uh - y0),
        270 => (y0, uw - x1, y1, uw - x0),
        _ => (x0, y0, x1, y1),
    };
    (
        rx0.max(0) as u32,
        ry0.max(0) as u32,
        (rx1 - rx0).max(1) as u32,
        (ry1 - ry0).max(1) as u32,
    )
}

/// Dark pixels per thousand in the zone, sampled on every third row and column (a share,
/// so zones of different sizes compare).
fn ink(img: &GrayImage, dpi: u32, zone: ZoneMm, orientation: u16) -> u32 {
    let (x, y, w, h) = zone_rect(img, dpi, zone, orientation);
    let (iw, ih) = img.dimensions();
    let raw = img.as_raw();
    let (mut dark, mut all) = (0u32, 0u32);
    for row in (y..(y + h).min(ih)).step_by(3) {
        let line = &raw[(row * iw) as usize..((row + 1) * iw) as usize];
        let (a, b) = (x.min(iw) as usize, (x + w).min(iw) as usize);
        for &v in line[a..b].iter().step_by(3) {
            all += 1;
            dark += u32::from(v < 128);
        }
    }
    (u64::from(dark) * 1000 / u64::from(all.max(1))) as u32
}

/// A 3×3 median: removes isolated dark and light pixels, keeps edges.
fn median3(img: &GrayImage) -> GrayImage {
    let (w, h) = img.dimensions();
    let src = img.as_raw();
    let mut out = src.clone();
    let w = w as usize;
    for y in 1..(h as usize).saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let mut v = [0u8; 9];
            for (i, slot) in v.iter_mut().enumerate() {
                *slot = src[(y + i / 3 - 1) * w + x + i % 3 - 1];
            }
            v.sort_unstable();
            out[y * w + x] = v[4];
        }
    }
    GrayImage::from_raw(w as u32, h, out).unwrap_or_else(|| img.clone())
}

enum Attempt {
    Read(String, Symbology),
    Nothing,
    Panicked,
}

fn format_of(s: Symbology) -> BarcodeFormat {
    match s {
        Symbology::Code128 => BarcodeFormat::CODE_128,
        Symbology::Qr => BarcodeFormat::QR_CODE,
    }
}

/// The character sets a form's QR code is read in when it declares none (no ECI) and its
/// bytes are not a form code in UTF-8: encoders that write Cyrillic as Shift_JIS (JIS X
/// 0208 has it) or in a Russian code page without saying so. A code whose ECI declares a
/// set is read in that set by rxing. A wrong guess cannot become a wrong form: only a
/// text that parses as a whole form code counts.
const UNDECLARED_QR_SETS: [&encoding_rs::Encoding; 5] = [
    encoding_rs::SHIFT_JIS,
    encoding_rs::WINDOWS_1251,
    encoding_rs::KOI8_R,
    encoding_rs::IBM866,
    encoding_rs::ISO_8859_5,
];

/// Why a code that was read is not a page's identity, with what it says (control
/// characters escaped, cut at 80 characters).
fn not_an_identity(text: &str, symbology: Symbology) -> String {
    let shown: String = text.chars().take(80).flat_map(char::escape_debug).collect();
    match symbology {
        Symbology::Qr => format!(
            "a QR code was read, but it is not a form code (FORM|SITE|ROOM|YYYY-MM-DD[|CONTENTS] in UTF-8 or \
             in the character set its ECI declares; without an ECI also Shift_JIS, windows-1251, KOI8-R, CP866 \
             or ISO-8859-5): «{shown}»"
        ),
        Symbology::Code128 => format!("a Code 128 barcode was read, but it is not a blank's number: «{shown}»"),
    }
}

/// A form code read from a QR code's bytes in one of [`UNDECLARED_QR_SETS`]. The bytes:
/// rxing gives bytes that are not UTF-8 one character per byte (U+0000–U+00FF), so the
/// text maps back to them; otherwise its byte segments (the whole text when the code is
/// one segment, as encoders write a form code).
fn undeclared_form(text: &str, found: &rxing::RXingResult) -> Option<String> {
    let bytes: Vec<u8> = match text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect() {
        Some(bytes) => bytes,
        None => match found
            .getRXingResultMetadata()
            .get(&rxing::RXingResultMetadataType::BYTE_SEGMENTS)
        {
            Some(rxing::RXingResultMetadataValue::ByteSegments(segments)) => segments.concat(),
            _ => return None,
        },
    };
    UNDECLARED_QR_SETS.iter().find_map(|set| {
        let decoded = set.decode_without_bom_handling_and_without_replacement(&bytes)?;
        parse(&decoded, Symbology::Qr).map(|_| decoded.into_owned())
    })
}

/// One rxing call on one image, for the given symbologies only. Byte segments without an
/// ECI are read as UTF-8, then, for a QR code that is no form code so, as
/// [`UNDECLARED_QR_SETS`].
fn decode(img: &GrayImage, symbologies: &[Symbology]) -> Attempt {
    let (w, h) = img.dimensions();
    if w < 8 || h < 8 {
        return Attempt::Nothing;
    }
    let formats: HashSet<BarcodeFormat> = symbologies.iter().map(|s| format_of(*s)).collect();
    let single = (symbologies.len() == 1).then(|| format_of(symbologies[0]));
    let luma = img.as_raw().clone();
    let result = std::panic::catch_unwind(move || {
        let mut hints = DecodeHints {
            TryHarder: Some(true),
            PossibleFormats: Some(formats),
            CharacterSet: Some("UTF-8".into()),
            ..Default::default()
        };
        rxing::helpers::detect_in_luma_with_hints(luma, w, h, single, &mut hints)
    });
    match result {
        Err(_) => Attempt::Panicked,
        Ok(Err(_)) => Attempt::Nothing,
        Ok(Ok(found)) => {
            let symbology = match found.getBarcodeFormat() {
                BarcodeFormat::CODE_128 => Symbology::Code128,
                BarcodeFormat::QR_CODE => Symbology::Qr,
                _ => return Attempt::Nothing,
            };
            let text = found.getText();
            if symbology == Symbology::Qr && parse(text, symbology).is_none() {
                if let Some(form) = undeclared_form(text, &found) {
                    return Attempt::Read(form, symbology);
                }
            }
            Attempt::Read(text.to_owned(), symbology)
        }
    }
}

/// The identity a decoded text names, with a form's contents, if it is well-formed for
/// its symbology; anything else is not a read, so a misread never becomes a wrong
/// identity or a wrong count.
fn parse(text: &str, symbology: Symbology) -> Option<(PageIdentity, Option<FormContents>)> {
    match symbology {
        Symbology::Code128 => text.parse::<BlankId>().ok().map(|id| (PageIdentity::Blank(id), None)),
        Symbology::Qr => text
            .parse::<FormQr>()
            .ok()
            .map(|qr| (PageIdentity::Form(qr.id), qr.contents)),
    }
}

/// Searches the whole page, halved to about 150 dpi, on a thread abandoned after `left`.
fn full_page(page: &PageImage, left: Duration) -> Option<(PageIdentity, Option<FormContents>)> {
    let img = if page.dpi >= 250 {
        image::imageops::resize(
            &page.image,
            page.image.width() / 2,
            page.image.height() / 2,
            image::imageops::FilterType::Triangle,
        )
    } else {
        page.image.clone()
    };
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("rxing-fallback".into())
        .spawn(move || {
            let attempt = decode(&img, &[Symbology::Code128, Symbology::Qr]);
            let _ = tx.send(attempt);
        });
    if spawned.is_err() {
        return None;
    }
    match rx.recv_timeout(left) {
        Ok(Attempt::Read(text, symbology)) => parse(&text, symbology),
        _ => None,
    }
}

#[cfg(test)]
#[path = "recognize_tests.rs"]
mod tests;
