//! Drawing a page as printed and filled in.

use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rxing::{BarcodeFormat, EncodeHints, MultiFormatWriter, Writer};

use super::{mm_px, Degradation, PageImage};
use crate::{BlankKind, FormQr, MarkBox, PageIdentity, Symbology, A4, MARK_FRAME_MM};

/// What is printed on a generated page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageMark {
    /// A blank or form with its barcode.
    Identity(PageIdentity),
    /// A form whose QR code carries contents (a room summary, an act's kits).
    Form(FormQr),
    /// A page without a barcode (a stray sheet, a page of instructions).
    NoBarcode,
}

/// How much of the page's answer cells is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handwriting {
    /// About a third of the cells, chosen by the seed (a written page).
    Seeded,
    /// Nothing: a page left empty.
    Empty,
    /// This many scribbles in cells chosen by the seed (a page with a word or two).
    Strokes(u16),
}

/// A mark the organizer makes in a registration blank's mark box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkStroke {
    /// A cross from corner to corner: the box is marked.
    Cross,
    /// A short touch of the pen, as a slip leaves: a human must judge it.
    Touch,
}

/// What is written on a generated page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFill {
    /// Seed for handwriting (and, through [`render_page_with`], the degradation's speckle).
    pub seed: u64,
    /// How much is written in the answer cells.
    pub handwriting: Handwriting,
    /// Marks in the registration blank's mark boxes (ignored on other pages).
    pub marks: Vec<(MarkBox, MarkStroke)>,
}

impl PageFill {
    /// Cells written in from `seed`, no marks: what [`render_page`] draws.
    pub fn seeded(seed: u64) -> Self {
        PageFill {
            seed,
            handwriting: Handwriting::Seeded,
            marks: Vec::new(),
        }
    }
}

/// Code 128 module width and bar height: wide enough to read at 200 dpi after a 3° skew.
const MODULE_MM: f32 = 0.5;
const BAR_HEIGHT_MM: f32 = 14.0;
const QR_MODULE_MM: f32 = 1.0;

/// Draws the page `mark` at `degradation.dpi`, fills it in from `fill_seed`, then
/// degrades it. The same inputs give the same pixels.
pub fn render_page(mark: &PageMark, fill_seed: u64, degradation: &Degradation) -> PageImage {
    render_page_with(mark, &PageFill::seeded(fill_seed), degradation)
}

/// Draws the page `mark` at `degradation.dpi`, writes `fill` on it, then degrades it. The
/// same inputs give the same pixels.
pub fn render_page_with(mark: &PageMark, fill: &PageFill, degradation: &Degradation) -> PageImage {
    let dpi = degradation.dpi.clamp(100, 600);
    let w = mm_px(A4.width, dpi) as u32;
    let h = mm_px(A4.height, dpi) as u32;
    let mut img = GrayImage::from_pixel(w, h, Luma([255]));
    let mut rng = ChaCha8Rng::seed_from_u64(fill.seed);
    frame(&mut img, dpi);
    let form_like = matches!(mark, PageMark::Identity(PageIdentity::Form(_)) | PageMark::Form(_));
    cells(&mut img, dpi, form_like, fill.handwriting, &mut rng);
    match mark {
        PageMark::Identity(identity) => barcode(&mut img, dpi, identity),
        PageMark::Form(qr) => draw_barcode(&mut img, dpi, qr.id.form.template(), &qr.to_string(), Some("UTF-8")),
        PageMark::NoBarcode => {}
    }
    if matches!(mark, PageMark::Identity(PageIdentity::Blank(id)) if id.kind == BlankKind::Registration) {
        mark_boxes(&mut img, dpi, &fill.marks, &mut rng);
    }
    let page = PageImage { image: img, dpi };
    degradation.apply(page, fill.seed ^ 0x5eed)
}

/// Grey of dropout ink: printed guides that the scanner's threshold (128) turns white.
const DROPOUT: u8 = 200;

/// The registration blank's mark boxes: black frames, captions in dropout ink, and the
/// organizer's marks.
fn mark_boxes(img: &mut GrayImage, dpi: u32, marks: &[(MarkBox, MarkStroke)], rng: &mut ChaCha8Rng) {
    for b in MarkBox::ALL {
        let z = b.zone();
        let t = mm_px(MARK_FRAME_MM, dpi).max(1);
        let (x0, y0, x1, y1) = (
            mm_px(z.x, dpi),
            mm_px(z.y, dpi),
            mm_px(z.x + z.width, dpi),
            mm_px(z.y + z.height, dpi),
        );
        fill_rect(img, x0, y0, x1, y0 + t, 0);
        fill_rect(img, x0, y1 - t, x1, y1, 0);
        fill_rect(img, x0, y0, x0 + t, y1, 0);
        fill_rect(img, x1 - t, y0, x1, y1, 0);
        let caption_y = z.y + z.height / 2.0 - 1.0;
        fill_rect(
            img,
            mm_px(z.x + z.width + 2.0, dpi),
            mm_px(caption_y, dpi),
            mm_px(55.0, dpi),
            mm_px(caption_y + 2.0, dpi),
            DROPOUT,
        );
        for &(_, stroke) in marks.iter().filter(|(m, _)| *m == b) {
            let mut j = || rng.gen_range(-0.5f32..0.5);
            let (l, t, r, btm) = (z.x + 1.2, z.y + 1.2, z.x + z.width - 1.2, z.y + z.height - 1.2);
            match stroke {
                MarkStroke::Cross => {
                    pen_line(img, dpi, (l + j(), t + j()), (r + j(), btm + j()), 0.5);
                    pen_line(img, dpi, (r + j(), t + j()), (l + j(), btm + j()), 0.5);
                }
                MarkStroke::Touch => {
                    let (cx, cy) = (z.x + z.width / 2.0 + j(), z.y + z.height / 2.0 + j());
                    pen_line(img, dpi, (cx - 1.0, cy), (cx + 0.8, cy + 1.0), 0.5);
                }
            }
        }
    }
}

/// A straight pen line `pen` mm wide from `a` to `b` (millimetres).
fn pen_line(img: &mut GrayImage, dpi: u32, a: (f32, f32), b: (f32, f32), pen: f32) {
    let p = mm_px(pen, dpi).max(1);
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let steps = (len / (pen / 3.0)).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let cx = mm_px(a.0 + (b.0 - a.0) * t, dpi) - p / 2;
        let cy = mm_px(a.1 + (b.1 - a.1) * t, dpi) - p / 2;
        fill_rect(img, cx, cy, cx + p, cy + p, 20);
    }
}

fn fill_rect(img: &mut GrayImage, x0: i64, y0: i64, x1: i64, y1: i64, v: u8) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            img.put_pixel(x as u32, y as u32, Luma([v]));
        }
    }
}

/// A cell outline, 0.2 mm lines of grey `v`; `(x, y, w, h)` in millimetres.
fn rect_outline(img: &mut GrayImage, dpi: u32, (x, y, w, h): (f32, f32, f32, f32), v: u8) {
    let t = mm_px(0.2, dpi).max(1);
    let (x0, y0, x1, y1) = (mm_px(x, dpi), mm_px(y, dpi), mm_px(x + w, dpi), mm_px(y + h, dpi));
    fill_rect(img, x0, y0, x1, y0 + t, v);
    fill_rect(img, x0, y1 - t, x1, y1, v);
    fill_rect(img, x0, y0, x0 + t, y1, v);
    fill_rect(img, x1 - t, y0, x1, y1, v);
}

/// The printed frame: corner markers and a header rule under the barcode zones.
fn frame(img: &mut GrayImage, dpi: u32) {
    for (x, y) in [(4.0, 4.0), (200.0, 4.0), (4.0, 287.0), (200.0, 287.0)] {
        let (x0, y0) = (mm_px(x, dpi), mm_px(y, dpi));
        let s = mm_px(6.0, dpi);
        fill_rect(img, x0, y0, x0 + s, y0 + s, 0);
    }
    fill_rect(
        img,
        mm_px(10.0, dpi),
        mm_px(56.0, dpi),
        mm_px(200.0, dpi),
        mm_px(56.6, dpi),
        40,
    );
    // Printed text lines of the header, as grey bars.
    for row in 0..3 {
        let y = 38.0 + row as f32 * 5.0;
        fill_rect(
            img,
            mm_px(60.0, dpi),
            mm_px(y, dpi),
            mm_px(110.0, dpi),
            mm_px(y + 2.0, dpi),
            90,
        );
    }
}

/// Answer cells, some filled with handwriting-like strokes. Blanks print their grid in
/// dropout ink, as blanks made for scanning do, so only handwriting stays dark; forms
/// print theirs in grey.
fn cells(img: &mut GrayImage, dpi: u32, form_like: bool, handwriting: Handwriting, rng: &mut ChaCha8Rng) {
    let (cols, rows) = if form_like { (6, 20) } else { (17, 36) };
    let area = crate::ANSWER_AREA;
    let cell_w = area.width / cols as f32;
    let cell_h = area.height / rows as f32;
    let grid = if form_like { 120 } else { DROPOUT };
    let origin = |r: usize, c: usize| (area.x + c as f32 * cell_w, area.y + r as f32 * cell_h);
    for r in 0..rows {
        for c in 0..cols {
            let (x, y) = origin(r, c);
            rect_outline(img, dpi, (x, y, cell_w - 1.0, cell_h - 1.0), grid);
            if handwriting == Handwriting::Seeded && rng.gen_bool(0.35) {
                stroke(img, dpi, x + 0.8, y + 0.8, cell_w - 2.6, cell_h - 2.6, rng);
            }
        }
    }
    if let Handwriting::Strokes(n) = handwriting {
        for _ in 0..n {
            let (x, y) = origin(rng.gen_range(0..rows), rng.gen_range(0..cols));
            stroke(img, dpi, x + 0.8, y + 0.8, cell_w - 2.6, cell_h - 2.6, rng);
        }
    }
}

/// A scribble: a short random polyline drawn with a pen about 0.4 mm wide.
fn stroke(img: &mut GrayImage, dpi: u32, x: f32, y: f32, w: f32, h: f32, rng: &mut ChaCha8Rng) {
    let pen = mm_px(0.4, dpi).max(1);
    let mut px = x + rng.gen::<f32>() * w;
    let mut py = y + rng.gen::<f32>() * h;
    for _ in 0..rng.gen_range(2..6) {
        let nx = x + rng.gen::<f32>() * w;
        let ny = y + rng.gen::<f32>() * h;
        let steps = 24;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let cx = mm_px(px + (nx - px) * t, dpi);
            let cy = mm_px(py + (ny - py) * t, dpi);
            fill_rect(img, cx, cy, cx + pen, cy + pen, 20);
        }
        px = nx;
        py = ny;
    }
}

/// The barcode, centred in the template's zone.
fn barcode(img: &mut GrayImage, dpi: u32, identity: &PageIdentity) {
    let (template, text) = match identity {
        PageIdentity::Blank(id) => (id.kind.template(), id.to_string()),
        PageIdentity::Form(id) => (id.form.template(), id.to_string()),
    };
    draw_barcode(img, dpi, template, &text, Some("UTF-8"));
}

/// A form page whose QR code holds `text` encoded as `character_set` (with its ECI, as
/// rxing's encoder writes one for any declared set); `None` encodes the text's characters
/// as ISO-8859-1 bytes with no ECI — how a form printed by an encoder that writes another
/// set's bytes without declaring it looks.
#[cfg(test)]
pub(crate) fn render_form_with_qr(form: crate::Form, text: &str, character_set: Option<&str>, dpi: u32) -> PageImage {
    let w = mm_px(A4.width, dpi) as u32;
    let h = mm_px(A4.height, dpi) as u32;
    let mut img = GrayImage::from_pixel(w, h, Luma([255]));
    frame(&mut img, dpi);
    draw_barcode(&mut img, dpi, form.template(), text, character_set);
    PageImage { image: img, dpi }
}

/// Draws `text` as the template's barcode, centred in its zone.
fn draw_barcode(img: &mut GrayImage, dpi: u32, template: crate::PageTemplate, text: &str, character_set: Option<&str>) {
    let (format, module_mm, bar_mm) = match template.symbology {
        Symbology::Code128 => (BarcodeFormat::CODE_128, MODULE_MM, BAR_HEIGHT_MM),
        Symbology::Qr => (BarcodeFormat::QR_CODE, QR_MODULE_MM, 0.0),
    };
    let hints = EncodeHints {
        CharacterSet: character_set.map(str::to_owned),
        Margin: Some("0".into()),
        ..Default::default()
    };
    // The identifiers are ours and short; an encoder failure is a bug in this generator
    // and leaves the page without a barcode, which recognition then flags.
    let Ok(matrix) = MultiFormatWriter.encode_with_hints(text, &format, 0, 0, &hints) else {
        return;
    };
    let zone = template.barcode_zone;
    let (mw, mh) = (matrix.width() as i64, matrix.height() as i64);
    // A QR code that carries contents can outgrow 1 mm modules in its zone; it shrinks
    // to keep 2 mm clear of the corner marker and the header on each side.
    let module_mm = if bar_mm > 0.0 {
        module_mm
    } else {
        module_mm.min((zone.width - 4.0) / mw.max(1) as f32)
    };
    let module = mm_px(module_mm, dpi).max(2);
    let draw_h = if bar_mm > 0.0 { mm_px(bar_mm, dpi) } else { mh * module };
    let x0 = mm_px(zone.x + zone.width / 2.0, dpi) - mw * module / 2;
    let y0 = mm_px(zone.y + zone.height / 2.0, dpi) - draw_h / 2;
    for my in 0..mh {
        for mx in 0..mw {
            if matrix.get(mx as u32, my as u32) {
                let (x, y) = (x0 + mx * module, y0 + my * module);
                let y1 = if bar_mm > 0.0 { y0 + draw_h } else { y + module };
                fill_rect(img, x, y, x + module, y1, 0);
            }
        }
    }
}
