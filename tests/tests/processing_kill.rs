//! A kill -9 of processing loses nothing, and running it again changes nothing: the real
//! `konvert-center loader process` is killed at several points while it registers a day's
//! packets, run again to the end, and its records are compared with those of a run that
//! was never interrupted, on a copy of the same store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use konvert_crypto::token::TokenFile;
use konvert_edge::{push, seal_room, PushOptions};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{
    DayPlan, ExamKind, PacketKind, PacketRef, PageIdentity, PlanParticipant, PlanRoom, PlanSite, RoomId, SiteKind,
};
use konvert_records::{Records, SledRecords};
use konvert_tests::{on_time_day, CenterFixture, LAST_ZONE};

const PASSPHRASE: &str = "loader passphrase 2026";
const CENTER: &str = env!("CARGO_BIN_EXE_readme-konvert-center");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn loader(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(CENTER);
    c.arg("loader").args(args).arg("--config").arg(config);
    c.env("KONVERT_TEST_PIN", PASSPHRASE);
    c
}

fn process(config: &Path) -> Command {
    let token = config.parent().unwrap().join("loader/specialist.token");
    loader(
        config,
        &[
            "process",
            "--pin-env",
            "KONVERT_TEST_PIN",
            "--token",
            token.to_str().unwrap(),
        ],
    )
}

/// Outcomes, findings and answers without the times they were made.
fn state(records_dir: &Path) -> String {
    state_of(&SledRecords::open(&records_dir.join("records.sled")).unwrap())
}

fn state_of(r: &dyn Records) -> String {
    let mut packets = r.packets().unwrap();
    for p in &mut packets {
        p.registered_at_unix_ms = 0;
    }
    let mut findings = r.findings().unwrap();
    for f in &mut findings {
        f.first_seen_unix_ms = 0;
    }
    let mut answers = r.answers().unwrap();
    for a in &mut answers {
        a.answered_at_unix_ms = 0;
    }
    format!(
        "{packets:?}\n{:?}\n{:?}\n{findings:?}\n{answers:?}",
        r.pages().unwrap(),
        r.outcomes().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_processing_run_loses_nothing_and_the_next_run_changes_nothing() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let member = fx.issue_token("0101");
    let day = on_time_day();
    // A center specialist holds the loader key.
    let center_dir = fx.center_dir();
    std::fs::create_dir_all(center_dir.join("loader")).unwrap();
    let specialist = TokenFile::create_specialist(
        &center_dir.join("loader/specialist.token"),
        "SP-0001",
        "Кузнецова М. И.",
        PASSPHRASE,
        konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    fx.officers
        .lock()
        .unwrap()
        .issue_as(
            &specialist,
            konvert_crypto::registry::TokenRole::CenterSpecialist,
            &["0101"],
            &[&day],
            konvert_edge::cli::now_unix_ms(),
        )
        .unwrap();
    let unlocked = specialist.unlock(PASSPHRASE).unwrap();
    let mut cfg = fx.register_days(&[(&member, "0101")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    konvert_center::center_key::wrap_for_more(
        &registry,
        &[fx.loader_key()],
        &[konvert_center::center_key::Holder::File {
            token: Box::new(specialist),
            key: unlocked,
        }],
        &center_dir.join("loader"),
    )
    .unwrap();
    let mut site = fx.enroll("0101", center.addr);
    site.seal_for(&day);

    // Four rooms of twelve, forms and blanks, all sent.
    let rooms: Vec<RoomId> = (1..=4).map(|r| RoomId::new(&format!("{r:04}")).unwrap()).collect();
    let seats: Vec<(&RoomId, usize)> = rooms.iter().map(|r| (r, 12)).collect();
    let seating = synthetic_plan(&site.cfg.site, day.parse().unwrap(), ExamKind::Ege, &seats, 100);
    for (r, room) in rooms.iter().enumerate() {
        let (forms, blanks): (Vec<_>, Vec<_>) = room_pages(&seating, room, 1)
            .into_iter()
            .partition(|p| matches!(p, PageIdentity::Form(_)));
        for (kind, pages) in [(PacketKind::Forms, forms), (PacketKind::Blanks, blanks)] {
            let dir = fx.root.path().join("scans").join(format!("{room}-{}", kind.code()));
            let job = ScanJob {
                format: ScanFormat::TiffG4,
                pages_per_file: 4,
                degrade: true,
                dpi: 200,
                seed: r as u64,
            };
            write_pages(&pages, &dir, kind.code(), job).unwrap();
            let packet = PacketRef {
                site: site.cfg.site.clone(),
                date: day.parse().unwrap(),
                exam: ExamKind::Ege,
                room: room.clone(),
                kind,
            };
            seal_room(
                &site.cfg,
                &site.outbox,
                &site.signer,
                &dir,
                packet,
                konvert_edge::cli::now_unix_ms(),
            )
            .unwrap();
        }
    }
    let opts = PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    };
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts).await.unwrap().delivered, 8);
    center.shutdown().await;

    let plan = DayPlan {
        date: day.parse().unwrap(),
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: false,
        sites: vec![PlanSite {
            code: site.cfg.site.clone(),
            kind: SiteKind::ExamSite,
            time_zone: LAST_ZONE.into(),
        }],
        rooms: rooms
            .iter()
            .map(|r| PlanRoom {
                site: site.cfg.site.clone(),
                code: r.clone(),
                oral: false,
            })
            .collect(),
        participants: seating
            .participants
            .iter()
            .map(|p| PlanParticipant {
                code: p.code.clone(),
                site: site.cfg.site.clone(),
                room: p.room.clone(),
                seat: p.seat.clone(),
                kit: p.kit,
                consent: true,
            })
            .collect(),
        members: vec![],
    };
    let plan_file = fx.root.path().join("plan.toml");
    std::fs::write(&plan_file, plan.to_toml().unwrap()).unwrap();

    // The same center folder twice: one run is killed again and again, one is not.
    let killed = fx.root.path().join("killed");
    let whole = fx.root.path().join("whole");
    copy_dir(&center_dir, &killed);
    copy_dir(&center_dir, &whole);
    let config_of = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("center.toml")).unwrap();
        let text = text.replace(center_dir.to_str().unwrap(), dir.to_str().unwrap());
        std::fs::write(dir.join("center.toml"), text).unwrap();
        dir.join("center.toml")
    };
    let (killed_cfg, whole_cfg) = (config_of(&killed), config_of(&whole));
    for cfg in [&killed_cfg, &whole_cfg] {
        let out = loader(cfg, &["import-plan"]).arg(&plan_file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    let started = std::time::Instant::now();
    let out = process(&whole_cfg).output().unwrap();
    let whole_run = started.elapsed();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = state(&whole.join("records"));

    // The same day with the records on PostgreSQL (center.toml's `records_url`): the same
    // records, through the same commands.
    if let Some(cluster) = konvert_records::test_cluster::TestCluster::shared() {
        let on_pg = fx.root.path().join("on-postgres");
        copy_dir(&center_dir, &on_pg);
        let pg_cfg = config_of(&on_pg);
        let url = cluster.database("processing_kill");
        let text = std::fs::read_to_string(&pg_cfg).unwrap();
        std::fs::write(&pg_cfg, format!("records_url = \"{url}\"\n{text}")).unwrap();
        let out = loader(&pg_cfg, &["import-plan"]).arg(&plan_file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = process(&pg_cfg).output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let queue = loader(&pg_cfg, &["queue"]).output().unwrap();
        assert!(queue.status.success(), "{}", String::from_utf8_lossy(&queue.stderr));
        assert!(!on_pg.join("records/records.sled").exists(), "nothing went to sled");
        let pg = konvert_records::PgRecords::connect(&url).unwrap();
        assert_eq!(state_of(&pg), expected);
    }

    let mut kills = 0;
    // Kills at growing waits until a run finishes by itself: how long a run takes swings
    // with the machine's load (a fixed set of waits was all too long on a fast moment), and
    // each killed run leaves less to do.
    for wait_ms in [
        10u64, 20, 35, 50, 70, 95, 125, 160, 200, 250, 320, 400, 500, 650, 850, 1100,
    ] {
        let mut child = process(&killed_cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
            child.wait().unwrap();
        } else {
            break;
        }
    }
    eprintln!("{kills} kill(s) mid-run; a whole run took {whole_run:?}");
    assert!(
        kills >= 2,
        "processing finished before it could be killed ({kills} kill(s); a whole run took {whole_run:?})"
    );
    let out = process(&killed_cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&killed.join("records")), expected);
    // Nothing in clear is left behind by the killed runs' registrations once done.
    let scratch = killed.join("records/scratch");
    assert!(!scratch.exists() || std::fs::read_dir(&scratch).unwrap().next().is_none());

    // And once more: nothing changes.
    let out = process(&killed_cfg).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 packet version(s) registered now, 8 before"), "{text}");
    assert!(text.contains("0 new finding(s); 0 answer(s)"), "{text}");
    assert_eq!(state(&killed.join("records")), expected);

    // A mistyped records folder is an error, not an empty queue; closing says what is
    // missing (no site sent its ППЭ-18МАШ here).
    let out = loader(&killed_cfg, &["queue", "--records", "no-such-records"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there are no records"),
        "{out:?}"
    );
    assert!(!killed.join("no-such-records").exists());
    let out = loader(
        &killed_cfg,
        &["close", "--date", &day, "--exam", "ege", "--by", "Белова"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ППЭ-18МАШ is not scanned"),
        "{err}"
    );
}
