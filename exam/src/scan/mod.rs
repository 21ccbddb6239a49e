//! Scans: what a site's scanner produces and how the edge reads it back.
//!
//! - [`render_page`] draws a page as the scanner would see it — the template's printed
//!   frame, the barcode carrying the blank's or form's identifier, handwriting and marks —
//!   then degrades it (rotation, skew, speckle, blur, 200–300 dpi). Seeded, so the demo
//!   and the tests are deterministic.
//! - [`write_scan`] stores pages as the scanners do: bilevel CCITT G4 TIFF (one or many
//!   pages) or 8-bit grayscale PNG.
//! - [`read_scan_pages`] reads them back page by page, bounded before decoding.
//! - [`recognize`] finds the page's identity from its barcode within a time budget, and a
//!   form's contents from its QR code.
//! - [`read_marks`] reads a registration blank's removal and early-finish boxes, and
//!   [`read_answer_ink`] measures the writing on an answer page, each from small parts of
//!   a page already recognized (they need its orientation).

mod degrade;
mod g4_strips;
mod ink;
mod marks;
mod pages;
mod recognize;
mod render;
mod synth;
mod tiff_g4;

pub use degrade::Degradation;
pub use ink::{answer_ink_mm2, judge_answer_ink, read_answer_ink, AnswerInk, AnswerReading};
pub use marks::{read_mark, read_marks, MarkMeasure, MarkReading};
pub use pages::{read_scan_pages, ScanPages, MAX_PAGES, MAX_PAGE_PIXELS};
pub use recognize::{recognize, Recognition};
pub use render::{render_page, render_page_with, Handwriting, MarkStroke, PageFill, PageMark};
pub use synth::{
    room_pages, room_scan, synthetic_plan, write_pages, write_synth_pages, Attendance, ScanJob, SynthPage,
};
pub use tiff_g4::write_scan;

/// One page image: 8-bit grayscale (0 black … 255 white) and its resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageImage {
    /// The pixels.
    pub image: image::GrayImage,
    /// Dots per inch.
    pub dpi: u32,
}

/// How a scan file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFormat {
    /// Bilevel, CCITT Group 4, one IFD per page.
    TiffG4,
    /// 8-bit grayscale PNG, one page.
    Png,
}

impl ScanFormat {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ScanFormat::TiffG4 => "tif",
            ScanFormat::Png => "png",
        }
    }
}

/// Millimetres to pixels at `dpi`.
pub(crate) fn mm_px(mm: f32, dpi: u32) -> i64 {
    (mm * dpi as f32 / 25.4).round() as i64
}
