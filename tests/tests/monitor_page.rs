//! The monitoring page of a real serving center on loopback: over HTTP (GET, HEAD, 404,
//! a hostile request), and in a real headless browser (Debian's chromium): a screenshot
//! and no console messages at all — the page has no script, so any would be an error.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use konvert_center::monitor::MonitorSource;
use konvert_edge::{push, PushOptions};
use konvert_exam::{DayPlan, ExamKind, PacketKind, PacketRef};
use konvert_replication::{AnswerOutcome, PacketAnswer};
use konvert_tests::{CenterFixture, EXAM_DAY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PLAN: &str = r#"
date = "2026-06-01"
exam = "ege"
region = "76"

[[sites]]
code = "0101"
kind = "exam-site"
time_zone = "Europe/Moscow"

[[sites]]
code = "0102"
kind = "exam-site"
time_zone = "Asia/Novosibirsk"

[[rooms]]
site = "0101"
code = "0001"

[[rooms]]
site = "0101"
code = "0002"

[[rooms]]
site = "0102"
code = "0001"
oral = true

[[participants]]
code = "P1"
site = "0101"
room = "0001"
seat = "1"
kit = 11

[[participants]]
code = "P2"
site = "0102"
room = "0001"
seat = "1"
kit = 12
"#;

/// One HTTP/1.1 request, the whole answer as text.
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A request the server stops reading may be cut off: what came back is the answer.
    let _ = sock.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut answer))
        .await
        .unwrap();
    String::from_utf8(answer).unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> String {
    http(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await
}

/// Debian's chromium, if installed (`.ci/run` installs it).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium); .ci/run installs it");
    }
    found
}

/// Runs headless chromium on `url` with `args`, killed after 90 s; (stdout, stderr).
fn run_chromium(exe: &str, profile: &Path, url: &str, args: &[&str]) -> (String, String) {
    let mut child = Command::new(exe)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args([
            "--disable-extensions",
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish on {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (reader.join().unwrap(), err_reader.join().unwrap())
}

/// Console messages chromium logged: the page has no script, so there must be none.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_center_shows_its_monitoring_page_in_a_real_browser() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let mut cfg = fx.register(&[(&token, "0101")]);
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let center = konvert_center::serve(&cfg).await.unwrap();
    let page_addr = center.metrics_addr.unwrap();
    let site = fx.enroll("0101", center.addr);
    // Room 0001's forms and blanks.
    site.seal_room("0001", 2, 30_000, 7);
    let forms_dir = site.dir.join("scans").join("0001-forms");
    konvert_devtools::rooms::write_room(&forms_dir, 8, 1, 20_000).unwrap();
    let forms = PacketRef {
        site: site.cfg.site.clone(),
        date: EXAM_DAY.parse().unwrap(),
        exam: ExamKind::Ege,
        room: "0001".parse().unwrap(),
        kind: PacketKind::Forms,
    };
    konvert_edge::seal_room(
        &site.cfg,
        &site.outbox,
        &site.signer,
        &forms_dir,
        forms,
        konvert_edge::cli::now_unix_ms(),
    )
    .unwrap();
    let opts = PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    };
    let report = push(&site.cfg, site.outbox.clone(), opts).await.unwrap();
    assert_eq!(report.delivered, 2);

    // The center as it serves today: no plan yet, so the page says so and lists 0101.
    let answer = get(page_addr, "/").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: text/html; charset=utf-8"), "{answer}");
    assert!(
        answer.contains("Content-Security-Policy: default-src 'none'"),
        "{answer}"
    );
    assert!(answer.contains("No exam-day plan is imported yet"), "{answer}");
    assert!(answer.contains("<td>0101</td>"), "{answer}");
    // HEAD answers like GET without the body; /metrics is still there; others are 404.
    let head = http(page_addr, b"HEAD /monitor HTTP/1.1\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(get(page_addr, "/metrics")
        .await
        .contains("konvert_packets_received_total"));
    assert!(get(page_addr, "/etc/passwd").await.starts_with("HTTP/1.1 404"));
    assert!(get(page_addr, "/monitor/site/9999").await.starts_with("HTTP/1.1 404"));
    // An endless request head is cut off at its bound; the page is served on.
    let hostile = http(
        page_addr,
        format!("GET /{} HTTP/1.1\r\n\r\n", "X".repeat(100_000)).as_bytes(),
    )
    .await;
    assert!(hostile.is_empty() || hostile.starts_with("HTTP/1.1 404"), "{hostile}");
    assert!(get(page_addr, "/").await.starts_with("HTTP/1.1 200 OK\r\n"));

    // The same center's inbox with the day's plan and the loader's answer to the forms.
    let (plan, _) = DayPlan::from_toml(PLAN).unwrap();
    let records = center.inbox.records().unwrap();
    let forms_record = records
        .iter()
        .find(|r| r.receipt.body.packet_id.ends_with("-forms"))
        .unwrap();
    let answers = vec![PacketAnswer {
        site: "0101".into(),
        packet_id: forms_record.receipt.body.packet_id.clone(),
        version: forms_record.receipt.body.version,
        digest: forms_record.receipt.body.digest,
        outcome: AnswerOutcome::Loaded,
        pages: 1,
        answered_at_unix_ms: konvert_edge::cli::now_unix_ms(),
    }];
    let source = MonitorSource::new(center.inbox.clone())
        .with_plans(Arc::new(move || vec![plan.clone()]))
        .with_answers(Arc::new(move || answers.clone()));
    let planned = konvert_center::monitor::serve("127.0.0.1:0".parse().unwrap(), center.metrics.clone(), source)
        .await
        .unwrap();
    let answer = get(planned, "/monitor").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // 0102 sent nothing: silent, listed before 0101.
    let (a, b) = (
        answer.find("id=\"site-0102\"").unwrap(),
        answer.find("id=\"site-0101\"").unwrap(),
    );
    assert!(a < b, "{answer}");

    let Some(exe) = chromium() else {
        center.shutdown().await;
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let url = format!("http://{planned}/monitor");
    let site_url = format!("http://{planned}/monitor/site/0101");
    let (exe2, profile, shot) = (exe, work.path().join("profile"), work.path().join("monitor.png"));
    let (shot2, url2, site_url2) = (shot.clone(), url.clone(), site_url.clone());
    let pdf = work.path().join("site.pdf");
    let pdf2 = pdf.clone();
    let (dom, logs, site_dom) = tokio::task::spawn_blocking(move || {
        let shot_arg = format!("--screenshot={}", shot2.display());
        let (_, shot_log) = run_chromium(exe2, &profile, &url2, &[&shot_arg, "--window-size=1280,2000"]);
        let (dom, dom_log) = run_chromium(exe2, &profile, &url2, &["--dump-dom"]);
        let (site_dom, site_log) = run_chromium(exe2, &profile, &site_url2, &["--dump-dom"]);
        // Printed as the shift chief would: the site's page to PDF, with the print stylesheet.
        let pdf_arg = format!("--print-to-pdf={}", pdf2.display());
        let (_, pdf_log) = run_chromium(exe2, &profile, &site_url2, &[&pdf_arg, "--no-pdf-header-footer"]);
        (dom, format!("{shot_log}\n{dom_log}\n{site_log}\n{pdf_log}"), site_dom)
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot from chromium: {e}\n{logs}"));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let printed = std::fs::read(&pdf).unwrap_or_else(|e| panic!("no PDF from chromium: {e}\n{logs}"));
    assert!(
        printed.starts_with(b"%PDF-") && printed.len() > 5_000,
        "{} bytes",
        printed.len()
    );
    let console = console_lines(&logs);
    assert!(console.is_empty(), "console messages: {console:#?}");
    // The browser built the page as served: every site, its rooms, no script.
    for text in ["0101", "0102", "silent", "ППЭ-13-03-У МАШ", "Completeness of packets"] {
        assert!(dom.contains(text), "{text} not in the DOM:\n{dom}");
    }
    assert!(!dom.to_ascii_lowercase().contains("<script"));
    assert!(site_dom.contains("id=\"site-0101\" open"), "{site_dom}");
    assert!(site_dom.contains("ППЭ-12-04МАШ"), "{site_dom}");
    if let Ok(keep) = std::env::var("KONVERT_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    center.shutdown().await;
}
