use super::*;

use crate::test_support::PLAN;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_import_keeps_no_row_without_consent_and_says_how_many_were_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let desk = PlanDesk::open(&dir.path().join("data")).unwrap();
    let file = write(dir.path(), "plan.toml", PLAN);
    let imported = desk.import(&file, "A. Ivanova").unwrap();
    assert_eq!(imported.without_consent, 1);
    assert_eq!((imported.sites, imported.rooms, imported.participants), (2, 3, 2));
    assert!(!imported.replaced);
    let stored = std::fs::read_to_string(&imported.stored).unwrap();
    assert!(
        !stored.contains("REFUSED-P2") && !stored.contains("consent = false"),
        "{stored}"
    );
    let plans = desk.plans().unwrap();
    assert_eq!(plans.len(), 1);
    assert!(plans[0].participants.iter().all(|p| p.code != "REFUSED-P2"));
    // The same day and exam again replaces it; another exam is a plan of its own.
    assert!(desk.import(&file, "A. Ivanova").unwrap().replaced);
    let oge = write(
        dir.path(),
        "oge.toml",
        &PLAN.replace("exam = \"ege\"", "exam = \"oge\""),
    );
    desk.import(&oge, "A. Ivanova").unwrap();
    let plans = desk.plans().unwrap();
    assert_eq!(
        plans.iter().map(|p| p.exam).collect::<Vec<_>>(),
        [ExamKind::Ege, ExamKind::Oge]
    );
}

#[test]
fn a_plan_with_errors_is_refused_naming_the_file_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let desk = PlanDesk::open(&dir.path().join("data")).unwrap();
    let cases = [
        (
            "no-zone.toml",
            PLAN.replace("Asia/Yekaterinburg", "Mars/Olympus"),
            "Mars/Olympus",
        ),
        (
            "stray-room.toml",
            PLAN.replace("site = \"0202\"\ncode = \"0001\"", "site = \"0909\"\ncode = \"0001\""),
            "0909",
        ),
        ("not-toml.toml", "date = 2026-06-01 [[".to_owned(), "line"),
        ("unknown-field.toml", format!("{PLAN}\nsurprise = 1\n"), "surprise"),
    ];
    for (name, text, says) in cases {
        let file = write(dir.path(), name, &text);
        let err = desk.import(&file, "A. Ivanova").unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(err.contains("fix the file"), "{name}: {err}");
    }
    let err = desk
        .import(&dir.path().join("missing.toml"), "A. Ivanova")
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.toml") && err.contains("cannot be read"), "{err}");
    assert!(desk.plans().unwrap().is_empty());
    assert!(!desk.audit_pending());
}

#[test]
fn the_seating_plan_issued_is_exactly_what_the_edge_reads() {
    let dir = tempfile::tempdir().unwrap();
    let desk = PlanDesk::open(&dir.path().join("data")).unwrap();
    desk.import(&write(dir.path(), "plan.toml", PLAN), "A. Ivanova")
        .unwrap();
    let site: SiteId = "0101".parse().unwrap();
    let seating = desk.seating(&site, None, None).unwrap();
    let out = dir.path().join("seating-0101.toml");
    write_seating(&seating, &out).unwrap();
    // Read as the edge reads it (edge-node/src/config.rs).
    let text = keyfile::read_text_bounded(&out, keyfile::MAX_PLAN_BYTES).unwrap();
    let read = SeatingPlan::from_toml(&text).unwrap();
    assert_eq!(read, desk.plans().unwrap()[0].seating(&site).unwrap());
    assert_eq!(read.participants.len(), 1);
    assert_eq!(read.participants[0].code, "P1");
    // A site in no plan, and a site in two, say what to do.
    let err = desk
        .seating(&"0303".parse().unwrap(), None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("0303") && err.contains("plan import"), "{err}");
    let next = write(dir.path(), "next.toml", &PLAN.replace("2026-06-01", "2026-06-04"));
    desk.import(&next, "A. Ivanova").unwrap();
    let err = desk.seating(&site, None, None).unwrap_err().to_string();
    assert!(err.contains("--date"), "{err}");
    let later = desk.seating(&site, Some("2026-06-04".parse().unwrap()), None).unwrap();
    assert_eq!(later.date.to_string(), "2026-06-04");
}

#[test]
fn the_plans_time_zone_comes_first_and_the_config_is_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let desk = PlanDesk::open(&dir.path().join("data")).unwrap();
    let packet = |site: &str| PacketRef {
        site: site.parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        room: "0001".parse().unwrap(),
        kind: konvert_exam::PacketKind::Blanks,
    };
    assert_eq!(desk.site_zone("0202", packet("0202").date, ExamKind::Ege), None);
    desk.import(&write(dir.path(), "plan.toml", PLAN), "A. Ivanova")
        .unwrap();
    let zone = desk.site_zone("0202", packet("0202").date, ExamKind::Ege).unwrap();
    assert_eq!(zone.name(), "Asia/Yekaterinburg");
    // Another day's packet from a planned site: the site's zone does not change.
    let other_day: ExamDate = "2026-06-09".parse().unwrap();
    assert_eq!(
        desk.site_zone("0202", other_day, ExamKind::Oge).unwrap().name(),
        "Asia/Yekaterinburg"
    );
    assert_eq!(desk.site_zone("0303", other_day, ExamKind::Ege), None);
    let expected = desk.expected_sites().unwrap();
    assert_eq!(expected.len(), 2);
    assert_eq!(expected[0].site.code.as_str(), "0101");
    assert_eq!(expected[0].rooms.len(), 2);
    assert_eq!(expected[0].seated_rooms, vec!["0001".parse::<RoomId>().unwrap()]);
    assert_eq!(expected[1].zone().name(), "Asia/Yekaterinburg");
}

#[test]
fn an_import_reaches_the_audit_log_once_whoever_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let desk = PlanDesk::open(&dir.path().join("data")).unwrap();
    desk.import(&write(dir.path(), "plan.toml", PLAN), "A. Ivanova")
        .unwrap();
    assert!(desk.audit_pending());
    let log_path = dir.path().join("audit.log");
    let audit = AuditLog::open(&log_path, None, 0).unwrap();
    assert_eq!(desk.record_pending(&audit).unwrap(), 1);
    assert_eq!(desk.record_pending(&audit).unwrap(), 0, "recorded once");
    assert!(!desk.audit_pending());
    assert_eq!(audit.last_seq().unwrap(), 1);
    let log = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned();
    assert!(log.contains(PLAN_IMPORT) && log.contains("A. Ivanova"), "{log}");
    assert!(log.contains("1 row(s) without consent left out"), "{log}");
    assert!(
        !log.contains("REFUSED-P2"),
        "nothing of the refused row reaches the log"
    );
}
