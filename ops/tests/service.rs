#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The center as a service, with the real binary: it tells systemd when it is ready,
//! answers `status` while it serves (it holds the inbox's lock), and one SIGTERM or SIGINT
//! stops it cleanly: a log line, exit 0.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use konvert_center::provision;
use konvert_devtools::quick_authority::QuickAuthority;
use konvert_edge::cli::now_unix_ms;

const KONVERT: &str = env!("CARGO_BIN_EXE_konvert");

struct Center {
    _root: tempfile::TempDir,
    config: std::path::PathBuf,
    notify: std::path::PathBuf,
    systemd: UnixDatagram,
}

fn center() -> Center {
    let root = tempfile::tempdir().unwrap();
    let (init, recipient) = provision::init_center_with_key(
        &root.path().join("center"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap();
    let mut officers = QuickAuthority::new(&init.config, recipient.public_key(), now_unix_ms()).unwrap();
    officers.publish(now_unix_ms()).unwrap();
    let notify = root.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    Center {
        config: init.config_path,
        notify,
        systemd,
        _root: root,
    }
}

/// `konvert center serve`, as systemd starts it; every line it writes arrives on the channel.
fn serve(c: &Center, extra: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(KONVERT)
        .args(extra)
        .args(["center", "serve", "--config"])
        .arg(&c.config)
        .env("NOTIFY_SOCKET", &c.notify)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    (child, rx)
}

fn notified(c: &Center) -> String {
    let mut buf = [0u8; 512];
    let n = c
        .systemd
        .recv(&mut buf)
        .expect("nothing sent to NOTIFY_SOCKET within 30 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn stops_on_one(sig: &str, named: &str) {
    let c = center();
    let (mut child, lines) = serve(&c, &[]);
    let ready = notified(&c);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    // Beside the serving center, status works, as text and as JSON.
    let out = Command::new(KONVERT)
        .args(["center", "status", "--json", "--config"])
        .arg(&c.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["packets"].as_array().unwrap().is_empty(), "{status}");
    let out = Command::new(KONVERT)
        .args(["center", "status", "--config"])
        .arg(&c.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 packet version(s) stored"));

    assert!(Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "center still running 10 s after one {sig}: {:#?}",
                lines.try_iter().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(status.success(), "exit {status:?} after {sig}: {seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("center stopped") && l.contains(named)),
        "no line saying the center stopped: {seen:#?}"
    );
    assert_eq!(notified(&c), "STOPPING=1");
    // Not a terminal: no colour codes in the log.
    assert!(
        !seen.iter().any(|l| l.contains('\x1b')),
        "escape codes in the log: {seen:#?}"
    );
}

/// `--log-format json`: every log line is one JSON object, the stop line among them.
#[test]
fn logs_as_json_lines() {
    let c = center();
    let (mut child, lines) = serve(&c, &["--log-format", "json"]);
    assert!(notified(&c).starts_with("READY=1"));
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    let logs: Vec<serde_json::Value> = lines
        .try_iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("center stopped"))
            && l["fields"]["signal"] == "SIGTERM"),
        "{logs:#?}"
    );
}

#[test]
fn one_sigterm_stops_the_center_cleanly() {
    stops_on_one("-TERM", "SIGTERM");
}

#[test]
fn one_sigint_stops_the_center_cleanly() {
    stops_on_one("-INT", "SIGINT");
}

/// A relay started with `konvert edge relay` stops on one SIGTERM the same way.
#[test]
fn one_sigterm_stops_a_relay_cleanly() {
    let c = center();
    let center_dir = c.config.parent().unwrap().to_owned();
    let out_dir = c._root.path().join("relay-mouo-01");
    let enrolled = Command::new(KONVERT)
        .args(["keys", "enroll-relay", "--center"])
        .arg(&center_dir)
        .args([
            "--relay",
            "mouo-01",
            "--carry",
            "0101",
            "--listen",
            "127.0.0.1:0",
            "--address",
            "127.0.0.1:9",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    let mut child = Command::new(KONVERT)
        .args(["edge", "relay", "--config"])
        .arg(out_dir.join("relay.toml"))
        .env("NOTIFY_SOCKET", &c.notify)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = notified(&c);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("relay still running 10 s after one SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("relay stopped by SIGTERM"));
    assert_eq!(notified(&c), "STOPPING=1");
}

/// The shipped systemd units start commands that exist with the flags they give, wait for
/// readiness, and carry the hardening the README promises.
#[test]
fn the_systemd_units_start_real_commands_hardened() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    enum Bin {
        #[command(name = "konvert-center", subcommand)]
        Center(konvert_center::cli::CenterCommand),
        #[command(name = "konvert-edge", subcommand)]
        Edge(konvert_edge::cli::EdgeCommand),
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for (unit, bin) in [
        ("konvert-center.service", "konvert-center"),
        ("konvert-relay@.service", "konvert-edge"),
        ("konvert-day@.service", "konvert-edge"),
    ] {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for needed in [
            "Type=notify",
            "KillSignal=SIGTERM",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "CapabilityBoundingSet=",
        ] {
            assert!(lines.contains(&needed), "{unit} lacks {needed}");
        }
        let exec = lines
            .iter()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{unit} has no ExecStart"));
        let args: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(args[0], format!("/usr/local/bin/{bin}"), "{unit}");
        let mut argv = vec!["units", bin];
        argv.extend(&args[1..]);
        let parsed = Bin::try_parse_from(&argv).unwrap_or_else(|e| panic!("{unit}: {exec}: {e}"));
        let serves = matches!(
            parsed,
            Bin::Center(konvert_center::cli::CenterCommand::Serve { .. })
                | Bin::Edge(konvert_edge::cli::EdgeCommand::Relay { .. })
                | Bin::Edge(konvert_edge::cli::EdgeCommand::Day { .. })
        );
        assert!(serves, "{unit} does not start a service: {exec}");
    }
}

/// SIGTERM while a packet is arriving: the center takes no new stream but lets the packet
/// finish, receipts it, then exits 0 saying nothing was left unfinished.
#[test]
fn a_stopping_center_lets_the_packet_in_flight_finish() {
    use konvert_devtools::bench::{Rig, BENCH_PIN};
    let root = tempfile::tempdir().unwrap();
    let rig = Rig::new(root.path(), false).unwrap();
    // 6 MB paced to 8 Mbit/s: several seconds on the wire.
    let mut text = std::fs::read_to_string(&rig.site_toml).unwrap();
    text.push_str("\n[push]\nlink_mbit = 8.0\n");
    std::fs::write(&rig.site_toml, text).unwrap();
    let cfg = konvert_edge::SiteConfig::load(&rig.site_toml).unwrap();
    let scans = root.path().join("scans");
    konvert_devtools::rooms::write_random_file(&scans, "scan.bin", 1, 6_000_000).unwrap();
    let outbox = konvert_replication::Outbox::open(&cfg.data_dir).unwrap();
    let signer = konvert_crypto::token::TokenFile::read(cfg.token_file().unwrap())
        .unwrap()
        .unlock(BENCH_PIN)
        .unwrap();
    konvert_edge::seal_room(
        &cfg,
        &outbox,
        &signer,
        &scans,
        rig.packet("0001").unwrap(),
        now_unix_ms(),
    )
    .unwrap();
    drop(outbox);

    let notify = root.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let c = Center {
        _root: tempfile::tempdir().unwrap(),
        config: rig.init.config_path.clone(),
        notify,
        systemd,
    };
    let (mut center, lines) = serve(&c, &[]);
    assert!(notified(&c).starts_with("READY=1"));
    let push = Command::new(KONVERT)
        .args(["edge", "push", "--max-wait", "60", "--config"])
        .arg(&rig.site_toml)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop once the packet is on its way: its staging file at the center has bytes.
    let staging = rig.init.config.data_dir.join("staging");
    let arriving = || {
        std::fs::read_dir(&staging)
            .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
            .unwrap_or(false)
    };
    let mut seen = Vec::new();
    let start = Instant::now();
    while !arriving() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the packet never started: {seen:#?}"
        );
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(20)) {
            seen.push(l);
        }
    }
    assert!(Command::new("kill")
        .args(["-TERM", &center.id().to_string()])
        .status()
        .unwrap()
        .success());
    let pushed = push.wait_with_output().unwrap();
    let status = center.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    seen.extend(lines.try_iter());
    let push_out = String::from_utf8_lossy(&pushed.stdout);
    assert!(status.success(), "{seen:#?}");
    assert!(
        pushed.status.success() && push_out.contains("1 packet(s) delivered"),
        "{push_out}\n{}\ncenter: {seen:#?}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(
        seen.iter().any(|l| l.contains("stopping") && l.contains("in_flight=1")),
        "the packet was not in flight at the stop: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("center stopped") && l.contains("unfinished=0")),
        "{seen:#?}"
    );
}
