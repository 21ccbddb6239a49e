//! `konvert bench recognition`: pages per second on one core for 300 dpi G4 TIFF and for
//! grayscale PNG, and accuracy on clean and degraded generated pages — reads, flagged
//! (unreadable) and wrong (must be none).

use std::time::{Duration, Instant};

use konvert_exam::scan::{
    read_scan_pages, recognize, render_page, write_scan, Degradation, PageMark, Recognition, ScanFormat,
};
use konvert_exam::{BlankId, BlankKind, Form, FormId, PageIdentity};

/// One row of the accuracy table.
#[derive(Debug, Default, Clone, Copy)]
pub struct Accuracy {
    /// Pages tried.
    pub pages: usize,
    /// Read correctly.
    pub read: usize,
    /// Flagged unreadable.
    pub flagged: usize,
    /// Read as something else.
    pub wrong: usize,
}

fn identity(i: usize) -> PageIdentity {
    if i % 10 == 9 {
        PageIdentity::Form(FormId {
            form: Form::ALL[i % Form::ALL.len()],
            site: konvert_exam::SiteId::new("0101").unwrap_or_else(|_| unreachable!("valid literal")),
            room: konvert_exam::RoomId::new("0012").unwrap_or_else(|_| unreachable!("valid literal")),
            date: "2026-06-01".parse().unwrap_or_else(|_| unreachable!("valid literal")),
        })
    } else {
        let kind = BlankKind::ALL[i % BlankKind::ALL.len()];
        PageIdentity::Blank(
            BlankId::for_kit(kind, 4_000_000_000 + i as u64, 1).unwrap_or_else(|_| unreachable!("in range")),
        )
    }
}

/// Encodes `n` pages (degraded or clean) as `format`, then times decode + recognize on
/// this thread alone. Returns (pages per second, accuracy).
pub fn measure(n: usize, degraded: bool, format: ScanFormat, seed: u64) -> anyhow::Result<(f64, Accuracy)> {
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        let d = if degraded {
            Degradation::random(seed + i as u64)
        } else {
            Degradation::clean()
        };
        let id = identity(i);
        let page = render_page(&PageMark::Identity(id.clone()), seed + i as u64, &d);
        let mut bytes = Vec::new();
        write_scan(std::slice::from_ref(&page), format, &mut bytes)?;
        files.push((id, bytes));
    }
    let mut acc = Accuracy::default();
    let started = Instant::now();
    for (want, bytes) in &files {
        acc.pages += 1;
        let Some(Ok(page)) = read_scan_pages(bytes)?.next() else {
            acc.flagged += 1;
            continue;
        };
        match recognize(&page, Duration::from_millis(1500)) {
            Recognition::Read { identity, .. } if &identity == want => acc.read += 1,
            Recognition::Read { .. } => acc.wrong += 1,
            Recognition::Unreadable { .. } => acc.flagged += 1,
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok((rate, acc))
}

/// Runs the benchmark and prints its table.
pub fn run(pages: usize) -> anyhow::Result<()> {
    println!("konvert bench recognition — {pages} pages per row, decode + recognize on one thread");
    println!(
        "{:<34} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "set", "pages/s", "read", "flagged", "wrong", "read %"
    );
    for (name, degraded, format) in [
        ("clean, 300 dpi, G4 TIFF", false, ScanFormat::TiffG4),
        ("clean, 300 dpi, grayscale PNG", false, ScanFormat::Png),
        ("degraded, 200–300 dpi, G4 TIFF", true, ScanFormat::TiffG4),
        ("degraded, 200–300 dpi, grayscale PNG", true, ScanFormat::Png),
    ] {
        let n = if degraded { pages } else { pages.div_ceil(5) };
        let (rate, a) = measure(n, degraded, format, 1)?;
        println!(
            "{name:<34} {rate:>9.1} {:>7} {:>7} {:>7} {:>6.1}%",
            a.read,
            a.flagged,
            a.wrong,
            100.0 * a.read as f64 / a.pages.max(1) as f64
        );
    }
    Ok(())
}
