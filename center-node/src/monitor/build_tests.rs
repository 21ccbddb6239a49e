use super::*;
use konvert_crypto::{KeyId, SigningKey};
use konvert_exam::{PacketRef, RoomId, SiteId};
use konvert_replication::{AnswerOutcome, Receipt, ReceiptBody, Remark};

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
time_zone = "Europe/Moscow"

[[sites]]
code = "0103"
kind = "processing-point"
time_zone = "Asia/Yekaterinburg"

[[rooms]]
site = "0101"
code = "0001"

[[rooms]]
site = "0102"
code = "0001"

[[rooms]]
site = "0102"
code = "0002"
oral = true

[[rooms]]
site = "0103"
code = "0001"

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

[[participants]]
code = "P3"
site = "0102"
room = "0002"
seat = "1"
kit = 13
"#;

pub(crate) fn plan() -> DayPlan {
    DayPlan::from_toml(PLAN).unwrap().0
}

/// 23:59 Moscow time on the plan's day, Unix ms.
pub(crate) fn moscow_deadline() -> u64 {
    SiteZone::moscow()
        .deadline_unix_ms("2026-06-01".parse().unwrap())
        .unwrap() as u64
}

/// 15:00 Moscow time on the plan's day.
pub(crate) fn afternoon() -> u64 {
    moscow_deadline() - (8 * 60 + 59) * 60_000
}

pub(crate) fn packet(site: &str, room: &str, kind: PacketKind) -> String {
    PacketRef {
        site: SiteId::new(site).unwrap(),
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        room: RoomId::new(room).unwrap(),
        kind,
    }
    .packet_id()
}

pub(crate) fn record(key: &SigningKey, site: &str, id: &str, version: u32, digest: u8, at: u64) -> InboxRecord {
    let body = ReceiptBody {
        packet_id: id.into(),
        version,
        site: site.into(),
        digest: [digest; 32],
        bytes: 1_000_000,
        received_at_unix_ms: at,
        center_key: KeyId([0; 16]),
    };
    InboxRecord {
        receipt: Receipt::sign(body, key).unwrap(),
        signer: KeyId([3; 16]),
        sealed_at_unix_ms: at - 10,
        test_packet: false,
        late: false,
        packet: None,
    }
}

pub(crate) fn answer(r: &InboxRecord, remarks: Vec<(&str, RemarkAction)>) -> PacketAnswer {
    let b = &r.receipt.body;
    PacketAnswer {
        site: b.site.clone(),
        packet_id: b.packet_id.clone(),
        version: b.version,
        digest: b.digest,
        outcome: if remarks.is_empty() {
            AnswerOutcome::Loaded
        } else {
            AnswerOutcome::Remarks(
                remarks
                    .into_iter()
                    .enumerate()
                    .map(|(i, (what, action))| Remark {
                        id: format!("r{i}"),
                        room: None,
                        participant: None,
                        page: None,
                        what: what.into(),
                        action,
                    })
                    .collect(),
            )
        },
        pages: 12,
        answered_at_unix_ms: b.received_at_unix_ms + 60_000,
    }
}

#[test]
fn packet_ids_read_back_even_with_dashes_in_site_and_room() {
    for (site, room) in [("0101", "0012"), ("01-01", "A-12"), ("7", "UNSORTED")] {
        for kind in [PacketKind::Forms, PacketKind::Blanks, PacketKind::Audio] {
            let id = packet(site, room, kind);
            let parsed = parse_packet_id(site, &id).unwrap();
            assert_eq!(parsed.room, room);
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.exam, ExamKind::Ege);
            assert_eq!(parsed.date.to_string(), "2026-06-01");
        }
    }
    assert_eq!(
        parse_packet_id("0102", &packet("0101", "0001", PacketKind::Forms)),
        None
    );
    assert_eq!(parse_packet_id("0101", "0101-2026-13-01-ege-0001-forms"), None);
    assert_eq!(parse_packet_id("0101", "0101-2026-06-01-ege--forms"), None);
    assert_eq!(parse_packet_id("0101", "0101-2026-06-01-xyz-0001-forms"), None);
}

#[test]
fn silent_sites_come_first_then_by_risk_and_a_complete_site_is_done() {
    let key = SigningKey::generate().unwrap();
    let now = afternoon();
    // 0101: its one room complete. 0102: one room in, with a remark open; the oral room
    // not yet. 0103: nothing at all.
    let f1 = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Forms),
        1,
        1,
        now - 7_200_000,
    );
    let b1 = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Blanks),
        1,
        2,
        now - 7_000_000,
    );
    let f2 = record(
        &key,
        "0102",
        &packet("0102", "0001", PacketKind::Forms),
        1,
        3,
        now - 600_000,
    );
    let b2 = record(
        &key,
        "0102",
        &packet("0102", "0001", PacketKind::Blanks),
        1,
        4,
        now - 300_000,
    );
    let answers = vec![
        answer(&f1, vec![]),
        answer(&b1, vec![]),
        answer(&f2, vec![]),
        answer(&b2, vec![("page 3 unreadable", RemarkAction::RescanAndResend)]),
    ];
    let view = build(&[plan()], &[f1, b1, f2, b2], &answers, &[], now);
    let day = &view.days[0];
    let order: Vec<_> = day.sites.iter().map(|s| (s.code.as_str(), s.silent, s.risk)).collect();
    assert_eq!(
        order,
        [
            ("0103", true, Risk::OnTrack),
            ("0102", false, Risk::Behind),
            ("0101", false, Risk::Done)
        ]
    );
    let s2 = &day.sites[1];
    assert_eq!(
        (
            s2.packets_received,
            s2.packets_loaded,
            s2.packets_remarked,
            s2.open_remarks
        ),
        (2, 1, 1, 1)
    );
    assert_eq!((s2.rooms_complete, s2.rooms_planned), (0, 2));
    assert_eq!(s2.rooms[0].state, RoomState::Remarks);
    assert_eq!(s2.rooms[1].state, RoomState::Waiting);
    // The oral room's summary form is ППЭ-13-03-У МАШ.
    assert_eq!(s2.rooms[1].forms[1], ("ППЭ-13-03-У МАШ", FormState::Missing));
    assert_eq!(s2.rooms[0].forms[1], ("ППЭ-13-02МАШ", FormState::Loaded));
    assert!(matches!(s2.eta, Eta::At(_)));
    let s1 = &day.sites[2];
    assert_eq!(
        (s1.rooms_complete, s1.form18, s1.bytes),
        (1, FormState::Loaded, 2_000_000)
    );
    assert!(matches!(s1.eta, Eta::AllIn(_)));
    let s3 = &day.sites[0];
    assert_eq!((s3.kind, s3.eta, s3.form18), ("ППОИ", Eta::Unknown, FormState::Missing));
    // Yekaterinburg is UTC+5 on the day.
    assert_eq!(s3.utc_offset_s, 5 * 3600);
    let i = day.indicators;
    assert_eq!((i.participants, i.participants_processed), (3, 2));
    assert_eq!((i.packets_expected, i.packets_received, i.packets_complete), (8, 4, 3));
    assert_eq!((i.sites, i.sites_started, i.sites_complete), (3, 2, 1));
    assert_eq!((i.rooms, i.rooms_started, i.rooms_complete), (4, 2, 1));
    assert_eq!((i.open_remarks, i.blanks_pages_registered), (1, 24));
    assert!(view.unplanned.is_empty());
}

#[test]
fn a_version_2_answers_the_remarks_on_version_1() {
    let key = SigningKey::generate().unwrap();
    let now = afternoon();
    let id = packet("0101", "0001", PacketKind::Blanks);
    let v1 = record(&key, "0101", &id, 1, 1, now - 3_600_000);
    let v2 = record(&key, "0101", &id, 2, 2, now - 60_000);
    let remarks = vec![
        ("rescan page 2", RemarkAction::RescanAndResend),
        ("for the records", RemarkAction::Note),
    ];
    let a1 = answer(&v1, remarks);
    let view = build(
        &[plan()],
        &[v1.clone(), v2.clone()],
        std::slice::from_ref(&a1),
        &[],
        now,
    );
    let site = view.days[0].sites.iter().find(|s| s.code == "0101").unwrap();
    let p = &site.rooms[0].packets[0];
    assert_eq!((p.version, p.answer, p.answered_remarks), (2, AnswerState::Waiting, 1));
    assert_eq!(site.open_remarks, 0);
    assert_eq!(site.rooms[0].state, RoomState::Partial);
    // Only version 1 in: its remark is open (the note is not).
    let view = build(&[plan()], &[v1], &[a1], &[], now);
    let site = view.days[0].sites.iter().find(|s| s.code == "0101").unwrap();
    assert_eq!(site.open_remarks, 1);
    assert_eq!(site.rooms[0].packets[0].answer, AnswerState::Remarks(1));
}

#[test]
fn an_answer_for_another_envelope_does_not_count() {
    let key = SigningKey::generate().unwrap();
    let now = afternoon();
    let f = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Forms),
        1,
        1,
        now - 60_000,
    );
    let mut a = answer(&f, vec![]);
    a.digest = [9; 32];
    let view = build(&[plan()], &[f], &[a], &[], now);
    let site = view.days[0].sites.iter().find(|s| s.code == "0101").unwrap();
    assert_eq!(site.packets_loaded, 0);
    assert_eq!(site.rooms[0].forms[0].1, FormState::Received);
}

#[test]
fn a_remark_asking_for_a_form_marks_that_form_and_18mash_follows_the_site() {
    let key = SigningKey::generate().unwrap();
    let now = afternoon();
    let f = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Forms),
        1,
        1,
        now - 60_000,
    );
    let b = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Blanks),
        1,
        2,
        now - 30_000,
    );
    let send = |form: &str| RemarkAction::SendForm { form: form.into() };
    let answers = [
        answer(&f, vec![("ППЭ-18МАШ is not in the packet", send("ППЭ-18 МАШ"))]),
        answer(&b, vec![("no room summary", send("ппэ-13-02маш"))]),
    ];
    let view = build(&[plan()], &[f, b], &answers, &[], now);
    let site = view.days[0].sites.iter().find(|s| s.code == "0101").unwrap();
    assert_eq!(site.form18, FormState::Remark);
    assert_eq!(
        site.rooms[0].forms,
        [("ППЭ-12-04МАШ", FormState::Loaded), ("ППЭ-13-02МАШ", FormState::Remark)]
    );
}

#[test]
fn deadlines_colour_sites_red() {
    let key = SigningKey::generate().unwrap();
    let deadline = moscow_deadline();
    // After 17:30 Moscow with nothing at all: red for 0101 and 0102 (Moscow).
    let evening = deadline - 6 * 3_600_000;
    let view = build(&[plan()], &[], &[], &[], evening);
    let risk = |v: &MonitorView, code: &str| v.days[0].sites.iter().find(|s| s.code == code).unwrap().risk;
    assert_eq!(risk(&view, "0101"), Risk::Late);
    // Before 17:30 the same emptiness is not late yet.
    let view = build(&[plan()], &[], &[], &[], afternoon());
    assert_eq!(risk(&view, "0101"), Risk::OnTrack);
    // Forms in, blanks missing, after 17:30: behind; after 23:59: late.
    let f = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Forms),
        1,
        1,
        evening - 60_000,
    );
    let view = build(&[plan()], std::slice::from_ref(&f), &[], &[], evening);
    assert_eq!(risk(&view, "0101"), Risk::Behind);
    let view = build(&[plan()], &[f], &[], &[], deadline + 60_000);
    assert_eq!(risk(&view, "0101"), Risk::Late);
}

#[test]
fn without_a_plan_every_site_seen_is_listed_and_test_packets_are_not() {
    let key = SigningKey::generate().unwrap();
    let now = afternoon();
    let a = record(
        &key,
        "0101",
        &packet("0101", "0001", PacketKind::Blanks),
        1,
        1,
        now - 60_000,
    );
    let odd = record(&key, "0909", "not-a-packet-id", 1, 2, now - 30_000);
    let mut test = record(&key, "0505", &packet("0505", "0001", PacketKind::Test), 1, 3, now);
    test.test_packet = true;
    let view = build(&[], &[a, odd, test], &[], &[], now);
    assert!(view.days.is_empty());
    let seen: Vec<_> = view.unplanned.iter().map(|u| (u.code.as_str(), u.packets)).collect();
    assert_eq!(seen, [("0101", 1), ("0909", 1)]);
}

#[test]
fn closing_state_is_shown_per_exam_day() {
    let closing = [DayClosing {
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
        closed: true,
        results_passed: false,
    }];
    let view = build(&[plan()], &[], &[], &closing, afternoon());
    assert!(view.days[0].closed && !view.days[0].results_passed);
    let view = build(&[plan()], &[], &[], &[], afternoon());
    assert!(!view.days[0].closed);
}

#[test]
fn the_sample_region_has_every_site_and_room() {
    let key = SigningKey::generate().unwrap();
    let day = super::super::sample::sample_day(68, 2000, 16_000, &key).unwrap();
    let view = build(&day.plans, &day.records, &day.answers, &[], day.now_unix_ms);
    let d = &view.days[0];
    assert_eq!(d.sites.len(), 68);
    assert_eq!(d.sites.iter().map(|s| s.rooms.len()).sum::<usize>(), 2000);
    assert_eq!(d.indicators.participants, 16_000);
    // The site that sent nothing is silent and listed first.
    assert!(d.sites[0].silent);
    assert!(d.sites.iter().any(|s| s.open_remarks > 0));
    assert!(d
        .sites
        .iter()
        .any(|s| s.rooms.iter().any(|r| r.state == RoomState::Complete)));
}

proptest::proptest! {
    #[test]
    fn any_packet_id_reads_back_and_no_text_makes_the_reader_panic(
        site in "[0-9A-Za-z-]{1,32}",
        room in "[0-9A-Za-z-]{1,16}",
        kind in proptest::sample::select(vec![PacketKind::Forms, PacketKind::Blanks, PacketKind::Journal, PacketKind::Audio]),
        noise in "\\PC{0,80}",
    ) {
        let id = packet(&site, &room, kind);
        let parsed = parse_packet_id(&site, &id).unwrap();
        proptest::prop_assert_eq!(parsed.room, room);
        proptest::prop_assert_eq!(parsed.kind, kind);
        let _ = parse_packet_id(&site, &noise);
        let _ = parse_packet_id(&site, &format!("{site}-{noise}"));
    }
}
