use super::*;

fn utc_ms(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

fn date(s: &str) -> ExamDate {
    s.parse().unwrap()
}

#[test]
fn deadlines_across_russia() {
    let day = date("2026-06-01");
    for (zone, utc) in [
        ("Europe/Kaliningrad", "2026-06-01T21:59:00Z"),
        ("Europe/Moscow", "2026-06-01T20:59:00Z"),
        ("Europe/Samara", "2026-06-01T19:59:00Z"),
        ("Asia/Yekaterinburg", "2026-06-01T18:59:00Z"),
        ("Asia/Novosibirsk", "2026-06-01T16:59:00Z"),
        ("Asia/Vladivostok", "2026-06-01T13:59:00Z"),
        ("Asia/Kamchatka", "2026-06-01T11:59:00Z"),
    ] {
        let z = SiteZone::new(zone).unwrap();
        assert_eq!(z.deadline_unix_ms(day).unwrap(), utc_ms(utc), "{zone}");
    }
}

#[test]
fn russian_history_is_in_the_database() {
    // Until October 2014 Moscow kept UTC+4 all year.
    let z = SiteZone::new("Europe/Moscow").unwrap();
    assert_eq!(
        z.deadline_unix_ms(date("2013-06-03")).unwrap(),
        utc_ms("2013-06-03T19:59:00Z")
    );
    // No DST since: a winter date has the same offset as a summer one.
    assert_eq!(
        z.deadline_unix_ms(date("2026-12-01")).unwrap(),
        utc_ms("2026-12-01T20:59:00Z")
    );
}

#[test]
fn a_site_whose_local_date_differs_from_the_centers() {
    // 16:30 in Moscow is already 01:30 the next day in Kamchatka.
    let now = utc_ms("2026-06-01T13:30:00Z");
    let moscow = SiteZone::new("Europe/Moscow").unwrap();
    let kamchatka = SiteZone::new("Asia/Kamchatka").unwrap();
    assert_eq!(moscow.local_date(now).unwrap(), date("2026-06-01"));
    assert_eq!(kamchatka.local_date(now).unwrap(), date("2026-06-02"));
    // Kamchatka's deadline for June 1 passed 91 minutes ago; Moscow's is 7 h 29 min away.
    assert_eq!(
        kamchatka.time_left_ms(date("2026-06-01"), now).unwrap(),
        -91 * 60 * 1000
    );
    assert_eq!(
        moscow.time_left_ms(date("2026-06-01"), now).unwrap(),
        (7 * 3600 + 29 * 60) * 1000
    );
}

#[test]
fn unknown_zones_are_named() {
    let err = SiteZone::new("Europe/Moskva").unwrap_err().to_string();
    assert!(err.contains("Europe/Moskva") && err.contains("IANA"), "{err}");
    let z: SiteZone = toml_like("Asia/Omsk");
    assert_eq!(z.name(), "Asia/Omsk");
}

fn toml_like(name: &str) -> SiteZone {
    postcard::from_bytes(&postcard::to_allocvec(&name.to_owned()).unwrap()).unwrap()
}

#[test]
fn an_exam_packet_is_due_by_23_59_of_the_day_and_an_essay_a_week_later() {
    let z = SiteZone::new("Europe/Moscow").unwrap();
    let day = date("2026-06-01");
    assert_eq!(
        z.delivery_deadline_unix_ms(day, crate::ExamKind::Ege).unwrap(),
        z.deadline_unix_ms(day).unwrap()
    );
    assert_eq!(
        z.delivery_deadline_unix_ms(date("2026-12-03"), crate::ExamKind::Essay)
            .unwrap(),
        z.deadline_unix_ms(date("2026-12-10")).unwrap()
    );
}
