//! `konvert bench mirror-lag`: the lag of one region's closed exam on its way to the
//! federal node (issue 16, Benchmarks, second figure).
//!
//! A region's closed exam — `participants` result rows of `row_bytes` each — is written
//! to the region's outbox in one transaction with `NOTIFY konvert_mirror`
//! ([`OutboxWriter::push_many`]), as closing an exam does (`002:7451`). The region's
//! mirror process (its `run` loop, in this process) wakes on the notification, connects
//! to the federal node over QUIC with mutual TLS through the impairment proxy
//! ([`ImpairProxy`]) and sends its batches; the federal node applies them on PostgreSQL and
//! receipts them. The lag is from the commit to the moment the region has stored the
//! receipt for the last row. It is compared with T = x·m/v (domain.md §6): x participants,
//! m the payload bytes per participant's rows as sent, v the link rate.
//!
//! Two transfers in one run, each with fresh databases: a clean loopback (the proxy with
//! nothing impaired, so its byte counts are comparable) and the poor link (rate cap, loss
//! each way, a one-way delay).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use konvert_center::mirror::config::{FederalConfig, RegionMirrorConfig};
use konvert_center::mirror::node::{MirrorHooks, NoHooks, OutboxWriter};
use konvert_center::mirror::region::RegionMirror;
use konvert_center::mirror::{federal, region};
use konvert_exam::{DayPlan, ExamKind, SiteId};
use konvert_mirror::{Node, RecordKind, Refusal};
use konvert_records::mirror_rows::{ImageRef, MirrorRow, ProcessingResultRow, ResultPage};
use konvert_records::test_cluster::TestCluster;
use konvert_records::{ExamDay, PgRecords};
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::impair::{ImpairProxy, Impairment};

/// The region whose exam is closed (any enrolled code would do).
const REGION: u8 = 77;
/// The kind a closed exam sends up.
const KIND: RecordKind = RecordKind::ProcessingResults;

/// What to measure.
#[derive(Debug, Clone)]
pub struct MirrorLagBench {
    /// Participants in the closed exam (one result row each).
    pub participants: usize,
    /// Payload bytes of one participant's result row.
    pub row_bytes: usize,
    /// The poor link's rate, bits per second, each way.
    pub rate_bps: u64,
    /// The poor link's loss each way (0.02: 2 %).
    pub loss: f64,
    /// The poor link's one-way delay.
    pub delay: Duration,
    /// Seed of the rows and of the proxy's losses.
    pub seed: u64,
}

impl Default for MirrorLagBench {
    /// A region of the 16,000-participant profile (`002:8459`) over 2 Mbit/s with 2 % loss
    /// and 25 ms each way.
    fn default() -> Self {
        MirrorLagBench {
            participants: 16_000,
            row_bytes: 450,
            rate_bps: 2_000_000,
            loss: 0.02,
            delay: Duration::from_millis(25),
            seed: 16,
        }
    }
}

impl MirrorLagBench {
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.participants > 0, "--participants must be at least 1");
        anyhow::ensure!(
            self.row_bytes >= 160,
            "--row-bytes must be at least 160 (a result row with one page)"
        );
        anyhow::ensure!(self.rate_bps > 0, "the link rate must be above zero");
        Ok(())
    }
}

/// One transfer.
#[derive(Debug, Clone)]
pub struct LagRun {
    /// Writing the rows and committing (the outbox transaction).
    pub write: Duration,
    /// From the commit to the last receipt stored at the region.
    pub lag: Duration,
    /// UDP payload bytes the proxy forwarded region → federal node until the last receipt.
    pub bytes_up: u64,
    /// … federal node → region.
    pub bytes_down: u64,
    /// Datagrams the proxy dropped, each way.
    pub dropped: [u64; 2],
    /// Datagrams the proxy received, each way.
    pub received: [u64; 2],
    /// Rows the federal node applied.
    pub applied_rows: usize,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct LagFigures {
    /// What was measured.
    pub bench: MirrorLagBench,
    /// Payload bytes written to the outbox (x·m).
    pub payload_bytes: u64,
    /// Over the clean loopback.
    pub clean: LagRun,
    /// Over the poor link.
    pub poor: LagRun,
}

/// T = x·m/v: the time `payload_bytes` (x·m) take at `rate_bps` (v).
pub fn transfer_time(payload_bytes: u64, rate_bps: u64) -> Duration {
    Duration::from_secs_f64(payload_bytes as f64 * 8.0 / rate_bps.max(1) as f64)
}

/// `a / b` as a plain number (0 when `b` is zero).
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

impl LagFigures {
    /// T for the poor link's rate.
    pub fn t(&self) -> Duration {
        transfer_time(self.payload_bytes, self.bench.rate_bps)
    }

    /// Bytes up the link per payload byte.
    pub fn wire_per_payload(run: &LagRun, payload_bytes: u64) -> f64 {
        run.bytes_up as f64 / payload_bytes.max(1) as f64
    }

    /// Payload bits per second from the commit to the last receipt.
    pub fn goodput_bps(run: &LagRun, payload_bytes: u64) -> f64 {
        payload_bytes as f64 * 8.0 / run.lag.as_secs_f64().max(1e-9)
    }

    /// How busy the poor link was region → federal node from the commit to the last
    /// receipt: the time its bytes take at the rate, as a share of the lag.
    pub fn link_busy(&self) -> f64 {
        ratio(transfer_time(self.poor.bytes_up, self.bench.rate_bps), self.poor.lag)
    }

    /// The report, one figure a line.
    pub fn report(&self) -> String {
        let b = &self.bench;
        let t = self.t();
        let mut out = format!(
            "bench mirror-lag: one region's closed exam, {} participants × {} B result rows = {:.2} MB \
             in one outbox transaction with NOTIFY, region → federal node over mutual-TLS QUIC, \
             both on PostgreSQL\n",
            b.participants,
            b.row_bytes,
            self.payload_bytes as f64 / 1e6
        );
        out += &format!(
            "  T = x·m/v = {} × {} B × 8 / {:.1} Mbit/s = {:.1} s\n",
            b.participants,
            b.row_bytes,
            b.rate_bps as f64 / 1e6,
            t.as_secs_f64()
        );
        for (name, run) in [
            (
                format!(
                    "poor link ({:.1} Mbit/s, {:.0} % loss and {} ms each way)",
                    b.rate_bps as f64 / 1e6,
                    b.loss * 100.0,
                    b.delay.as_millis()
                ),
                &self.poor,
            ),
            ("clean loopback".to_owned(), &self.clean),
        ] {
            out += &format!(
                "  {name}: lag {:.2} s = {:.2} × T; goodput {:.2} Mbit/s; up {:.2} MB ({:.3} B per payload B), \
                 down {:.3} MB; dropped {}/{} up, {}/{} down; applied {} rows (write + commit {:.2} s)\n",
                run.lag.as_secs_f64(),
                ratio(run.lag, t),
                Self::goodput_bps(run, self.payload_bytes) / 1e6,
                run.bytes_up as f64 / 1e6,
                Self::wire_per_payload(run, self.payload_bytes),
                run.bytes_down as f64 / 1e6,
                run.dropped[0],
                run.received[0],
                run.dropped[1],
                run.received[1],
                run.applied_rows,
                run.write.as_secs_f64(),
            );
        }
        out += &format!(
            "  poor link busy {:.1} % of the lag (its bytes up at {:.1} Mbit/s take {:.2} s)\n",
            self.link_busy() * 100.0,
            b.rate_bps as f64 / 1e6,
            transfer_time(self.poor.bytes_up, b.rate_bps).as_secs_f64()
        );
        out += "  (lag: commit → the region's stored receipt for the last row; bytes: UDP payloads the proxy \
                forwarded, from before the commit to that receipt, handshake and retransmissions included)";
        out
    }
}

/// The participant's code in the plan and in their result row.
pub fn participant_code(participant: usize) -> String {
    format!("P{participant:08}")
}

/// The exam day of the closed exam.
pub(crate) fn exam_day() -> anyhow::Result<ExamDay> {
    Ok(ExamDay {
        date: "2026-06-01".parse()?,
        exam: ExamKind::Ege,
    })
}

/// One participant's result row as a region's `close` writes it (a [`ProcessingResultRow`]:
/// each page in its final state with its digest and image reference), seeded, with pages
/// added and the last page's name padded until the encoded row is exactly `len` bytes.
pub fn result_row(rng: &mut impl Rng, participant: usize, len: usize) -> anyhow::Result<Vec<u8>> {
    let mut row = ProcessingResultRow {
        day: exam_day()?,
        participant: participant_code(participant),
        site: SiteId::new("0101")?,
        pages: Vec::new(),
    };
    let page = |rng: &mut dyn rand::RngCore, n: usize| ResultPage {
        what: format!("answer sheet {n}"),
        state: "registered".into(),
        page_digest: {
            let mut d = [0u8; 32];
            rng.fill_bytes(&mut d);
            d
        },
        image: ImageRef({
            let mut d = [0u8; 32];
            rng.fill_bytes(&mut d);
            d
        }),
    };
    let encoded = |row: &ProcessingResultRow| MirrorRow::ProcessingResult(row.clone()).encode();
    loop {
        row.pages.push(page(rng, row.pages.len() + 1));
        let now = encoded(&row)?.len();
        if now > len {
            anyhow::bail!("a result row with one page is {now} bytes; ask for --row-bytes of at least that");
        }
        // Room for another whole page, else pad this one's name.
        if len - now < 100 {
            break;
        }
    }
    // A longer name may lengthen its length prefix by a byte: pad, then trim what overshot.
    for _ in 0..4 {
        let now = encoded(&row)?.len();
        let Some(last) = row.pages.last_mut() else { break };
        match now.cmp(&len) {
            std::cmp::Ordering::Equal => break,
            std::cmp::Ordering::Less => last.what.push_str(&"-".repeat(len - now)),
            std::cmp::Ordering::Greater => {
                let cut = last.what.len().saturating_sub(now - len);
                last.what.truncate(cut);
            }
        }
    }
    let bytes = encoded(&row)?;
    anyhow::ensure!(
        bytes.len() == len,
        "a result row came out at {} bytes, not {len}",
        bytes.len()
    );
    Ok(bytes)
}

/// The closed exam's rows, seeded.
pub fn closed_exam(participants: usize, row_bytes: usize, seed: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..participants)
        .map(|i| result_row(&mut rng, i + 1, row_bytes))
        .collect()
}

/// The exam day's plan of the region: every participant of the closed exam seated (15 to
/// a room), as `import-plan` stores it — the planning the federal node checks each result
/// row against (the consent allow-list, R18).
pub fn day_plan(participants: usize) -> anyhow::Result<DayPlan> {
    let mut text = format!(
        "date = \"2026-06-01\"\nexam = \"ege\"\nregion = \"{REGION:02}\"\n\
         [[sites]]\ncode = \"0101\"\nkind = \"exam-site\"\ntime_zone = \"Europe/Moscow\"\n\
         [[members]]\ntoken_id = \"m-0101-1\"\nsite = \"0101\"\n"
    );
    for room in 0..participants.div_ceil(15) {
        text += &format!("[[rooms]]\nsite = \"0101\"\ncode = \"{:04}\"\n", room + 1);
    }
    for i in 0..participants {
        text += &format!(
            "[[participants]]\ncode = \"{}\"\nsite = \"0101\"\nroom = \"{:04}\"\nseat = \"{}\"\nkit = {}\n",
            participant_code(i + 1),
            i / 15 + 1,
            i % 15 + 1,
            100_000 + i
        );
    }
    Ok(DayPlan::from_toml(&text)?.0)
}

/// What the region's driver reports: its exchanges, and the receipt for the row it waits for.
struct RegionWatch {
    /// The last row of the closed exam (`u64::MAX` until written).
    target: AtomicU64,
    /// When the receipt for `target` was stored.
    receipted: watch::Sender<Option<Instant>>,
    /// Exchanges done.
    exchanges: watch::Sender<usize>,
    /// Channels the federal node stopped by refusing a batch for good.
    stalls: AtomicUsize,
}

impl MirrorHooks for RegionWatch {
    fn acked(&self, peer: Node, kind: RecordKind, through: u64) {
        if peer == Node::Federal && kind == KIND && through >= self.target.load(Ordering::SeqCst) {
            let now = Instant::now();
            self.receipted.send_if_modified(|at| {
                let first = at.is_none();
                if first {
                    *at = Some(now);
                }
                first
            });
        }
    }
    fn exchanged(&self, _peer: Node, _ok: bool) {
        self.exchanges.send_modify(|n| *n += 1);
    }
    fn stalled(&self, _peer: Node, _kind: RecordKind, _reason: &Refusal) {
        self.stalls.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs both transfers on a throwaway PostgreSQL cluster and returns the figures.
pub async fn run(b: &MirrorLagBench) -> anyhow::Result<LagFigures> {
    b.check()?;
    // A throwaway cluster: the benchmark creates and drops databases at will.
    let cluster = tokio::task::block_in_place(TestCluster::start)
        .context("PostgreSQL 15 is not installed (no initdb and pg_ctl); install Debian's postgresql-15")?;
    run_on(&cluster, b).await
}

/// Runs both transfers with databases made in `server`.
pub async fn run_on(server: &TestCluster, b: &MirrorLagBench) -> anyhow::Result<LagFigures> {
    b.check()?;
    let rows = closed_exam(b.participants, b.row_bytes, b.seed)?;
    let payload_bytes: u64 = rows.iter().map(|r| r.len() as u64).sum();
    let clean = transfer(
        server,
        "clean",
        rows.clone(),
        Impairment::default(),
        Impairment::default(),
        b,
    )
    .await?;
    let poor_link = Impairment {
        loss: b.loss,
        delay: b.delay,
        rate_bps: Some(b.rate_bps),
        ..Default::default()
    };
    let poor = transfer(server, "poor", rows, poor_link.clone(), poor_link, b).await?;
    Ok(LagFigures {
        bench: b.clone(),
        payload_bytes,
        clean,
        poor,
    })
}

/// A federal node and region [`REGION`], each with a fresh database, the region reaching
/// the federal node through a proxy shaped `up`/`down`; the closed exam's `rows` written
/// and timed to the last receipt.
async fn transfer(
    server: &TestCluster,
    tag: &str,
    rows: Vec<Vec<u8>>,
    up: Impairment,
    down: Impairment,
    b: &MirrorLagBench,
) -> anyhow::Result<LagRun> {
    let root = tempfile::Builder::new().prefix("konvert-bench-mirror-").tempdir()?;
    let (fed_url, region_url) = tokio::task::block_in_place(|| {
        (
            server.database(&format!("bench_lag_{tag}_fed")),
            server.database(&format!("bench_lag_{tag}_r{REGION}")),
        )
    });
    let fed_path = federal::init(
        &root.path().join("fed"),
        "federal.konvert",
        "127.0.0.1:0".parse()?,
        &fed_url,
    )?;
    let region_dir = root.path().join("region");
    let region_path = region::init(&region_dir, REGION, &region_url, "127.0.0.1:9", "federal.konvert")?;
    federal::enroll_region(
        &fed_path,
        REGION,
        &region_dir.join("mirror.pub"),
        &region_dir.join("pki"),
        false,
    )?;
    let fed_cfg = FederalConfig::load(&fed_path)?;
    let fed = federal::serve(&fed_cfg, federal::setup(&fed_cfg, Arc::new(NoHooks))?).await?;
    let proxy = ImpairProxy::start(fed.addr, up, down, b.seed).await?;

    let mut cfg = RegionMirrorConfig::load(&region_path)?;
    cfg.federal_address = proxy.addr.to_string();
    // Only the notification starts the exchange that is timed: the default schedule has
    // no exam period, so the next scheduled exchange is a week away.
    let schedule = cfg.schedule(&region_path)?;
    // Generous: the figure is the lag, not whether it fits a timeout.
    let t = transfer_time(rows.iter().map(|r| r.len() as u64).sum(), b.rate_bps);
    cfg.sync_timeout_secs = 120 + 20 * t.as_secs();
    let (receipted, mut receipt) = watch::channel(None);
    let (exchanges, mut exchanged) = watch::channel(0usize);
    let hooks = Arc::new(RegionWatch {
        target: AtomicU64::new(u64::MAX),
        receipted,
        exchanges,
        stalls: AtomicUsize::new(0),
    });
    let setup = region::setup(&cfg, hooks.clone())?;
    let writer = tokio::task::block_in_place(|| OutboxWriter::open(setup.clone()))?;
    // The plan first, as a region imports it days before: its planning rows go up in the
    // run loop's first exchange, which ends once they are receipted.
    let plan = day_plan(rows.len())?;
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let records = PgRecords::connect(&region_url)?;
        konvert_records::mirror_outbox::import_plan(&records, &plan)?;
        Ok(())
    })?;
    let mirror = Arc::new(RegionMirror::start(cfg.clone(), setup).await?);
    let running = {
        let mirror = mirror.clone();
        tokio::spawn(async move { mirror.run(&schedule).await })
    };
    // The run loop's first exchange (nothing to send) ends after a quiet moment; by then it
    // listens for the notification.
    tokio::time::timeout(Duration::from_secs(60), exchanged.wait_for(|n| *n >= 1))
        .await
        .context("the region's first exchange with the federal node did not end within 60 s")?
        .context("the region's mirror stopped")?;

    // A fresh channel numbers the rows from 1, so the last one is known before the commit.
    let participants = rows.len();
    hooks.target.store(participants as u64, Ordering::SeqCst);
    let before = snapshot(&proxy);
    let written = Instant::now();
    let numbered = tokio::task::block_in_place(|| writer.push_many(Node::Federal, KIND, rows))?;
    let committed = Instant::now();
    anyhow::ensure!(
        numbered == (1, participants as u64),
        "the outbox numbered the rows {numbered:?}, not 1..={participants}: the region's database was not fresh"
    );
    let wait = Duration::from_secs(cfg.sync_timeout_secs);
    let at: Option<Instant> = *tokio::time::timeout(wait, receipt.wait_for(Option::is_some))
        .await
        .with_context(|| {
            format!(
                "{tag}: the last receipt did not come within {} s ({} channels stalled by a refusal)",
                wait.as_secs(),
                hooks.stalls.load(Ordering::SeqCst)
            )
        })?
        .context("the region's mirror stopped")?;
    let at = at.unwrap_or(committed);
    let after = snapshot(&proxy);
    running.abort();
    let applied_rows = tokio::task::block_in_place(|| -> anyhow::Result<usize> {
        let records = Arc::new(PgRecords::connect(&fed_url)?);
        let store = konvert_records::PgMirror::open(records, Node::Federal)?;
        Ok(store.applied_rows(Node::Region(REGION), KIND)?.len())
    })?;
    fed.stop().await;
    drop(mirror);
    // The nodes' notification listeners notice they are gone within a second; let them, so
    // none of them is left talking to a database that is dropped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    anyhow::ensure!(
        applied_rows == participants,
        "{tag}: the federal node applied {applied_rows} of {participants} rows"
    );
    Ok(LagRun {
        write: committed - written,
        lag: at.saturating_duration_since(committed),
        bytes_up: after.bytes[0] - before.bytes[0],
        bytes_down: after.bytes[1] - before.bytes[1],
        dropped: [
            after.dropped[0] - before.dropped[0],
            after.dropped[1] - before.dropped[1],
        ],
        received: [
            after.received[0] - before.received[0],
            after.received[1] - before.received[1],
        ],
        applied_rows,
    })
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    bytes: [u64; 2],
    dropped: [u64; 2],
    received: [u64; 2],
}

fn snapshot(proxy: &ImpairProxy) -> Snapshot {
    let s = &proxy.stats;
    let two = |a: &[AtomicU64; 2]| [a[0].load(Ordering::Relaxed), a[1].load(Ordering::Relaxed)];
    Snapshot {
        bytes: two(&s.bytes),
        dropped: two(&s.dropped),
        received: two(&s.received),
    }
}

#[cfg(test)]
#[path = "bench_mirror_lag_tests.rs"]
mod tests;
