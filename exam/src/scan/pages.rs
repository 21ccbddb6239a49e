//! Reading scan files page by page. The bytes come from a scanner or a disk and are not
//! trusted: the format is known by its magic, the page count and every page's pixel
//! count are bounded before anything is decoded, and a decoder error or panic becomes a
//! clear error, never a crash.

use std::io::Cursor;

use image::GrayImage;
use tiff::decoder::ifd::Value;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;
use tiff::ColorType;

use super::PageImage;
use crate::{Error, Result};

/// Most pages one scan file may hold.
pub const MAX_PAGES: usize = 500;
/// Most pixels one page may have (A3 at 600 dpi is 70 M).
pub const MAX_PAGE_PIXELS: u64 = 80_000_000;

const RESCAN: &str = "the file is damaged or not a scan; rescan the pages";

pub(super) fn bad(what: impl Into<String>) -> Error {
    Error::BadScan {
        what: what.into(),
        hint: RESCAN,
    }
}

/// The pages of one scan file, decoded one at a time.
pub struct ScanPages<'a> {
    inner: Inner<'a>,
    index: usize,
}

enum Inner<'a> {
    Tiff(Option<Box<Decoder<Cursor<&'a [u8]>>>>),
    Png(Option<&'a [u8]>),
}

/// Opens a scan file (TIFF or PNG, by its magic bytes) for reading page by page.
pub fn read_scan_pages(bytes: &[u8]) -> Result<ScanPages<'_>> {
    let inner = if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        let decoder = guarded(|| {
            let mut limits = Limits::default();
            limits.decoding_buffer_size = MAX_PAGE_PIXELS as usize;
            limits.intermediate_buffer_size = MAX_PAGE_PIXELS as usize;
            Decoder::new(Cursor::new(bytes)).map(|d| d.with_limits(limits))
        })?
        .map_err(|e| bad(format!("not a readable TIFF ({e})")))?;
        Inner::Tiff(Some(Box::new(decoder)))
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Inner::Png(Some(bytes))
    } else if bytes.is_empty() {
        return Err(bad("the file is empty"));
    } else {
        return Err(bad("not a TIFF or PNG file (unknown format)"));
    };
    Ok(ScanPages { inner, index: 0 })
}

/// Runs a decoder step, turning a panic inside it into an error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| bad("the image decoder failed on this file"))
}

impl Iterator for ScanPages<'_> {
    type Item = Result<PageImage>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.inner {
            Inner::Png(bytes) => bytes.take().map(read_png),
            Inner::Tiff(slot) => {
                let mut decoder = slot.take()?;
                if self.index >= MAX_PAGES {
                    return Some(Err(bad(format!("more than {MAX_PAGES} pages in one file"))));
                }
                let page = guarded(|| tiff_page(&mut decoder)).and_then(|r| r);
                if page.is_ok() && decoder.more_images() {
                    match guarded(|| decoder.next_image()) {
                        Ok(Ok(())) => *slot = Some(decoder),
                        Ok(Err(e)) => {
                            self.index += 1;
                            return Some(page.and(Err(bad(format!("page {} cannot be found ({e})", self.index + 1)))));
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }
                Some(page)
            }
        };
        self.index += 1;
        item.map(|r| r.map_err(|e| with_page(e, self.index)))
    }
}

fn with_page(e: Error, page: usize) -> Error {
    match e {
        Error::BadScan { what, hint } => Error::BadScan {
            what: format!("page {page}: {what}"),
            hint,
        },
        other => other,
    }
}

fn tiff_page(decoder: &mut Decoder<Cursor<&[u8]>>) -> Result<PageImage> {
    let (w, h) = decoder.dimensions().map_err(|e| bad(format!("no page size ({e})")))?;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_PAGE_PIXELS {
        return Err(bad(format!("a page of {w}×{h} pixels is not a scan")));
    }
    let compression = decoder.get_tag_u32(Tag::Compression).unwrap_or(1);
    if matches!(compression, 2 | 3 | 6) {
        return Err(Error::BadScan {
            what: format!("TIFF compression {compression} (CCITT G3 or old-style JPEG) is not supported"),
            hint: "set the scanner to CCITT G4 (bilevel) or to PNG/LZW/uncompressed (grayscale)",
        });
    }
    let colortype = decoder
        .colortype()
        .map_err(|e| bad(format!("unknown pixel format ({e})")))?;
    let dpi = match decoder.get_tag(Tag::XResolution) {
        Ok(Value::Rational(n, d)) if d > 0 => f64::from(n) / f64::from(d),
        Ok(other) => other.into_f64().unwrap_or(0.0),
        Err(_) => 0.0,
    };
    // A missing or absurd resolution is taken as the usual 300 dpi.
    let dpi = if (50.0..=1200.0).contains(&dpi) {
        dpi.round() as u32
    } else {
        300
    };
    if compression == 4 {
        if let Some(gray) = super::g4_strips::read_g4_strips(decoder, w, h)? {
            let image = GrayImage::from_raw(w, h, gray).ok_or_else(|| bad("the page data is shorter than the page"))?;
            return Ok(PageImage { image, dpi });
        }
    }
    let data = decoder.read_image().map_err(|e| bad(format!("cannot decode ({e})")))?;
    let DecodingResult::U8(data) = data else {
        return Err(bad("more than 8 bits per sample; scan in bilevel or 8-bit grayscale"));
    };
    let gray: Vec<u8> = match colortype {
        ColorType::Gray(1) => {
            let row_bytes = (w as usize).div_ceil(8);
            if data.len() < row_bytes * h as usize {
                return Err(bad("the page data is shorter than the page"));
            }
            // The decoder hands out BlackIsZero whatever the file says: a set bit is white.
            let (set, clear) = (255u8, 0u8);
            let mut out = Vec::with_capacity(w as usize * h as usize);
            for row in data.chunks_exact(row_bytes).take(h as usize) {
                for x in 0..w as usize {
                    let bit = row[x / 8] & (0x80 >> (x % 8)) != 0;
                    out.push(if bit { set } else { clear });
                }
            }
            out
        }
        ColorType::Gray(8) => {
            let mut out = data;
            out.truncate(w as usize * h as usize);
            out
        }
        ColorType::RGB(8) => data.chunks_exact(3).map(luma).collect(),
        other => return Err(bad(format!("pixel format {other:?} is not a scan format"))),
    };
    let image = GrayImage::from_raw(w, h, gray).ok_or_else(|| bad("the page data is shorter than the page"))?;
    Ok(PageImage { image, dpi })
}

fn luma(rgb: &[u8]) -> u8 {
    ((u32::from(rgb[0]) * 299 + u32::from(rgb[1]) * 587 + u32::from(rgb[2]) * 114) / 1000) as u8
}

fn read_png(bytes: &[u8]) -> Result<PageImage> {
    guarded(|| {
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .map_err(|e| bad(format!("not a readable PNG ({e})")))?;
        let info = reader.info();
        let (w, h) = (info.width, info.height);
        if u64::from(w) * u64::from(h) > MAX_PAGE_PIXELS {
            return Err(bad(format!("a page of {w}×{h} pixels is not a scan")));
        }
        let dpi = info
            .pixel_dims
            .filter(|d| d.unit == png::Unit::Meter)
            .map(|d| (f64::from(d.xppu) * 0.0254).round() as u32)
            .filter(|d| (50..=1200).contains(d))
            .unwrap_or(300);
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| bad("the PNG's size overflows"))?;
        let mut buf = vec![0u8; size];
        let frame = reader
            .next_frame(&mut buf)
            .map_err(|e| bad(format!("cannot decode the PNG ({e}); it may be cut short")))?;
        buf.truncate(frame.buffer_size());
        let channels = frame.color_type.samples();
        let gray: Vec<u8> = match frame.color_type {
            png::ColorType::Grayscale => buf,
            png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).map(|p| p[0]).collect(),
            png::ColorType::Rgb | png::ColorType::Rgba => buf.chunks_exact(channels).map(luma).collect(),
            png::ColorType::Indexed => return Err(bad("an indexed PNG was not expanded")),
        };
        GrayImage::from_raw(w, h, gray)
            .map(|image| PageImage { image, dpi })
            .ok_or_else(|| bad("the PNG's data is shorter than its page"))
    })?
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
