//! The center knows what to expect: an exam day's plan imported while the center serves
//! (recorded in its audit log by the serving center, rows without consent left out), the
//! seating plan issued from it in the format the site reads, the plan's time zone deciding
//! lateness before center.toml's, every packet's signed description kept on receipt, and
//! every planned site on /metrics — the one that never connects too.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use konvert_center::plan_cli::{plan_command, PlanAction};
use konvert_edge::cli::now_unix_ms;
use konvert_edge::{push, PushOptions};
use konvert_exam::{ExamKind, PacketKind, PacketRef, SeatingPlan, SiteZone};
use konvert_tests::{on_time_day, CenterFixture};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A fixed-offset zone where, on `day`, it is now past 17:30 (and before 23:59): the
/// blanks window is closed and the day still on — the westernmost such zone, so the one
/// with the most time left.
fn evening_zone(day: konvert_exam::ExamDate) -> SiteZone {
    let now = now_unix_ms() as i64;
    (-12..=14)
        .map(|k: i32| {
            let name = match k {
                0 => "Etc/GMT".to_owned(),
                k if k > 0 => format!("Etc/GMT-{k}"),
                k => format!("Etc/GMT+{}", -k),
            };
            SiteZone::new(&name).unwrap()
        })
        .find(|z| z.local_unix_ms(day, 17, 30).unwrap() < now && now < z.deadline_unix_ms(day).unwrap())
        .expect("some zone is in the evening of the day UTC-12 is in")
}

fn plan_text(day: &str, evening: &str) -> String {
    format!(
        r#"
date = "{day}"
exam = "ege"
region = "76"

[[sites]]
code = "0101"
kind = "exam-site"
time_zone = "{evening}"

[[sites]]
code = "0303"
kind = "school"
time_zone = "{evening}"

[[rooms]]
site = "0101"
code = "0001"

[[rooms]]
site = "0101"
code = "0002"

[[rooms]]
site = "0303"
code = "0001"

[[participants]]
code = "P-1"
site = "0101"
room = "0001"
seat = "1А"
kit = 1001

[[participants]]
code = "NO-CONSENT-7"
site = "0101"
room = "0001"
seat = "1Б"
kit = 1002
consent = false

[[participants]]
code = "P-3"
site = "0303"
room = "0001"
seat = "1А"
kit = 1003
"#
    )
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_imported_while_serving_decides_zones_issues_seating_and_every_planned_site_stays_on_metrics() {
    let day = on_time_day();
    let date: konvert_exam::ExamDate = day.parse().unwrap();
    let evening = evening_zone(date);
    let fx = CenterFixture::new(loopback());
    let token = fx.issue_token("0101");
    let mut cfg = fx.register_days(&[(&token, "0101")], &[&day]);
    // center.toml puts every site where this exam day is long over: without the plan's
    // zone (where it is evening, still on), every packet would be judged late.
    cfg.time_zone = SiteZone::new("Etc/GMT-14").unwrap();
    cfg.metrics_listen = Some(loopback());
    let config_path = fx.root.path().join("center-test.toml");
    cfg.save(&config_path).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let metrics_addr = center.metrics_addr.unwrap();

    // The plan is imported through the command, while the center serves.
    let plan_file = fx.root.path().join("plan-from-ris.toml");
    std::fs::write(&plan_file, plan_text(&day, evening.name())).unwrap();
    let (c, p) = (config_path.clone(), plan_file.clone());
    tokio::task::spawn_blocking(move || {
        plan_command(PlanAction::Import {
            config: c,
            plan: p,
            operator: "A. Ivanova".into(),
        })
    })
    .await
    .unwrap()
    .unwrap();
    let stored = std::fs::read_dir(cfg.data_dir.join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "toml"))
        .unwrap();
    let kept = std::fs::read_to_string(&stored).unwrap();
    assert!(!kept.contains("NO-CONSENT-7"), "{kept}");

    // The site's seating plan, issued from it, is what the site's station reads.
    let seating_file = fx.root.path().join("seating-0101.toml");
    let (c, s) = (config_path.clone(), seating_file.clone());
    tokio::task::spawn_blocking(move || {
        plan_command(PlanAction::Seating {
            config: c,
            site: "0101".into(),
            date: None,
            exam: None,
            out: s,
        })
    })
    .await
    .unwrap()
    .unwrap();
    let mut site = fx.enroll("0101", center.addr);
    site.seal_for(&day);
    // The site's own config names the file, and the station reads it as on its exam day.
    let site_toml = site.dir.join("site.toml");
    let mut text = std::fs::read_to_string(&site_toml).unwrap();
    text.push_str(&format!(
        "\n[day]\nhot_folder = \"hot\"\nseating_plan = {:?}\n",
        seating_file.display().to_string()
    ));
    std::fs::write(&site_toml, text).unwrap();
    std::fs::create_dir_all(site.dir.join("hot")).unwrap();
    let read = konvert_edge::config::SiteConfig::load(&site_toml).unwrap();
    let seating: SeatingPlan = read.day.as_ref().unwrap().plan().unwrap();
    assert_eq!(seating.participants.len(), 1);
    assert_eq!(seating.participants[0].code, "P-1");
    assert_eq!(seating.date, date);

    // Site 0101 sends its one seated room; 0303 never connects.
    let entry = site.seal_room("0001", 2, 10_000, 3);
    let pushed = push(
        &site.cfg,
        site.outbox.clone(),
        PushOptions {
            max_wait: Duration::from_secs(60),
            ..PushOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(pushed.delivered, 1);
    let record = center.inbox.lookup(&entry.offer.packet_id, 1).unwrap().unwrap();
    assert!(!record.late, "judged in the plan's zone, not center.toml's");
    assert_eq!(
        record.packet,
        Some(PacketRef {
            site: "0101".parse().unwrap(),
            date,
            exam: ExamKind::Ege,
            room: "0001".parse().unwrap(),
            kind: PacketKind::Blanks,
        })
    );

    // /metrics, as Prometheus scrapes it, once the watch has looked since the delivery.
    let until = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = konvert_devtools::demo::scrape(metrics_addr).await.unwrap();
        if value(&text, "konvert_site_rooms_outstanding{site=\"0101\"}") == Some(0.0) {
            break text;
        }
        assert!(Instant::now() < until, "the watch never saw the delivery:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let risk = |site: &str| value(&text, &format!("konvert_site_deadline_risk{{site=\"{site}\"}}"));
    assert_eq!(risk("0101"), Some(0.0), "{text}");
    // Never connected, past 17:30 where it is, a seated room without blanks: at risk (or,
    // in its last half hour, will miss) — shown although it never said a word.
    assert!(risk("0303").is_some_and(|r| r >= 1.0), "{text}");
    assert_eq!(value(&text, "konvert_site_rooms_outstanding{site=\"0303\"}"), Some(1.0));
    assert!(
        value(&text, "konvert_site_silence_seconds{site=\"0303\"}").is_some_and(|s| s > 0.0),
        "{text}"
    );
    assert!(
        value(&text, "konvert_site_silence_seconds{site=\"0101\"}").is_some(),
        "{text}"
    );
    assert_eq!(
        value(&text, "konvert_delivery_latency_seconds_count{site=\"0101\"}"),
        Some(1.0),
        "{text}"
    );
    // It is past 17:30 where 0101 is: its blanks are flagged (and still on time).
    assert_eq!(
        value(&text, "konvert_blanks_after_window_total{site=\"0101\"}"),
        Some(1.0),
        "{text}"
    );
    for family in [
        "konvert_blanks_after_window_total",
        "konvert_journals_after_window_total",
    ] {
        assert_eq!(value(&text, &format!("{family}{{site=\"0303\"}}")), Some(0.0), "{text}");
    }
    // The same, for the monitoring page: every planned site, the silent one too.
    let watched = center.site_watch.sites();
    let never = watched.iter().find(|w| w.site == "0303").unwrap();
    assert_eq!((never.rooms_outstanding, never.connected), (1, false));
    assert!(watched.iter().any(|w| w.site == "0101" && w.rooms_outstanding == 0));
    center.shutdown().await;

    // The serving center wrote the import to its audit log; nothing of the refused row.
    let log = String::from_utf8_lossy(&std::fs::read(cfg.data_dir.join("audit.log")).unwrap()).into_owned();
    assert!(log.contains("plan.import") && log.contains("A. Ivanova"), "{log}");
    assert!(log.contains("1 row(s) without consent left out"), "{log}");
    assert!(!log.contains("NO-CONSENT-7"));
}
