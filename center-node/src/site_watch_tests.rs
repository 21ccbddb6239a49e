use super::*;
use konvert_crypto::{KeyId, SigningKey};
use konvert_exam::PacketRef;
use konvert_replication::{Receipt, ReceiptBody};

fn utc_ms(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<u8>().unwrap();
    let month = time::Month::try_from(n(5..7)).unwrap();
    let date = time::Date::from_calendar_date(s[..4].parse().unwrap(), month, n(8..10)).unwrap();
    let at = date.with_hms(n(11..13), n(14..16), 0).unwrap().assume_utc();
    (at.unix_timestamp() * 1000) as u64
}

const MIN: i64 = 60_000;

fn standing(connected: bool, backlog: u64, outstanding: usize) -> Standing {
    Standing {
        connected,
        broker_risk: connected.then_some(DeadlineRisk::OnTrack),
        backlog_bytes: backlog,
        rooms_outstanding: outstanding,
        window_end_ms: 1_000 * MIN,
        deadline_ms: 1_400 * MIN,
    }
}

#[test]
fn a_site_owing_blanks_is_at_risk_after_the_window_and_will_miss_near_its_deadline_connected_or_not() {
    for connected in [false, true] {
        let never = standing(connected, 0, 3);
        assert_eq!(assess(&never, 900 * MIN), DeadlineRisk::OnTrack, "{connected}");
        assert_eq!(assess(&never, 1_000 * MIN), DeadlineRisk::AtRisk, "{connected}");
        assert_eq!(assess(&never, 1_371 * MIN), DeadlineRisk::WillMiss, "{connected}");
        // Past the deadline it stays: silence does not make it go away.
        assert_eq!(assess(&never, 3_000 * MIN), DeadlineRisk::WillMiss, "{connected}");
    }
    // Gone silent with a backlog: at risk at once; done: on track whatever the hour.
    assert_eq!(assess(&standing(false, 5_000, 0), 100 * MIN), DeadlineRisk::AtRisk);
    assert_eq!(assess(&standing(true, 5_000, 0), 100 * MIN), DeadlineRisk::OnTrack);
    assert_eq!(assess(&standing(false, 0, 0), 3_000 * MIN), DeadlineRisk::OnTrack);
    // The broker's verdict counts while connected.
    let mut broker = standing(true, 9_000, 1);
    broker.broker_risk = Some(DeadlineRisk::WillMiss);
    assert_eq!(assess(&broker, 100 * MIN), DeadlineRisk::WillMiss);
    broker.connected = false;
    assert_eq!(assess(&broker, 100 * MIN), DeadlineRisk::AtRisk);
}

fn blanks_record(key: &SigningKey, site: &str, room: &str, at: u64) -> InboxRecord {
    let packet = PacketRef {
        site: site.parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        room: room.parse().unwrap(),
        kind: PacketKind::Blanks,
    };
    let body = ReceiptBody {
        packet_id: packet.packet_id(),
        version: 1,
        site: site.into(),
        digest: [9; 32],
        bytes: 1_000,
        received_at_unix_ms: at,
        center_key: KeyId([0; 16]),
    };
    InboxRecord {
        receipt: Receipt::sign(body, key).unwrap(),
        signer: KeyId([3; 16]),
        sealed_at_unix_ms: at - 10,
        test_packet: false,
        late: false,
        packet: Some(packet),
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn every_planned_site_is_shown_connected_or_not_and_stays_until_it_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let desk = Arc::new(PlanDesk::open(&data).unwrap());
    let file = dir.path().join("plan.toml");
    std::fs::write(&file, crate::test_support::PLAN).unwrap();
    desk.import(&file, "A. Ivanova").unwrap();
    let inbox = Inbox::open(&data).unwrap();
    let metrics = Metrics::new().unwrap();
    let watch = SiteWatch::new(desk, metrics.clone(), None, None, &inbox).unwrap();

    // The day before: nobody is watched yet.
    watch.look(utc_ms("2026-05-31T12:00Z"));
    let text = metrics.render().unwrap();
    assert!(!text.contains("konvert_site_deadline_risk{"), "{text}");
    assert!(!watch.is_expected("0101"));

    // 10:00 Moscow: both planned sites shown, on track, silence not yet counted.
    watch.look(utc_ms("2026-06-01T07:00Z"));
    let text = metrics.render().unwrap();
    for site in ["0101", "0202"] {
        assert_eq!(
            value(&text, &format!("konvert_site_deadline_risk{{site=\"{site}\"}}")),
            Some(0.0)
        );
        assert_eq!(
            value(&text, &format!("konvert_site_rooms_outstanding{{site=\"{site}\"}}")),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &format!("konvert_blanks_after_window_total{{site=\"{site}\"}}")),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("konvert_journals_after_window_total{{site=\"{site}\"}}")
            ),
            Some(0.0)
        );
    }
    assert_eq!(value(&text, "konvert_site_silence_seconds{site=\"0101\"}"), Some(0.0));
    assert!(watch.is_expected("0202"));

    // 0101 delivers its one seated room at 12:00 Moscow; 0202 (Yekaterinburg) never connects.
    let key = SigningKey::generate().unwrap();
    watch.note(&blanks_record(&key, "0101", "0001", utc_ms("2026-06-01T09:00Z")));
    // 18:00 Moscow = 20:00 Yekaterinburg: past both windows.
    watch.look(utc_ms("2026-06-01T15:00Z"));
    let text = metrics.render().unwrap();
    assert_eq!(value(&text, "konvert_site_deadline_risk{site=\"0101\"}"), Some(0.0));
    assert_eq!(value(&text, "konvert_site_rooms_outstanding{site=\"0101\"}"), Some(0.0));
    assert_eq!(
        value(&text, "konvert_site_silence_seconds{site=\"0101\"}"),
        Some(6.0 * 3600.0)
    );
    assert_eq!(value(&text, "konvert_site_deadline_risk{site=\"0202\"}"), Some(1.0));
    let rows = watch.sites();
    assert_eq!(
        rows.iter().map(|r| r.site.as_str()).collect::<Vec<_>>(),
        ["0101", "0202"]
    );
    assert_eq!(
        (rows[1].risk, rows[1].rooms_outstanding, rows[1].connected),
        (DeadlineRisk::AtRisk, 1, false)
    );
    // Silent since 11:00 Yekaterinburg (06:00Z).
    assert_eq!(
        value(&text, "konvert_site_silence_seconds{site=\"0202\"}"),
        Some(9.0 * 3600.0)
    );

    // 23:45 Yekaterinburg, and a day after its deadline: still shown, will miss.
    for now in ["2026-06-01T18:45Z", "2026-06-02T19:00Z"] {
        watch.look(utc_ms(now));
        let text = metrics.render().unwrap();
        assert_eq!(
            value(&text, "konvert_site_deadline_risk{site=\"0202\"}"),
            Some(2.0),
            "{now}"
        );
    }
    // Its packet comes by drive: it is done.
    watch.note(&blanks_record(&key, "0202", "0001", utc_ms("2026-06-02T19:30Z")));
    watch.look(utc_ms("2026-06-02T19:31Z"));
    let text = metrics.render().unwrap();
    assert_eq!(value(&text, "konvert_site_deadline_risk{site=\"0202\"}"), Some(0.0));
    // Long after: the day is no longer watched and its series go.
    watch.look(utc_ms("2026-06-08T00:00Z"));
    let text = metrics.render().unwrap();
    assert!(!text.contains("konvert_site_deadline_risk{"), "{text}");
    assert!(!watch.is_expected("0202"));
}
