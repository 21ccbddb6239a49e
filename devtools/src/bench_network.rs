//! `konvert bench network`: goodput over bad links.
//!
//! - Shaped link: the center (a `konvert center serve` process) and the edge (in-process,
//!   on a thread inside the other namespace) joined by a veth shaped with tbf at 20 Mbit/s
//!   ([`crate::netns`]); envelope bytes delivered and receipted per second, as a share of
//!   the link rate.
//! - Lossy link: through the impairment proxy ([`crate::impair`]) at 2 % loss each way and
//!   50 ms round trip, as a share of the same proxy's goodput without loss (same rate cap
//!   and delay).
//!
//! Packets are sealed before the clock starts: these rows measure the network path only
//! (`bench transfer` measures sealing and pushing together).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_unix_ms;
use anyhow::Context;
use konvert_center::provision::{self, CenterFacts, CenterInit};
use konvert_crypto::registry::RegistryStore;
use konvert_crypto::token::TokenFile;
use konvert_edge::{push, seal_room, PushOptions, PushReport, SiteConfig};
use konvert_exam::{ExamKind, PacketKind, PacketRef};
use konvert_replication::{Outbox, OutboxState};

use crate::impair::{ImpairProxy, Impairment};
use crate::netns::{LinkSpec, QdiscStats, ShapedLink, Side, Skipped};
use crate::quick_authority::QuickAuthority;
use crate::rooms::write_random_file;

/// The member token's PIN in these throwaway setups.
const PIN: &str = "493817";
/// The exam day the packets are for.
const DAY: &str = "2026-06-01";
/// The center's QUIC port inside its namespace (the namespace is private, so any port is free).
const NS_PORT: u16 = 4433;

/// What to send.
#[derive(Debug, Clone)]
pub struct NetworkBench {
    /// Number of packets.
    pub packets: usize,
    /// Bytes of random scan data per packet.
    pub packet_bytes: usize,
    /// Packets in flight (site.toml's `push.parallel`).
    pub parallel: usize,
    /// Link rate, bits per second.
    pub rate_bps: u64,
}

impl NetworkBench {
    /// The full run: 128 MB (32 packets of 4 MB) at 20 Mbit/s, about 54 s per transfer — a
    /// small site's exam day (about 43 participants × 3 MB). The fixed part of a push (the
    /// handshake, the first offer, the center's fsync before the last receipt: about 0.1 s)
    /// is then 0.2 % of it; in a 32 MB run it was 0.7 % (94.5–94.8 % of the link rate).
    pub fn full() -> Self {
        NetworkBench {
            packets: 32,
            packet_bytes: 4_000_000,
            parallel: 4,
            rate_bps: 20_000_000,
        }
    }

    /// A quick run: 8 MB (2 packets), about 3.5 s per transfer.
    pub fn quick() -> Self {
        NetworkBench {
            packets: 2,
            ..Self::full()
        }
    }
}

/// One transfer's outcome.
#[derive(Debug, Clone)]
pub struct TransferRun {
    /// Envelope bytes delivered with verified receipts.
    pub bytes: u64,
    /// From the push's start (connect) to the last receipt.
    pub elapsed: Duration,
    /// Connections the push needed.
    pub connections: u32,
}

impl TransferRun {
    /// Envelope bits per second.
    pub fn goodput_bps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The shaped-link row.
#[derive(Debug, Clone)]
pub struct ShapedFigures {
    /// The link.
    pub spec: LinkSpec,
    /// The transfer.
    pub run: TransferRun,
    /// The edge's tbf (edge → center traffic: the data).
    pub edge_qdisc: QdiscStats,
    /// The center's tbf (center → edge: acknowledgements and receipts).
    pub center_qdisc: QdiscStats,
}

impl ShapedFigures {
    /// Goodput as a share of the link rate (the figure with the ≥ 95 % goal).
    pub fn goodput_ratio(&self) -> f64 {
        self.run.goodput_bps() / self.spec.rate_bps as f64
    }

    /// Envelope bytes per byte on the wire edge → center (Ethernet, IP, UDP and QUIC
    /// headers, AEAD tags, retransmissions, handshake, path-MTU probes).
    pub fn wire_efficiency(&self) -> f64 {
        self.run.bytes as f64 / self.edge_qdisc.sent_bytes.max(1) as f64
    }

    /// How busy the link was edge → center, as a share of its rate.
    pub fn link_utilization(&self) -> f64 {
        self.edge_qdisc.sent_bytes as f64 * 8.0 / self.run.elapsed.as_secs_f64().max(1e-9) / self.spec.rate_bps as f64
    }
}

/// The lossy-link row.
#[derive(Debug, Clone)]
pub struct LossyFigures {
    /// Loss probability each way.
    pub loss: f64,
    /// Round trip added by the proxy.
    pub rtt: Duration,
    /// The proxy's rate cap, bits per second.
    pub rate_bps: u64,
    /// The same path without loss.
    pub clean: TransferRun,
    /// With loss.
    pub lossy: TransferRun,
    /// Datagrams the proxy dropped edge → center in the lossy run, and received.
    pub dropped_up: (u64, u64),
}

impl LossyFigures {
    /// Lossy goodput as a share of clean goodput (the figure with the ≥ 80 % goal).
    pub fn ratio(&self) -> f64 {
        self.lossy.goodput_bps() / self.clean.goodput_bps().max(1e-9)
    }
}

/// A center's files, an issued member token and an enrolled station, in a temp dir.
struct Rig {
    _temp: tempfile::TempDir,
    init: CenterInit,
    cfg: SiteConfig,
    outbox: Arc<Outbox>,
    root: PathBuf,
}

impl Rig {
    /// A center listening on `listen`, and a station enrolled for it.
    fn new(listen: SocketAddr, parallel: usize) -> anyhow::Result<Self> {
        let temp = tempfile::Builder::new().prefix("konvert-bench-net-").tempdir()?;
        let root = temp.path().to_owned();
        let center_dir = root.join("center");
        let (init, recipient) = provision::init_center_with_key(&center_dir, "center.konvert", listen, None)?;
        let site_dir = root.join("site");
        std::fs::create_dir_all(&site_dir)?;
        let token = TokenFile::create(
            &site_dir.join("member.token"),
            "TK-BENCH",
            "bench",
            PIN,
            konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
        )?;
        let mut officers = QuickAuthority::new(&init.config, recipient.public_key(), now_unix_ms())?;
        officers.issue(&token, "0101", &[DAY], now_unix_ms())?;
        officers.publish(now_unix_ms())?;
        let facts = CenterFacts {
            address: listen.to_string(),
            name: "center.konvert".into(),
            recipient_public: recipient.public_key(),
            receipt_public: init.receipt_public,
        };
        let toml = provision::enroll_station(&center_dir, "0101", &facts, &site_dir)?;
        let mut cfg = SiteConfig::load(&toml)?;
        // Anchored, the station takes the registry the center sends, as a real one does.
        RegistryStore::open(&cfg.data_dir)?.anchor(officers.authority())?;
        cfg.push.parallel = parallel;
        cfg.push.retry_seconds = 0.2;
        let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
        Ok(Rig {
            _temp: temp,
            init,
            cfg,
            outbox,
            root,
        })
    }

    /// Writes and seals the benchmark's packets (before any clock starts).
    async fn seal(&self, b: &NetworkBench) -> anyhow::Result<()> {
        let (cfg, outbox, root, b) = (self.cfg.clone(), self.outbox.clone(), self.root.clone(), b.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let signer = TokenFile::read(cfg.token_file()?)?.unlock(PIN)?;
            for i in 0..b.packets {
                let room = format!("{:04}", i + 1);
                let dir = root.join("scans").join(&room);
                write_random_file(&dir, "scan.bin", i as u64, b.packet_bytes)?;
                let packet = PacketRef {
                    site: cfg.site.clone(),
                    date: DAY.parse()?,
                    exam: ExamKind::Ege,
                    room: room.parse()?,
                    kind: PacketKind::Blanks,
                };
                seal_room(&cfg, &outbox, &signer, &dir, packet, now_unix_ms())?;
            }
            Ok(())
        })
        .await?
    }

    /// Checks every packet is delivered with a receipt that verifies, and sums the bytes.
    fn check(&self, report: &PushReport, packets: usize) -> anyhow::Result<TransferRun> {
        let mut bytes = 0;
        for e in self.outbox.entries()? {
            let OutboxState::Delivered { receipt } = &e.state else {
                anyhow::bail!("packet {} was not delivered: {:?}", e.offer.packet_id, e.state);
            };
            receipt
                .verify_for(&self.init.receipt_public, &e.offer)
                .with_context(|| format!("the receipt for {}", e.offer.packet_id))?;
            bytes += e.offer.size;
        }
        anyhow::ensure!(
            report.delivered == packets,
            "{} of {packets} packets delivered",
            report.delivered
        );
        Ok(TransferRun {
            bytes,
            elapsed: report.elapsed,
            connections: report.connections,
        })
    }
}

fn push_options() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(600),
        ..Default::default()
    }
}

/// The shaped-link row: the center as a `konvert center serve` child of this executable
/// (so call it from the `konvert` binary) in one namespace, the edge in the other.
/// `Ok(Err(Skipped))` where this machine does not allow namespaces.
pub async fn shaped_link_goodput(b: &NetworkBench) -> anyhow::Result<Result<ShapedFigures, Skipped>> {
    let link = match ShapedLink::create(LinkSpec::at_rate(b.rate_bps))? {
        Ok(link) => link,
        Err(skip) => return Ok(Err(skip)),
    };
    let rig = Rig::new(link.center_addr(NS_PORT), b.parallel)?;
    rig.seal(b).await?;
    let exe = std::env::current_exe()?;
    let center = link.spawn_center(
        &exe,
        [
            "center".as_ref(),
            "serve".as_ref(),
            "--config".as_ref(),
            rig.init.config_path.as_os_str(),
        ],
    )?;
    let (cfg, outbox) = (rig.cfg.clone(), rig.outbox.clone());
    let report = link
        .run_in(
            Side::Edge,
            move || async move { push(&cfg, outbox, push_options()).await },
        )
        .await??;
    let run = rig.check(&report, b.packets)?;
    let figures = ShapedFigures {
        spec: link.spec(),
        run,
        edge_qdisc: link.qdisc_stats(Side::Edge)?,
        center_qdisc: link.qdisc_stats(Side::Center)?,
    };
    drop(center);
    Ok(Ok(figures))
}

/// One transfer through the proxy with `imp` both ways; the proxy's (dropped, received)
/// edge → center.
async fn through_proxy(b: &NetworkBench, imp: Impairment) -> anyhow::Result<(TransferRun, (u64, u64))> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let rig = Rig::new(listen, b.parallel)?;
    let cfg = konvert_center::CenterConfig::load(&rig.init.config_path)?;
    let center = konvert_center::serve(&cfg).await?;
    let proxy = ImpairProxy::start(center.addr, imp.clone(), imp, 7).await?;
    // The station talks to the proxy, which exists only once the center does.
    let mut site_cfg = rig.cfg.clone();
    site_cfg.center.address = proxy.addr.to_string();
    rig.seal(b).await?;
    let report = push(&site_cfg, rig.outbox.clone(), push_options()).await?;
    let run = rig.check(&report, b.packets)?;
    let s = &proxy.stats;
    let up = (
        s.dropped[0].load(std::sync::atomic::Ordering::Relaxed),
        s.received[0].load(std::sync::atomic::Ordering::Relaxed),
    );
    drop(proxy);
    center.shutdown().await;
    Ok((run, up))
}

/// The lossy-link row: the same transfer through the proxy without and with `loss` (each
/// way), at `rtt` round trip and the bench's rate cap.
pub async fn lossy_link_goodput(b: &NetworkBench, loss: f64, rtt: Duration) -> anyhow::Result<LossyFigures> {
    let clean = Impairment {
        delay: rtt / 2,
        rate_bps: Some(b.rate_bps),
        ..Default::default()
    };
    let lossy = Impairment { loss, ..clean.clone() };
    let (clean_run, _) = through_proxy(b, clean).await?;
    let (lossy_run, dropped_up) = through_proxy(b, lossy).await?;
    Ok(LossyFigures {
        loss,
        rtt,
        rate_bps: b.rate_bps,
        clean: clean_run,
        lossy: lossy_run,
        dropped_up,
    })
}

/// Runs both rows and prints them as a table.
pub async fn run(b: &NetworkBench) -> anyhow::Result<()> {
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let mbit = |bps: f64| bps / 1e6;
    println!(
        "bench network: {} packets × {:.1} MB, {} in flight, link {:.0} Mbit/s",
        b.packets,
        b.packet_bytes as f64 / 1e6,
        b.parallel,
        mbit(b.rate_bps as f64)
    );
    println!("| figure | value | goal |");
    println!("|---|---|---|");
    match shaped_link_goodput(b).await? {
        Ok(f) => {
            println!(
                "| shaped link (netns + veth + tbf {:.0} Mbit/s, burst {} KiB, latency {} ms): goodput / link rate | {:.1} % ({:.2} Mbit/s, {:.1} MB in {:.2} s) | ≥ 95 % |",
                mbit(f.spec.rate_bps as f64),
                f.spec.burst_bytes / 1024,
                f.spec.latency.as_millis(),
                f.goodput_ratio() * 100.0,
                mbit(f.run.goodput_bps()),
                mb(f.run.bytes),
                f.run.elapsed.as_secs_f64()
            );
            println!(
                "| — link busy edge → center (frames sent by tbf / rate × time) | {:.1} % | |",
                f.link_utilization() * 100.0
            );
            println!(
                "| — envelope bytes per wire byte (headers, tags, retransmits) | {:.1} % ({:.1} MB in {} frames of {:.0} B on average, {} dropped by tbf) | |",
                f.wire_efficiency() * 100.0,
                mb(f.edge_qdisc.sent_bytes),
                f.edge_qdisc.sent_packets,
                f.edge_qdisc.sent_bytes as f64 / f.edge_qdisc.sent_packets.max(1) as f64,
                f.edge_qdisc.dropped
            );
        }
        Err(skip) => println!("| shaped link | {skip} | ≥ 95 % |"),
    }
    let (loss, rtt) = (0.02, Duration::from_millis(50));
    let f = lossy_link_goodput(b, loss, rtt).await?;
    println!(
        "| lossy link (proxy, {:.0} % loss each way, {} ms RTT, {:.0} Mbit/s): goodput vs the same path without loss | {:.1} % ({:.2} vs {:.2} Mbit/s; {} of {} datagrams dropped) | ≥ 80 % |",
        loss * 100.0,
        rtt.as_millis(),
        mbit(f.rate_bps as f64),
        f.ratio() * 100.0,
        mbit(f.lossy.goodput_bps()),
        mbit(f.clean.goodput_bps()),
        f.dropped_up.0,
        f.dropped_up.1
    );
    println!(
        "| — the path without loss: goodput / rate cap | {:.1} % | |",
        f.clean.goodput_bps() / f.rate_bps as f64 * 100.0
    );
    Ok(())
}
