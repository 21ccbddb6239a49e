use super::*;

fn participant(code: &str, room: &str, seat: &str) -> Participant {
    Participant {
        code: code.into(),
        room: room.parse().unwrap(),
        seat: seat.into(),
        kit: code.trim_start_matches('P').parse().unwrap(),
    }
}

fn plan(participants: Vec<Participant>) -> SeatingPlan {
    SeatingPlan {
        site: "0101".parse().unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        participants,
    }
}

#[test]
fn rooms_group_their_participants() {
    let p = plan(vec![
        participant("P1", "0012", "1А"),
        participant("P2", "0012", "1Б"),
        participant("P3", "0013", "1А"),
    ]);
    p.check().unwrap();
    let rooms = p.rooms();
    assert_eq!(rooms.len(), 2);
    assert_eq!(p.seated_in(&"0012".parse().unwrap()), 2);
    assert_eq!(rooms[&"0013".parse::<RoomId>().unwrap()][0].code, "P3");
}

#[test]
fn a_participant_or_a_seat_twice_is_refused() {
    let twice = plan(vec![participant("P1", "0012", "1А"), participant("P1", "0013", "1А")]);
    assert!(twice.check().unwrap_err().to_string().contains("P1"));
    let seat = plan(vec![participant("P1", "0012", "1А"), participant("P2", "0012", "1А")]);
    assert!(seat.check().unwrap_err().to_string().contains("seat 1А"));
}

#[test]
fn sites_know_their_region_zone_and_kind() {
    let zone = SiteZone::new("Europe/Moscow").unwrap();
    let site = Site::new("0101".parse().unwrap(), "76", zone.clone(), SiteKind::ExamSite).unwrap();
    assert_eq!(site.zone.name(), "Europe/Moscow");
    assert!(Site::new("0101".parse().unwrap(), "7", zone, SiteKind::School).is_err());
    let back: Site = postcard::from_bytes(&postcard::to_allocvec(&site).unwrap()).unwrap();
    assert_eq!(back, site);
}

#[test]
fn a_kit_given_twice_is_refused_and_kits_name_their_participant() {
    let mut second = participant("P2", "0012", "1Б");
    second.kit = 1;
    let twice = plan(vec![participant("P1", "0012", "1А"), second]);
    assert!(twice.check().unwrap_err().to_string().contains("kit 1"));
    let p = plan(vec![participant("P1", "0012", "1А"), participant("P7", "0013", "2А")]);
    assert_eq!(p.by_kit(7).unwrap().code, "P7");
    assert!(p.by_kit(8).is_none());
}

#[test]
fn a_plan_reads_from_toml_and_refuses_unknown_fields() {
    let text = r#"
site = "0101"
date = "2026-06-01"
exam = "ege"
[[participants]]
code = "P1"
room = "0012"
seat = "1А"
kit = 4000000001
"#;
    let p = SeatingPlan::from_toml(text).unwrap();
    assert_eq!(p.participants[0].kit, 4_000_000_001);
    let err = SeatingPlan::from_toml(&text.replace("kit =", "kitt =")).unwrap_err();
    assert!(err.to_string().contains("seating plan"), "{err}");
}

#[test]
fn a_row_without_consent_is_dropped_unread_and_counted() {
    let text = r#"
site = "0101"
date = "2026-06-01"
exam = "essay"
[[participants]]
code = "P1"
room = "0012"
seat = "1А"
kit = 1
[[participants]]
code = "NO-CONSENT-1"
room = "0012"
seat = "1Б"
kit = 2
consent = false
"#;
    let (p, reading) = SeatingPlan::from_toml_reading(text).unwrap();
    assert_eq!(reading.without_consent, 1);
    assert_eq!(p.participants.len(), 1);
    assert!(!format!("{p:?}").contains("NO-CONSENT"));
    assert!(p.by_kit(2).is_none());
    assert_eq!(SeatingPlan::from_toml(text).unwrap(), p);
}
