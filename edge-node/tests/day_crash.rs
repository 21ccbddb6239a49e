#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `konvert-edge day` killed with SIGKILL at random moments between intake and sealing,
//! then restarted: every scan is sealed exactly once, in the room it belongs to, and no
//! packet is sealed twice. Real binary, real sled journal and outbox, real scans.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use konvert_center::provision::{self, CenterFacts};
use konvert_crypto::token::TokenFile;
use konvert_edge::intake::Journal;
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{read_archive, ExamKind, PageIdentity, RoomId};
use konvert_replication::Outbox;
use rand::{Rng, SeedableRng};

const PIN: &str = "314159";
const EDGE: &str = env!("CARGO_BIN_EXE_konvert-edge");

struct Site {
    _root: tempfile::TempDir,
    toml: PathBuf,
    hot: PathBuf,
    data: PathBuf,
    recipient_key: konvert_crypto::RecipientSecretKey,
}

/// A site enrolled at a (not running) center, with a seating plan of two rooms of four
/// and a hot folder. `--no-push` runs need no center.
fn site() -> (Site, konvert_exam::SeatingPlan) {
    let root = tempfile::tempdir().unwrap();
    let center_dir = root.path().join("center");
    let (init, recipient) =
        provision::init_center_with_key(&center_dir, "center.konvert", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let facts = CenterFacts {
        address: "127.0.0.1:9".into(),
        name: "center.konvert".into(),
        recipient_public: recipient.public_key(),
        receipt_public: init.receipt_public,
    };
    let dir = root.path().join("site");
    let toml = provision::enroll_station(&center_dir, "0101", &facts, &dir).unwrap();
    TokenFile::create(
        &dir.join("member.token"),
        "TK-1",
        "member",
        PIN,
        konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    let rooms = [RoomId::new("0001").unwrap(), RoomId::new("0002").unwrap()];
    let plan = synthetic_plan(
        &"0101".parse().unwrap(),
        "2026-06-01".parse().unwrap(),
        ExamKind::Ege,
        &[(&rooms[0], 4), (&rooms[1], 4)],
        5_000_000,
    );
    std::fs::write(dir.join("plan.toml"), toml::to_string(&plan).unwrap()).unwrap();
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(
        "\n[day]\nhot_folder = \"scans\"\nseating_plan = \"plan.toml\"\nsettle_ms = 150\n\
         incomplete_wait_ms = 1000\nquiet_seconds = 1\n",
    );
    std::fs::write(&toml, text).unwrap();
    let hot = dir.join("scans");
    std::fs::create_dir_all(&hot).unwrap();
    let data = dir.join("data");
    (
        Site {
            _root: root,
            toml,
            hot,
            data,
            recipient_key: recipient,
        },
        plan,
    )
}

fn edge(site: &Site, args: &[&str]) -> Command {
    let mut c = Command::new(EDGE);
    c.args(args)
        .arg("--config")
        .arg(&site.toml)
        .env("KONVERT_PIN", PIN)
        .env("KONVERT_LOG", "error");
    c
}

fn start_day(site: &Site, until_idle: Option<&str>) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = edge(site, &["day", "--no-push", "--pin-env", "KONVERT_PIN"]);
    if let Some(idle) = until_idle {
        cmd.args(["--until-idle", idle]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The pages of every sealed envelope, opened with the center's key; (packet id, pages).
fn sealed_pages(site: &Site) -> Vec<(String, Vec<PageIdentity>)> {
    let outbox = Outbox::open(&site.data).unwrap();
    let recipient = &site.recipient_key;
    let signer = TokenFile::read(&site.toml.parent().unwrap().join("member.token"))
        .unwrap()
        .public;
    let mut all = Vec::new();
    for entry in outbox.entries().unwrap() {
        let env = std::fs::File::open(outbox.envelope_path(&entry)).unwrap();
        let mut archive = Vec::new();
        konvert_crypto::envelope::open(env, recipient, &|_| Some(signer), &mut archive).unwrap();
        let out = tempfile::tempdir().unwrap();
        let manifest = read_archive(&archive[..], out.path()).unwrap();
        let pages = manifest
            .room
            .unwrap()
            .pages
            .iter()
            .filter_map(|p| p.identity().cloned())
            .collect();
        all.push((format!("{} v{}", entry.offer.packet_id, entry.offer.version), pages));
    }
    all
}

#[test]
fn day_killed_between_intake_and_seal_then_restarted_seals_every_scan_exactly_once() {
    let (site, plan) = site();
    let rooms: Vec<RoomId> = plan.rooms().keys().map(|r| (*r).clone()).collect();
    // Room 0001's attendance is known up front, so it seals as soon as it is quiet; room
    // 0002's is not, so its scans sit taken but unsealed — the window the crash hits.
    assert!(edge(&site, &["attendance", "--room", "0001", "--present", "4"])
        .status()
        .unwrap()
        .success());
    let mut expected: Vec<PageIdentity> = Vec::new();
    let mut batches = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        let pages = room_pages(&plan, room, 0);
        expected.extend(pages.iter().cloned());
        let (forms, blanks): (Vec<_>, Vec<_>) = pages.into_iter().partition(|p| matches!(p, PageIdentity::Form(_)));
        batches.push((format!("room{room}-forms"), forms, r as u64));
        batches.push((format!("room{room}-blanks"), blanks, 10 + r as u64));
    }
    let job = |seed| ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file: 3,
        degrade: false,
        dpi: 150,
        seed,
    };

    // Three runs, each SIGKILLed at a random moment while scans keep arriving.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut batches = batches.into_iter();
    for run in 0..3 {
        let (mut child, lines) = start_day(&site, None);
        // This run's share of the scanner's output lands while the day runs.
        for (prefix, pages, seed) in batches.by_ref().take(if run < 2 { 1 } else { 2 }) {
            write_pages(&pages, &site.hot, &prefix, job(seed)).unwrap();
        }
        let mut seen = Vec::new();
        if run == 2 {
            // The last run dies only after room 0002's scans were taken: they are in the
            // journal, unsealed, when the process disappears.
            let waited = Instant::now();
            while !seen.iter().any(|l: &String| l.starts_with("taken room0002")) {
                assert!(
                    waited.elapsed() < Duration::from_secs(60),
                    "room 0002 never taken: {seen:?}"
                );
                if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
                    seen.push(line);
                }
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.gen_range(200..2500)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        seen.extend(lines.try_iter());
        eprintln!("run {run}: {seen:?}");
    }
    {
        let journal = Journal::open(&site.data).unwrap();
        let taken = journal.files().unwrap();
        assert!(
            taken.iter().any(|f| f.original.starts_with("room0002")),
            "nothing of room 0002 taken"
        );
        let outbox = Outbox::open(&site.data).unwrap();
        let sealed: Vec<String> = outbox
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.offer.packet_id)
            .collect();
        assert!(
            !sealed.iter().any(|p| p.contains("-0002-")),
            "room 0002 sealed without attendance: {sealed:?}"
        );
    }
    for (prefix, pages, seed) in batches {
        write_pages(&pages, &site.hot, &prefix, job(seed)).unwrap();
    }

    // The operator enters room 0002's attendance and runs the day to the end.
    assert!(edge(&site, &["attendance", "--room", "0002", "--present", "4"])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let (mut child, lines) = start_day(&site, Some("2"));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "day failed: {:?}",
                lines.try_iter().collect::<Vec<_>>()
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("day never went idle: {:#?}", lines.try_iter().collect::<Vec<_>>());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every page is in exactly one sealed packet, each packet sealed once (version 1:
    // nothing changed after it was sealed, so no second version), in its own room.
    let sealed = sealed_pages(&site);
    let ids: Vec<&str> = sealed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(sealed.len(), 4, "{ids:?}");
    assert!(ids.iter().all(|id| id.ends_with(" v1")), "{ids:?}");
    let mut got: Vec<String> = sealed
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.to_string()))
        .collect();
    let mut want: Vec<String> = expected.iter().map(|p| p.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for (id, pages) in &sealed {
        let room = if id.contains("-0001-") { "0001" } else { "0002" };
        for p in pages {
            if let PageIdentity::Form(f) = p {
                assert_eq!(f.room.as_str(), room, "{id}: {p}");
            }
        }
    }
    assert_no_files_left_behind(&site.data);
}

/// No half-written envelope survives a crash.
fn assert_no_files_left_behind(data: &Path) {
    let envelopes = data.join("envelopes");
    let parts: Vec<_> = std::fs::read_dir(&envelopes)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
}
