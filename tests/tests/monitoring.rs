//! What the regional center's staff watch: the Prometheus alert rules and the Grafana
//! dashboard in ops/ name only metrics a running center, relay or federal node exports on its
//! /metrics (scraped over HTTP while sites are connected and have delivered, and after a region
//! exchanged with the federal node and had a batch refused), the rules pass `promtool check`
//! and their unit tests, and every dashboard query is valid PromQL; a region's mirror on
//! PostgreSQL that missed an exchange reads behind on `mirror status` and its metrics.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_edge::PushOptions;
use konvert_tests::CenterFixture;

fn ops_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops").join(rel)
}

fn rules() -> String {
    std::fs::read_to_string(ops_file("alerts/konvert.rules.yml")).unwrap()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(ops_file("dashboards/konvert-center.json")).unwrap()).unwrap()
}

/// Every query of every dashboard panel.
fn dashboard_queries(d: &serde_json::Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The `konvert_…` metric families an expression uses (histogram series → their family).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("konvert_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name.trim_end_matches("_bucket").to_owned());
    }
    names
}

fn rule_exprs() -> Vec<String> {
    rules()
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

/// `promtool`, if this machine has it (`.ci/run` installs it).
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus); .ci/run installs it");
    }
    found.then_some("promtool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_use_is_served_by_a_running_center_or_relay() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let (t1, t2) = (fx.issue_token("0101"), fx.issue_token("0202"));
    let mut cfg = fx.register(&[(&t1, "0101"), (&t2, "0202")]);
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.ingress_mbit = Some(100.0);
    // Today's exam-day plan, so the center watches its sites (0303 never connects).
    let day = konvert_exam::SiteZone::moscow()
        .local_date(konvert_edge::cli::now_unix_ms() as i64)
        .unwrap();
    let plan = fx.root.path().join("plan.toml");
    std::fs::write(&plan, todays_plan(&day.to_string())).unwrap();
    konvert_center::plans::PlanDesk::open(&cfg.data_dir)
        .unwrap()
        .import(&plan, "test")
        .unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let center_metrics = center.metrics_addr.unwrap();
    // One site sends straight to the center, one through a relay that serves its metrics.
    let mut relay_fx = fx.enroll_relay("mouo-01", &["0202"], &[], loopback(), center.addr, None);
    relay_fx.cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let relay = relay_fx.start().await;
    let relay_metrics = relay.metrics_addr.unwrap();
    let site = fx.enroll("0101", center.addr);
    let mut school = fx.enroll("0202", center.addr);
    school.via_relay("mouo-01", relay.addr);
    site.seal_room("0001", 2, 40_000, 5);
    school.seal_room("0001", 2, 40_000, 6);

    // Both stay connected, as on their exam day, so the per-site families are shown.
    let more = Arc::new(AtomicBool::new(true));
    let mut pushes = Vec::new();
    for st in [&site, &school] {
        let opts = PushOptions {
            max_wait: Duration::from_secs(60),
            more_coming: Some(more.clone()),
            ..Default::default()
        };
        pushes.push(st.spawn_push(opts));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (center_text, relay_text) = loop {
        let center_text = konvert_devtools::demo::scrape(center_metrics).await.unwrap();
        let relay_text = konvert_devtools::demo::scrape(relay_metrics).await.unwrap();
        let shown = |name: &str| {
            center_text
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{site=\"0101\"}}")))
        };
        let forwarded = relay_text
            .lines()
            .any(|l| l == "konvert_relay_forwarded_packets_total 1");
        let planned = center_text
            .lines()
            .any(|l| l.starts_with("konvert_site_deadline_risk{site=\"0303\"}"));
        if shown("konvert_site_backlog_bytes") && shown("konvert_packets_received_total") && forwarded && planned {
            break (center_text, relay_text);
        }
        assert!(
            Instant::now() < deadline,
            "the families never showed:\n{center_text}\n{relay_text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // HEAD answers 200 with the length and no body (uptime checks ask this way).
    let head = head_metrics(center_metrics).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let (headers, body) = head.split_once("\r\n\r\n").unwrap();
    assert!(headers.contains("Content-Length: "), "{headers}");
    assert!(body.is_empty(), "HEAD answered a body: {body:.200}");
    // The registry in force expires in the future, and says when.
    let expires: f64 = center_text
        .lines()
        .find_map(|l| l.strip_prefix("konvert_registry_expires_timestamp_seconds "))
        .unwrap_or_else(|| panic!("no registry expiry in {center_text}"))
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expires > now, "{expires} is not after {now}");
    more.store(false, Ordering::Release);
    for p in pushes {
        assert_eq!(p.await.unwrap().unwrap().delivered, 1);
    }
    // What the relay says of itself: connected upstream, nothing held, a list in force.
    let value = |name: &str| -> f64 {
        let line = relay_text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {relay_text}"));
        line[name.len() + 1..].parse().unwrap()
    };
    assert_eq!(value("konvert_relay_upstream_connected"), 1.0);
    assert_eq!(value("konvert_relay_held_packets"), 0.0);
    assert!(value("konvert_relay_crl_next_update_timestamp_seconds") > 1.7e9);
    relay.shutdown().await;
    center.shutdown().await;

    let mirror_text = served_mirror_exposition().await;
    if mirror_text.is_none() {
        eprintln!("SKIPPED: the mirror's families (PostgreSQL is not installed); .ci/run installs it");
    }
    let exported = |name: &str| {
        let family = format!("# TYPE {name} ");
        (mirror_text.is_none() && name.starts_with("konvert_mirror_"))
            || center_text
                .lines()
                .chain(relay_text.lines())
                .chain(mirror_text.iter().flat_map(|t| t.lines()))
                .any(|l| l.starts_with(&family))
    };
    let from_rules: Vec<String> = rule_exprs().iter().flat_map(|e| metric_names(e)).collect();
    let from_dashboard: Vec<String> = dashboard_queries(&dashboard())
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    assert!(from_rules.len() >= 8, "{from_rules:?}");
    assert!(from_dashboard.len() >= 15, "{from_dashboard:?}");
    for name in from_rules.iter().chain(&from_dashboard) {
        assert!(
            exported(name),
            "{name} is used in ops/ but neither a running center, a relay nor the mirror's metrics export it"
        );
    }
}

/// The mirror's families (РИС ↔ ФИС) as a running `konvert-center federal serve` serves
/// them on its `metrics_listen`, after region 09 exchanged a channel each way and a batch
/// signed by a key the federal node never enrolled was refused over QUIC. `None` (SKIPPED)
/// without PostgreSQL.
async fn served_mirror_exposition() -> Option<String> {
    use std::io::BufRead;

    use konvert_center::mirror::config::{FederalConfig, RegionMirrorConfig};
    use konvert_center::mirror::node::{NoHooks, OutboxWriter};
    use konvert_center::mirror::region::{Exchanged, RegionMirror};
    use konvert_center::mirror::{federal, region};
    use konvert_mirror::{Node, RecordKind};
    use konvert_records::mirror_rows::{MirrorRow, ProcessingResultRow, RecomputedScoreRow};

    let cluster = konvert_records::test_cluster::TestCluster::shared()?;
    let root = tempfile::tempdir().unwrap();
    let free = |udp: bool| -> std::net::SocketAddr {
        if udp {
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
        } else {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        }
    };
    let (listen, metrics_addr) = (free(true), free(false));
    let fed_path = federal::init(
        &root.path().join("fed"),
        "federal.konvert",
        listen,
        &cluster.database("monitoring_served_fed"),
    )
    .unwrap();
    let dir = root.path().join("r9");
    let mirror_path = region::init(
        &dir,
        9,
        &cluster.database("monitoring_served_r9"),
        &listen.to_string(),
        "federal.konvert",
    )
    .unwrap();
    federal::enroll_region(&fed_path, 9, &dir.join("mirror.pub"), &dir.join("pki"), false).unwrap();
    let mut raw = FederalConfig::read(&fed_path).unwrap();
    raw.metrics_listen = Some(metrics_addr);
    raw.save(&fed_path).unwrap();
    let fed = FederalConfig::load(&fed_path).unwrap();
    let cfg = RegionMirrorConfig::load(&mirror_path).unwrap();
    // The region plans participant P1 (its mirror claims the records first): the nodes
    // take rows only about planned participants.
    drop(OutboxWriter::open(region::setup(&cfg, Arc::new(NoHooks)).unwrap()).unwrap());
    let plan = konvert_exam::DayPlan::from_toml(
        "date = \"2026-06-01\"\nexam = \"ege\"\nregion = \"09\"\n\
         [[sites]]\ncode = \"0101\"\nkind = \"exam-site\"\ntime_zone = \"Europe/Moscow\"\n\
         [[rooms]]\nsite = \"0101\"\ncode = \"0001\"\n\
         [[participants]]\ncode = \"P1\"\nsite = \"0101\"\nroom = \"0001\"\nseat = \"1\"\nkit = 11\n\
         [[members]]\ntoken_id = \"m-0101-1\"\nsite = \"0101\"\n",
    )
    .unwrap()
    .0;
    konvert_records::mirror_outbox::import_plan(&konvert_records::PgRecords::connect(&cfg.records_url).unwrap(), &plan)
        .unwrap();
    let day = konvert_records::ExamDay {
        date: plan.date,
        exam: plan.exam,
    };
    let result = MirrorRow::ProcessingResult(ProcessingResultRow {
        day,
        participant: "P1".into(),
        site: konvert_exam::SiteId::new("0101").unwrap(),
        pages: Vec::new(),
    })
    .encode()
    .unwrap();
    let recomputed = MirrorRow::RecomputedScore(RecomputedScoreRow {
        day,
        participant: "P1".into(),
        primary_score: 17,
        scores: Vec::new(),
    })
    .encode()
    .unwrap();
    let push = |setup, kind, to, row: &Vec<u8>| {
        OutboxWriter::open(setup)
            .unwrap()
            .push_many(to, kind, vec![row.clone()])
            .unwrap()
    };
    push(
        region::setup(&cfg, Arc::new(NoHooks)).unwrap(),
        RecordKind::ProcessingResults,
        Node::Federal,
        &result,
    );
    push(
        federal::setup(&fed, Arc::new(NoHooks)).unwrap(),
        RecordKind::RecomputedScores,
        Node::Region(9),
        &recomputed,
    );

    let log = root.path().join("fed.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_readme-konvert-center"))
        .args(["federal", "serve", "--config", fed_path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let serving = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("federal node serving"));
    assert!(
        serving,
        "federal serve did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let sync = |cfg: RegionMirrorConfig| async move {
        let setup = region::setup(&cfg, Arc::new(NoHooks)).unwrap();
        let mirror = RegionMirror::start(cfg, setup).await.unwrap();
        mirror.exchange(Duration::from_secs(20)).await
    };
    assert_eq!(sync(cfg.clone()).await, Exchanged::Done);
    let mut forged = cfg.clone();
    forged.signing_key = dir.join("keys/forged.key");
    konvert_crypto::keyfile::write_signing_key(&forged.signing_key, &konvert_crypto::SigningKey::generate().unwrap())
        .unwrap();
    push(
        region::setup(&forged, Arc::new(NoHooks)).unwrap(),
        RecordKind::ProcessingResults,
        Node::Federal,
        &result,
    );
    assert!(matches!(sync(forged).await, Exchanged::Left(_)));

    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = konvert_devtools::demo::scrape(metrics_addr).await.unwrap_or_default();
        let refused = text
            .contains(r#"konvert_mirror_refusals_total{kind="processing_results",peer="09",reason="wrong_signer"} 1"#);
        let settled = text.contains(r#"konvert_mirror_lag_seconds{kind="recomputed_scores",peer="09"} 0"#);
        if refused && settled {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the federal node's metrics never showed the refusal and the lag:\n{text}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    Some(text)
}

/// An exam-day plan for `day` with sites 0101, 0202 and 0303, one seated room each.
fn todays_plan(day: &str) -> String {
    let mut plan = format!("date = \"{day}\"\nexam = \"ege\"\nregion = \"76\"\n");
    for (i, site) in ["0101", "0202", "0303"].iter().enumerate() {
        plan.push_str(&format!(
            "\n[[sites]]\ncode = \"{site}\"\nkind = \"exam-site\"\ntime_zone = \"Europe/Moscow\"\n\
             \n[[rooms]]\nsite = \"{site}\"\ncode = \"0001\"\n\
             \n[[participants]]\ncode = \"P{i}\"\nsite = \"{site}\"\nroom = \"0001\"\nseat = \"1\"\nkit = {i}\n"
        ));
    }
    plan
}

/// The raw answer to `HEAD /metrics`.
async fn head_metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(answer).unwrap()
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn every_alert_says_how_bad_and_what_to_do() {
    let rules = rules();
    let alerts = rules.matches("- alert:").count();
    assert!(alerts >= 6);
    for field in ["expr:", "severity:", "summary:", "description:"] {
        assert_eq!(rules.matches(field).count(), alerts, "every alert has {field}");
    }
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(ops_file("alerts/konvert.rules.yml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let unit = Command::new(promtool)
        .args(["test", "rules", "konvert.rules.test.yml"])
        .current_dir(ops_file("alerts"))
        .output()
        .unwrap();
    assert!(
        unit.status.success(),
        "{}{}",
        String::from_utf8_lossy(&unit.stdout),
        String::from_utf8_lossy(&unit.stderr)
    );
}

#[test]
fn the_dashboard_is_well_formed_and_its_queries_are_valid_promql() {
    let d = dashboard();
    assert_eq!(d["uid"], "konvert-center");
    let panels = d["panels"].as_array().unwrap();
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap();
        assert!(!title.is_empty() && p["description"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for g in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][g].is_u64(), "{title}: gridPos.{g}");
        }
    }
    // The center's free space is shown against the floor it keeps free, on one panel, so
    // the operator sees how close the refusals are before the alert fires.
    let shows_disk = panels.iter().any(|p| {
        let exprs: Vec<&str> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["expr"].as_str())
            .collect();
        ["konvert_center_disk_free_ratio", "konvert_center_disk_free_floor_ratio"]
            .iter()
            .all(|name| exprs.iter().any(|e| metric_names(e).iter().any(|n| n == name)))
    });
    assert!(shows_disk, "no panel shows the center's free disk against its floor");
    // PromQL is checked by promtool as recording rules: one per query.
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_queries(&d).iter().enumerate() {
        file.push_str(&format!(
            "      - record: konvert:dashboard:q{i}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    let path = dir.path().join("dashboard.rules.yml");
    std::fs::write(&path, file).unwrap();
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A region's mirror on a real PostgreSQL, three hours into a missed exchange of an exam
/// period: `mirror status` says it is behind and what to run, and the metrics put the lag
/// past the interval with the exam period on, which is what `KonvertMirrorBehind` compares.
#[test]
fn a_region_three_hours_behind_in_an_exam_period_reads_behind_on_the_status_and_the_metrics() {
    use konvert_mirror::{Endpoint, Node, PeriodConfig, PeriodKind, RecordKind, Schedule, ScheduleConfig};
    let Some(cluster) = konvert_records::test_cluster::TestCluster::shared() else {
        return;
    };
    let url = cluster.database("monitoring_mirror_behind");
    let records = Arc::new(konvert_records::PgRecords::connect(&url).unwrap());
    let region = Node::Region(76);
    let store = konvert_records::PgMirror::open(records, region).unwrap();
    let key = konvert_crypto::SigningKey::from_seed(&[76; 32]).unwrap();
    let federal = konvert_crypto::SigningKey::from_seed(&[200; 32]).unwrap();
    let peers = [(Node::Federal, federal.verifying_key())].into();
    let mut endpoint = Endpoint::new(region, &key, peers, 1, 1..=1, Default::default()).unwrap();
    for n in 1..=3 {
        let row = format!("result {n}").into_bytes();
        store
            .push(&mut endpoint, Node::Federal, RecordKind::ProcessingResults, row, |_| {
                Ok(())
            })
            .unwrap();
    }
    let status = store.status().unwrap();

    // Today and the next two days (Moscow time) are an exam period; the status is read three
    // hours after the rows were written, with no exchange since.
    let now = konvert_edge::cli::now_unix_ms();
    let day = |ms: u64| {
        konvert_exam::SiteZone::moscow()
            .local_date(ms as i64)
            .unwrap()
            .to_string()
    };
    let schedule = Schedule::from_config(&ScheduleConfig {
        periods: vec![PeriodConfig {
            name: "main".to_owned(),
            kind: PeriodKind::Exam,
            first_day: day(now),
            last_day: day(now + 2 * 86_400_000),
            interval_minutes: None,
        }],
        ..ScheduleConfig::default()
    })
    .unwrap();
    let later = now + 3 * 3_600_000;
    let text = konvert_center::mirror_status::render(&status, &schedule, later);
    assert!(text.contains("exam period main"), "{text}");
    assert!(
        text.contains("behind: ФИС processing_results (3 rows, the oldest waiting 3 h")
            && text.contains("exchange now with `konvert-center mirror sync`"),
        "{text}"
    );

    let registry = prometheus::Registry::new();
    let metrics = konvert_center::mirror_metrics::MirrorMetrics::register(&registry).unwrap();
    metrics.observe(&status, &schedule, later);
    let mut out = Vec::new();
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .parse()
            .unwrap()
    };
    let lag = value(r#"konvert_mirror_lag_seconds{kind="processing_results",peer="federal"}"#);
    let interval = value("konvert_mirror_interval_seconds");
    assert!((3.0 * 3600.0..3.0 * 3600.0 + 600.0).contains(&lag), "{lag}");
    assert_eq!(interval, 7200.0);
    assert_eq!(value("konvert_mirror_exam_period"), 1.0);
    assert_eq!(
        value(r#"konvert_mirror_lag_rows{direction="outgoing",kind="processing_results",peer="federal"}"#),
        3.0
    );
}
