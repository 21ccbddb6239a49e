//! Writing scan files: multi-page bilevel TIFF with CCITT Group 4 compression (what
//! document scanners produce; about 0.1 MB per A4 page at 300 dpi), or grayscale PNG.

use std::io::Write;

use fax::{encoder::Encoder, Color, VecWriter};

use super::{PageImage, ScanFormat};
use crate::{Error, Result};

/// Pixels darker than this become black in a bilevel page.
const THRESHOLD: u8 = 128;

fn bad(what: String) -> Error {
    Error::BadScan {
        what,
        hint: "this is a bug in the scan writer; report it",
    }
}

/// Writes `pages` as one scan file.
pub fn write_scan(pages: &[PageImage], format: ScanFormat, out: &mut impl Write) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        path: "<scan output>".into(),
        source: e,
    };
    match format {
        ScanFormat::Png => {
            let [page] = pages else {
                return Err(bad(format!("a PNG holds one page, not {}", pages.len())));
            };
            let mut buf = Vec::new();
            let mut enc = png::Encoder::new(&mut buf, page.image.width(), page.image.height());
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let ppm = (page.dpi as f64 / 0.0254).round() as u32;
            enc.set_pixel_dims(Some(png::PixelDimensions {
                xppu: ppm,
                yppu: ppm,
                unit: png::Unit::Meter,
            }));
            let mut writer = enc.write_header().map_err(|e| bad(e.to_string()))?;
            writer
                .write_image_data(page.image.as_raw())
                .map_err(|e| bad(e.to_string()))?;
            writer.finish().map_err(|e| bad(e.to_string()))?;
            out.write_all(&buf).map_err(io)
        }
        ScanFormat::TiffG4 => {
            if pages.is_empty() {
                return Err(bad("a TIFF needs at least one page".into()));
            }
            out.write_all(&tiff_g4(pages)?).map_err(io)
        }
    }
}

/// One page compressed with CCITT Group 4.
fn g4(page: &PageImage) -> Result<Vec<u8>> {
    let (w, h) = page.image.dimensions();
    let width = u16::try_from(w).map_err(|_| bad(format!("page {w} px wide is too wide for G4")))?;
    let mut enc = Encoder::new(VecWriter::new());
    let raw = page.image.as_raw();
    for row in raw.chunks_exact(w as usize).take(h as usize) {
        let pels = row
            .iter()
            .map(|&v| if v < THRESHOLD { Color::Black } else { Color::White });
        enc.encode_line(pels, width)
            .map_err(|_| bad("G4 encoder failed".into()))?;
    }
    let writer = enc.finish().map_err(|_| bad("G4 encoder failed".into()))?;
    Ok(writer.finish())
}

/// A little-endian TIFF with one IFD per page, each page one G4 strip.
fn tiff_g4(pages: &[PageImage]) -> Result<Vec<u8>> {
    const ENTRIES: u16 = 11;
    let mut out = vec![b'I', b'I', 42, 0, 0, 0, 0, 0];
    let mut prev_link = 4usize; // where the offset of the next IFD goes
    for page in pages {
        let data = g4(page)?;
        let (w, h) = page.image.dimensions();
        let data_at = out.len() as u32;
        out.extend_from_slice(&data);
        if out.len() % 2 == 1 {
            out.push(0); // IFDs start on a word boundary
        }
        let rational_at = out.len() as u32;
        for _ in 0..2 {
            out.extend_from_slice(&page.dpi.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        let ifd_at = out.len() as u32;
        out[prev_link..prev_link + 4].copy_from_slice(&ifd_at.to_le_bytes());
        out.extend_from_slice(&ENTRIES.to_le_bytes());
        let mut entry = |tag: u16, typ: u16, value: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        };
        const SHORT: u16 = 3;
        const LONG: u16 = 4;
        const RATIONAL: u16 = 5;
        entry(254, LONG, 2); // NewSubfileType: a page of a multi-page document
        entry(256, LONG, w); // ImageWidth
        entry(257, LONG, h); // ImageLength
        entry(259, SHORT, 4); // Compression: CCITT T.6 (Group 4)
        entry(262, SHORT, 0); // PhotometricInterpretation: WhiteIsZero
        entry(273, LONG, data_at); // StripOffsets
        entry(278, LONG, h); // RowsPerStrip
        entry(279, LONG, data.len() as u32); // StripByteCounts
        entry(282, RATIONAL, rational_at); // XResolution
        entry(283, RATIONAL, rational_at + 8); // YResolution
        entry(296, SHORT, 2); // ResolutionUnit: inch
        prev_link = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    Ok(out)
}
