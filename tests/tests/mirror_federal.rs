//! The records' mirror between regions (РИС) and the federal node (ФИС) as processes:
//! real QUIC over loopback with mutual TLS from the federal CA, each node's state in its
//! own PostgreSQL database. Three regions and the federal node converge, each region
//! seeing only its own rows; bad certificates and a connection whose TLS identity and
//! batch signer disagree are refused; a federal node and a region killed with SIGKILL in
//! the middle of a stream of batches lose nothing and apply nothing twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_center::mirror::config::{FederalConfig, LimitsConfig, RegionMirrorConfig};
use konvert_center::mirror::node::{MirrorHooks, NoHooks, OutboxWriter};
use konvert_center::mirror::region::{Exchanged, RegionMirror};
use konvert_center::mirror::{federal, region};
use konvert_exam::{DayPlan, ExamKind, SiteId};
use konvert_mirror::{Node, RecordKind, Refusal};
use konvert_records::mirror_rows::{
    AppealDecisionRow, AppealKind, AppealOutcome, CentralizedCheckingRow, MirrorRow, ProcessingResultRow,
    RecomputedScoreRow,
};
use konvert_records::test_cluster::TestCluster;
use konvert_records::{ExamDay, MirrorDirection, PgMirror, PgRecords};
use rand::{Rng, SeedableRng};

const CENTER: &str = env!("CARGO_BIN_EXE_readme-konvert-center");
const FED: Node = Node::Federal;

/// Counts what the federal node's driver reports.
#[derive(Default)]
struct Counts {
    closed: AtomicUsize,
    refused: AtomicUsize,
    exchanged: AtomicUsize,
}

impl MirrorHooks for Counts {
    fn closed(&self, _peer: Node, _why: &str) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
    fn refused(&self, _peer: Node, _kind: RecordKind, _reason: &Refusal) {
        self.refused.fetch_add(1, Ordering::SeqCst);
    }
    fn exchanged(&self, _peer: Node, _ok: bool) {
        self.exchanged.fetch_add(1, Ordering::SeqCst);
    }
}

/// A federal node and regions, initialized and enrolled as the commands do, each with a
/// database of its own.
struct Net {
    root: tempfile::TempDir,
    fed_path: PathBuf,
    fed: FederalConfig,
    regions: Vec<RegionMirrorConfig>,
}

impl Net {
    fn build(cluster: &TestCluster, tag: &str, codes: &[u8], listen: SocketAddr, limits: LimitsConfig) -> Net {
        let root = tempfile::tempdir().unwrap();
        let fed_url = cluster.database(&format!("{tag}_fed"));
        let fed_path = federal::init(&root.path().join("fed"), "federal.konvert", listen, &fed_url).unwrap();
        let mut raw = FederalConfig::read(&fed_path).unwrap();
        raw.limits = limits.clone();
        raw.save(&fed_path).unwrap();
        let mut paths = Vec::new();
        for &code in codes {
            let dir = root.path().join(format!("r{code}"));
            let url = cluster.database(&format!("{tag}_r{code}"));
            let path = region::init(&dir, code, &url, "127.0.0.1:9", "federal.konvert").unwrap();
            federal::enroll_region(&fed_path, code, &dir.join("mirror.pub"), &dir.join("pki"), false).unwrap();
            paths.push(path);
        }
        let fed = FederalConfig::load(&fed_path).unwrap();
        assert_eq!(fed.regions.len(), codes.len());
        let regions = paths
            .iter()
            .map(|p| {
                let mut cfg = RegionMirrorConfig::load(p).unwrap();
                cfg.limits = limits.clone();
                cfg
            })
            .collect();
        Net {
            root,
            fed_path,
            fed,
            regions,
        }
    }

    fn region(&self, code: u8) -> RegionMirrorConfig {
        self.regions.iter().find(|r| r.region == code).unwrap().clone()
    }

    fn region_at(&self, code: u8, addr: SocketAddr) -> RegionMirrorConfig {
        let mut cfg = self.region(code);
        cfg.federal_address = addr.to_string();
        cfg
    }

    fn fed_writer(&self) -> OutboxWriter {
        OutboxWriter::open(federal::setup(&self.fed, Arc::new(NoHooks)).unwrap()).unwrap()
    }

    fn region_writer(&self, code: u8) -> OutboxWriter {
        OutboxWriter::open(region::setup(&self.region(code), Arc::new(NoHooks)).unwrap()).unwrap()
    }
}

fn store(url: &str, node: Node) -> PgMirror {
    PgMirror::open(Arc::new(PgRecords::connect(url).unwrap()), node).unwrap()
}

/// Participants each region plans: every row about a participant names one of them, as
/// the receivers' consent check (R18) demands.
const PLANNED: usize = 40;

fn participant(code: u8, i: usize) -> String {
    format!("R{code:02}-P{:04}", i % PLANNED)
}

fn exam_day() -> ExamDay {
    ExamDay {
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
    }
}

/// Imports region `code`'s plan of [`PLANNED`] participants into its records: the
/// planning rows go into its outbox with it (the allow-list both sides check rows against).
fn plan(net: &Net, code: u8) {
    drop(net.region_writer(code)); // claims the records for the region's mirror node
    let records = PgRecords::connect(&net.region(code).records_url).unwrap();
    let mut text = format!(
        "date = \"2026-06-01\"\nexam = \"ege\"\nregion = \"{code:02}\"\n\
         [[sites]]\ncode = \"0101\"\nkind = \"exam-site\"\ntime_zone = \"Europe/Moscow\"\n\
         [[rooms]]\nsite = \"0101\"\ncode = \"0001\"\n"
    );
    for i in 0..PLANNED {
        text += &format!(
            "[[participants]]\ncode = \"{}\"\nsite = \"0101\"\nroom = \"0001\"\nseat = \"{i}\"\nkit = {}\n",
            participant(code, i),
            1000 + i
        );
    }
    text += "[[members]]\ntoken_id = \"m-0101-1\"\nsite = \"0101\"\n";
    let (day_plan, _) = DayPlan::from_toml(&text).unwrap();
    let sent = konvert_records::mirror_outbox::import_plan(&records, &day_plan).unwrap();
    assert_eq!(sent.rows as usize, PLANNED + 2, "planning rows of region {code}");
}

/// [`plan`], then one exchange that takes the planning up: the rows about its participants
/// that follow are checked against it at the federal node.
async fn plan_up(net: &Net, code: u8, addr: SocketAddr) {
    plan(net, code);
    assert_eq!(
        sync(net.region_at(code, addr)).await,
        Exchanged::Done,
        "planning of region {code}"
    );
}

/// Rows of `kind` about region `code`'s participants `from..to`, as the real owners write
/// them (the nodes decode and check every row).
fn rows(kind: RecordKind, code: u8, from: usize, to: usize) -> Vec<Vec<u8>> {
    let day = exam_day();
    (from..to)
        .map(|i| {
            let participant = participant(code, i);
            let row = match kind {
                RecordKind::ProcessingResults => MirrorRow::ProcessingResult(ProcessingResultRow {
                    day,
                    participant,
                    site: SiteId::new("0101").unwrap(),
                    pages: Vec::new(),
                }),
                RecordKind::AppealDecisions => MirrorRow::AppealDecision(AppealDecisionRow {
                    day,
                    participant,
                    kind: AppealKind::Scores,
                    outcome: AppealOutcome::Rejected,
                    documents: Vec::new(),
                    decided_at_unix_ms: i as u64,
                }),
                RecordKind::CentralizedChecking => MirrorRow::CentralizedChecking(CentralizedCheckingRow {
                    day,
                    participant,
                    primary_score: (i % 30) as u32,
                    sent_for_recheck: i % 7 == 0,
                }),
                RecordKind::RecomputedScores => MirrorRow::RecomputedScore(RecomputedScoreRow {
                    day,
                    participant,
                    primary_score: (i % 30) as u32 + 1,
                    scores: Vec::new(),
                }),
                other => panic!("no test rows of {other}"),
            };
            row.encode().unwrap()
        })
        .collect()
}

fn numbered(payloads: &[Vec<u8>]) -> Vec<(u64, Vec<u8>)> {
    payloads.iter().cloned().zip(1u64..).map(|(p, s)| (s, p)).collect()
}

fn limits(window: usize, batch_rows: usize) -> LimitsConfig {
    LimitsConfig {
        window,
        resend_after_secs: 1,
        batch_rows,
    }
}

async fn sync(cfg: RegionMirrorConfig) -> Exchanged {
    let setup = region::setup(&cfg, Arc::new(NoHooks)).unwrap();
    let mirror = RegionMirror::start(cfg, setup).await.unwrap();
    mirror.exchange(Duration::from_secs(30)).await
}

/// Everything each side wrote is receipted; the receipts and checkpoints are stored on
/// both sides.
fn assert_settled(s: &PgMirror) {
    let status = s.status().unwrap();
    assert!(!status.is_empty(), "{}: no channels", s.node());
    for c in &status {
        assert!(
            c.last_exchange_unix_ms.is_some(),
            "{}: {c:?} has no stored receipt or batch",
            s.node()
        );
        if c.direction == MirrorDirection::Outgoing {
            assert_eq!(c.lag, Some(0), "{}: {c:?}", s.node());
            assert_eq!(c.through, c.rows, "{}: {c:?}", s.node());
        }
    }
    let (send, receive) = s.load().unwrap();
    for st in &send {
        assert!(st.pending.is_empty() && st.unbatched.is_empty(), "{}: {st:?}", s.node());
    }
    for r in &receive {
        assert_eq!(
            r.receipts.len() as u64,
            r.checkpoint.batches,
            "{}: receipts of {r:?}",
            s.node()
        );
        assert!(r.checkpoint.next_seq > 1, "{}: {r:?}", s.node());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_regions_and_the_federal_node_converge_and_each_region_sees_only_its_own() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(
        cluster,
        "mf_conv",
        &[1, 2, 3],
        "127.0.0.1:0".parse().unwrap(),
        limits(3, 4),
    );
    let counts = Arc::new(Counts::default());
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, counts.clone()).unwrap())
        .await
        .unwrap();
    for code in [1u8, 2, 3] {
        plan_up(&net, code, fed.addr).await;
    }
    let fed_writer = net.fed_writer();
    let mut up = Vec::new();
    let mut down = Vec::new();
    for round in 0..2 {
        for code in [1u8, 2, 3] {
            let writer = net.region_writer(code);
            let (a, b) = (round * 20, round * 20 + 17 + usize::from(code));
            let results = rows(RecordKind::ProcessingResults, code, a, b);
            let appeals = rows(RecordKind::AppealDecisions, code, a, a + 5);
            writer
                .push_many(FED, RecordKind::ProcessingResults, results.clone())
                .unwrap();
            writer
                .push_many(FED, RecordKind::AppealDecisions, appeals.clone())
                .unwrap();
            up.push((code, RecordKind::ProcessingResults, results));
            up.push((code, RecordKind::AppealDecisions, appeals));
            let checking = rows(RecordKind::CentralizedChecking, code, a, a + 11);
            let scores = rows(RecordKind::RecomputedScores, code, a, a + 3 + usize::from(code));
            fed_writer
                .push_many(Node::Region(code), RecordKind::CentralizedChecking, checking.clone())
                .unwrap();
            fed_writer
                .push_many(Node::Region(code), RecordKind::RecomputedScores, scores.clone())
                .unwrap();
            down.push((code, RecordKind::CentralizedChecking, checking));
            down.push((code, RecordKind::RecomputedScores, scores));
        }
        for code in [1u8, 2, 3] {
            let got = sync(net.region_at(code, fed.addr)).await;
            assert_eq!(got, Exchanged::Done, "round {round}, region {code}");
        }
    }

    let fed_store = store(&net.fed.records_url, FED);
    let expect = |list: &[(u8, RecordKind, Vec<Vec<u8>>)], code: u8, kind: RecordKind| -> Vec<(u64, Vec<u8>)> {
        let all: Vec<Vec<u8>> = list
            .iter()
            .filter(|(c, k, _)| *c == code && *k == kind)
            .flat_map(|(_, _, r)| r.clone())
            .collect();
        numbered(&all)
    };
    for code in [1u8, 2, 3] {
        let region_store = store(&net.region(code).records_url, Node::Region(code));
        for kind in [RecordKind::ProcessingResults, RecordKind::AppealDecisions] {
            assert_eq!(
                fed_store.applied_rows(Node::Region(code), kind).unwrap(),
                expect(&up, code, kind),
                "the federal node's {kind} of region {code}"
            );
        }
        for kind in [RecordKind::CentralizedChecking, RecordKind::RecomputedScores] {
            let applied = region_store.applied_rows(FED, kind).unwrap();
            assert_eq!(applied, expect(&down, code, kind), "region {code}'s {kind}");
            for other in [1u8, 2, 3].iter().filter(|&&o| o != code) {
                let foreign = format!("R{other:02}-P");
                assert!(
                    !applied
                        .iter()
                        .any(|(_, p)| String::from_utf8_lossy(p).contains(&foreign)),
                    "region {code} holds a row of region {other}"
                );
            }
        }
        // A region's own kinds never come back down, and it applied nothing else.
        for kind in RecordKind::owned_by(konvert_mirror::Side::Region) {
            assert!(region_store.applied_rows(FED, kind).unwrap().is_empty());
        }
        assert_settled(&region_store);
    }
    assert_settled(&fed_store);
    assert_eq!(counts.closed.load(Ordering::SeqCst), 0);
    assert_eq!(counts.refused.load(Ordering::SeqCst), 0);
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_and_a_signer_other_than_the_tls_identity_are_refused() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(cluster, "mf_bad", &[1, 2], "127.0.0.1:0".parse().unwrap(), limits(3, 4));
    let counts = Arc::new(Counts::default());
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, counts.clone()).unwrap())
        .await
        .unwrap();
    plan_up(&net, 1, fed.addr).await;
    let results = rows(RecordKind::ProcessingResults, 1, 0, 10);
    net.region_writer(1)
        .push_many(FED, RecordKind::ProcessingResults, results.clone())
        .unwrap();
    let fed_store = store(&net.fed.records_url, FED);

    // Region 1's certificate from another federal CA (same name, same key usage).
    let other = net.root.path().join("other");
    let other_fed = federal::init(
        &other,
        "federal.konvert",
        "127.0.0.1:0".parse().unwrap(),
        "postgresql://x@127.0.0.1/x",
    )
    .unwrap();
    let r1_dir = net.root.path().join("r1");
    federal::enroll_region(&other_fed, 1, &r1_dir.join("mirror.pub"), &other.join("r1"), false).unwrap();
    let mut forged = net.region_at(1, fed.addr);
    forged.cert = other.join("r1/region.pem");
    forged.key = other.join("r1/region.key");
    match sync(forged).await {
        Exchanged::Left(left) => {
            let text = left.join("; ");
            assert!(text.contains("certificate"), "{text}");
        }
        Exchanged::Done => panic!("a certificate of another CA was taken"),
    }
    assert!(fed_store
        .applied_rows(Node::Region(1), RecordKind::ProcessingResults)
        .unwrap()
        .is_empty());

    // Region 2's certificate under region 1's signing key: the TLS identity says region 2,
    // the batches say region 1. The federal node closes the connection and applies nothing.
    let mut mixed = net.region_at(1, fed.addr);
    mixed.cert = net.region(2).cert.clone();
    mixed.key = net.region(2).key.clone();
    match sync(mixed).await {
        Exchanged::Left(left) => assert!(left.join("; ").contains("closed"), "{left:?}"),
        Exchanged::Done => panic!("batches signed by region 1 were taken over region 2's connection"),
    }
    assert!(
        counts.closed.load(Ordering::SeqCst) >= 1,
        "the driver did not report the closed connection"
    );
    for code in [1u8, 2] {
        assert!(fed_store
            .applied_rows(Node::Region(code), RecordKind::ProcessingResults)
            .unwrap()
            .is_empty());
    }

    // The federal node is unharmed: region 1 with its own files gets through.
    assert_eq!(sync(net.region_at(1, fed.addr)).await, Exchanged::Done);
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(1), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&results)
    );
    fed.stop().await;
}

/// A region enrolled again gets a new certificate and the old one is refused, though the
/// federal CA issued it and it names the region; a revoked region is refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_and_a_revoked_region_are_refused() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(cluster, "mf_pin", &[3], "127.0.0.1:0".parse().unwrap(), limits(3, 4));
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    plan_up(&net, 3, fed.addr).await;
    fed.stop().await;

    // Enrolled again (same mirror key): the new files go elsewhere, the old ones stay.
    let r3 = net.root.path().join("r3");
    let again = r3.join("pki-again");
    federal::enroll_region(&net.fed_path, 3, &r3.join("mirror.pub"), &again, true).unwrap();
    let fed_cfg = FederalConfig::load(&net.fed_path).unwrap();
    let fed = federal::serve(&fed_cfg, federal::setup(&fed_cfg, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    let results = rows(RecordKind::ProcessingResults, 3, 0, 5);
    net.region_writer(3)
        .push_many(FED, RecordKind::ProcessingResults, results.clone())
        .unwrap();
    let fed_store = store(&net.fed.records_url, FED);
    match sync(net.region_at(3, fed.addr)).await {
        Exchanged::Left(left) => assert!(left.join("; ").contains("replaced by a newer one"), "{left:?}"),
        Exchanged::Done => panic!("the certificate issued before the region's last enrollment was taken"),
    }
    assert!(fed_store
        .applied_rows(Node::Region(3), RecordKind::ProcessingResults)
        .unwrap()
        .is_empty());
    let mut renewed = net.region_at(3, fed.addr);
    renewed.cert = again.join(federal::REGION_CERT);
    renewed.key = again.join(federal::REGION_KEY);
    assert_eq!(sync(renewed.clone()).await, Exchanged::Done);
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(3), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&results)
    );
    fed.stop().await;

    // Revoked: even the new certificate is refused from the next start.
    assert!(federal::revoke_region(&net.fed_path, 3).unwrap());
    let fed_cfg = FederalConfig::load(&net.fed_path).unwrap();
    let fed = federal::serve(&fed_cfg, federal::setup(&fed_cfg, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    net.region_writer(3)
        .push_many(
            FED,
            RecordKind::ProcessingResults,
            rows(RecordKind::ProcessingResults, 3, 5, 6),
        )
        .unwrap();
    renewed.federal_address = fed.addr.to_string();
    match sync(renewed).await {
        Exchanged::Left(left) => assert!(left.join("; ").contains("enrollment is revoked"), "{left:?}"),
        Exchanged::Done => panic!("a revoked region was taken"),
    }
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(3), RecordKind::ProcessingResults)
            .unwrap()
            .len(),
        5
    );
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_with_notify_go_up_at_once_not_at_the_next_interval() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(cluster, "mf_notify", &[3], "127.0.0.1:0".parse().unwrap(), limits(3, 4));
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    plan_up(&net, 3, fed.addr).await;
    // The default schedule: the next exchange is hours away.
    let cfg = net.region_at(3, fed.addr);
    let schedule = cfg.schedule(Path::new("mirror.toml")).unwrap();
    let counts = Arc::new(Counts::default());
    let mirror = Arc::new(
        RegionMirror::start(cfg.clone(), region::setup(&cfg, counts.clone()).unwrap())
            .await
            .unwrap(),
    );
    let running = mirror.clone();
    let run = tokio::spawn(async move { running.run(&schedule).await });
    // The first exchange, at start, has nothing to send; the next is two hours away.
    let deadline = Instant::now() + Duration::from_secs(20);
    while counts.exchanged.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the first exchange never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fed_store = store(&net.fed.records_url, FED);
    assert!(fed_store
        .applied_rows(Node::Region(3), RecordKind::ProcessingResults)
        .unwrap()
        .is_empty());
    // An exam closed: its results and NOTIFY konvert_mirror in one transaction.
    let results = rows(RecordKind::ProcessingResults, 3, 0, 9);
    net.region_writer(3)
        .push_many(FED, RecordKind::ProcessingResults, results.clone())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fed_store
        .applied_rows(Node::Region(3), RecordKind::ProcessingResults)
        .unwrap()
        .len()
        < results.len()
    {
        assert!(Instant::now() < deadline, "the notified rows did not go up within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(3), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&results)
    );
    run.abort();
    fed.stop().await;
}

/// Sends `bytes` as one message over a fresh connection with region 1's certificate and
/// returns how the federal node closed it.
async fn send_raw(cfg: &RegionMirrorConfig, addr: SocketAddr, bytes: Vec<u8>) -> quinn::ConnectionError {
    let client =
        konvert_replication::tls::client_endpoint(konvert_center::mirror::identity::region_client_config(cfg).unwrap())
            .unwrap();
    let conn = client.connect(addr, &cfg.federal_name).unwrap().await.unwrap();
    let mut s = conn.open_uni().await.unwrap();
    // The node may close the connection before every byte is written.
    let _ = s.write_all(&bytes).await;
    let _ = s.finish();
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_or_one_that_does_not_parse_closes_the_connection() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(cluster, "mf_raw", &[1], "127.0.0.1:0".parse().unwrap(), limits(3, 4));
    let counts = Arc::new(Counts::default());
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, counts.clone()).unwrap())
        .await
        .unwrap();
    let cfg = net.region_at(1, fed.addr);
    let protocol = quinn::VarInt::from_u32(konvert_center::mirror::node::close::PROTOCOL);
    for (what, bytes) in [
        ("over the limit", vec![0u8; konvert_mirror::MAX_MESSAGE_LEN + 1]),
        ("unparseable", vec![1, 0, 0xff, 0xff, 0xff]),
        ("another wire format", vec![9, 0, 0]),
    ] {
        match send_raw(&cfg, fed.addr, bytes).await {
            quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(c.error_code, protocol, "{what}: {c:?}"),
            other => panic!("{what}: closed with {other:?}"),
        }
    }
    assert_eq!(counts.closed.load(Ordering::SeqCst), 3);
    // Nothing was applied, and region 1 still gets through.
    let fed_store = store(&net.fed.records_url, FED);
    assert!(fed_store.load().unwrap().1.is_empty());
    plan_up(&net, 1, fed.addr).await;
    net.region_writer(1)
        .push_many(
            FED,
            RecordKind::ProcessingResults,
            rows(RecordKind::ProcessingResults, 1, 0, 3),
        )
        .unwrap();
    assert_eq!(sync(cfg).await, Exchanged::Done);
    fed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federal_node_rides_out_its_postgresql_stopping_mid_stream_and_applies_each_row_once() {
    let (Some(shared), Some(own)) = (TestCluster::shared(), TestCluster::start()) else {
        return;
    };
    let mut net = Net::build(shared, "mf_pgdown", &[1], "127.0.0.1:0".parse().unwrap(), limits(4, 2));
    // The federal node's records on a cluster of their own, to stop under it.
    net.fed.records_url = own.database("mf_pgdown_fed");
    plan(&net, 1);
    let up = rows(RecordKind::ProcessingResults, 1, 0, 400);
    net.region_writer(1)
        .push_many(FED, RecordKind::ProcessingResults, up.clone())
        .unwrap();
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    let cfg = net.region_at(1, fed.addr);
    let mirror = Arc::new(
        RegionMirror::start(cfg.clone(), region::setup(&cfg, Arc::new(NoHooks)).unwrap())
            .await
            .unwrap(),
    );
    let looping = mirror.clone();
    let exchanges = tokio::spawn(async move {
        loop {
            let _ = looping.exchange(Duration::from_secs(5)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let fed_store = store(&net.fed.records_url, FED);
    let applied = || {
        fed_store
            .applied_rows(Node::Region(1), RecordKind::ProcessingResults)
            .map(|r| r.len())
            .unwrap_or(0)
    };
    let log = net.root.path().join("none.log");
    wait_for_more("rows applied at the federal node", 0, applied, &log).await;
    let before = applied();
    own.stop_now();
    assert!(
        before < up.len(),
        "PostgreSQL stopped only after all {before} rows were applied"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    own.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied() < up.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    exchanges.abort();
    assert_eq!(mirror.exchange(Duration::from_secs(20)).await, Exchanged::Done);
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(1), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&up)
    );
    assert_settled(&fed_store);
    assert_settled(&store(&cfg.records_url, Node::Region(1)));
    fed.stop().await;
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `konvert-center <args>`; with `ready`, waits for that line on its stdout.
fn spawn_center(args: &[&str], log: &Path, ready: Option<&str>) -> Child {
    let mut child = Command::new(CENTER)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    if let Some(ready) = ready {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(_) => {}
                Err(_) => panic!(
                    "konvert-center {args:?} did not say {ready:?}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ),
            }
        }
    }
    child
}

/// Waits until `count` passes `after`, then returns it.
async fn wait_for_more(what: &str, after: usize, count: impl Fn() -> usize, log: &Path) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count();
        if n > after {
            return n;
        }
        if Instant::now() > deadline {
            panic!(
                "{what} stayed at {n}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federal_node_killed_while_applying_loses_nothing_and_applies_nothing_twice() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let net = Net::build(cluster, "mf_kill_fed", &[1], listen, limits(4, 2));
    let (up_n, down_n) = (600, 200);
    plan(&net, 1);
    let up = rows(RecordKind::ProcessingResults, 1, 0, up_n);
    let down = rows(RecordKind::RecomputedScores, 1, 0, down_n);
    net.region_writer(1)
        .push_many(FED, RecordKind::ProcessingResults, up.clone())
        .unwrap();
    net.fed_writer()
        .push_many(Node::Region(1), RecordKind::RecomputedScores, down.clone())
        .unwrap();
    let fed_store = store(&net.fed.records_url, FED);
    let applied = || {
        fed_store
            .applied_rows(Node::Region(1), RecordKind::ProcessingResults)
            .unwrap()
            .len()
    };

    let cfg = net.region_at(1, listen);
    let mirror = Arc::new(
        RegionMirror::start(cfg.clone(), region::setup(&cfg, Arc::new(NoHooks)).unwrap())
            .await
            .unwrap(),
    );
    let looping = mirror.clone();
    let exchanges = tokio::spawn(async move {
        loop {
            let _ = looping.exchange(Duration::from_secs(5)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let config = net.fed_path.to_str().unwrap().to_owned();
    let args = ["federal", "serve", "--config", config.as_str()];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let (mut seen, mut mid_stream) = (0, 0);
    for k in 0..5 {
        let log = net.root.path().join(format!("fed-{k}.log"));
        let mut child = spawn_center(&args, &log, Some("federal node serving"));
        wait_for_more("rows applied at the federal node", seen, applied, &log).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..120))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let at_kill = applied();
        eprintln!("federal node killed with {at_kill} of {up_n} rows applied");
        if at_kill < up_n {
            mid_stream += 1;
        }
        seen = at_kill;
    }
    assert!(
        mid_stream >= 2,
        "only {mid_stream} kill(s) came in the middle of the stream"
    );
    let log = net.root.path().join("fed-last.log");
    let mut child = spawn_center(&args, &log, Some("federal node serving"));
    exchanges.abort();
    let mut done = false;
    for _ in 0..5 {
        if mirror.exchange(Duration::from_secs(20)).await == Exchanged::Done {
            done = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        done,
        "the region never finished: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(1), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&up)
    );
    let region_store = store(&cfg.records_url, Node::Region(1));
    assert_eq!(
        region_store.applied_rows(FED, RecordKind::RecomputedScores).unwrap(),
        numbered(&down)
    );
    assert_settled(&fed_store);
    assert_settled(&region_store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_killed_while_applying_loses_nothing_and_applies_nothing_twice() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(
        cluster,
        "mf_kill_reg",
        &[2],
        "127.0.0.1:0".parse().unwrap(),
        limits(4, 2),
    );
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    let mut cfg = net.region_at(2, fed.addr);
    cfg.sync_timeout_secs = 10;
    let config = net.root.path().join("r2/mirror.toml");
    cfg.save(&config).unwrap();
    let (up_n, down_n) = (150, 600);
    plan(&net, 2);
    let up = rows(RecordKind::AppealDecisions, 2, 0, up_n);
    let down = rows(RecordKind::CentralizedChecking, 2, 0, down_n);
    net.region_writer(2)
        .push_many(FED, RecordKind::AppealDecisions, up.clone())
        .unwrap();
    net.fed_writer()
        .push_many(Node::Region(2), RecordKind::CentralizedChecking, down.clone())
        .unwrap();
    let region_store = store(&cfg.records_url, Node::Region(2));
    let applied = || {
        region_store
            .applied_rows(FED, RecordKind::CentralizedChecking)
            .unwrap()
            .len()
    };
    let config = config.to_str().unwrap().to_owned();
    let args = ["mirror", "run", "--config", config.as_str()];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(61);
    let (mut seen, mut mid_stream) = (0, 0);
    for k in 0..5 {
        let log = net.root.path().join(format!("region-{k}.log"));
        let mut child = spawn_center(&args, &log, None);
        wait_for_more("rows applied at the region", seen, applied, &log).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..120))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let at_kill = applied();
        eprintln!("region killed with {at_kill} of {down_n} rows applied");
        if at_kill < down_n {
            mid_stream += 1;
        }
        seen = at_kill;
    }
    assert!(
        mid_stream >= 2,
        "only {mid_stream} kill(s) came in the middle of the stream"
    );
    let log = net.root.path().join("region-last.log");
    let mut child = spawn_center(&args, &log, None);
    let fed_store = store(&net.fed.records_url, FED);
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = || {
        applied() == down_n
            && fed_store
                .applied_rows(Node::Region(2), RecordKind::AppealDecisions)
                .unwrap()
                .len()
                == up_n
            && node_leftover(&fed_store).is_empty()
            && node_leftover(&region_store).is_empty()
    };
    while !settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        settled(),
        "the region never caught up: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        region_store.applied_rows(FED, RecordKind::CentralizedChecking).unwrap(),
        numbered(&down)
    );
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(2), RecordKind::AppealDecisions)
            .unwrap(),
        numbered(&up)
    );
    assert_settled(&fed_store);
    assert_settled(&region_store);

    // `mirror sync` as an operator runs it: nothing left, exit 0.
    let sync_cmd = |timeout: &str| {
        tokio::process::Command::new(CENTER)
            .args(["mirror", "sync", "--config", config.as_str(), "--timeout", timeout])
            .output()
    };
    let out = sync_cmd("20").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("nothing left"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the federal node gone, a row written since is left, and `sync` says so and fails.
    fed.stop().await;
    net.region_writer(2)
        .push_many(
            FED,
            RecordKind::AppealDecisions,
            rows(RecordKind::AppealDecisions, 2, up_n, up_n + 1),
        )
        .unwrap();
    let out = sync_cmd("3").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "sync succeeded without the federal node");
    assert!(
        stderr.contains("left something") && stderr.contains(&format!("rows {}..={}", up_n + 1, up_n + 1)),
        "{stderr}"
    );
}

fn node_leftover(s: &PgMirror) -> Vec<String> {
    konvert_center::mirror::node::leftover(s).unwrap()
}

fn free_tcp_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The value of the one sample `series` (name and labels exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Scrapes `addr` until `series` reads `want`; returns the exposition.
async fn scrape_until(addr: SocketAddr, series: &str, want: f64, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = konvert_devtools::demo::scrape(addr).await.unwrap_or_default();
        if sample(&text, series) == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never read {want} at {addr}:\n{text}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The mirror's metrics as the running processes serve them (`metrics_listen` of
/// federal.toml and mirror.toml): after a good exchange the lag is 0 and the exchange is
/// counted on both sides; a batch signed by a key the federal node does not know is refused
/// over QUIC, and the refusal is counted by the federal node (it refused) and the region (its
/// channel stopped), and nothing of it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_counted_in_the_metrics_the_running_nodes_serve() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let net = Net::build(cluster, "mf_metrics", &[4], listen, limits(3, 4));
    let (fed_metrics, region_metrics) = (free_tcp_addr(), free_tcp_addr());
    let mut raw = FederalConfig::read(&net.fed_path).unwrap();
    raw.metrics_listen = Some(fed_metrics);
    raw.save(&net.fed_path).unwrap();
    // Planning first in the same exchange: its first batches go before the results, which
    // name only participants they seat.
    plan(&net, 4);
    let up = rows(RecordKind::ProcessingResults, 4, 0, 5);
    net.region_writer(4)
        .push_many(FED, RecordKind::ProcessingResults, up.clone())
        .unwrap();
    net.fed_writer()
        .push_many(
            Node::Region(4),
            RecordKind::RecomputedScores,
            rows(RecordKind::RecomputedScores, 4, 0, 3),
        )
        .unwrap();
    let fed_config = net.fed_path.to_str().unwrap().to_owned();
    let fed_log = net.root.path().join("fed.log");
    let mut fed = spawn_center(
        &["federal", "serve", "--config", fed_config.as_str()],
        &fed_log,
        Some("federal node serving"),
    );

    let mut cfg = net.region_at(4, listen);
    cfg.metrics_listen = Some(region_metrics);
    let config = net.root.path().join("r4/mirror.toml");
    cfg.save(&config).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let run = ["mirror", "run", "--config", config.as_str()];
    let region_log = net.root.path().join("region.log");
    let mut region = spawn_center(&run, &region_log, Some("metrics: http"));
    let text = scrape_until(
        region_metrics,
        r#"konvert_mirror_lag_rows{direction="outgoing",kind="processing_results",peer="federal"}"#,
        0.0,
        &region_log,
    )
    .await;
    assert!(
        sample(
            &text,
            r#"konvert_mirror_exchanges_total{outcome="done",peer="federal"}"#
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"konvert_mirror_last_exchange_timestamp_seconds{direction="incoming",kind="recomputed_scores",peer="federal"}"#
        ) > Some(1.7e9),
        "{text}"
    );
    assert_eq!(
        sample(&text, "konvert_mirror_interval_seconds"),
        Some(7.0 * 24.0 * 3600.0)
    );
    assert_eq!(sample(&text, "konvert_mirror_exam_period"), Some(0.0));
    let text = scrape_until(
        fed_metrics,
        r#"konvert_mirror_lag_rows{direction="outgoing",kind="recomputed_scores",peer="04"}"#,
        0.0,
        &fed_log,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            r#"konvert_mirror_lag_seconds{kind="recomputed_scores",peer="04"}"#
        ),
        Some(0.0),
        "{text}"
    );
    assert!(!text.contains("konvert_mirror_refusals_total{"), "{text}");
    region.kill().unwrap();
    region.wait().unwrap();

    // Region 4's mirror, its signing key swapped for one the federal node never enrolled.
    let forged_key = net.root.path().join("r4/keys/forged.key");
    konvert_crypto::keyfile::write_signing_key(&forged_key, &konvert_crypto::SigningKey::generate().unwrap()).unwrap();
    cfg.signing_key = forged_key;
    cfg.save(Path::new(&config)).unwrap();
    OutboxWriter::open(region::setup(&cfg, Arc::new(NoHooks)).unwrap())
        .unwrap()
        .push_many(
            FED,
            RecordKind::ProcessingResults,
            rows(RecordKind::ProcessingResults, 4, 5, 7),
        )
        .unwrap();
    let forged_log = net.root.path().join("forged.log");
    let mut forged = spawn_center(&run, &forged_log, Some("metrics: http"));
    let refused = r#"konvert_mirror_refusals_total{kind="processing_results",peer="04",reason="wrong_signer"}"#;
    scrape_until(fed_metrics, refused, 1.0, &fed_log).await;
    let stalled = r#"konvert_mirror_refusals_total{kind="processing_results",peer="federal",reason="wrong_signer"}"#;
    let text = scrape_until(region_metrics, stalled, 1.0, &forged_log).await;
    assert!(
        sample(
            &text,
            r#"konvert_mirror_lag_rows{direction="outgoing",kind="processing_results",peer="federal"}"#
        ) == Some(2.0)
            || text.contains(r#"konvert_mirror_exchanges_total{outcome="left",peer="federal"}"#),
        "{text}"
    );
    forged.kill().unwrap();
    forged.wait().unwrap();
    fed.kill().unwrap();
    fed.wait().unwrap();

    // The status tables, as an operator reads them on each side.
    let status = |args: &[&str]| {
        let out = Command::new(CENTER).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let fed_status = status(&["federal", "status", "--config", fed_config.as_str()]);
    // A row's cells after the peer (`ФИС`, `РИС 04`): kind, direction, rows, receipted, lag.
    let table_row = |text: &str, peer: &str, kind: &str, direction: &str| -> Option<Vec<String>> {
        text.lines().find_map(|l| {
            let cells: Vec<String> = l.strip_prefix(peer)?.split_whitespace().map(str::to_owned).collect();
            (cells.len() >= 5 && cells[0] == kind && cells[1] == direction).then_some(cells)
        })
    };
    assert!(
        fed_status.starts_with("Mirror status at ") && fed_status.contains("(Europe/Moscow): no exam period"),
        "{fed_status}"
    );
    let down =
        table_row(&fed_status, "РИС 04", "recomputed_scores", "outgoing").unwrap_or_else(|| panic!("{fed_status}"));
    assert_eq!(&down[2..5], ["3", "3", "0"], "{fed_status}");
    let up_at_fed =
        table_row(&fed_status, "РИС 04", "processing_results", "incoming").unwrap_or_else(|| panic!("{fed_status}"));
    assert_eq!(&up_at_fed[2..4], ["5", "5"], "{fed_status}");
    assert!(
        fed_status.contains("ok: every row written has been receipted"),
        "{fed_status}"
    );
    let region_status = status(&["mirror", "status", "--config", config.as_str()]);
    let up_row =
        table_row(&region_status, "ФИС", "processing_results", "outgoing").unwrap_or_else(|| panic!("{region_status}"));
    // 7 rows written (5 receipted, 2 forged and refused), 2 waiting.
    assert_eq!(&up_row[2..5], ["7", "5", "2"], "{region_status}");
    assert!(
        region_status.contains("ok: 2 rows waiting for receipts"),
        "{region_status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&status(&["mirror", "status", "--config", config.as_str(), "--json"])).unwrap();
    let up_json = json["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "processing_results" && c["direction"] == "outgoing")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(
        (
            &up_json["peer"],
            &up_json["rows"],
            &up_json["receipted"],
            &up_json["lag_rows"]
        ),
        (
            &serde_json::json!("federal"),
            &serde_json::json!(7),
            &serde_json::json!(5),
            &serde_json::json!(2)
        ),
        "{json:#}"
    );
    assert_eq!(json["interval_ms"], 7 * 24 * 3_600_000u64, "{json:#}");
    assert_eq!(
        store(&net.fed.records_url, FED)
            .applied_rows(Node::Region(4), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&up)
    );
}

/// `mirror check-config` as an operator runs it: the schedule `mirror init` wrote and one
/// with periods pass and say the interval in force; a schedule it cannot follow fails,
/// naming the file, `[schedule]` and what is wrong.
#[test]
fn mirror_check_config_takes_a_good_schedule_and_names_the_file_and_key_of_a_bad_one() {
    let root = tempfile::tempdir().unwrap();
    let fed = federal::init(
        &root.path().join("fed"),
        "federal.konvert",
        "127.0.0.1:4500".parse().unwrap(),
        "postgresql://konvert@127.0.0.1/fis",
    )
    .unwrap();
    let dir = root.path().join("r54");
    let init = |zone: &str| {
        Command::new(CENTER)
            .args(["mirror", "init", "--dir", dir.to_str().unwrap(), "--region", "54"])
            .args([
                "--records-url",
                "postgresql://konvert@127.0.0.1/ris",
                "--federal",
                "fis.example:4500",
            ])
            .args(["--time-zone", zone])
            .output()
            .unwrap()
    };
    let typo = init("Asia/Novosibirks");
    assert!(
        !typo.status.success() && String::from_utf8_lossy(&typo.stderr).contains("Asia/Novosibirks"),
        "{typo:?}"
    );
    assert!(!dir.exists(), "a refused init left {}", dir.display());
    assert!(init("Asia/Novosibirsk").status.success());
    let path = dir.join("mirror.toml");
    federal::enroll_region(&fed, 54, &dir.join("mirror.pub"), &dir.join("pki"), false).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let check = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let out = Command::new(CENTER)
            .args(["mirror", "check-config", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let (ok, said) = check(&written);
    assert!(
        ok && said.contains("exchange every 7 d now (Asia/Novosibirsk)"),
        "{said}"
    );
    // A year-round exam period at the busy interval: every 2 hours now.
    let all_year = written.clone()
        + "\n[[schedule.periods]]\nname = \"main\"\nkind = \"exam\"\nfirst_day = \"2000-01-01\"\nlast_day = \"2099-12-31\"\n";
    let (ok, said) = check(&all_year);
    assert!(
        ok && said.contains("exchange every 2 h now (Asia/Novosibirsk)"),
        "{said}"
    );
    for (text, what) in [
        (
            written.replace("Asia/Novosibirsk", "Europe/Atlantis"),
            "Europe/Atlantis",
        ),
        (
            all_year.replace("2099-12-31", "1999-12-31"),
            "ends (1999-12-31) before it starts",
        ),
        (all_year.replace("2000-01-01", "2000-13-01"), "first_day"),
        (
            written.replace("busy_interval_minutes = 120", "busy_interval_minutes = 20000"),
            "busy_interval_minutes",
        ),
    ] {
        let (ok, said) = check(&text);
        assert!(!ok, "{text} was taken: {said}");
        assert!(
            said.contains(path.to_str().unwrap()) && said.contains("[schedule]") && said.contains(what),
            "{said}"
        );
    }
}

/// A region's `run` whose first exchange finds the federal node down does not wait out the
/// schedule's interval (a week here): it tries again after 2 s, then 4 s, and its rows go up
/// once the federal node is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_that_left_something_is_tried_again_soon_not_at_the_next_interval() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let listen: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let net = Net::build(cluster, "mf_retry", &[6], listen, limits(3, 4));
    plan(&net, 6);
    let results = rows(RecordKind::ProcessingResults, 6, 0, 4);
    net.region_writer(6)
        .push_many(FED, RecordKind::ProcessingResults, results.clone())
        .unwrap();
    let mut cfg = net.region_at(6, listen);
    cfg.sync_timeout_secs = 2;
    let schedule = cfg.schedule(Path::new("mirror.toml")).unwrap();
    assert_eq!(schedule.interval_at(0), 7 * 24 * 3_600_000);
    let counts = Arc::new(Counts::default());
    let mirror = Arc::new(
        RegionMirror::start(cfg.clone(), region::setup(&cfg, counts.clone()).unwrap())
            .await
            .unwrap(),
    );
    let running = mirror.clone();
    let run = tokio::spawn(async move { running.run(&schedule).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while counts.exchanged.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the first exchange never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    let fed_store = store(&net.fed.records_url, FED);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fed_store
        .applied_rows(Node::Region(6), RecordKind::ProcessingResults)
        .unwrap()
        .len()
        < results.len()
    {
        assert!(
            Instant::now() < deadline,
            "the region did not try again within 20 s of the federal node's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fed_store
            .applied_rows(Node::Region(6), RecordKind::ProcessingResults)
            .unwrap(),
        numbered(&results)
    );
    run.abort();
    fed.stop().await;
}

/// One driver per region database: a second `mirror run` is refused naming the first, and
/// a `mirror sync` beside the running one asks it to exchange now (rows the federal node
/// wrote reach the region at once, not at the weekly exchange).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_mirror_run_is_refused_and_a_sync_beside_the_running_one_wakes_it() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let net = Net::build(
        cluster,
        "mf_one_run",
        &[4],
        "127.0.0.1:0".parse().unwrap(),
        limits(4, 8),
    );
    let fed = federal::serve(&net.fed, federal::setup(&net.fed, Arc::new(NoHooks)).unwrap())
        .await
        .unwrap();
    plan_up(&net, 4, fed.addr).await;
    let cfg = net.region_at(4, fed.addr);
    let config = net.root.path().join("r4/mirror.toml");
    cfg.save(&config).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let log = net.root.path().join("run.log");
    let mut running = spawn_center(&["mirror", "run", "--config", &config], &log, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("next scheduled exchange")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let second = Command::new(CENTER)
        .args(["mirror", "run", "--config", &config])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(
        said.contains("another konvert mirror process is running") && said.contains("PostgreSQL backend"),
        "{said}"
    );

    let down = rows(RecordKind::CentralizedChecking, 4, 0, 7);
    net.fed_writer()
        .push_many(Node::Region(4), RecordKind::CentralizedChecking, down.clone())
        .unwrap();
    let synced = Command::new(CENTER)
        .args(["mirror", "sync", "--config", &config])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&synced.stdout);
    assert!(
        synced.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert!(said.contains("asked to exchange now"), "{said}");
    let region_store = store(&cfg.records_url, Node::Region(4));
    let applied = || {
        region_store
            .applied_rows(FED, RecordKind::CentralizedChecking)
            .unwrap()
            .len()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied() < down.len() {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        region_store.applied_rows(FED, RecordKind::CentralizedChecking).unwrap(),
        numbered(&down)
    );
    running.kill().unwrap();
    running.wait().unwrap();
    fed.stop().await;
}
