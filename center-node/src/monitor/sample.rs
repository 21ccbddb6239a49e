//! A made-up region's exam day as the receiver would know it mid-afternoon: plans, inbox
//! records and the loader's answers, for `konvert bench --only monitor-page`, the demo
//! and tests. Deterministic: the same sizes give the same day.

use konvert_crypto::{KeyId, SigningKey};
use konvert_exam::{
    DayPlan, ExamDate, ExamKind, PacketKind, PacketRef, PlanParticipant, PlanRoom, PlanSite, RoomId, SiteId, SiteKind,
    SiteZone,
};
use konvert_replication::{AnswerOutcome, InboxRecord, PacketAnswer, Receipt, ReceiptBody, Remark, RemarkAction};

/// Time zones the sample's sites are spread over.
const ZONES: [&str; 4] = [
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
];

/// A sample day: the plan, what arrived and what the loader answered, and the instant
/// (15:00 Moscow time on the exam day) the figures are as of.
pub struct SampleDay {
    /// The region's plan.
    pub plans: Vec<DayPlan>,
    /// What the inbox holds.
    pub records: Vec<InboxRecord>,
    /// The loader's answers.
    pub answers: Vec<PacketAnswer>,
    /// The instant it is as of, Unix ms.
    pub now_unix_ms: u64,
}

fn id<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    // The sample's codes are generated from digits: always valid.
    r.unwrap_or_else(|e| unreachable!("a generated sample code is valid: {e:?}"))
}

/// A region of `sites` sites and `rooms` rooms seating `participants`, as of 15:00 Moscow
/// time: the first site sent nothing, every fifth site went silent after its forms, the
/// others are part-way; some answers carry remarks and some remarks are answered by a
/// version 2. `key` signs the receipts.
pub fn sample_day(sites: usize, rooms: usize, participants: usize, key: &SigningKey) -> crate::Result<SampleDay> {
    let date: ExamDate = id("2026-06-01".parse());
    let mut plan = DayPlan {
        date,
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: true,
        sites: Vec::with_capacity(sites),
        rooms: Vec::with_capacity(rooms),
        participants: Vec::with_capacity(participants),
        members: Vec::new(),
    };
    let sites = sites.max(1);
    for s in 0..sites {
        plan.sites.push(PlanSite {
            code: id(SiteId::new(&format!("{:04}", 101 + s))),
            kind: if s % 17 == 16 {
                SiteKind::ProcessingPoint
            } else {
                SiteKind::ExamSite
            },
            time_zone: ZONES[s % ZONES.len()].into(),
        });
    }
    for r in 0..rooms {
        plan.rooms.push(PlanRoom {
            site: plan.sites[r % sites].code.clone(),
            code: id(RoomId::new(&format!("{:04}", 1 + r / sites))),
            oral: r % 23 == 22,
        });
    }
    for p in 0..participants.min(rooms.saturating_mul(1000)) {
        let room = &plan.rooms[p % rooms.max(1)];
        plan.participants.push(PlanParticipant {
            code: format!("P{p:06}"),
            site: room.site.clone(),
            room: room.code.clone(),
            seat: format!("{}", 1 + p / rooms.max(1)),
            kit: 4_000_000_000 + p as u64,
            consent: true,
        });
    }
    let moscow = SiteZone::moscow();
    let deadline = u64::try_from(moscow.deadline_unix_ms(date)?).unwrap_or(0);
    // 15:00 Moscow is 8 h 59 min before its 23:59.
    let now = deadline - (8 * 60 + 59) * 60_000;
    let (mut records, mut answers) = (Vec::new(), Vec::new());
    let mut n = 0u64;
    for (r, room) in plan.rooms.iter().enumerate() {
        let site_no = r % sites;
        if site_no == 0 {
            continue; // silent from the start
        }
        let silent_after_forms = site_no.is_multiple_of(5);
        // Rooms of a site come in over the afternoon: later rooms are not in yet.
        let progress = (r / sites) * 100 / (rooms / sites).max(1);
        if progress > 80 {
            continue;
        }
        for kind in [PacketKind::Forms, PacketKind::Blanks] {
            if kind == PacketKind::Blanks && silent_after_forms {
                continue;
            }
            let packet_id = PacketRef {
                site: room.site.clone(),
                date,
                exam: ExamKind::Ege,
                room: room.code.clone(),
                kind,
            }
            .packet_id();
            let versions = if r % 13 == 5 { 2 } else { 1 };
            for version in 1..=versions {
                n += 1;
                let at = now - 3 * 3_600_000 + n * 3_500 % (3 * 3_600_000);
                let digest = {
                    let mut d = [0u8; 32];
                    d[..8].copy_from_slice(&n.to_le_bytes());
                    d
                };
                let body = ReceiptBody {
                    packet_id: packet_id.clone(),
                    version,
                    site: room.site.to_string(),
                    digest,
                    bytes: if kind == PacketKind::Forms { 400_000 } else { 9_000_000 },
                    received_at_unix_ms: at,
                    center_key: KeyId([0; 16]),
                };
                records.push(InboxRecord {
                    receipt: Receipt::sign(body, key)?,
                    signer: KeyId([1; 16]),
                    sealed_at_unix_ms: at - 60_000,
                    test_packet: false,
                    late: false,
                    packet: None,
                });
                // The loader answers most of what came in; version 1 of a resent packet
                // had a remark, and every seventh room's blanks are still waiting.
                if r % 7 == 3 && kind == PacketKind::Blanks {
                    continue;
                }
                let outcome = if version < versions || r % 11 == 4 {
                    AnswerOutcome::Remarks(vec![Remark {
                        id: format!("{packet_id}-v{version}-r1"),
                        room: Some(room.code.to_string()),
                        participant: None,
                        page: Some("scan-003.tif p.2".into()),
                        what: "page 2 is unreadable: the barcode zone is cut off".into(),
                        action: RemarkAction::RescanAndResend,
                    }])
                } else {
                    AnswerOutcome::Loaded
                };
                answers.push(PacketAnswer {
                    site: room.site.to_string(),
                    packet_id: packet_id.clone(),
                    version,
                    digest,
                    outcome,
                    pages: if kind == PacketKind::Blanks { 48 } else { 3 },
                    answered_at_unix_ms: at + 600_000,
                });
            }
        }
    }
    Ok(SampleDay {
        plans: vec![plan],
        records,
        answers,
        now_unix_ms: now,
    })
}
