//! Builds the [`MonitorView`] from what the receiver knows: the exam-day plans, the inbox
//! records (what arrived: site, packet id, version, bytes, time, late) and the loader's
//! answers (loaded or remarks per packet version), plus how far closing has gone.
//!
//! The receiver never opens a packet, so what it says of forms comes from packet ids and
//! answers: a room's forms are "received" once its forms packet is in, "loaded" once the
//! loader answered it, and "remark" while an open remark asks to send that form (or to
//! rescan the forms packet). ППЭ-18МАШ travels in one of the site's forms packets, so it
//! counts as loaded once any of them is and no open remark asks for it.
//!
//! A remark is open until a newer version of its packet arrives (the version that answers
//! it); a remark that only informs ([`RemarkAction::Note`]) is never open.

use std::collections::{BTreeMap, HashMap};

use konvert_exam::{DayPlan, ExamDate, ExamKind, Form, PacketKind, SiteKind, SiteZone};
use konvert_replication::{InboxRecord, PacketAnswer, RemarkAction};

use crate::review::ReviewFlag;

use super::civil::days_from_civil;
use super::view::*;

/// A packet id read back: `{site}-{YYYY-MM-DD}-{exam}-{room}-{kind}` (`PacketRef::packet_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedId {
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The room.
    pub room: String,
    /// What the packet carries.
    pub kind: PacketKind,
}

/// Reads a packet id sent by `site`; `None` if it is not of that form.
pub fn parse_packet_id(site: &str, id: &str) -> Option<ParsedId> {
    let rest = id.strip_prefix(site)?.strip_prefix('-')?;
    let date: ExamDate = rest.get(..10)?.parse().ok()?;
    let rest = rest.get(10..)?.strip_prefix('-')?;
    let (exam, rest) = rest.split_once('-')?;
    let (room, kind) = rest.rsplit_once('-')?;
    if room.is_empty() {
        return None;
    }
    Some(ParsedId {
        date,
        exam: exam.parse().ok()?,
        room: room.to_owned(),
        kind: kind.parse().ok()?,
    })
}

/// One packet id with every version received.
struct Packet<'a> {
    id: &'a str,
    kind: PacketKind,
    room: String,
    versions: BTreeMap<u32, &'a InboxRecord>,
}

/// What a packet's current version looks like, with the answers to it and before it.
struct Current<'a> {
    view: PacketView,
    answered: bool,
    /// Actionable remarks of the current version's answer.
    open: Vec<&'a konvert_replication::Remark>,
    pages: u32,
    first_at: u64,
}

fn kind_word(kind: SiteKind) -> &'static str {
    match kind {
        SiteKind::ExamSite => "ППЭ",
        SiteKind::School => "ОО",
        SiteKind::ProcessingPoint => "ППОИ",
    }
}

/// Whether a remark asks for `form` (compared without spaces or case: sites type codes).
fn asks_for(action: &RemarkAction, form: Form) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    matches!(action, RemarkAction::SendForm { form: f } if norm(f) == norm(form.code()))
}

fn whole_packet(action: &RemarkAction) -> bool {
    matches!(action, RemarkAction::RescanAndResend | RemarkAction::CarryOnDrive)
}

type AnswerIndex<'a> = HashMap<(&'a str, u32), &'a PacketAnswer>;

fn current<'a>(p: &Packet<'a>, answers: &AnswerIndex<'a>) -> Option<Current<'a>> {
    let (&version, record) = p.versions.iter().next_back()?;
    let answer_of = |v: u32, r: &InboxRecord| {
        answers
            .get(&(p.id, v))
            .copied()
            .filter(|a| a.digest == r.receipt.body.digest)
    };
    let answered_remarks = p
        .versions
        .iter()
        .filter(|(&v, _)| v < version)
        .filter_map(|(&v, r)| answer_of(v, r))
        .map(|a| a.remarks().iter().filter(|r| r.action != RemarkAction::Note).count() as u32)
        .sum();
    let answer = answer_of(version, record);
    let open: Vec<_> = answer
        .map(|a| a.remarks().iter().filter(|r| r.action != RemarkAction::Note).collect())
        .unwrap_or_default();
    let state = match answer {
        None => AnswerState::Waiting,
        Some(_) if open.is_empty() => AnswerState::Loaded,
        Some(_) => AnswerState::Remarks(open.len() as u32),
    };
    Some(Current {
        view: PacketView {
            packet_id: p.id.to_owned(),
            kind: p.kind.code().to_owned(),
            version,
            bytes: p.versions.values().map(|r| r.receipt.body.bytes).sum(),
            received_at_unix_ms: record.receipt.body.received_at_unix_ms,
            late: record.late,
            answer: state,
            answered_remarks,
            held: None,
        },
        answered: answer.is_some(),
        open,
        pages: answer.map_or(0, |a| a.pages),
        first_at: p
            .versions
            .values()
            .map(|r| r.receipt.body.received_at_unix_ms)
            .min()
            .unwrap_or(0),
    })
}

fn form_state(form: Form, forms_packet: Option<&Current<'_>>, room_open: &[&konvert_replication::Remark]) -> FormState {
    if room_open.iter().any(|r| asks_for(&r.action, form)) {
        return FormState::Remark;
    }
    match forms_packet {
        None => FormState::Missing,
        Some(c) if !c.answered => FormState::Received,
        Some(c) if c.open.iter().any(|r| whole_packet(&r.action)) => FormState::Remark,
        Some(_) => FormState::Loaded,
    }
}

/// Offset of the site's local time from UTC on the exam day, seconds, from its 23:59.
fn utc_offset_s(zone: &SiteZone, date: ExamDate) -> i32 {
    let naive = days_from_civil(i64::from(date.year), u32::from(date.month), u32::from(date.day)) * 86_400_000
        + (23 * 60 + 59) * 60_000;
    zone.deadline_unix_ms(date)
        .map(|d| ((naive - d) / 1000) as i32)
        .unwrap_or(3 * 3600)
}

/// What the site's packets of one exam day add up to.
struct SiteFacts {
    since_last: Option<u64>,
    outstanding: bool,
    received_pairs: u64,
    expected_pairs: u64,
    first_at: Option<u64>,
}

fn eta(f: &SiteFacts, last: Option<u64>, now: u64) -> Eta {
    let Some(first) = f.first_at else { return Eta::Unknown };
    if f.received_pairs == 0 {
        return Eta::Unknown;
    }
    let remaining = f.expected_pairs.saturating_sub(f.received_pairs);
    if remaining == 0 {
        return Eta::AllIn(last.unwrap_or(first));
    }
    // Its own pace so far: the time since its first packet over the packets it took.
    let elapsed = u128::from(now.saturating_sub(first).max(60_000));
    let more = elapsed * u128::from(remaining) / u128::from(f.received_pairs);
    Eta::At(now.saturating_add(u64::try_from(more).unwrap_or(u64::MAX)))
}

fn risk(f: &SiteFacts, s: &SiteView, window_end: Option<u64>, now: u64) -> Risk {
    if !f.outstanding {
        return Risk::Done;
    }
    let deadline = s.deadline_unix_ms;
    let left = deadline.saturating_sub(now);
    let silent_for = f.since_last.unwrap_or(u64::MAX);
    let window_over = window_end.is_some_and(|w| now > w);
    let late = now > deadline
        || (window_over && s.packets_received == 0)
        || matches!(s.eta, Eta::At(t) if t.saturating_add(LATE_MARGIN_MS) > deadline)
        || (silent_for >= SILENT_LATE_MS && left < NEAR_DEADLINE_MS);
    if late {
        return Risk::Late;
    }
    let behind = window_over
        || matches!((s.eta, window_end), (Eta::At(t), Some(w)) if t > w)
        || s.open_remarks > 0
        || (f.since_last.is_some() && silent_for >= SILENT_MS);
    if behind {
        Risk::Behind
    } else {
        Risk::OnTrack
    }
}

/// Builds the page's view at `now_unix_ms`. Test packets are left out; packets of a day,
/// exam or site no plan lists are shown as unplanned. An answer counts only for the
/// envelope it names (its digest).
pub fn build(
    plans: &[DayPlan],
    records: &[InboxRecord],
    answers: &[PacketAnswer],
    closing: &[DayClosing],
    now_unix_ms: u64,
) -> MonitorView {
    let now = now_unix_ms;
    // Every packet id with its versions; the newest answer to a version wins.
    let mut packets: HashMap<&str, Packet<'_>> = HashMap::new();
    let mut unparsed: Vec<&InboxRecord> = Vec::new();
    for r in records.iter().filter(|r| !r.test_packet) {
        let b = &r.receipt.body;
        match parse_packet_id(&b.site, &b.packet_id) {
            Some(id) if id.kind != PacketKind::Test => {
                let p = packets.entry(b.packet_id.as_str()).or_insert_with(|| Packet {
                    id: b.packet_id.as_str(),
                    kind: id.kind,
                    room: id.room.clone(),
                    versions: BTreeMap::new(),
                });
                p.versions.entry(b.version).or_insert(r);
            }
            Some(_) => {}
            None => unparsed.push(r),
        }
    }
    let mut answer_index: AnswerIndex<'_> = HashMap::new();
    for a in answers {
        let slot = answer_index.entry((a.packet_id.as_str(), a.version)).or_insert(a);
        if a.answered_at_unix_ms > slot.answered_at_unix_ms {
            *slot = a;
        }
    }
    // Packets by (site, date, exam), then by room.
    type DayKey<'a> = (&'a str, ExamDate, &'static str);
    let mut by_site_day: HashMap<DayKey<'_>, Vec<&Packet<'_>>> = HashMap::new();
    for p in packets.values() {
        let Some(r) = p.versions.values().next() else { continue };
        let b = &r.receipt.body;
        if let Some(id) = parse_packet_id(&b.site, p.id) {
            by_site_day
                .entry((b.site.as_str(), id.date, id.exam.code()))
                .or_default()
                .push(p);
        }
    }
    let mut claimed: std::collections::HashSet<DayKey<'_>> = std::collections::HashSet::new();
    let mut days = Vec::with_capacity(plans.len());
    for plan in plans {
        let closing = closing.iter().find(|c| c.date == plan.date && c.exam == plan.exam);
        let mut day = DayView {
            date: plan.date,
            exam: plan.exam,
            region: plan.region.clone(),
            indicators: Indicators::default(),
            closed: closing.is_some_and(|c| c.closed),
            results_passed: closing.is_some_and(|c| c.results_passed),
            sites: Vec::with_capacity(plan.sites.len()),
        };
        let mut seated: HashMap<(&str, &str), u32> = HashMap::new();
        for p in &plan.participants {
            *seated.entry((p.site.as_str(), p.room.as_str())).or_default() += 1;
        }
        let mut rooms_of: HashMap<&str, Vec<&konvert_exam::PlanRoom>> = HashMap::new();
        for r in &plan.rooms {
            rooms_of.entry(r.site.as_str()).or_default().push(r);
        }
        let ind = &mut day.indicators;
        ind.participants = plan.participants.len() as u64;
        ind.sites = plan.sites.len() as u64;
        ind.rooms = plan.rooms.len() as u64;
        for site in &plan.sites {
            let key = (site.code.as_str(), plan.date, plan.exam.code());
            claimed.insert(key);
            let site_packets = by_site_day.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let zone = SiteZone::new(&site.time_zone).unwrap_or_else(|_| SiteZone::moscow());
            let deadline = zone
                .delivery_deadline_unix_ms(plan.date, plan.exam)
                .ok()
                .and_then(|d| u64::try_from(d).ok())
                .unwrap_or(0);
            let window_end = match plan.exam {
                ExamKind::Essay => None,
                _ => zone
                    .deadline_unix_ms(plan.date)
                    .ok()
                    .and_then(|d| u64::try_from(d).ok())
                    .map(|d| d.saturating_sub(BLANKS_WINDOW_END_BEFORE_DEADLINE_MS)),
            };
            let mut by_room: HashMap<&str, Vec<Current<'_>>> = HashMap::new();
            let mut s = SiteView {
                code: site.code.to_string(),
                kind: kind_word(site.kind),
                time_zone: site.time_zone.clone(),
                utc_offset_s: utc_offset_s(&zone, plan.date),
                deadline_unix_ms: deadline,
                packets_received: 0,
                packets_loaded: 0,
                packets_remarked: 0,
                open_remarks: 0,
                rooms_complete: 0,
                rooms_planned: 0,
                bytes: 0,
                last_packet_unix_ms: None,
                late_packets: 0,
                eta: Eta::Unknown,
                risk: Risk::OnTrack,
                silent: false,
                held_for_review: 0,
                form18: FormState::Missing,
                rooms: Vec::new(),
                extra_packets: Vec::new(),
            };
            let mut first_at: Option<u64> = None;
            let mut any_answered = false;
            for p in site_packets {
                let Some(c) = current(p, &answer_index) else { continue };
                s.packets_received += 1;
                s.bytes += c.view.bytes;
                s.late_packets += p.versions.values().filter(|r| r.late).count() as u32;
                let last = p.versions.values().map(|r| r.receipt.body.received_at_unix_ms).max();
                s.last_packet_unix_ms = s.last_packet_unix_ms.max(last);
                first_at = Some(first_at.map_or(c.first_at, |f| f.min(c.first_at)));
                any_answered |= c.answered;
                match c.view.answer {
                    AnswerState::Loaded => s.packets_loaded += 1,
                    AnswerState::Remarks(n) => {
                        s.packets_remarked += 1;
                        s.open_remarks += n;
                    }
                    AnswerState::Waiting => {}
                }
                by_room.entry(p.room.as_str()).or_default().push(c);
            }
            // ППЭ-18МАШ: any open remark asking for it, else any forms packet's state.
            let all_open = by_room.values().flatten().flat_map(|c| c.open.iter());
            s.form18 = if all_open.clone().any(|r| asks_for(&r.action, Form::Ppe18Mash)) {
                FormState::Remark
            } else {
                let forms = by_room
                    .values()
                    .flatten()
                    .filter(|c| c.view.kind == PacketKind::Forms.code());
                let mut best = FormState::Missing;
                for c in forms {
                    best = match (best, c.answered) {
                        (_, true) => FormState::Loaded,
                        (FormState::Missing, false) => FormState::Received,
                        (b, false) => b,
                    };
                }
                best
            };
            let (mut received_pairs, mut expected_pairs) = (0u64, 0u64);
            let planned_rooms = rooms_of.get(site.code.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            s.rooms_planned = planned_rooms.len() as u32;
            for room in planned_rooms {
                let mut packets = by_room.remove(room.code.as_str()).unwrap_or_default();
                packets.sort_by_key(|c| (c.view.kind != PacketKind::Forms.code(), c.view.packet_id.clone()));
                let of = |k: PacketKind| packets.iter().find(|c| c.view.kind == k.code());
                let (forms, blanks) = (of(PacketKind::Forms), of(PacketKind::Blanks));
                let room_open: Vec<_> = packets.iter().flat_map(|c| c.open.iter().copied()).collect();
                let summary = if room.oral {
                    Form::Ppe13_03UMash
                } else {
                    Form::Ppe13_02Mash
                };
                let form_list = vec![
                    (
                        Form::Ppe12_04Mash.code(),
                        form_state(Form::Ppe12_04Mash, forms, &room_open),
                    ),
                    (summary.code(), form_state(summary, forms, &room_open)),
                ];
                expected_pairs += 2;
                ind.packets_expected += 2;
                let pair = [forms, blanks];
                let got = pair.iter().flatten().count() as u64;
                received_pairs += got;
                ind.packets_received += got;
                ind.packets_complete += pair
                    .iter()
                    .flatten()
                    .filter(|c| c.answered && c.open.is_empty())
                    .count() as u64;
                let people = seated
                    .get(&(site.code.as_str(), room.code.as_str()))
                    .copied()
                    .unwrap_or(0);
                if let Some(b) = blanks.filter(|b| b.answered) {
                    ind.participants_processed += u64::from(people);
                    ind.blanks_pages_registered += u64::from(b.pages);
                }
                let both_answered = forms.is_some_and(|c| c.answered) && blanks.is_some_and(|c| c.answered);
                let state = if packets.is_empty() {
                    RoomState::Waiting
                } else if !room_open.is_empty() {
                    RoomState::Remarks
                } else if both_answered {
                    RoomState::Complete
                } else if forms.is_some() && blanks.is_some() {
                    RoomState::Loading
                } else {
                    RoomState::Partial
                };
                if state == RoomState::Complete {
                    s.rooms_complete += 1;
                    ind.rooms_complete += 1;
                }
                if packets.iter().any(|c| c.answered) {
                    ind.rooms_started += 1;
                }
                s.rooms.push(RoomView {
                    code: room.code.to_string(),
                    oral: room.oral,
                    participants: people,
                    forms: form_list,
                    packets: packets.into_iter().map(|c| c.view).collect(),
                    state,
                });
            }
            // Packets of rooms the plan does not list (UNSORTED and the like).
            let mut extra: Vec<PacketView> = by_room.into_values().flatten().map(|c| c.view).collect();
            extra.sort_by(|a, b| a.packet_id.cmp(&b.packet_id));
            s.extra_packets = extra;
            let outstanding =
                s.rooms_complete < s.rooms_planned || (s.rooms_planned > 0 && s.form18 != FormState::Loaded);
            let facts = SiteFacts {
                since_last: s.last_packet_unix_ms.map(|l| now.saturating_sub(l)),
                outstanding,
                received_pairs,
                expected_pairs,
                first_at,
            };
            s.eta = eta(&facts, s.last_packet_unix_ms, now);
            s.risk = risk(&facts, &s, window_end, now);
            s.silent = outstanding && facts.since_last.is_none_or(|t| t >= SILENT_MS);
            ind.open_remarks += u64::from(s.open_remarks);
            ind.sites_started += u64::from(any_answered);
            ind.sites_complete += u64::from(s.risk == Risk::Done);
            day.sites.push(s);
        }
        day.sites
            .sort_by(|a, b| (!a.silent, a.risk, &a.code).cmp(&(!b.silent, b.risk, &b.code)));
        days.push(day);
    }
    days.sort_by_key(|d| d.date);
    // Whatever no plan claimed, by site.
    let mut unplanned: BTreeMap<String, UnplannedSite> = BTreeMap::new();
    let mut note = |site: &str, id: &str, bytes: u64, at: u64| {
        let u = unplanned.entry(site.to_owned()).or_insert_with(|| UnplannedSite {
            code: site.to_owned(),
            packets: 0,
            bytes: 0,
            last_packet_unix_ms: None,
            packet_ids: Vec::new(),
        });
        if !u.packet_ids.iter().any(|p| p == id) {
            u.packets += 1;
            u.packet_ids.push(id.to_owned());
        }
        u.bytes += bytes;
        u.last_packet_unix_ms = u.last_packet_unix_ms.max(Some(at));
    };
    for (key, list) in &by_site_day {
        if claimed.contains(key) {
            continue;
        }
        for p in list {
            for r in p.versions.values() {
                let b = &r.receipt.body;
                note(&b.site, p.id, b.bytes, b.received_at_unix_ms);
            }
        }
    }
    for r in unparsed {
        let b = &r.receipt.body;
        note(&b.site, &b.packet_id, b.bytes, b.received_at_unix_ms);
    }
    let mut unplanned: Vec<UnplannedSite> = unplanned.into_values().collect();
    for u in &mut unplanned {
        u.packet_ids.sort();
    }
    MonitorView {
        built_at_unix_ms: now,
        days,
        unplanned,
    }
}

/// Marks the packets whose current version is held for review (`flags`: the review desk's,
/// one per stored version signed by a token blocked since) and counts them per site.
pub fn mark_held(view: &mut MonitorView, flags: &[ReviewFlag]) {
    let held: HashMap<(&str, u32), &str> = flags
        .iter()
        .map(|f| ((f.packet_id.as_str(), f.version), f.status.as_str()))
        .collect();
    for site in view.days.iter_mut().flat_map(|d| d.sites.iter_mut()) {
        let mut count = 0;
        let packets = site.rooms.iter_mut().flat_map(|r| r.packets.iter_mut());
        for p in packets.chain(site.extra_packets.iter_mut()) {
            if let Some(status) = held.get(&(p.packet_id.as_str(), p.version)) {
                p.held = Some((*status).to_owned());
                count += 1;
            }
        }
        site.held_for_review = count;
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
pub(crate) mod tests;
