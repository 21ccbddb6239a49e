//! `konvert bench transfer`: N packets of random data from one edge to a center running
//! as a separate process on loopback — sealed, sent, fsynced, receipted — with MB/s and
//! each side's peak RSS.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::now_unix_ms;
use crate::quick_authority::QuickAuthority;
use anyhow::Context;
use konvert_center::provision::{self, CenterFacts, CenterInit};
use konvert_crypto::token::TokenFile;
use konvert_edge::{push, seal_sources, PushOptions, SiteConfig};
use konvert_exam::{ExamKind, PacketKind, PacketRef};
use konvert_replication::Outbox;

use crate::rooms::write_random_file;
use crate::stats::peak_rss_bytes;

/// What to measure.
#[derive(Debug, Clone)]
pub struct TransferBench {
    /// Number of packets.
    pub packets: usize,
    /// Bytes of random scan data per packet.
    pub packet_bytes: usize,
    /// Packets in flight.
    pub parallel: usize,
    /// Sealing stations working at once.
    pub sealers: usize,
    /// Work folder (default: a temporary one on the same disk as /tmp).
    pub dir: Option<PathBuf>,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct TransferFigures {
    /// Envelope bytes moved.
    pub bytes: u64,
    /// Time to seal everything (while pushing).
    pub seal: Duration,
    /// Time from the first seal to the last receipt.
    pub total: Duration,
    /// Peak RSS of this (edge) process.
    pub edge_peak_rss: Option<u64>,
    /// Peak RSS of the center process.
    pub center_peak_rss: Option<u64>,
    /// How busy the whole machine was from the first seal to the last receipt.
    pub cpu: Option<crate::stats::CpuSpan>,
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The member token's PIN in every benchmark (a throwaway token).
pub const BENCH_PIN: &str = "493817";

/// A center (initialized, not yet running) and one enrolled station `0101` whose member
/// token is registered for 2026-06-01: what each transfer benchmark starts from.
pub struct Rig {
    /// The center's folder.
    pub center_dir: PathBuf,
    /// The center as initialized.
    pub init: CenterInit,
    /// The center's `/metrics` address, when asked for.
    pub metrics: Option<SocketAddr>,
    /// The station's site.toml.
    pub site_toml: PathBuf,
    /// The station's config.
    pub cfg: SiteConfig,
}

impl Rig {
    /// Sets up a center in `root/center` and station 0101 in `root/site`.
    pub fn new(root: &Path, with_metrics: bool) -> anyhow::Result<Rig> {
        let center_dir = root.join("center");
        let port = free_udp_port()?;
        let metrics = if with_metrics {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        } else {
            None
        };
        let (init, recipient) = provision::init_center_with_key(
            &center_dir,
            "center.konvert",
            format!("127.0.0.1:{port}").parse()?,
            metrics,
        )?;
        let site_dir = root.join("site");
        std::fs::create_dir_all(&site_dir)?;
        let token = TokenFile::create(
            &site_dir.join("member.token"),
            "TK-BENCH",
            "bench",
            BENCH_PIN,
            konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
        )?;
        let mut officers = QuickAuthority::new(&init.config, recipient.public_key(), now_unix_ms())?;
        officers.issue(&token, "0101", &["2026-06-01"], now_unix_ms())?;
        officers.publish(now_unix_ms())?;
        let facts = CenterFacts {
            address: format!("127.0.0.1:{port}"),
            name: "center.konvert".into(),
            recipient_public: recipient.public_key(),
            receipt_public: init.receipt_public,
        };
        let site_toml = provision::enroll_station(&center_dir, "0101", &facts, &site_dir)?;
        let cfg = SiteConfig::load(&site_toml)?;
        // The station trusts the officers, as a real one does, so it takes their registry.
        konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)?.anchor(officers.authority())?;
        Ok(Rig {
            center_dir,
            init,
            metrics,
            site_toml,
            cfg,
        })
    }

    /// Starts the center as a child process (`konvert center serve`) and waits until it listens.
    pub fn start_center(&self) -> anyhow::Result<CenterProcess> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["center", "serve", "--config"])
            .arg(&self.init.config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the center process")?;
        let stdout = child.stdout.take().context("center stdout")?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line)?;
        if !line.contains("listening") {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the center did not start: {line:?}");
        }
        // Keep reading what it prints: a closed pipe would make its next line fail.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        Ok(CenterProcess(child))
    }

    /// The station's packet for `room` on the rig's exam day.
    pub fn packet(&self, room: &str) -> anyhow::Result<PacketRef> {
        Ok(PacketRef {
            site: self.cfg.site.clone(),
            date: "2026-06-01".parse()?,
            exam: ExamKind::Ege,
            room: room.parse()?,
            kind: PacketKind::Blanks,
        })
    }
}

/// The center's child process; killed (SIGKILL) when dropped, so a failed benchmark
/// leaves no center behind.
pub struct CenterProcess(Child);

impl CenterProcess {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Peak RSS so far.
    pub fn peak_rss(&self) -> Option<u64> {
        peak_rss_bytes(self.0.id())
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Kills the center with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for CenterProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the transfer benchmark.
pub async fn transfer(b: &TransferBench) -> anyhow::Result<TransferFigures> {
    let temp = tempfile::Builder::new().prefix("konvert-bench-").tempdir()?;
    let root = b.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    let rig = Rig::new(&root, false)?;
    let mut child = rig.start_center()?;
    let mut cfg = rig.cfg.clone();
    cfg.push.parallel = b.parallel;
    let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
    let signer = TokenFile::read(cfg.token_file()?)?.unlock(BENCH_PIN)?;

    let scans = root.join("scans");
    // The day path hashes each scan once, when intake takes it in, long before the room
    // is sealed; sealing takes that digest for the manifest. So here too the digests are
    // made before the clock starts, as the scans arrive.
    let mut digests = Vec::with_capacity(b.packets);
    for i in 0..b.packets {
        let path = write_random_file(
            &scans.join(format!("{:04}", i + 1)),
            "scan.bin",
            i as u64,
            b.packet_bytes,
        )?;
        digests.push(crate::rooms::file_sha256(&path)?);
    }
    let digests = Arc::new(digests);
    // Seal on one thread while pushing: as at a site, where rooms are sealed as they are
    // scanned and the outbox drains at the same time.
    let sealing = Arc::new(AtomicBool::new(true));
    let cpu_at_start = crate::stats::MachineCpu::now();
    let started = Instant::now();
    // `sealers` stations seal disjoint sets of rooms, as a site with several scanning
    // stations does; the flag drops when the last one is done.
    let sealers_left = Arc::new(std::sync::atomic::AtomicUsize::new(b.sealers));
    let signer = Arc::new(signer);
    let scans = Arc::new(scans);
    let mut sealers = Vec::new();
    for s in 0..b.sealers {
        let (cfg, outbox, sealing, left) = (cfg.clone(), outbox.clone(), sealing.clone(), sealers_left.clone());
        let (signer, scans, n, step) = (signer.clone(), scans.clone(), b.packets, b.sealers);
        let size = b.packet_bytes as u64;
        let packets: Vec<(String, PacketRef, [u8; 32])> = (s..n)
            .step_by(step)
            .map(|i| {
                let room = format!("{:04}", i + 1);
                rig.packet(&room).map(|p| (room, p, digests[i]))
            })
            .collect::<anyhow::Result<_>>()?;
        sealers.push(tokio::task::spawn_blocking(move || -> anyhow::Result<Duration> {
            let result = (|| {
                for (room, packet, sha256) in packets {
                    let source = konvert_exam::ArchiveSource {
                        name: "scan.bin".into(),
                        path: scans.join(&room).join("scan.bin"),
                        size,
                        sha256: Some(sha256),
                    };
                    seal_sources(&cfg, &outbox, &*signer, packet, vec![source], None, now_unix_ms())?;
                }
                Ok(started.elapsed())
            })();
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                sealing.store(false, Ordering::Release);
            }
            result
        }));
    }
    let opts = PushOptions {
        max_wait: Duration::from_secs(600),
        more_coming: Some(sealing),
        expected: None,
        ..Default::default()
    };
    let report = push(&cfg, outbox.clone(), opts).await;
    let total = started.elapsed();
    let cpu = crate::stats::MachineCpu::since(cpu_at_start);
    let mut seal = Duration::ZERO;
    for sealer in sealers {
        seal = seal.max(sealer.await??);
    }
    let bytes: u64 = outbox.entries()?.iter().map(|e| e.offer.size).sum();
    let center_peak_rss = child.peak_rss();
    child.kill();
    let report = report?;
    anyhow::ensure!(
        report.delivered == b.packets,
        "only {} of {} packets delivered",
        report.delivered,
        b.packets
    );
    Ok(TransferFigures {
        bytes,
        seal,
        total,
        edge_peak_rss: peak_rss_bytes(std::process::id()),
        center_peak_rss,
        cpu,
    })
}
