//! Previews of test packets for the staff who judge print and scan quality: the loader
//! role opens each envelope with the center's decryption key, reads every page of every
//! scan, recognizes its barcode as the center will on the day, and writes one HTML page
//! with a thumbnail and the facts that decide quality (resolution, background, barcode)
//! for each page.
//!
//! This runs where the decryption key is — the loader's offline workstation — against a
//! copy of (or the mounted) data folder; the receiver itself never opens envelopes.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::imageops::FilterType;
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::{KeyId, RecipientSecretKey, VerifyingKey};
use konvert_exam::agreement::Claim;
use konvert_exam::scan::{read_scan_pages, recognize, PageImage, Recognition};

use crate::registry::CenterRegistry;
use crate::test_packets::TestPacket;
use crate::{Error, Result};

/// Thumbnail width in pixels: enough to see streaks, grey backgrounds and skew.
const THUMB_WIDTH: u32 = 480;
/// Recognition budget per page, as at the edge.
const PAGE_BUDGET: Duration = Duration::from_millis(1500);
/// Below this resolution the center's recognition is unreliable.
const MIN_DPI: u32 = 200;
/// Mean brightness of the page below which the background is too grey (0 black … 255 white).
const MIN_BACKGROUND: f32 = 200.0;
/// Largest scan file opened for preview.
const MAX_PREVIEW_FILE: u64 = 512 * 1024 * 1024;

/// What the staff should look at on one page.
#[derive(Debug, Clone)]
pub struct PagePreview {
    /// The scan file in the packet.
    pub file: String,
    /// 1-based page number in the file.
    pub page: usize,
    /// The thumbnail, relative to the preview folder.
    pub thumbnail: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Resolution.
    pub dpi: u32,
    /// Mean brightness, 0 … 255.
    pub background: f32,
    /// What the barcode says, or why it could not be read.
    pub barcode: Result<String, String>,
    /// Quality problems found, in words; empty when the page looks fit for processing.
    pub problems: Vec<String>,
}

/// The preview of one test packet.
#[derive(Debug, Clone)]
pub struct PacketPreview {
    /// Which packet.
    pub packet: TestPacket,
    /// Its pages, or why the packet could not be opened.
    pub pages: Result<Vec<PagePreview>, String>,
}

impl PacketPreview {
    /// Pages with a quality problem.
    pub fn problem_pages(&self) -> usize {
        self.pages
            .as_ref()
            .map(|p| p.iter().filter(|p| !p.problems.is_empty()).count())
            .unwrap_or(0)
    }
}

/// Fails, naming how many, when any test packet could not be opened (the reasons are in
/// each [`PacketPreview`]): a refused packet is a finding, not a preview, and a script or
/// specialist must not read a clean exit as "every test packet was looked at".
pub fn all_opened(previews: &[PacketPreview]) -> Result<()> {
    let refused: Vec<String> = previews
        .iter()
        .filter_map(|p| {
            let r = &p.packet.record;
            p.pages
                .as_ref()
                .err()
                .map(|e| format!("{} v{} (site {}): {e}", r.packet_id, r.version, r.site))
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::TestPacket {
        what: format!(
            "{} of {} test packet(s) could not be opened: {}",
            refused.len(),
            previews.len(),
            refused.join("; ")
        ),
        hint: "a packet refused as not the one received was swapped in the store or damaged — reject it \
               (`test-packets reject`) and ask the site to send a test packet again; the others are in the preview",
    })
}

/// Opens each packet and writes `out/index.html` with thumbnails under `out/`.
pub fn render_previews(
    data_dir: &Path,
    packets: &[TestPacket],
    recipient: &RecipientSecretKey,
    registry: &RegistryBody,
    out: &Path,
) -> Result<(PathBuf, Vec<PacketPreview>)> {
    render_previews_with(data_dir, packets, std::slice::from_ref(recipient), registry, out)
}

/// [`render_previews`] with every center key the specialist holds: a test packet sealed
/// before a key rotation opens with the older key.
pub fn render_previews_with(
    data_dir: &Path,
    packets: &[TestPacket],
    keys: &[RecipientSecretKey],
    registry: &RegistryBody,
    out: &Path,
) -> Result<(PathBuf, Vec<PacketPreview>)> {
    fs::create_dir_all(out).map_err(Error::file(out))?;
    // Any token the registry lists: the receiver already decided on its status.
    let trusted = |id: &KeyId| -> Option<VerifyingKey> { CenterRegistry::token_key(registry, id) };
    let mut previews = Vec::new();
    for packet in packets {
        let pages = preview_packet(data_dir, packet, keys, &trusted, out).map_err(|e| e.to_string());
        previews.push(PacketPreview {
            packet: packet.clone(),
            pages,
        });
    }
    let index = out.join("index.html");
    fs::write(&index, html(&previews)).map_err(Error::file(&index))?;
    Ok((index, previews))
}

fn preview_packet(
    data_dir: &Path,
    packet: &TestPacket,
    keys: &[RecipientSecretKey],
    trusted: &dyn Fn(&KeyId) -> Option<VerifyingKey>,
    out: &Path,
) -> Result<Vec<PagePreview>> {
    let r = &packet.record;
    let claim = Claim {
        by: "received",
        packet_id: &r.packet_id,
        version: r.version,
        site: Some(&r.site),
        envelope_id: r.digest()?,
        bytes: r.bytes,
    };
    // Before anything is written: the stored file must be the test packet the desk names.
    let checked = crate::unpack::check_stored(data_dir, &claim, trusted)?;
    let dir = out.join(&r.envelope_id);
    let files = dir.join("files");
    // A preview from an earlier run may hold files of another judgement; start clean.
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(Error::file(&dir))?;
    }
    fs::create_dir_all(&files).map_err(Error::file(&files))?;
    let manifest = crate::unpack::open_checked(&checked, &claim, keys, trusted, &dir, &files)?;
    let mut pages = Vec::new();
    for (n, file) in manifest.files.iter().enumerate() {
        let path = files.join(&file.name);
        if file.size > MAX_PREVIEW_FILE {
            return Err(Error::TestPacket {
                what: format!("{} is {} MB, too large to preview", file.name, file.size / 1_000_000),
                hint: "reject the test packet: scans should be a few MB per page",
            });
        }
        let bytes = fs::read(&path).map_err(Error::file(&path))?;
        let reader = read_scan_pages(&bytes)?;
        for (i, page) in reader.enumerate() {
            let page = page?;
            let thumbnail = format!("{}/p{:03}-{:03}.png", r.envelope_id, n + 1, i + 1);
            save_thumbnail(&page, &out.join(&thumbnail))?;
            pages.push(describe(&file.name, i + 1, &page, thumbnail));
        }
    }
    Ok(pages)
}

fn save_thumbnail(page: &PageImage, path: &Path) -> Result<()> {
    let (w, h) = page.image.dimensions();
    let tw = THUMB_WIDTH.min(w).max(1);
    let th = ((u64::from(h) * u64::from(tw)) / u64::from(w.max(1))).max(1) as u32;
    let thumb = image::imageops::resize(&page.image, tw, th, FilterType::Triangle);
    thumb
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::TestPacket {
            what: format!("cannot write the thumbnail {}: {e}", path.display()),
            hint: "check that the preview folder is writable and has space",
        })
}

fn describe(file: &str, page: usize, img: &PageImage, thumbnail: String) -> PagePreview {
    let (width, height) = img.image.dimensions();
    let raw = img.image.as_raw();
    let background = raw.iter().map(|&v| u64::from(v)).sum::<u64>() as f32 / raw.len().max(1) as f32;
    let barcode = match recognize(img, PAGE_BUDGET) {
        Recognition::Read { identity, .. } => Ok(identity.to_string()),
        Recognition::Unreadable { reason } => Err(reason),
    };
    let mut problems = Vec::new();
    if img.dpi < MIN_DPI {
        problems.push(format!(
            "scanned at {} dpi; set the scanner to at least {MIN_DPI} dpi (300 recommended)",
            img.dpi
        ));
    }
    if background < MIN_BACKGROUND {
        problems.push(format!(
            "the page is grey (mean brightness {background:.0} of 255); check the printer's toner and the scanner's brightness"
        ));
    }
    if let Err(reason) = &barcode {
        problems.push(format!(
            "the barcode cannot be read ({reason}); check print quality and scan settings"
        ));
    }
    PagePreview {
        file: file.to_owned(),
        page,
        thumbnail,
        width,
        height,
        dpi: img.dpi,
        background,
        barcode,
        problems,
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(previews: &[PacketPreview]) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>konvert — test packets</title>\n\
         <style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top;width:490px}\
         img{border:1px solid #999;max-width:480px}.bad{color:#b00}.ok{color:#070}</style></head><body>\n\
         <h1>Test packets</h1>\n",
    );
    for p in previews {
        let r = &p.packet.record;
        let state = match p.packet.judged() {
            Some(v) => format!("{} by {}", v.verdict, escape(&v.judged_by)),
            None => "not judged yet".into(),
        };
        let _ = writeln!(
            h,
            "<section><h2>{} v{} — site {}</h2><p>{state}. Envelope {}.</p>",
            escape(&r.packet_id),
            r.version,
            escape(&r.site),
            escape(&r.envelope_id)
        );
        match &p.pages {
            Err(e) => {
                let _ = writeln!(h, "<p class=\"bad\">Cannot open: {}</p>", escape(e));
            }
            Ok(pages) => {
                for page in pages {
                    let barcode = match &page.barcode {
                        Ok(text) => format!("<span class=\"ok\">{}</span>", escape(text)),
                        Err(_) => "<span class=\"bad\">barcode not read</span>".into(),
                    };
                    let _ = write!(
                        h,
                        "<figure><img src=\"{}\" alt=\"page {} of {}\"><figcaption>{} p.{} — {}×{} px, {} dpi, \
                         brightness {:.0}; {barcode}",
                        escape(&page.thumbnail),
                        page.page,
                        escape(&page.file),
                        escape(&page.file),
                        page.page,
                        page.width,
                        page.height,
                        page.dpi,
                        page.background
                    );
                    for problem in &page.problems {
                        let _ = write!(h, "<br><span class=\"bad\">{}</span>", escape(problem));
                    }
                    h.push_str("</figcaption></figure>\n");
                }
            }
        }
        let _ = writeln!(
            h,
            "<p>Judge: <code>konvert-center test-packets confirm --packet {id} --by NAME</code> or \
             <code>konvert-center test-packets reject --packet {id} --by NAME --reason WHAT</code></p></section>",
            id = escape(&r.envelope_id)
        );
    }
    h.push_str("</body></html>\n");
    h
}
