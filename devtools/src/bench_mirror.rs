//! `konvert bench mirror`: the federal node (ФИС) applies a country's exam day — every
//! region's processing results, cut into signed hash-chained batches by that region's own
//! sender with its own key — through the core's receiver and [`PgMirror::apply_many`] on a real
//! PostgreSQL 15, against a plain `COPY` of the same rows (the same payload bytes) into a
//! plain table of the same database, in the same run. Goal: applying at ≥ 50 % of `COPY`'s
//! rate.
//!
//! The rows are what a region's `loader close` writes: one [`MirrorRow::ProcessingResult`]
//! per participant (pages with their final state, digests and image references). The
//! regions' side (pushing rows, cutting, signing) and each region's planning (applied the
//! day before) are done before the clock starts. The federal side is measured as its
//! driver does it by default, and once more without the typed tables:
//! - **as the node runs**: the bytes handed to [`Endpoint::handle`] (format, signer,
//!   signature, chain, and the row check: each row decodes and names a participant its
//!   region planned, R18), then [`PgMirror::apply_many`] with the typed tables
//!   ([`mirror_rows::apply_batches`]: signed batch, checkpoint, receipt and `mirror_records`
//!   in one transaction), then the receipt taken for sending. This is the goal's figure.
//! - **batches only**: the same without the row check and the typed tables, in a second
//!   database: what the exchange itself costs.
//!
//! Region by region, the batches apply and then the same rows are copied, so both see the
//! database grow alike. PostgreSQL is a throwaway cluster started the way the tests start
//! theirs ([`TestCluster`]: `initdb` and `pg_ctl` in a temporary folder, `fsync=off`); all
//! sides run on it with the same settings, so the ratio compares the work, not the disk.

use std::time::{Duration, Instant};

use anyhow::Context;
use konvert_crypto::{SigningKey, VerifyingKey};
use konvert_exam::{RoomId, SiteId};
use konvert_mirror::{Endpoint, Event, Node, RecordKind, SenderLimits};
use konvert_records::mirror_rows::{self, MirrorRow, PlanningRow};
use konvert_records::test_cluster::TestCluster;
use konvert_records::{ExamDay, PgMirror, PgRecords};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use rand::SeedableRng;

use crate::bench_mirror_lag::{exam_day, participant_code, result_row};
use crate::bench_table::{Row, Table};

/// Regions of the Russian Federation that hold the exams.
pub const COUNTRY_REGIONS: u8 = 85;
/// Participants of a large region's exam day (002:8211, 8459).
pub const REGION_PARTICIPANTS: usize = 16_000;
/// The goal: applying at this share of a plain `COPY`'s rate, or more.
const GOAL: f64 = 0.5;
/// The kind a closed exam sends up.
const KIND: RecordKind = RecordKind::ProcessingResults;
/// The records' schema version the rows are written in.
const SCHEMA: u16 = 1;
/// The smallest result row: one page.
const MIN_ROW_BYTES: usize = 160;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct MirrorBench {
    /// Regions sending their day (1–99).
    pub regions: u8,
    /// Results per region.
    pub participants: usize,
    /// Bytes of one result row.
    pub row_bytes: usize,
    /// Most rows in a region's batch (the sender's [`SenderLimits::batch_rows`]).
    pub batch_rows: usize,
    /// Most payload bytes in a region's batch ([`SenderLimits::batch_bytes`]).
    pub batch_bytes: usize,
}

impl Default for MirrorBench {
    fn default() -> Self {
        MirrorBench {
            regions: COUNTRY_REGIONS,
            participants: REGION_PARTICIPANTS,
            row_bytes: 320,
            batch_rows: SenderLimits::default().batch_rows,
            batch_bytes: SenderLimits::default().batch_bytes,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
pub struct MirrorFigures {
    /// Rows applied (and copied).
    pub rows: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Batches applied.
    pub batches: u64,
    /// As the node runs: handle (with the row check), apply with the typed tables, receipt.
    pub receive: Duration,
    /// Of which in [`PgMirror::apply_many`].
    pub store: Duration,
    /// Batches only: handle, apply, receipt, no row check and no typed tables.
    pub batches_only: Duration,
    /// A plain `COPY` of the same rows, typed as the node keeps them, into a table like
    /// the node's (`mirror_records`: same columns, key and index): the goal's baseline.
    pub copy: Duration,
    /// A plain `COPY` of the same payloads into a table with no key: the batches-only
    /// baseline.
    pub copy_bare: Duration,
}

impl MirrorFigures {
    /// Rows per second over `d`.
    pub fn rate(&self, d: Duration) -> f64 {
        self.rows as f64 / d.as_secs_f64().max(1e-9)
    }

    /// `d`'s rate as a share of `COPY`'s.
    pub fn share_of_copy(&self, d: Duration) -> f64 {
        self.copy.as_secs_f64() / d.as_secs_f64().max(1e-9)
    }

    /// The node's receive path's rate as a share of `COPY`'s into a table like the node's:
    /// the goal's figure.
    pub fn ratio(&self) -> f64 {
        self.share_of_copy(self.receive)
    }

    /// Batches only as a share of a bare `COPY` of the payloads.
    pub fn batches_ratio(&self) -> f64 {
        self.copy_bare.as_secs_f64() / self.batches_only.as_secs_f64().max(1e-9)
    }
}

/// The day's seat of participant `i` (1-based) of a region, 15 to a room, as `import-plan`
/// sends it up.
fn seat_row(day: ExamDay, i: usize) -> anyhow::Result<Vec<u8>> {
    Ok(MirrorRow::Planning(PlanningRow::Seat {
        day,
        participant: participant_code(i),
        site: SiteId::new("0101")?,
        room: RoomId::new(&format!("{:04}", (i - 1) / 15 + 1))?,
        seat: format!("{}", (i - 1) % 15 + 1),
        kit: 100_000 + i as u64,
    })
    .encode()?)
}

/// A region's node: its key and its sender towards the federal node, cutting the whole day
/// at once (the benchmark measures applying, not the window).
fn region_endpoint(b: &MirrorBench, region: Node, key: &SigningKey, federal: VerifyingKey) -> anyhow::Result<Endpoint> {
    let limits = SenderLimits {
        window: usize::MAX,
        batch_rows: b.batch_rows,
        batch_bytes: b.batch_bytes,
        ..SenderLimits::default()
    };
    Ok(Endpoint::new(
        region,
        key,
        [(Node::Federal, federal)].into(),
        SCHEMA,
        SCHEMA..=SCHEMA,
        limits,
    )?)
}

/// `rows` of `kind` pushed and cut by `ep`: the encoded signed batches, in order.
fn cut(ep: &mut Endpoint, kind: RecordKind, rows: Vec<Vec<u8>>) -> anyhow::Result<Vec<Vec<u8>>> {
    for row in rows {
        ep.push(Node::Federal, kind, row)?;
    }
    ep.cut()?;
    Ok(std::iter::from_fn(|| ep.poll_transmit(0).map(|t| t.bytes)).collect())
}

/// A federal node measured on its own database.
struct Federal {
    endpoint: Endpoint,
    store: PgMirror,
    /// Whether rows are checked and go into the typed tables, as the node runs.
    typed: bool,
}

impl Federal {
    fn open(url: &str, key: &SigningKey, peers: &[(Node, VerifyingKey)], typed: bool) -> anyhow::Result<Federal> {
        let records = std::sync::Arc::new(PgRecords::connect(url)?);
        let store = PgMirror::open(records, Node::Federal)?;
        let mut endpoint = Endpoint::new(
            Node::Federal,
            key,
            peers.iter().copied().collect(),
            SCHEMA,
            SCHEMA..=SCHEMA,
            SenderLimits::default(),
        )?;
        if typed {
            endpoint
                .receiver_mut()
                .set_row_check(mirror_rows::row_check(store.shared_records(), Node::Federal));
        }
        Ok(Federal { endpoint, store, typed })
    }

    /// Receives `batches` from `region` as the driver does; returns the time in
    /// [`PgMirror::apply_many`]. The driver takes every message queued on the link into
    /// one step and stores their batches in one transaction; a region has at most its
    /// window ([`SenderLimits::window`], by default) of batches unreceipted per channel,
    /// so that is the most one step of one region's results can hold.
    fn receive(&mut self, region: Node, batches: &[Vec<u8>]) -> anyhow::Result<Duration> {
        let mut store = Duration::ZERO;
        for step in batches.chunks(SenderLimits::default().window.max(1)) {
            let mut applied = Vec::with_capacity(step.len());
            for bytes in step {
                self.endpoint.handle(region, bytes)?;
                while let Some(event) = self.endpoint.poll_event() {
                    match event {
                        Event::Applied(a) => applied.push(a),
                        other => anyhow::bail!("{region}'s batch was not applied: {other:?}"),
                    }
                }
            }
            let batches: Vec<_> = applied.iter().map(|a| (a, a.signed.as_slice())).collect();
            let t = Instant::now();
            let (fresh, ()) = if self.typed {
                self.store
                    .apply_many(&batches, |tx, b| mirror_rows::apply_batches(tx, Node::Federal, b))?
            } else {
                self.store.apply_many(&batches, |_, _| Ok(()))?
            };
            store += t.elapsed();
            anyhow::ensure!(fresh.iter().all(|f| *f), "{region}'s batches were applied before");
            // The receipts, for the driver to send.
            while self.endpoint.poll_transmit(0).is_some() {}
        }
        Ok(store)
    }
}

fn count(c: &mut postgres::Client, what: &str) -> anyhow::Result<u64> {
    let n: i64 = c.query_one(&format!("SELECT count(*) FROM {what}"), &[])?.get(0);
    Ok(n as u64)
}

/// Runs the benchmark on a throwaway cluster.
pub fn run(b: &MirrorBench) -> anyhow::Result<MirrorFigures> {
    anyhow::ensure!((1..=99).contains(&b.regions), "--regions is 1–99");
    anyhow::ensure!(b.participants > 0, "--participants is at least 1");
    anyhow::ensure!(
        (MIN_ROW_BYTES..=konvert_mirror::MAX_ROW_PAYLOAD).contains(&b.row_bytes),
        "--row-bytes is {MIN_ROW_BYTES}–{} (a result row with one page is about {MIN_ROW_BYTES} bytes)",
        konvert_mirror::MAX_ROW_PAYLOAD
    );
    let cluster = TestCluster::start().context(
        "PostgreSQL 15 is not installed (initdb and pg_ctl in /usr/lib/postgresql/15/bin or on PATH); install \
         Debian's postgresql-15",
    )?;
    let federal = SigningKey::generate()?;
    let keys: Vec<(Node, SigningKey)> = (1..=b.regions)
        .map(|c| Ok((Node::Region(c), SigningKey::generate()?)))
        .collect::<anyhow::Result<_>>()?;
    let peers: Vec<(Node, VerifyingKey)> = keys.iter().map(|(n, k)| (*n, k.verifying_key())).collect();
    let (node_url, plain_url) = (
        cluster.database("bench_mirror"),
        cluster.database("bench_mirror_batches"),
    );
    let mut node = Federal::open(&node_url, &federal, &peers, true)?;
    let mut plain = Federal::open(&plain_url, &federal, &peers, false)?;
    let mut node_client = postgres::Client::connect(&node_url, postgres::NoTls)?;
    let mut plain_client = postgres::Client::connect(&plain_url, postgres::NoTls)?;
    // Beside the node's typed rows, a table like theirs; beside the batches, a bare one.
    node_client.batch_execute(
        "CREATE TABLE copied (LIKE mirror_records INCLUDING ALL); ALTER TABLE copied ADD COLUMN value bytea NOT NULL",
    )?;
    plain_client.batch_execute("CREATE TABLE copied (sender smallint, kind smallint, seq bigint, payload bytea)")?;
    let day = exam_day()?;

    let mut f = MirrorFigures::default();
    for (region, key) in &keys {
        let Node::Region(code) = *region else { continue };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(code));
        let rows: Vec<Vec<u8>> = (1..=b.participants)
            .map(|p| result_row(&mut rng, p, b.row_bytes))
            .collect::<anyhow::Result<_>>()?;
        let seats: Vec<Vec<u8>> = (1..=b.participants)
            .map(|p| seat_row(day, p))
            .collect::<anyhow::Result<_>>()?;
        let mut ep = region_endpoint(b, *region, key, federal.verifying_key())?;
        let planning = cut(&mut ep, RecordKind::Planning, seats)?;
        let results = cut(&mut ep, KIND, rows.clone())?;
        // The planning came the day before.
        node.receive(*region, &planning)?;
        // COPY is handed its columns ready: decoding is the node's work, not COPY's.
        let typed: Vec<(i64, String, String, String)> = (1i64..)
            .zip(&rows)
            .map(|(seq, row)| {
                let decoded = MirrorRow::decode(KIND, row).map_err(|e| anyhow::anyhow!("{e}"))?;
                let day = decoded.day().context("a result row has its day")?;
                let who = decoded.participant().context("a result row names its participant")?;
                Ok((seq, day.date.to_string(), day.exam.code().to_owned(), who.to_owned()))
            })
            .collect::<anyhow::Result<_>>()?;
        let (sender, kind) = (i16::from(code), i16::from(KIND.code()));

        let started = Instant::now();
        f.store += node.receive(*region, &results)?;
        f.receive += started.elapsed();
        f.batches += results.len() as u64;

        let started = Instant::now();
        let mut tx = node_client.transaction()?;
        let sink =
            tx.copy_in("COPY copied (region, kind, seq, date, exam, participant, value) FROM STDIN (FORMAT binary)")?;
        let types = [
            Type::INT2,
            Type::INT2,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
        ];
        let mut w = BinaryCopyInWriter::new(sink, &types);
        for ((seq, date, exam, who), row) in typed.iter().zip(&rows) {
            w.write(&[&sender, &kind, seq, date, exam, who, row])?;
        }
        w.finish()?;
        tx.commit()?;
        f.copy += started.elapsed();

        let started = Instant::now();
        plain.receive(*region, &results)?;
        f.batches_only += started.elapsed();

        let started = Instant::now();
        let mut tx = plain_client.transaction()?;
        let sink = tx.copy_in("COPY copied (sender, kind, seq, payload) FROM STDIN (FORMAT binary)")?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::INT2, Type::INT2, Type::INT8, Type::BYTEA]);
        for (seq, row) in (1i64..).zip(&rows) {
            w.write(&[&sender, &kind, &seq, row])?;
        }
        w.finish()?;
        tx.commit()?;
        f.copy_bare += started.elapsed();
        f.rows += rows.len() as u64;
        f.payload_bytes += rows.iter().map(|r| r.len() as u64).sum::<u64>();
    }

    // Every result applied once and in the typed tables, as many without them, and as
    // many copied.
    let results = format!("mirror_applied WHERE kind = {}", KIND.code());
    let counts = [
        count(&mut node_client, &results)?,
        count(
            &mut node_client,
            &format!("mirror_records WHERE kind = {}", KIND.code()),
        )?,
        count(&mut node_client, "copied")?,
        count(&mut plain_client, &results)?,
        count(&mut plain_client, "copied")?,
    ];
    anyhow::ensure!(
        counts.iter().all(|n| *n == f.rows),
        "of {} rows: {} applied, {} in the typed tables, {} copied beside them, {} applied without them, {} \
         copied bare",
        f.rows,
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    Ok(f)
}

/// The benchmark's row of the table, from a run's figures (or its error).
pub fn rows(b: &MirrorBench, figures: &anyhow::Result<MirrorFigures>) -> Table {
    let measure = format!(
        "ФИС applies {} region(s) × {} results ({} B each; batches ≤ {} rows, ≤ {} KiB) vs plain COPY",
        b.regions,
        b.participants,
        b.row_bytes,
        b.batch_rows,
        b.batch_bytes / 1024
    );
    let goal = format!("≥ {:.0} % of COPY", GOAL * 100.0);
    let mut t = Table::new();
    let result = match figures {
        Ok(f) => Ok(vec![Row::measured(
            measure.clone(),
            goal.clone(),
            format!("{:.0} %", f.ratio() * 100.0),
            Some(f.ratio() >= GOAL),
            format!(
                "as the node runs (verify, row check, batch + typed rows, receipt) {:.0} rows/s (PgMirror::apply_many {:.1} s of \
                 {:.1} s) vs COPY of the same typed rows into a table like mirror_records (same key and index) {:.0} \
                 rows/s; batches only (verify, batch, receipt) {:.0} rows/s = {:.0} % of a bare COPY of the payloads \
                 ({:.0} rows/s); as the node runs = {:.0} % of the bare COPY; {} rows, {} batches, {:.0} MB payload",
                f.rate(f.receive),
                f.store.as_secs_f64(),
                f.receive.as_secs_f64(),
                f.rate(f.copy),
                f.rate(f.batches_only),
                f.batches_ratio() * 100.0,
                f.rate(f.copy_bare),
                f.copy_bare.as_secs_f64() / f.receive.as_secs_f64().max(1e-9) * 100.0,
                f.rows,
                f.batches,
                f.payload_bytes as f64 / 1e6
            ),
        )]),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    t.add(&[(&measure, &goal)], result);
    t
}

#[cfg(test)]
#[path = "bench_mirror_tests.rs"]
mod tests;
