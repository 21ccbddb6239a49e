#![allow(clippy::unwrap_used)]

//! The sweep's clock on real records and a real image store: each kind's images go on the
//! first day the table allows, not a day before.

use konvert_exam::{
    BlankId, BlankKind, DayPlan, ExamDate, ExamKind, PacketKind, PageIdentity, PlanSite, RoomId, SiteKind,
};
use konvert_records::{ExamDay, ImageRef, Opening, PacketEntry, PageEntry, PageKey, PageReading, Records, SledRecords};

use super::*;
use crate::image_store::sha256;

struct Case {
    exam: ExamKind,
    region: &'static str,
    date: &'static str,
    last_kept: &'static str,
    first_gone: &'static str,
}

const CASES: &[Case] = &[
    Case {
        exam: ExamKind::Essay,
        region: "76",
        date: "2026-12-02",
        last_kept: "2030-12-31",
        first_gone: "2031-01-01",
    },
    Case {
        exam: ExamKind::Gve,
        region: table::CRIMEA,
        date: "2026-06-01",
        last_kept: "2026-12-31",
        first_gone: "2027-01-01",
    },
    Case {
        exam: ExamKind::Gve,
        region: "76",
        date: "2026-06-02",
        last_kept: "2036-06-01",
        first_gone: "2036-06-02",
    },
    Case {
        exam: ExamKind::Ege,
        region: table::CRIMEA,
        date: "2026-06-03",
        last_kept: "2036-06-02",
        first_gone: "2036-06-03",
    },
];

fn d(s: &str) -> ExamDate {
    s.parse().unwrap()
}

#[test]
fn each_kinds_images_go_on_the_first_day_the_table_allows() {
    let dir = tempfile::tempdir().unwrap();
    let place = Workplace {
        data_dir: dir.path().join("data"),
        records_dir: dir.path().join("records"),
        records_url: None,
        checkpoint_key: None,
    };
    let zone = SiteZone::moscow();
    let records = SledRecords::open(&crate::processing::records_db(&place.records_dir)).unwrap();
    let store = ImageStore::open(&place.records_dir).unwrap();
    let mut shas = Vec::new();
    for (n, case) in (1u8..).zip(CASES) {
        let date = d(case.date);
        records
            .put_plan(&DayPlan {
                date,
                exam: case.exam,
                region: case.region.into(),
                expert_checking: false,
                sites: vec![PlanSite {
                    code: "0101".parse().unwrap(),
                    kind: SiteKind::ExamSite,
                    time_zone: "Europe/Moscow".into(),
                }],
                rooms: vec![],
                participants: vec![],
                members: vec![],
            })
            .unwrap();
        let registered = zone.local_unix_ms(date, 18, 0).unwrap() as u64;
        let packet = PacketEntry {
            envelope: [n; 32],
            site: "0101".into(),
            packet_id: format!("p{n}"),
            version: 1,
            day: ExamDay { date, exam: case.exam },
            room: RoomId::new("0001").unwrap(),
            kind: PacketKind::Blanks,
            received_at_unix_ms: registered,
            registered_at_unix_ms: registered,
            opening: Opening::Opened { files: 1, pages: 1 },
        };
        let scan = format!("scan {n}").into_bytes();
        let sha = sha256(&scan);
        let page = PageEntry {
            key: PageKey {
                envelope: [n; 32],
                file: 0,
                page: 0,
            },
            file_name: "a.tif".into(),
            file_sha256: sha,
            digest: konvert_records::page_digest(&sha, 0),
            reading: PageReading::Read {
                identity: PageIdentity::Blank(BlankId::for_kit(BlankKind::Registration, u64::from(n), 0).unwrap()),
                orientation: 0,
                via_fallback: false,
                contents: None,
            },
            site_reading: None,
            removed_mark: None,
            early_finish_mark: None,
            written: None,
        };
        records.register(&packet, &[page]).unwrap();
        store.put(&sha, &scan).unwrap();
        records
            .hold_images(&[ImageRef {
                sha256: sha,
                bytes: scan.len() as u64,
                held_since_unix_ms: registered,
                deleted: None,
            }])
            .unwrap();
        shas.push(hex::encode(sha));
    }
    for (case, sha) in CASES.iter().zip(&shas) {
        let goes = |day: &str| {
            sweep(&place, &records, &zone, d(day))
                .unwrap()
                .images
                .iter()
                .any(|i| i.sha256 == *sha)
        };
        assert!(
            !goes(case.last_kept),
            "{:?} {} went on {}",
            case.exam,
            case.region,
            case.last_kept
        );
        assert!(
            goes(case.first_gone),
            "{:?} {} stayed on {}",
            case.exam,
            case.region,
            case.first_gone
        );
    }
    // A hold names something in the records, or it would keep nothing (D11).
    let matches = |t: HoldTarget| hold_matches(&records, &t).unwrap();
    assert!(matches(HoldTarget::Packet([1; 32])));
    assert!(!matches(HoldTarget::Packet([99; 32])));
    assert!(matches(HoldTarget::Day(ExamDay {
        date: d(CASES[0].date),
        exam: ExamKind::Essay,
    })));
    assert!(!matches(HoldTarget::Day(ExamDay {
        date: d("2026-01-09"),
        exam: ExamKind::Essay,
    })));
    assert!(!matches(HoldTarget::Participant("P-404".into())));
    // A hold on the essay's day keeps it past its time; released, it goes.
    let essay = ExamDay {
        date: d(CASES[0].date),
        exam: ExamKind::Essay,
    };
    let hold = records
        .add_hold(konvert_records::NewHold {
            reason: konvert_records::HoldReason::Appeal,
            target: HoldTarget::Day(essay),
            by: "КК".into(),
            at_unix_ms: 1,
            note: "апелляция".into(),
        })
        .unwrap();
    let listed = |day: &str| -> Vec<String> {
        sweep(&place, &records, &zone, d(day))
            .unwrap()
            .images
            .into_iter()
            .map(|i| i.sha256)
            .collect()
    };
    assert!(!listed("2040-01-01").contains(&shas[0]));
    records
        .release_hold(
            hold.id,
            konvert_records::Release {
                by: "КК".into(),
                at_unix_ms: 2,
                note: "решено".into(),
            },
        )
        .unwrap();
    assert!(listed("2040-01-01").contains(&shas[0]));
}
