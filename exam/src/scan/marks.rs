//! Reading the removal and early-finish marks of a registration blank (R16): each box is
//! one small crop around where the template puts it, in the orientation recognition
//! found. Speckle is dropped from the crop, the box's printed frame is located in it (a 3° skew
//! moves the box by up to 6 mm, so a fixed window would cut it), and the share of dark
//! pixels inside the frame decides: a cross fills about a quarter of it, an empty box
//! nothing; a stray touch or a frame that cannot be found goes to a human verifier.

use image::GrayImage;
use serde::{Deserialize, Serialize};

use super::recognize::zone_crop_with;
use super::{mm_px, PageImage};
use crate::{MarkBox, MARK_BOX_MM, MARK_FRAME_MM};

/// What a mark box holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MarkReading {
    /// Crossed.
    Marked,
    /// Empty.
    Empty,
    /// Neither clearly: a verifier looks at the box.
    Unsure,
}

/// One box measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkMeasure {
    /// Which box.
    pub mark: MarkBox,
    /// The decision.
    pub reading: MarkReading,
    /// Dark pixels per thousand inside the box's frame.
    pub ink_permille: u32,
    /// Whether the printed frame was found; if not, the reading is [`MarkReading::Unsure`].
    pub frame_found: bool,
}

/// How far around the box the crop reaches: a 3° skew about the page centre moves the
/// boxes by up to 6 mm. The template keeps other print farther than this from them.
const WINDOW_MARGIN_MM: f32 = 7.0;
/// Below this share (per mille) inside the frame a box is empty (speckle, dust).
const EMPTY_BELOW: u32 = 15;
/// From this share on a box is marked (a cross gives about 250).
const MARKED_FROM: u32 = 100;

/// Measures both mark boxes of a page recognized as a registration blank lying in the
/// scan at `orientation` (degrees clockwise, as [`super::Recognition::Read`] says).
pub fn read_marks(page: &PageImage, orientation: u16) -> [MarkMeasure; 2] {
    MarkBox::ALL.map(|b| read_mark(page, orientation, b))
}

/// Measures one mark box; see [`read_marks`].
pub fn read_mark(page: &PageImage, orientation: u16, mark: MarkBox) -> MarkMeasure {
    let crop = zone_crop_with(&page.image, page.dpi, mark.zone(), orientation, WINDOW_MARGIN_MM);
    let ink = Ink::of(&crop);
    let located = locate_frame(&ink, page.dpi);
    let Some((x0, y0, side)) = located else {
        return MarkMeasure {
            mark,
            reading: MarkReading::Unsure,
            ink_permille: 0,
            frame_found: false,
        };
    };
    // Inside the frame, clear of it by its tilt under skew and a little more.
    let inset = band(page.dpi) + mm_px(0.3, page.dpi);
    let (ix0, iy0) = (x0 + inset, y0 + inset);
    let (ix1, iy1) = (x0 + side - inset, y0 + side - inset);
    let (mut dark, mut all) = (0u64, 0u64);
    for y in iy0..iy1 {
        for x in ix0..ix1 {
            all += 1;
            dark += u64::from(ink.at(x, y));
        }
    }
    let ink_permille = (dark * 1000 / all.max(1)) as u32;
    let reading = if ink_permille < EMPTY_BELOW {
        MarkReading::Empty
    } else if ink_permille >= MARKED_FROM {
        MarkReading::Marked
    } else {
        MarkReading::Unsure
    };
    MarkMeasure {
        mark,
        reading,
        ink_permille,
        frame_found: true,
    }
}

/// The width of a frame edge as seen in columns or rows: its thickness plus how much an
/// 8 mm edge leans under a 3° skew.
fn band(dpi: u32) -> i64 {
    mm_px(MARK_FRAME_MM + 0.45, dpi).max(2)
}

/// The dark pixels of a crop that belong to strokes: dark, with at least two of their four
/// neighbours dark. A pen line or a frame (3 px and more) keeps all its pixels; the
/// scanner's isolated speckle, and pairs of it, go.
struct Ink {
    width: usize,
    height: usize,
    mask: Vec<bool>,
}

impl Ink {
    fn of(crop: &GrayImage) -> Ink {
        let (width, height) = (crop.width() as usize, crop.height() as usize);
        let dark: Vec<bool> = crop.as_raw().iter().map(|&v| v < 128).collect();
        let mut mask = vec![false; dark.len()];
        for y in 1..height.saturating_sub(1) {
            for x in 1..width.saturating_sub(1) {
                let i = y * width + x;
                if dark[i] {
                    let n = [i - 1, i + 1, i - width, i + width]
                        .iter()
                        .filter(|&&j| dark[j])
                        .count();
                    mask[i] = n >= 2;
                }
            }
        }
        Ink { width, height, mask }
    }

    fn at(&self, x: i64, y: i64) -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < self.width
            && (y as usize) < self.height
            && self.mask[y as usize * self.width + x as usize]
    }
}

/// Where the box's frame is in the crop: (left, top, side) in pixels, found as the pair
/// of column (row) bands one box-width apart holding the most ink; `None` when the best
/// pair holds too little for a printed frame.
fn locate_frame(ink: &Ink, dpi: u32) -> Option<(i64, i64, i64)> {
    let side = mm_px(MARK_BOX_MM, dpi);
    let b = band(dpi);
    let mut cols = vec![0u32; ink.width];
    let mut rows = vec![0u32; ink.height];
    for (i, _) in ink.mask.iter().enumerate().filter(|(_, &d)| d) {
        cols[i % ink.width] += 1;
        rows[i / ink.width] += 1;
    }
    // Two edges, each the frame's thickness wide and the box's side long, at least half
    // of it dark.
    let needed = (2 * mm_px(MARK_FRAME_MM, dpi).max(1) * side / 2) as u64;
    let x0 = best_pair(&cols, side, b, needed)?;
    let y0 = best_pair(&rows, side, b, needed)?;
    Some((x0, y0, side))
}

/// The start of the pair of `band`-wide windows `side` apart (outer edges) with the most
/// in `sums`, if it holds at least `needed`.
fn best_pair(sums: &[u32], side: i64, band: i64, needed: u64) -> Option<i64> {
    let n = sums.len() as i64;
    if n < side {
        return None;
    }
    let mut prefix = vec![0u64; sums.len() + 1];
    for (i, &v) in sums.iter().enumerate() {
        prefix[i + 1] = prefix[i] + u64::from(v);
    }
    let window = |a: i64, len: i64| prefix[(a + len) as usize] - prefix[a as usize];
    let (start, score) = (0..=n - side)
        .map(|x| (x, window(x, band) + window(x + side - band, band)))
        .max_by_key(|&(x, s)| (s, std::cmp::Reverse(x)))?;
    (score >= needed).then_some(start)
}

#[cfg(test)]
#[path = "marks_tests.rs"]
mod tests;
