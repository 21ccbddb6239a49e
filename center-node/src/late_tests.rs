use super::*;
use konvert_exam::ExamKind;

/// `"YYYY-MM-DDTHH:MMZ"` in Unix ms.
fn utc_ms(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<u8>().unwrap();
    let year: i32 = s[..4].parse().unwrap();
    let month = time::Month::try_from(n(5..7)).unwrap();
    let date = time::Date::from_calendar_date(year, month, n(8..10)).unwrap();
    let at = date.with_hms(n(11..13), n(14..16), 0).unwrap().assume_utc();
    (at.unix_timestamp() * 1000) as u64
}

fn packet(site: &str, exam: ExamKind, kind: PacketKind) -> PacketRef {
    PacketRef {
        site: site.parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam,
        room: "0001".parse().unwrap(),
        kind,
    }
}

#[test]
fn late_is_judged_at_23_59_in_the_sites_zone_the_essay_a_week_later_and_never_for_a_test_packet() {
    let dir = tempfile::tempdir().unwrap();
    let init = crate::provision::init_center(
        &dir.path().join("c"),
        "center.konvert",
        "127.0.0.1:0".parse().unwrap(),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(&init.config_path).unwrap();
    assert!(text.contains("time_zone = \"Europe/Moscow\""), "{text}");
    std::fs::write(
        &init.config_path,
        format!("{text}\n[site_time_zones]\n\"0303\" = \"Asia/Kamchatka\"\n"),
    )
    .unwrap();
    let cfg = CenterConfig::load(&init.config_path).unwrap();

    let blanks = packet("0101", ExamKind::Ege, PacketKind::Blanks);
    // 23:58 and 00:00 Moscow time (UTC+3).
    assert!(lateness(&cfg, &blanks, utc_ms("2026-06-01T20:58Z")).is_none());
    let (deadline, zone) = lateness(&cfg, &blanks, utc_ms("2026-06-01T21:00Z")).unwrap();
    assert_eq!(
        (deadline as u64, zone.as_str()),
        (utc_ms("2026-06-01T20:59Z"), "Europe/Moscow")
    );
    // Kamchatka (UTC+12) is past its 23:59 while Moscow's afternoon goes on.
    let far_east = packet("0303", ExamKind::Ege, PacketKind::Forms);
    assert!(lateness(&cfg, &far_east, utc_ms("2026-06-01T11:58Z")).is_none());
    assert!(lateness(&cfg, &far_east, utc_ms("2026-06-01T12:00Z")).is_some());
    // The final essay reaches the center within seven days (seed 001 §12.6).
    let essay = packet("0101", ExamKind::Essay, PacketKind::Blanks);
    assert!(lateness(&cfg, &essay, utc_ms("2026-06-08T20:58Z")).is_none());
    assert!(lateness(&cfg, &essay, utc_ms("2026-06-08T21:00Z")).is_some());
    // A readiness test packet is never processed, so never late.
    let test = packet("0101", ExamKind::Ege, PacketKind::Test);
    assert!(lateness(&cfg, &test, utc_ms("2026-12-02T00:00Z")).is_none());

    // A zone the database does not know is refused when the config is read.
    std::fs::write(&init.config_path, text.replace("Europe/Moscow", "Europe/Atlantis")).unwrap();
    let err = CenterConfig::load(&init.config_path).unwrap_err().to_string();
    assert!(err.contains("Europe/Atlantis"), "{err}");
}
