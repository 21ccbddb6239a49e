//! `konvert bench mirror`: the federal node (ФИС) applies a country's exam day — every
//! region's processing results, cut into signed hash-chained batches by that region's own
//! sender with its own key — through the core's receiver and [`PgMirror::apply`] on a real
//! PostgreSQL 15, against a plain `COPY` of the same rows (the same payload bytes) into a
//! plain table of the same database, in the same run. Goal: applying at ≥ 50 % of `COPY`'s
//! rate.
//!
//! The regions' side (pushing rows, cutting, signing) is the regions' work, done before
//! the clock starts. The federal side is measured as its driver does it: the bytes handed
//! to [`Endpoint::handle`] (format, signer, signature, chain), then the applied batch
//! stored with [`PgMirror::apply`] (rows, signed batch, checkpoint and receipt in one
//! transaction), then the receipt taken for sending. Region by region, the batches apply
//! and then the same rows are copied, so both see the database grow alike.
//!
//! The typed tables the rows feed (the node's `rows_into`, `mirror_rows::apply_rows`) are
//! not included: the rows here are opaque payloads, and [`PgMirror::apply`] runs with a
//! `rows_into` that does nothing.
//!
//! PostgreSQL is a throwaway cluster started the way the tests start theirs
//! ([`TestCluster`]: `initdb` and `pg_ctl` in a temporary folder, `fsync=off`); both sides
//! run on it with the same settings, so the ratio compares the work, not the disk.

use std::time::{Duration, Instant};

use anyhow::Context;
use konvert_crypto::{SigningKey, VerifyingKey};
use konvert_mirror::{Endpoint, Event, Node, RecordKind, SenderLimits};
use konvert_records::test_cluster::TestCluster;
use konvert_records::{PgMirror, PgRecords};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use rand::{Rng, SeedableRng};

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
    /// The federal node's whole receive path: handle, apply, receipt.
    pub receive: Duration,
    /// Of which in [`PgMirror::apply`].
    pub store: Duration,
    /// The plain `COPY` of the same rows.
    pub copy: Duration,
}

impl MirrorFigures {
    /// Rows per second over `d`.
    pub fn rate(&self, d: Duration) -> f64 {
        self.rows as f64 / d.as_secs_f64().max(1e-9)
    }

    /// The receive path's rate as a share of `COPY`'s.
    pub fn ratio(&self) -> f64 {
        self.copy.as_secs_f64() / self.receive.as_secs_f64().max(1e-9)
    }
}

/// One result row of a participant, about `bytes` long: the fields a region's processing
/// sends up (participant code, subject, date, variant, the short answers as recognized,
/// the experts' marks, primary and test scores), as text with the digits random.
fn result_row(rng: &mut impl Rng, region: u8, participant: usize, bytes: usize) -> Vec<u8> {
    let answers: String = (0..40)
        .map(|i| format!("{}:{};", i + 1, rng.gen_range(0..100_000)))
        .collect();
    let marks: String = (0..12).map(|i| format!("{}:{};", i + 1, rng.gen_range(0..4))).collect();
    let mut row = format!(
        "r={region:02};p={:012};s={:02};d=2026-06-01;v={:04};a={answers}m={marks}ps={};ts={}",
        u64::from(region) * 1_000_000 + participant as u64,
        rng.gen_range(1..16),
        rng.gen_range(0..10_000),
        rng.gen_range(0..60),
        rng.gen_range(0..101),
    )
    .into_bytes();
    row.resize(bytes, b' ');
    row
}

/// The region's day, cut by its sender: the encoded signed batches, in order, and the
/// rows' payloads (for the `COPY`).
fn region_day(
    b: &MirrorBench,
    region: Node,
    key: &SigningKey,
    federal: VerifyingKey,
    rows: Vec<Vec<u8>>,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let limits = SenderLimits {
        // The whole day cut at once: the benchmark measures applying, not the window.
        window: usize::MAX,
        batch_rows: b.batch_rows,
        batch_bytes: b.batch_bytes,
        ..SenderLimits::default()
    };
    let mut ep = Endpoint::new(
        region,
        key,
        [(Node::Federal, federal)].into(),
        SCHEMA,
        SCHEMA..=SCHEMA,
        limits,
    )?;
    for row in rows {
        ep.push(Node::Federal, KIND, row)?;
    }
    ep.cut()?;
    Ok(std::iter::from_fn(|| ep.poll_transmit(0).map(|t| t.bytes)).collect())
}

/// Runs the benchmark on a throwaway cluster.
pub fn run(b: &MirrorBench) -> anyhow::Result<MirrorFigures> {
    anyhow::ensure!((1..=99).contains(&b.regions), "--regions is 1–99");
    anyhow::ensure!(b.participants > 0, "--participants is at least 1");
    anyhow::ensure!(
        (64..=konvert_mirror::MAX_ROW_PAYLOAD).contains(&b.row_bytes),
        "--row-bytes is 64–{}",
        konvert_mirror::MAX_ROW_PAYLOAD
    );
    let cluster = TestCluster::start().context(
        "PostgreSQL 15 is not installed (initdb and pg_ctl in /usr/lib/postgresql/15/bin or on PATH); install \
         Debian's postgresql-15",
    )?;
    let url = cluster.database("bench_mirror");
    let records = std::sync::Arc::new(PgRecords::connect(&url)?);
    let store = PgMirror::open(records, Node::Federal)?;
    let mut copy_client = postgres::Client::connect(&url, postgres::NoTls)?;
    // A plain table: the rows' own columns, no key, no index.
    copy_client.batch_execute("CREATE TABLE copied (sender smallint, kind smallint, seq bigint, payload bytea)")?;

    let federal = SigningKey::generate()?;
    let keys: Vec<(Node, SigningKey)> = (1..=b.regions)
        .map(|c| Ok((Node::Region(c), SigningKey::generate()?)))
        .collect::<anyhow::Result<_>>()?;
    let peers = keys.iter().map(|(n, k)| (*n, k.verifying_key())).collect();
    let mut fed = Endpoint::new(
        Node::Federal,
        &federal,
        peers,
        SCHEMA,
        SCHEMA..=SCHEMA,
        SenderLimits::default(),
    )?;

    let mut f = MirrorFigures::default();
    for (region, key) in &keys {
        let Node::Region(code) = *region else { continue };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(code));
        let rows: Vec<Vec<u8>> = (0..b.participants)
            .map(|p| result_row(&mut rng, code, p, b.row_bytes))
            .collect();
        let batches = region_day(b, *region, key, federal.verifying_key(), rows.clone())?;

        let started = Instant::now();
        for bytes in &batches {
            fed.handle(*region, bytes)?;
            while let Some(event) = fed.poll_event() {
                match event {
                    Event::Applied(applied) => {
                        let t = Instant::now();
                        store.apply(&applied, bytes, |_, _| Ok(()))?;
                        f.store += t.elapsed();
                    }
                    other => anyhow::bail!("{region}'s batch was not applied: {other:?}"),
                }
            }
            // The receipt, for the driver to send.
            while fed.poll_transmit(0).is_some() {}
        }
        f.receive += started.elapsed();
        f.batches += batches.len() as u64;

        let (sender, kind) = (i16::from(code), i16::from(KIND.code()));
        let started = Instant::now();
        let mut tx = copy_client.transaction()?;
        let sink = tx.copy_in("COPY copied (sender, kind, seq, payload) FROM STDIN (FORMAT binary)")?;
        let mut w = BinaryCopyInWriter::new(sink, &[Type::INT2, Type::INT2, Type::INT8, Type::BYTEA]);
        for (seq, row) in (1i64..).zip(&rows) {
            w.write(&[&sender, &kind, &seq, row])?;
        }
        w.finish()?;
        tx.commit()?;
        f.copy += started.elapsed();
        f.rows += rows.len() as u64;
        f.payload_bytes += rows.iter().map(|r| r.len() as u64).sum::<u64>();
    }

    // Every row applied once, and as many copied.
    let applied: i64 = copy_client
        .query_one("SELECT count(*) FROM mirror_applied", &[])?
        .get(0);
    let copied: i64 = copy_client.query_one("SELECT count(*) FROM copied", &[])?.get(0);
    anyhow::ensure!(
        applied as u64 == f.rows && copied as u64 == f.rows,
        "{applied} rows applied and {copied} copied of {}",
        f.rows
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
                "receive (verify + apply + receipt; the typed tables the rows feed not included) {:.0} rows/s, of \
                 which PgMirror::apply {:.1} s of {:.1} s; COPY {:.0} rows/s; {} rows, {} batches, {:.0} MB payload",
                f.rate(f.receive),
                f.store.as_secs_f64(),
                f.receive.as_secs_f64(),
                f.rate(f.copy),
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
