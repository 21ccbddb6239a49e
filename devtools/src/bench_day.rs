//! `konvert bench day`: the time from the last page of a room landing in the hot folder
//! to the room's sealed envelopes in the outbox, through the real `day` loop (intake with
//! its settle time, recognition, completeness, sealing), in this process.
//!
//! The scans are rendered first (a scanner's work, not konvert's), then moved into the
//! hot folder file by file, as a scanner's output lands.

use std::path::Path;
use std::time::{Duration, Instant};

use konvert_center::provision::{self, CenterFacts};
use konvert_crypto::token::TokenFile;
use konvert_edge::day::{run_day, DayOptions};
use konvert_edge::intake::Journal;
use konvert_edge::SiteConfig;
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{ExamKind, PageIdentity, RoomId};

/// The bench member token's PIN.
pub const PIN: &str = "bench-pin";

/// What one run measured.
#[derive(Debug, Clone)]
pub struct DayLatency {
    /// Pages of the room.
    pub pages: usize,
    /// Scan files.
    pub files: usize,
    /// From the last file landing to the last envelope in the outbox.
    pub last_page_to_sealed: Duration,
    /// The configured settle time (a file must keep still this long before it is read).
    pub settle: Duration,
    /// The configured quiet time after a room is complete.
    pub quiet: Duration,
}

/// A site enrolled at a (not running) center, with one room whose attendance is recorded,
/// a hot folder, and the room's scans rendered beside it, not yet landed.
pub struct DaySite {
    /// The site's config.
    pub cfg: SiteConfig,
    /// Its site.toml.
    pub toml: std::path::PathBuf,
    /// The scanner's hot folder.
    pub hot: std::path::PathBuf,
    /// The rendered scan files, in the order a scanner writes them.
    pub files: Vec<std::path::PathBuf>,
    /// Pages in them.
    pub pages: usize,
}

impl DaySite {
    /// Sets up the site in `dir` for a room of `participants`.
    pub fn new(dir: &Path, participants: usize, settle_ms: u64, quiet_seconds: u64) -> anyhow::Result<DaySite> {
        let center_dir = dir.join("center");
        let (init, recipient) =
            provision::init_center_with_key(&center_dir, "center.konvert", "127.0.0.1:0".parse()?, None)?;
        let facts = CenterFacts {
            address: "127.0.0.1:9".into(),
            name: "center.konvert".into(),
            recipient_public: recipient.public_key(),
            receipt_public: init.receipt_public,
        };
        let site_dir = dir.join("site");
        let toml_path = provision::enroll_station(&center_dir, "0101", &facts, &site_dir)?;
        TokenFile::create(
            &site_dir.join("member.token"),
            "TK-B",
            "bench member",
            PIN,
            konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
        )?;
        let room = RoomId::new("0001")?;
        let plan = synthetic_plan(
            &"0101".parse()?,
            "2026-06-01".parse()?,
            ExamKind::Ege,
            &[(&room, participants)],
            7_000_000,
        );
        std::fs::write(site_dir.join("plan.toml"), toml::to_string(&plan)?)?;
        let mut text = std::fs::read_to_string(&toml_path)?;
        text.push_str(&format!(
            "\n[day]\nhot_folder = \"scans\"\nseating_plan = \"plan.toml\"\nsettle_ms = {settle_ms}\nquiet_seconds = {quiet_seconds}\n"
        ));
        std::fs::write(&toml_path, text)?;
        let hot = site_dir.join("scans");
        std::fs::create_dir_all(&hot)?;
        let cfg = SiteConfig::load(&toml_path)?;
        Journal::open(&cfg.data_dir)?.set_attendance(&room, participants as u32)?;

        // The scanner's output: forms, then the blanks, four degraded 300 dpi pages per G4 TIFF.
        let rendered = dir.join("rendered");
        let pages = room_pages(&plan, &room, 0);
        let (forms, blanks): (Vec<_>, Vec<_>) = pages.iter().cloned().partition(|p| matches!(p, PageIdentity::Form(_)));
        let job = ScanJob {
            format: ScanFormat::TiffG4,
            pages_per_file: 4,
            degrade: true,
            dpi: 300,
            seed: 3,
        };
        let mut files = write_pages(&forms, &rendered, "room0001-forms", job)?;
        files.extend(write_pages(&blanks, &rendered, "room0001-blanks", job)?);
        Ok(DaySite {
            cfg,
            toml: toml_path,
            hot,
            files,
            pages: pages.len(),
        })
    }

    /// Sealed envelopes in the outbox so far.
    pub fn sealed(&self) -> usize {
        std::fs::read_dir(self.cfg.data_dir.join("envelopes"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".env"))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Runs one room of `participants` through `day`.
pub async fn measure(
    dir: &Path,
    participants: usize,
    settle_ms: u64,
    quiet_seconds: u64,
) -> anyhow::Result<DayLatency> {
    let site = DaySite::new(dir, participants, settle_ms, quiet_seconds)?;
    let (cfg, hot, files) = (site.cfg.clone(), site.hot.clone(), site.files.clone());
    let signer = TokenFile::read(cfg.token_file()?)?.unlock(PIN)?;
    let opts = DayOptions {
        until_idle: Some(Duration::from_secs(2)),
        push: false,
    };
    let day = tokio::spawn(run_day(cfg.clone(), Box::new(signer), opts));
    let mut landed = Instant::now();
    for f in &files {
        // A scanner writes a file every few hundred milliseconds at ~40 pages a minute.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let name = f
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("rendered file without a name"))?;
        std::fs::rename(f, hot.join(name))?;
        landed = Instant::now();
    }
    let sealed_at = loop {
        if site.sealed() >= 2 {
            break Instant::now();
        }
        anyhow::ensure!(
            landed.elapsed() < Duration::from_secs(300),
            "the room was not sealed within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    day.await??;
    Ok(DayLatency {
        pages: site.pages,
        files: files.len(),
        last_page_to_sealed: sealed_at.duration_since(landed),
        settle: Duration::from_millis(settle_ms),
        quiet: Duration::from_secs(quiet_seconds),
    })
}

/// Prints the measurement.
pub async fn run(participants: usize, settle_ms: u64, quiet_seconds: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let m = measure(dir.path(), participants, settle_ms, quiet_seconds).await?;
    let own = m.last_page_to_sealed.saturating_sub(m.settle + m.quiet);
    println!(
        "konvert bench day — a room of {participants}: {} pages in {} G4 TIFF files (300 dpi, degraded)",
        m.pages, m.files
    );
    println!(
        "last page landed → sealed envelopes in the outbox: {:.2} s \
         (configured waits: settle {:.2} s + quiet {} s; konvert's own work {:.2} s)",
        m.last_page_to_sealed.as_secs_f64(),
        m.settle.as_secs_f64(),
        m.quiet.as_secs(),
        own.as_secs_f64()
    );
    Ok(())
}
