//! How much handwriting an answer page holds: the basis of the center's "presumed empty"
//! flag on answer blank 2 sheets and additional blanks (`002:7371–7373`, `8131`), and a
//! measure that works the same on essay writing blanks (which are not flagged: empty ones
//! belong to the full set, `000:14`).
//!
//! Blanks print their answer grid in dropout ink, so what stays dark in the answer area
//! is writing. The template keeps other print far enough from the area that a 3° skew
//! cannot bring the header rule or the corner markers into it. The area is sampled on every second row and column; a sample
//! counts when it and its right and lower neighbours are dark, which a pen stroke always
//! is and the scanner's isolated speckle almost never.

use serde::{Deserialize, Serialize};

use super::recognize::zone_rect_with;
use super::PageImage;
use crate::ANSWER_AREA;

/// What an answer page looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnswerReading {
    /// Nothing written: presumed empty.
    Empty,
    /// Written in.
    Written,
    /// A few marks: a verifier decides.
    Unsure,
}

/// The handwriting measured on an answer page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerInk {
    /// Area of writing in the answer area, square millimetres.
    pub ink_mm2: f32,
    /// The decision.
    pub reading: AnswerReading,
}

/// The answer area is shrunk by this much (negative margin) before measuring. Rotated 3°
/// about the page centre, the header rule comes down to 61.7 mm, above the area's top at
/// 62 mm, and the bottom corner markers stay left of, right of or below it.
const AREA_INSET_MM: f32 = 0.5;
/// Below this much writing (mm²) a page is empty; one short scribble is 1.5–6 mm², and a
/// blank page measures 0 through speckle and blur.
const EMPTY_BELOW_MM2: f32 = 1.0;
/// From this much on a page is written (a few words); a written page has hundreds.
const WRITTEN_FROM_MM2: f32 = 20.0;

/// The writing in the answer area of a page lying in the scan at `orientation` (degrees
/// clockwise, as recognition found it), and what it says.
pub fn read_answer_ink(page: &PageImage, orientation: u16) -> AnswerInk {
    let ink_mm2 = answer_ink_mm2(page, orientation);
    AnswerInk {
        ink_mm2,
        reading: judge_answer_ink(ink_mm2),
    }
}

/// Empty, written or unsure for `ink_mm2` of writing.
pub fn judge_answer_ink(ink_mm2: f32) -> AnswerReading {
    if ink_mm2 < EMPTY_BELOW_MM2 {
        AnswerReading::Empty
    } else if ink_mm2 >= WRITTEN_FROM_MM2 {
        AnswerReading::Written
    } else {
        AnswerReading::Unsure
    }
}

/// Square millimetres of writing in the answer area; see the module documentation.
pub fn answer_ink_mm2(page: &PageImage, orientation: u16) -> f32 {
    let img = &page.image;
    let (x, y, w, h) = zone_rect_with(img, page.dpi, ANSWER_AREA, orientation, -AREA_INSET_MM);
    let (iw, ih) = img.dimensions();
    let raw = img.as_raw();
    let (iw, ih) = (iw as usize, ih as usize);
    let x1 = ((x + w) as usize).min(iw.saturating_sub(1));
    let y1 = ((y + h) as usize).min(ih.saturating_sub(1));
    let mut hits = 0u64;
    for row in (y as usize..y1).step_by(2) {
        let line = &raw[row * iw..(row + 2) * iw];
        for col in (x as usize..x1).step_by(2) {
            if line[col] < 128 && line[col + 1] < 128 && line[iw + col] < 128 {
                hits += 1;
            }
        }
    }
    let mm_per_px = 25.4 / page.dpi.max(1) as f32;
    hits as f32 * 4.0 * mm_per_px * mm_per_px
}

#[cfg(test)]
#[path = "ink_tests.rs"]
mod tests;
