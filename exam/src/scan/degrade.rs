//! What a real scanner does to a page: feeds it rotated or a little askew, at 200–300
//! dpi, with dust (speckle) and slight blur.

use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::PageImage;

/// How a page is degraded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Degradation {
    /// Rotation by a multiple of 90°, clockwise: 0, 90, 180 or 270.
    pub rotation: u16,
    /// Skew in degrees (real feeders: up to ±3°).
    pub skew_deg: f32,
    /// Fraction of pixels flipped to black or white.
    pub speckle: f32,
    /// A slight (3×3) blur.
    pub blur: bool,
    /// Resolution, 200–300 dpi.
    pub dpi: u32,
}

impl Degradation {
    /// A clean page at 300 dpi, as printed.
    pub fn clean() -> Self {
        Degradation {
            rotation: 0,
            skew_deg: 0.0,
            speckle: 0.0,
            blur: false,
            dpi: 300,
        }
    }

    /// A random degradation, the same for the same seed.
    pub fn random(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Degradation {
            rotation: [0, 90, 180, 270][rng.gen_range(0..4)],
            skew_deg: rng.gen_range(-3.0..=3.0),
            speckle: rng.gen_range(0.0..0.004),
            blur: rng.gen_bool(0.5),
            dpi: [200, 240, 300][rng.gen_range(0..3)],
        }
    }

    /// Applies the degradation; `seed` drives the speckle.
    pub fn apply(&self, page: PageImage, seed: u64) -> PageImage {
        let mut img = page.image;
        if self.skew_deg.abs() > 0.01 {
            img = skew(&img, self.skew_deg);
        }
        if self.blur {
            img = blur3(&img);
        }
        if self.speckle > 0.0 {
            speckle(&mut img, self.speckle, seed);
        }
        img = match self.rotation {
            90 => image::imageops::rotate90(&img),
            180 => image::imageops::rotate180(&img),
            270 => image::imageops::rotate270(&img),
            _ => img,
        };
        PageImage {
            image: img,
            dpi: page.dpi,
        }
    }
}

/// Rotates by a small angle about the centre, nearest neighbour, white outside.
fn skew(img: &GrayImage, deg: f32) -> GrayImage {
    let (w, h) = img.dimensions();
    let (s, c) = deg.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let src = img.as_raw();
    let mut out = vec![255u8; src.len()];
    for y in 0..h {
        let dy = y as f32 - cy;
        let row = (y * w) as usize;
        for x in 0..w {
            let dx = x as f32 - cx;
            let sx = (c * dx + s * dy + cx).round();
            let sy = (-s * dx + c * dy + cy).round();
            if sx >= 0.0 && sy >= 0.0 && (sx as u32) < w && (sy as u32) < h {
                out[row + x as usize] = src[(sy as u32 * w + sx as u32) as usize];
            }
        }
    }
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| img.clone())
}

fn blur3(img: &GrayImage) -> GrayImage {
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let mut sum = 2 * u32::from(img.get_pixel(x, y)[0]);
            for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] {
                sum += u32::from(img.get_pixel(nx, ny)[0]);
            }
            // Centre weighted twice: a slight blur, as a scanner's optics give.
            out.put_pixel(x, y, Luma([(sum / 6) as u8]));
        }
    }
    out
}

fn speckle(img: &mut GrayImage, fraction: f32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = (img.len() as f32 * fraction) as usize;
    let (w, h) = img.dimensions();
    for _ in 0..n {
        let (x, y) = (rng.gen_range(0..w), rng.gen_range(0..h));
        let v = if rng.gen_bool(0.5) { 0 } else { 255 };
        img.put_pixel(x, y, Luma([v]));
    }
}
