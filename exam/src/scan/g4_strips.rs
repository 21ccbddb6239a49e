//! Group 4 TIFF strips decoded straight into 8-bit luma. The `tiff` crate's generic path
//! unpacks a bilevel page bit by bit into a packed buffer, which we then expand again;
//! filling runs from the fax decoder's transitions is about five times faster on an A4
//! page at 300 dpi, and recognition throughput is bounded by it.

use std::io::Cursor;

use tiff::decoder::Decoder;
use tiff::tags::Tag;

use super::pages::bad;
use crate::Result;

/// The page's luma, or `None` for layouts left to the generic path (tiles, reversed bit
/// order, more than one sample).
pub(super) fn read_g4_strips(d: &mut Decoder<Cursor<&[u8]>>, w: u32, h: u32) -> Result<Option<Vec<u8>>> {
    let tag = |d: &mut Decoder<Cursor<&[u8]>>, tag| {
        d.find_tag_unsigned::<u32>(tag)
            .map_err(|e| bad(format!("a damaged TIFF tag ({e})")))
    };
    let tiled = d
        .find_tag(Tag::TileWidth)
        .map_err(|e| bad(format!("a damaged TIFF tag ({e})")))?
        .is_some();
    if tiled
        || tag(d, Tag::FillOrder)?.unwrap_or(1) != 1
        || tag(d, Tag::BitsPerSample)?.unwrap_or(1) != 1
        || tag(d, Tag::SamplesPerPixel)?.unwrap_or(1) != 1
    {
        return Ok(None);
    }
    // A fax "white" run is a 0 bit; the photometric tag says what a 0 bit looks like.
    let white: u8 = match tag(d, Tag::PhotometricInterpretation)? {
        Some(0) | None => 255,
        Some(1) => 0,
        Some(_) => return Ok(None),
    };
    let rows_per_strip = tag(d, Tag::RowsPerStrip)?.unwrap_or(h).clamp(1, h);
    let offsets: Vec<u64> = d
        .find_tag_unsigned_vec(Tag::StripOffsets)
        .map_err(|e| bad(format!("a damaged strip table ({e})")))?
        .ok_or_else(|| bad("the page has no image data"))?;
    let counts: Vec<u64> = d
        .find_tag_unsigned_vec(Tag::StripByteCounts)
        .map_err(|e| bad(format!("a damaged strip table ({e})")))?
        .ok_or_else(|| bad("the page has no strip sizes"))?;
    let strips = h.div_ceil(rows_per_strip) as usize;
    if offsets.len() != strips || counts.len() != strips {
        return Err(bad("the page's strip table does not match its size"));
    }
    let width = u16::try_from(w).map_err(|_| bad(format!("a page {w} pixels wide is too wide for Group 4")))?;
    let file: &[u8] = d.inner().get_ref();
    let (wu, hu) = (w as usize, h as usize);
    let mut luma = vec![white; wu * hu];
    let black = 255 - white;
    for (i, (&off, &len)) in offsets.iter().zip(&counts).enumerate() {
        let data = usize::try_from(off)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| file.get(o..o.checked_add(l)?))
            .ok_or_else(|| bad("the file is cut short (image data past its end)"))?;
        let first_row = i * rows_per_strip as usize;
        let rows = (rows_per_strip as usize).min(hu - first_row);
        let bytes = data.iter().map(|&b| Ok::<u8, std::convert::Infallible>(b));
        let mut strip =
            fax::decoder::Group4Decoder::new(bytes, width).map_err(|_| bad("the Group 4 data is damaged"))?;
        for r in 0..rows {
            match strip.advance() {
                Ok(fax::decoder::DecodeStatus::Incomplete) => {}
                // Some encoders omit trailing white rows before the end-of-block code.
                Ok(fax::decoder::DecodeStatus::End) => break,
                Err(_) => return Err(bad("the Group 4 data is damaged or cut short")),
            }
            let row = &mut luma[(first_row + r) * wu..(first_row + r + 1) * wu];
            // Transitions alternate white→black→white…, starting white at column 0.
            let (mut start, mut is_black) = (0usize, false);
            for &t in strip.transition() {
                let t = usize::from(t).min(wu);
                if is_black && t > start {
                    row[start..t].fill(black);
                }
                start = start.max(t);
                is_black = !is_black;
            }
            if is_black && start < wu {
                row[start..].fill(black);
            }
        }
    }
    Ok(Some(luma))
}
