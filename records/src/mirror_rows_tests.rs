//! The mirror's rows: every kind round-trips and a wrong row is refused; a region and the
//! federal node on real PostgreSQL exchange planning, results and the down kinds, with the
//! consent allow-list on the owner's side and the receiver's row check behind it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use konvert_crypto::SigningKey;
use konvert_exam::{DayPlan, ExamKind};
use konvert_mirror::{Endpoint, Node, RecordKind, Refusal, SenderLimits};

use super::*;
use crate::mirror_outbox::{self, Mirrored};
use crate::mirror_pump::{pump, PumpNode};
use crate::test_cluster::TestCluster;
use crate::Role;

const REGION: Node = Node::Region(76);

fn day() -> ExamDay {
    ExamDay {
        date: "2026-06-01".parse().unwrap(),
        exam: ExamKind::Ege,
    }
}

fn samples() -> Vec<MirrorRow> {
    let d = day();
    let p = || "P-0001".to_owned();
    let img = ImageRef::of_bytes(b"scan");
    vec![
        MirrorRow::Planning(PlanningRow::Seat {
            day: d,
            participant: p(),
            site: SiteId::new("0101").unwrap(),
            room: RoomId::new("0001").unwrap(),
            seat: "1А".into(),
            kit: 42,
        }),
        MirrorRow::ProcessingResult(ProcessingResultRow {
            day: d,
            participant: p(),
            site: SiteId::new("0101").unwrap(),
            pages: vec![ResultPage {
                what: "answers-1".into(),
                state: "registered".into(),
                page_digest: [7; 32],
                image: img,
            }],
        }),
        MirrorRow::AppealDecision(AppealDecisionRow {
            day: d,
            participant: p(),
            kind: AppealKind::Scores,
            outcome: AppealOutcome::Upheld,
            documents: vec![img],
            decided_at_unix_ms: 1,
        }),
        MirrorRow::RegionalRecheck(RecheckRow {
            day: d,
            participant: p(),
            scores: vec![TaskScore {
                task: "19".into(),
                score: 2,
            }],
            documents: vec![img],
        }),
        MirrorRow::PersonalDataCorrection(CorrectionRow {
            participant: p(),
            field: "surname".into(),
            value: "Иванова".into(),
            documents: vec![img],
        }),
        MirrorRow::CentralizedChecking(CentralizedCheckingRow {
            day: d,
            participant: p(),
            primary_score: 31,
            sent_for_recheck: false,
        }),
        MirrorRow::RecomputedScore(RecomputedScoreRow {
            day: d,
            participant: p(),
            primary_score: 33,
            scores: vec![],
        }),
        MirrorRow::TokenCertificate(TokenCertificateRow {
            token_id: "T-1".into(),
            holder: "Член ГЭК".into(),
            public_key_hex: "ab".repeat(32),
            valid_from: "2026-01-01".into(),
            valid_until: "2027-01-01".into(),
        }),
        MirrorRow::DocumentRequest(DocumentRequestRow {
            request_id: "R-1".into(),
            day: d,
            participant: p(),
            documents: "2-АП".into(),
        }),
    ]
}

#[test]
fn every_kind_round_trips_and_a_wrong_row_is_refused() {
    let rows = samples();
    let kinds: Vec<RecordKind> = rows.iter().map(MirrorRow::kind).collect();
    assert_eq!(kinds, RecordKind::ALL.to_vec(), "one sample per kind, in order");
    for row in &rows {
        let bytes = row.encode().unwrap();
        assert_eq!(bytes[0], ROW_FORMAT);
        assert_eq!(&MirrorRow::decode(row.kind(), &bytes).unwrap(), row);
        // Another channel's kind, another format, trailing bytes, nothing: refused.
        let other = RecordKind::ALL[(row.kind().code() as usize + 1) % RecordKind::ALL.len()];
        assert!(MirrorRow::decode(other, &bytes).unwrap_err().contains("channel"));
        let mut newer = bytes.clone();
        newer[0] = ROW_FORMAT + 1;
        assert!(MirrorRow::decode(row.kind(), &newer).unwrap_err().contains("format"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(MirrorRow::decode(row.kind(), &longer).is_err());
        assert!(MirrorRow::decode(row.kind(), &bytes[..bytes.len() - 1]).is_err());
    }
    assert!(MirrorRow::decode(RecordKind::Planning, &[]).is_err());
    assert!(MirrorRow::decode(RecordKind::Planning, &vec![ROW_FORMAT; MAX_ROW_PAYLOAD + 1]).is_err());
    // A row too large to travel is refused when written (images go by reference).
    let huge = MirrorRow::PersonalDataCorrection(CorrectionRow {
        participant: "P".into(),
        field: "surname".into(),
        value: "x".repeat(MAX_ROW_PAYLOAD),
        documents: vec![],
    });
    assert!(matches!(huge.encode(), Err(Error::Encode { .. })));
}

fn key(node: Node) -> SigningKey {
    let b = match node {
        Node::Federal => 200,
        Node::Region(c) => c,
    };
    SigningKey::from_seed(&[b; 32]).unwrap()
}

fn make(me: Node) -> impl Fn() -> Endpoint + 'static {
    let peer = if me == Node::Federal { REGION } else { Node::Federal };
    move || {
        let peers = BTreeMap::from([(peer, key(peer).verifying_key())]);
        Endpoint::new(me, &key(me), peers, 1, 1..=1, SenderLimits::default()).unwrap()
    }
}

const PLAN: &str = r#"
date = "2026-06-01"
exam = "ege"
region = "76"

[[sites]]
code = "0101"
kind = "exam-site"
time_zone = "Europe/Moscow"

[[rooms]]
site = "0101"
code = "0001"

[[participants]]
code = "P-0001"
site = "0101"
room = "0001"
seat = "1А"
kit = 1001

[[participants]]
code = "P-0002"
site = "0101"
room = "0001"
seat = "1Б"
kit = 1002

[[participants]]
code = "NO-CONSENT-7f3a"
site = "0101"
room = "0001"
seat = "1В"
kit = 1003
consent = false
"#;

fn result_of(participant: &str) -> ProcessingResultRow {
    ProcessingResultRow {
        day: day(),
        participant: participant.into(),
        site: SiteId::new("0101").unwrap(),
        pages: vec![ResultPage {
            what: "answers-1".into(),
            state: "registered".into(),
            page_digest: [1; 32],
            image: ImageRef([2; 32]),
        }],
    }
}

fn count_bytes(url: &str, needle: &[u8]) -> usize {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut n = 0;
    for t in [
        "mirror_outbox",
        "mirror_applied",
        "mirror_batches_in",
        "mirror_batches_out",
        "mirror_refusals",
        "mirror_records",
        "mirror_participants",
    ] {
        for r in c.query(&format!("SELECT t::text FROM {t} t"), &[]).unwrap() {
            let s: String = r.get(0);
            let hex = hex::encode(needle);
            n += s.matches(std::str::from_utf8(needle).unwrap()).count() + s.matches(&hex).count();
        }
    }
    n
}

#[test]
fn only_planned_participants_go_up_or_down_and_the_receiver_checks_again() {
    let Some(cluster) = TestCluster::shared() else { return };
    let (region_url, fed_url) = (
        cluster.database("mirror_rows_region"),
        cluster.database("mirror_rows_fed"),
    );
    let region_records = Arc::new(PgRecords::connect(&region_url).unwrap());
    let fed_records = Arc::new(PgRecords::connect(&fed_url).unwrap());

    // Before the mirror is set up, a plan is stored and no row is written.
    let (plan, reading) = DayPlan::from_toml(PLAN).unwrap();
    assert_eq!(
        reading.without_consent, 1,
        "the plan file did carry a row without consent"
    );
    assert_eq!(
        mirror_outbox::import_plan(&region_records, &plan).unwrap(),
        Mirrored::default()
    );
    let mut region = PumpNode::new(region_records.clone(), REGION, make(REGION)).unwrap();
    let mut fed = PumpNode::new(fed_records.clone(), Node::Federal, make(Node::Federal)).unwrap();
    // A plan of another region is refused at this one.
    let mut other = plan.clone();
    other.region = "77".into();
    assert!(matches!(
        mirror_outbox::import_plan(&region_records, &other),
        Err(Error::MirrorUnavailable { .. })
    ));

    // Import again with the mirror: the site, the room and the two planned seats.
    let (plan, _) = DayPlan::from_toml(&PLAN.replace("1Б", "2Б")).unwrap();
    let m = mirror_outbox::import_plan(&region_records, &plan).unwrap();
    assert_eq!((m.mirror, m.rows, m.left_out), (true, 4, 0));

    // Closing: the Close decision and the results in one transaction; a row of someone not
    // in the plan is left out and counted; the mirror's process is woken at the commit.
    let mut listener = postgres::Client::connect(&region_url, postgres::NoTls).unwrap();
    listener.batch_execute("LISTEN konvert_mirror").unwrap();
    let (decision, m) = mirror_outbox::close_day(
        &region_records,
        "admin",
        Role::Administrator,
        5,
        day(),
        vec![result_of("P-0001"), result_of("GHOST-9c1e")],
    )
    .unwrap();
    assert!(matches!(decision.kind, crate::DecisionKind::Close { .. }));
    assert_eq!((m.rows, m.left_out), (1, 1));
    let woken = (0..50).any(|_| {
        listener.batch_execute("SELECT 1").unwrap();
        let n = listener.notifications().len();
        if n == 0 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        n > 0
    });
    assert!(
        woken,
        "closing wakes the mirror (NOTIFY {})",
        mirror_outbox::NOTIFY_CHANNEL
    );
    assert_eq!(count_bytes(&region_url, b"GHOST-9c1e"), 0);

    let seen = pump(&mut region, &mut fed, 50).unwrap();
    assert!(seen.refused.is_empty(), "{:?}", seen.refused);
    assert_eq!(
        mirror_outbox::planned(&fed_records, 76, day()).unwrap(),
        ["P-0001", "P-0002"]
    );
    let results = mirror_outbox::held(&fed_records, 76, RecordKind::ProcessingResults).unwrap();
    assert_eq!(results, vec![MirrorRow::ProcessingResult(result_of("P-0001"))]);

    // An appeal: for a planned participant it goes; for anyone else it is refused.
    let appeal = |who: &str| {
        MirrorRow::AppealDecision(AppealDecisionRow {
            day: day(),
            participant: who.into(),
            kind: AppealKind::Procedural,
            outcome: AppealOutcome::Rejected,
            documents: vec![ImageRef::of_bytes("ППЭ-02".as_bytes())],
            decided_at_unix_ms: 9,
        })
    };
    assert_eq!(mirror_outbox::record(&region_records, appeal("P-0002")).unwrap(), 1);
    // The number returned is the row's own, not a count: the second appeal is row 2.
    assert_eq!(mirror_outbox::record(&region_records, appeal("P-0001")).unwrap(), 2);
    assert!(matches!(
        mirror_outbox::record(&region_records, appeal("GHOST-9c1e")),
        Err(Error::NotPlanned { .. })
    ));

    // ФИС publishes down for a planned participant, and refuses anyone else.
    let score = |who: &str| {
        MirrorRow::RecomputedScore(RecomputedScoreRow {
            day: day(),
            participant: who.into(),
            primary_score: 40,
            scores: vec![],
        })
    };
    mirror_outbox::publish(&fed_records, 76, score("P-0002")).unwrap();
    assert!(matches!(
        mirror_outbox::publish(&fed_records, 76, score("GHOST-9c1e")),
        Err(Error::NotPlanned { .. })
    ));
    // A region cannot publish a down kind.
    assert!(mirror_outbox::publish(&region_records, 76, score("P-0002")).is_err());

    let seen = pump(&mut region, &mut fed, 50).unwrap();
    assert!(seen.refused.is_empty(), "{:?}", seen.refused);
    assert_eq!(
        mirror_outbox::held(&fed_records, 76, RecordKind::AppealDecisions).unwrap(),
        vec![appeal("P-0002"), appeal("P-0001")]
    );
    assert_eq!(
        mirror_outbox::held(&region_records, 76, RecordKind::RecomputedScores).unwrap(),
        vec![score("P-0002")]
    );

    // The third line: a row that slipped past the owner's filter (written straight into
    // the outbox) is refused by the receiver, whole batch, and its reason does not repeat
    // the participant.
    region_records
        .with(|c| {
            let mut tx = c.transaction().unwrap();
            let payload = MirrorRow::ProcessingResult(result_of("GHOST-9c1e")).encode().unwrap();
            crate::pg_mirror::push_in(
                &mut tx,
                REGION,
                Node::Federal,
                RecordKind::ProcessingResults,
                vec![payload],
            )
            .unwrap();
            tx.commit().unwrap();
            Ok(())
        })
        .unwrap();
    let seen = pump(&mut region, &mut fed, 50).unwrap();
    assert_eq!(seen.refused.len(), 1, "{:?}", seen.refused);
    assert!(matches!(seen.refused[0].reason, Refusal::RowRefused { .. }));
    assert!(!seen.refused[0].reason.to_string().contains("GHOST"));
    assert_eq!(
        mirror_outbox::held(&fed_records, 76, RecordKind::ProcessingResults)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        count_bytes(&fed_url, b"GHOST-9c1e"),
        0,
        "nothing of it is stored at ФИС"
    );

    // A newer plan without P-0002 takes them off at ФИС too.
    let (plan, _) = DayPlan::from_toml(&PLAN.replace("kit = 1002", "kit = 1002\nconsent = false")).unwrap();
    let m = mirror_outbox::import_plan(&region_records, &plan).unwrap();
    assert_eq!(m.rows, 1, "one participant taken off, nothing else changed");
    pump(&mut region, &mut fed, 50).unwrap();
    assert_eq!(mirror_outbox::planned(&fed_records, 76, day()).unwrap(), ["P-0001"]);

    // Nothing at either side ever held the participant without consent.
    for url in [&region_url, &fed_url] {
        assert_eq!(count_bytes(url, b"NO-CONSENT-7f3a"), 0);
    }
}

/// Rows written a run at a time end as they would one by one: a participant seated twice
/// keeps the later seat, one taken off and seated again stays, a room described twice
/// keeps the later description, and results are kept by their numbers.
#[test]
fn rows_written_a_run_at_a_time_end_as_one_by_one() {
    let Some(cluster) = TestCluster::shared() else { return };
    let url = cluster.database("mirror_rows_in_runs");
    let records = PgRecords::connect(&url).unwrap();
    let (site, d) = (SiteId::new("0101").unwrap(), day());
    let seat = |who: &str, room: &str| {
        MirrorRow::Planning(PlanningRow::Seat {
            day: d,
            participant: who.into(),
            site: site.clone(),
            room: RoomId::new(room).unwrap(),
            seat: "1А".into(),
            kit: 7,
        })
    };
    let unseat = |who: &str| {
        MirrorRow::Planning(PlanningRow::Unseated {
            day: d,
            participant: who.into(),
        })
    };
    let room = |oral| {
        MirrorRow::Planning(PlanningRow::Room {
            day: d,
            site: site.clone(),
            room: RoomId::new("0001").unwrap(),
            oral,
        })
    };
    let rows = [
        seat("P-1", "0001"),
        seat("P-2", "0001"),
        seat("P-1", "0002"),
        unseat("P-2"),
        unseat("P-3"),
        seat("P-3", "0003"),
        room(false),
        room(true),
        MirrorRow::ProcessingResult(result_of("P-1")),
        MirrorRow::ProcessingResult(result_of("P-3")),
    ];
    let written: Vec<_> = (1u64..).zip(&rows).collect();
    records
        .with(|c| {
            let mut tx = c.transaction().unwrap();
            write_rows(&mut tx, 76, &written)?;
            tx.commit().unwrap();
            Ok(())
        })
        .unwrap();

    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let seats: Vec<(String, String)> = c
        .query(
            "SELECT participant, room FROM mirror_participants WHERE region = 76 ORDER BY participant",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(seats, [("P-1".into(), "0002".into()), ("P-3".into(), "0003".into())]);
    let detail: String = c
        .query_one(
            "SELECT detail FROM mirror_places WHERE region = 76 AND room = '0001'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(detail, "oral");
    let results: Vec<(i64, Option<String>, Option<String>)> = c
        .query(
            "SELECT seq, participant, date FROM mirror_records WHERE region = 76 ORDER BY seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let date = Some("2026-06-01".to_owned());
    assert_eq!(
        results,
        [(9, Some("P-1".into()), date.clone()), (10, Some("P-3".into()), date)]
    );
}

/// Applying reads only a row's head: it is what the whole row says, for every kind, and
/// nothing for planning or bytes that do not start as a row.
#[test]
fn a_rows_head_is_what_the_whole_row_says() {
    let mut kinds = BTreeSet::new();
    for row in samples() {
        let payload = row.encode().unwrap();
        let head = MirrorRow::head(&payload);
        if row.kind() == RecordKind::Planning {
            assert_eq!(head, None);
            continue;
        }
        kinds.insert(row.kind().code());
        assert_eq!(
            head,
            Some(RowHead {
                kind: row.kind(),
                day: row.day(),
                participant: row.participant(),
            }),
            "{row:?}"
        );
    }
    assert_eq!(
        kinds.len(),
        RecordKind::ALL.len() - 1,
        "every kind but planning is sampled"
    );
    for bad in [
        &[][..],
        &[ROW_FORMAT],
        &[ROW_FORMAT + 1, 1, 0],
        &[ROW_FORMAT, 1],
        &[ROW_FORMAT, 200, 200],
    ] {
        assert_eq!(MirrorRow::head(bad), None, "{bad:?}");
    }
}
