//! From what is registered to what it means: each page's stage and final state, the
//! findings, and the answer to each packet version. A pure function of the records (plans,
//! packets, pages, decisions), so a run repeated on the same records derives the same
//! thing, and the order packets were registered in does not matter.
//!
//! The order of the regulations' chain (002:7168–7189) holds page by page: a page is
//! registered as its packet is loaded, in any order; it is verified only once its room's
//! ППЭ-13-02МАШ (13-03-У МАШ for the oral part) is processed (R15, 002:7305), and only
//! verification makes findings against the plan and gives the final state. Until then the
//! page waits (`AwaitingForms`), and what the recognizer was unsure of waits for a
//! verifier (`AwaitingVerifier`), or a senior verifier (`AwaitingSenior`).

use std::collections::{BTreeMap, BTreeSet};

use konvert_exam::{full_set, BlankId, BlankKind, DayPlan, ExamKind, Form, PacketKind, PageIdentity, RoomId};
use konvert_records::{
    AudioChoice, Decision, DecisionKind, ExamDay, FinalState, Finding, FindingKind, Mark, Opening, PacketEntry,
    PageEntry, PageKey, PageOutcome, PageReading, PageStage, Role, Verdict,
};
use konvert_replication::{AnswerOutcome, PacketAnswer, Remark, RemarkAction};

/// What one resolution derives.
#[derive(Debug, Default)]
pub struct Resolution {
    /// One per registered page.
    pub outcomes: Vec<PageOutcome>,
    /// Everything found, each once.
    pub findings: Vec<Finding>,
    /// The answer to every packet version that can be answered now.
    pub answers: Vec<PacketAnswer>,
    /// Each planned or seen room's reconciliation.
    pub rooms: Vec<RoomState>,
    /// Sites (of each exam day) whose ППЭ-18МАШ is processed.
    pub sites_with_18: BTreeSet<(ExamDay, String)>,
    /// Packet versions a newer version of the same packet replaced, by envelope id.
    pub superseded: BTreeSet<[u8; 32]>,
}

/// Where a room stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// The exam day.
    pub day: ExamDay,
    /// The site.
    pub site: String,
    /// The room.
    pub room: RoomId,
    /// Participants the plan seats there.
    pub seated: usize,
    /// Participants with at least one blank registered there.
    pub wrote: usize,
    /// Of them, with the whole set.
    pub complete_sets: usize,
    /// ППЭ-12-04МАШ processed.
    pub has_12_04: bool,
    /// ППЭ-13-02МАШ (or 13-03-У МАШ) processed.
    pub has_summary: bool,
    /// The summary form this room needs.
    pub summary: Form,
    /// Pages still waiting for forms or a verifier.
    pub waiting: usize,
    /// Pages with a final state.
    pub done: usize,
}

impl RoomState {
    /// Every form there and every page final.
    pub fn is_complete(&self) -> bool {
        self.has_12_04 && self.has_summary && self.waiting == 0
    }
}

type RoomKey = (ExamDay, String, RoomId);

/// The human verdict on a page, as the decisions leave it: the last verifier's word,
/// unless it passed the page on, then the last senior verifier's.
fn verdicts(decisions: &[Decision]) -> BTreeMap<PageKey, (Verdict, Role)> {
    let mut out: BTreeMap<PageKey, (Verdict, Role)> = BTreeMap::new();
    for d in decisions {
        if let DecisionKind::Verify { page, verdict } = &d.kind {
            let current = out.get(page);
            // A verifier does not overrule a senior verifier.
            if d.role == Role::Verifier && current.is_some_and(|(_, r)| *r == Role::SeniorVerifier) {
                continue;
            }
            out.insert(*page, (verdict.clone(), d.role));
        }
    }
    out
}

/// The summary form a room of `plan` needs.
fn summary_form(plan: Option<&DayPlan>, site: &str, room: &RoomId) -> Form {
    let oral = plan
        .and_then(|p| p.rooms.iter().find(|r| r.site.as_str() == site && &r.code == room))
        .is_some_and(|r| r.oral);
    if oral {
        Form::Ppe13_03UMash
    } else {
        Form::Ppe13_02Mash
    }
}

/// Whether a blank kind belongs to `exam`'s blanks at all.
fn kind_of_exam(kind: BlankKind, exam: ExamKind) -> bool {
    kind == BlankKind::Additional && exam != ExamKind::Essay || full_set(exam).iter().any(|(k, _)| *k == kind)
}

/// The blanks of a full set for kit `kit`.
fn full_set_ids(exam: ExamKind, kit: u64) -> Vec<BlankId> {
    let mut ids = Vec::new();
    for &(kind, count) in full_set(exam) {
        let first = u8::from(kind == BlankKind::EssayWriting);
        for sheet in first..first + count {
            if let Ok(id) = BlankId::for_kit(kind, kit, sheet) {
                ids.push(id);
            }
        }
    }
    ids
}

fn describe(identity: &PageIdentity) -> String {
    match identity {
        PageIdentity::Blank(id) => format!("{} {id}", id.kind.title()),
        PageIdentity::Form(id) => format!("{} (room {})", id.form.code(), id.room),
    }
}

fn hex8(b: &[u8; 32]) -> String {
    hex::encode(&b[..8])
}

/// Resolves everything registered.
pub fn resolve(plans: &[DayPlan], packets: &[PacketEntry], pages: &[PageEntry], decisions: &[Decision]) -> Resolution {
    let plan_of: BTreeMap<ExamDay, &DayPlan> = plans
        .iter()
        .map(|p| {
            (
                ExamDay {
                    date: p.date,
                    exam: p.exam,
                },
                p,
            )
        })
        .collect();
    // Participants by kit, per exam day, and every kit of any day.
    let by_kit: BTreeMap<ExamDay, BTreeMap<u64, &konvert_exam::PlanParticipant>> =
        plan_of.iter().map(|(day, plan)| (*day, plan.by_kit())).collect();
    let any_kit: BTreeSet<u64> = plans
        .iter()
        .flat_map(|p| p.participants.iter().map(|x| x.kit))
        .collect();
    let packet_of: BTreeMap<[u8; 32], &PacketEntry> = packets.iter().map(|p| (p.envelope, p)).collect();
    // The newest opened version of each packet id; older versions are superseded by it
    // as a whole set.
    let mut newest: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for p in packets {
        if matches!(p.opening, Opening::Opened { .. }) {
            let v = newest
                .entry((p.site.as_str(), p.packet_id.as_str()))
                .or_insert(p.version);
            *v = (*v).max(p.version);
        }
    }
    let is_current = |p: &PacketEntry| newest.get(&(p.site.as_str(), p.packet_id.as_str())) == Some(&p.version);
    // When each packet id first arrived: the order duplicates are judged in.
    let mut first_received: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for p in packets {
        let t = first_received
            .entry((p.site.as_str(), p.packet_id.as_str()))
            .or_insert(p.received_at_unix_ms);
        *t = (*t).min(p.received_at_unix_ms);
    }
    let verdicts = verdicts(decisions);

    // What each page is, after a verifier's word where there is one.
    let identity_of = |page: &PageEntry| -> Option<PageIdentity> {
        match verdicts.get(&page.key) {
            Some((Verdict::Is(id), _)) => Some(id.clone()),
            Some((Verdict::Unreadable, _)) => None,
            _ => match &page.reading {
                PageReading::Read { identity, .. } => Some(identity.clone()),
                _ => None,
            },
        }
    };

    // Forms processed, per room (from current versions only).
    let mut summary_at: BTreeMap<RoomKey, u64> = BTreeMap::new();
    let mut has_12_04: BTreeSet<RoomKey> = BTreeSet::new();
    let mut has_18: BTreeSet<(ExamDay, String)> = BTreeSet::new();
    // The site's acts of removal (ППЭ-21) and early finish (ППЭ-22) per room, and the
    // room summaries of ППЭ-13-02МАШ (13-03-У МАШ), from what the forms' QR codes carry.
    let mut acts: BTreeMap<(RoomKey, Form), BTreeSet<u64>> = BTreeMap::new();
    let mut summaries: BTreeMap<RoomKey, konvert_exam::RoomSummary> = BTreeMap::new();
    for page in pages {
        let Some(p) = packet_of.get(&page.key.envelope) else {
            continue;
        };
        if !is_current(p) {
            continue;
        }
        if let Some(PageIdentity::Form(f)) = identity_of(page) {
            if f.site.as_str() != p.site || f.date != p.day.date {
                continue;
            }
            let key = (p.day, p.site.clone(), f.room.clone());
            if let PageReading::Read {
                contents: Some(contents),
                ..
            } = &page.reading
            {
                match contents {
                    konvert_exam::FormContents::RoomSummary(summary) => {
                        summaries.insert(key.clone(), summary.clone());
                    }
                    konvert_exam::FormContents::Kits(kits) => {
                        acts.entry((key.clone(), f.form))
                            .or_default()
                            .extend(kits.iter().copied());
                    }
                }
            }
            match f.form {
                Form::Ppe13_02Mash | Form::Ppe13_03UMash
                    if f.form == summary_form(plan_of.get(&p.day).copied(), &p.site, &f.room) =>
                {
                    let t = summary_at.entry(key).or_insert(p.received_at_unix_ms);
                    *t = (*t).min(p.received_at_unix_ms);
                }
                Form::Ppe12_04Mash => {
                    has_12_04.insert(key);
                }
                Form::Ppe18Mash => {
                    has_18.insert((p.day, p.site.clone()));
                }
                _ => {}
            }
        }
    }

    // The original of each blank: the page of the earliest-arrived packet, its newest
    // version first, then in key order.
    let rank = |page: &PageEntry| {
        let p = packet_of.get(&page.key.envelope);
        let first = p.map_or(u64::MAX, |p| {
            first_received
                .get(&(p.site.as_str(), p.packet_id.as_str()))
                .copied()
                .unwrap_or(u64::MAX)
        });
        let current = p.is_some_and(|p| is_current(p));
        (
            first,
            p.map(|p| (p.site.clone(), p.packet_id.clone())),
            !current,
            std::cmp::Reverse(p.map_or(0, |p| p.version)),
            page.key,
        )
    };
    let mut by_blank: BTreeMap<(ExamDay, BlankId), Vec<&PageEntry>> = BTreeMap::new();
    for page in pages {
        let Some(p) = packet_of.get(&page.key.envelope) else {
            continue;
        };
        if let Some(PageIdentity::Blank(id)) = identity_of(page) {
            by_blank.entry((p.day, id)).or_default().push(page);
        }
    }
    let mut original_of: BTreeMap<PageKey, PageKey> = BTreeMap::new();
    for list in by_blank.values_mut() {
        list.sort_by_key(|p| rank(p));
        if let Some((first, rest)) = list.split_first() {
            for dup in rest {
                original_of.insert(dup.key, first.key);
            }
        }
    }

    // Recordings by KIM number (after renumbering), per exam day: every group of two or
    // more is blocked until an operator decides each recording (R14).
    let mut audio_choice: BTreeMap<PageKey, &AudioChoice> = BTreeMap::new();
    for d in decisions {
        if let DecisionKind::Audio { recording, choice } = &d.kind {
            audio_choice.insert(*recording, choice);
        }
    }
    let kim_of = |page: &PageEntry| -> Option<String> {
        match (&page.reading, audio_choice.get(&page.key)) {
            (PageReading::Recording { .. }, Some(AudioChoice::Renumber(k))) => Some(k.clone()),
            (PageReading::Recording { kim }, _) => Some(kim.clone()),
            _ => None,
        }
    };
    let mut kim_groups: BTreeMap<(ExamDay, String), Vec<PageKey>> = BTreeMap::new();
    for page in pages {
        let Some(p) = packet_of.get(&page.key.envelope) else {
            continue;
        };
        if let (true, Some(kim)) = (is_current(p), kim_of(page)) {
            kim_groups.entry((p.day, kim)).or_default().push(page.key);
        }
    }

    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    let mut add = |f: Finding| {
        findings.entry(f.id.clone()).or_insert(f);
    };
    let mut outcomes = Vec::with_capacity(pages.len());
    // Participants seen writing, per room: kit → blanks.
    let mut wrote: BTreeMap<RoomKey, BTreeMap<u64, BTreeSet<BlankId>>> = BTreeMap::new();
    let mut blanks_at: BTreeMap<RoomKey, (u64, [u8; 32])> = BTreeMap::new();
    // Registration blanks' marks per room: kit → (removed, early finish).
    type Marks = (Option<Mark>, Option<Mark>);
    let mut reg_marks: BTreeMap<RoomKey, BTreeMap<u64, Marks>> = BTreeMap::new();

    for page in pages {
        let Some(p) = packet_of.get(&page.key.envelope) else {
            continue;
        };
        let room_key: RoomKey = (p.day, p.site.clone(), p.room.clone());
        let gate_open = matches!(p.kind, PacketKind::Forms | PacketKind::Audio) || summary_at.contains_key(&room_key);
        if p.kind == PacketKind::Blanks {
            let e = blanks_at
                .entry(room_key.clone())
                .or_insert((p.received_at_unix_ms, p.envelope));
            if p.received_at_unix_ms < e.0 {
                *e = (p.received_at_unix_ms, p.envelope);
            }
        }
        let identity = identity_of(page);
        let verdict = verdicts.get(&page.key);
        let unsure = match &page.reading {
            PageReading::Read {
                via_fallback, identity, ..
            } => {
                *via_fallback
                    || page.site_reading.as_ref().is_some_and(|s| s != identity)
                    || [page.removed_mark, page.early_finish_mark, page.written].contains(&Some(Mark::Unsure))
            }
            _ => false,
        };
        let mut participant = None;
        let what = identity.as_ref().map_or_else(|| format!("page {}", page.key), describe);
        let presumed_empty = page.written == Some(Mark::No)
            && p.day.exam != ExamKind::Essay
            && matches!(
                &identity,
                Some(PageIdentity::Blank(id)) if matches!(id.kind, BlankKind::Answer2Sheet1 | BlankKind::Answer2Sheet2 | BlankKind::Additional)
            );
        let finding = |id: String, kind: FindingKind, participant: Option<String>| Finding {
            id,
            day: p.day,
            site: p.site.clone(),
            room: Some(p.room.clone()),
            packet: Some(p.envelope),
            page: Some(page.key),
            participant,
            kind,
        };

        // Problems of the scan itself are told to the site at once: it can rescan
        // before 23:59 whether or not the room's forms are in.
        match &page.reading {
            PageReading::NotImage { reason } => add(finding(
                format!("not-image:{}:{}", hex8(&p.envelope), page.key.file),
                FindingKind::NotAnImage { reason: reason.clone() },
                None,
            )),
            PageReading::Unreadable { reason } if verdict.is_none() => add(finding(
                format!("unreadable:{}", page.key),
                FindingKind::UnreadableBarcode { reason: reason.clone() },
                None,
            )),
            _ => {}
        }

        let recording_group = kim_of(page).and_then(|kim| {
            let group = kim_groups.get(&(p.day, kim.clone()))?;
            (group.len() > 1 && is_current(p)).then(|| (kim, group.clone()))
        });
        if let Some((kim, group)) = &recording_group {
            add(Finding {
                id: format!("kim:{}:{kim}", p.day),
                page: None,
                packet: Some(p.envelope),
                ..finding(
                    String::new(),
                    FindingKind::KimGroup {
                        kim: kim.clone(),
                        recordings: group.clone(),
                    },
                    None,
                )
            });
        }
        let stage = if !plan_of.contains_key(&p.day) {
            // Without the day's plan nothing can be checked, nor answered "loaded".
            PageStage::AwaitingPlan
        } else if !gate_open {
            PageStage::AwaitingForms
        } else if let Some(PageReading::Recording { .. }) = Some(&page.reading) {
            match (&recording_group, audio_choice.get(&page.key)) {
                (Some(_), None) => PageStage::Blocked,
                (_, Some(AudioChoice::Annul)) => PageStage::Final(FinalState::Quarantined {
                    reason: "annulled by the audio operator".into(),
                }),
                _ => PageStage::Final(FinalState::Registered),
            }
        } else if let Some((Verdict::ToSenior, _)) = verdict {
            PageStage::AwaitingSenior
        } else if unsure && verdict.is_none() {
            PageStage::AwaitingVerifier
        } else {
            let state = match (&page.reading, &identity) {
                (PageReading::NotImage { reason }, _) => FinalState::Quarantined {
                    reason: format!("not an image: {reason}"),
                },
                (_, None) => FinalState::Quarantined {
                    reason: match &page.reading {
                        PageReading::Unreadable { reason } => format!("barcode zone unreadable: {reason}"),
                        _ => "a verifier found the barcode unreadable".into(),
                    },
                },
                (_, Some(PageIdentity::Form(f))) => {
                    if f.site.as_str() != p.site || f.date != p.day.date {
                        let reason = format!("{} of site {} for {}", f.form.code(), f.site, f.date);
                        add(finding(
                            format!("other-exam:{}", page.key),
                            FindingKind::NotThisExam { reason: reason.clone() },
                            None,
                        ));
                        FinalState::NotThisExam { reason }
                    } else {
                        FinalState::Registered
                    }
                }
                (_, Some(PageIdentity::Blank(id))) => {
                    if !kind_of_exam(id.kind, p.day.exam) {
                        let reason = format!("{} is not a blank of {}", id.kind.title(), p.day);
                        add(finding(
                            format!("other-exam:{}", page.key),
                            FindingKind::NotThisExam { reason: reason.clone() },
                            None,
                        ));
                        FinalState::NotThisExam { reason }
                    } else if let Some(of) = original_of.get(&page.key) {
                        FinalState::Duplicate { of: *of }
                    } else {
                        wrote
                            .entry(room_key.clone())
                            .or_default()
                            .entry(id.kit())
                            .or_default()
                            .insert(*id);
                        let planned = by_kit.get(&p.day).and_then(|m| m.get(&id.kit()).copied());
                        match planned {
                            None => {
                                let elsewhere = any_kit.contains(&id.kit());
                                let reason = if elsewhere {
                                    format!("kit {} is not registered for {}", id.kit(), p.day)
                                } else {
                                    format!("kit {} is not in the plan of {}", id.kit(), p.day)
                                };
                                add(Finding {
                                    page: None,
                                    packet: Some(p.envelope),
                                    ..finding(
                                        format!("not-in-plan:{}:{}", p.day, id.kit()),
                                        FindingKind::NotInPlan { kit: id.kit() },
                                        None,
                                    )
                                });
                                FinalState::Withheld { reason }
                            }
                            Some(x) if x.site.as_str() != p.site || x.room != p.room => {
                                participant = Some(x.code.clone());
                                let planned = format!("room {} of site {}", x.room, x.site);
                                add(Finding {
                                    page: None,
                                    packet: Some(p.envelope),
                                    ..finding(
                                        format!("seated-elsewhere:{}:{}", p.day, x.code),
                                        FindingKind::SeatedElsewhere {
                                            planned: planned.clone(),
                                        },
                                        Some(x.code.clone()),
                                    )
                                });
                                FinalState::Withheld {
                                    reason: format!("participant {} is seated in {planned}", x.code),
                                }
                            }
                            Some(x) => {
                                participant = Some(x.code.clone());
                                if id.kind == BlankKind::Registration {
                                    reg_marks
                                        .entry(room_key.clone())
                                        .or_default()
                                        .insert(id.kit(), (page.removed_mark, page.early_finish_mark));
                                }
                                FinalState::Registered
                            }
                        }
                    }
                }
            };
            PageStage::Final(state)
        };
        outcomes.push(PageOutcome {
            key: page.key,
            digest: page.digest,
            day: p.day,
            site: p.site.clone(),
            room: p.room.clone(),
            participant,
            what,
            stage,
            presumed_empty,
        });
    }

    // Removal and early-finish marks against the site's acts (R16, 002:7183–7188, 7441),
    // room by room once verified.
    for (room, marks) in &reg_marks {
        for (form, which, pick) in [
            (Form::Ppe21, "удалён (removed)", 0usize),
            (Form::Ppe22, "не завершил (early finish)", 1usize),
        ] {
            let listed = acts.get(&(room.clone(), form)).cloned().unwrap_or_default();
            let mut kits: BTreeSet<u64> = listed.clone();
            kits.extend(marks.keys().copied());
            for kit in kits {
                let mark = marks.get(&kit).and_then(|m| if pick == 0 { m.0 } else { m.1 });
                let on_act = listed.contains(&kit);
                let detail = match (marks.contains_key(&kit), mark == Some(Mark::Yes), on_act) {
                    (false, _, true) => format!(
                        "{} lists kit {kit}, whose registration blank the room did not send",
                        form.code()
                    ),
                    (true, true, false) => format!(
                        "the registration blank is marked, {} does not list kit {kit}",
                        form.code()
                    ),
                    (true, false, true) => {
                        format!("{} lists kit {kit}, its registration blank is not marked", form.code())
                    }
                    _ => continue,
                };
                let (day, site, room_id) = room.clone();
                add(Finding {
                    id: format!("marks:{day}:{kit}:{}", form.code()),
                    day,
                    site,
                    room: Some(room_id),
                    packet: blanks_at.get(room).map(|b| b.1),
                    page: None,
                    participant: by_kit.get(&day).and_then(|m| m.get(&kit)).map(|x| x.code.clone()),
                    kind: FindingKind::MarksDisagree {
                        kit,
                        mark: which.into(),
                        detail,
                    },
                });
            }
        }
    }

    // The same blank twice, beyond a rescan replacing its own earlier version: told once,
    // about the newest copy (the version the site would answer).
    for ((day, id), list) in &by_blank {
        let Some((first, rest)) = list.split_first() else {
            continue;
        };
        let orig = packet_of.get(&first.key.envelope);
        let copies: Vec<&&PageEntry> = rest
            .iter()
            .filter(|page| {
                let p = packet_of.get(&page.key.envelope);
                !matches!((orig, p), (Some(o), Some(p)) if o.site == p.site && o.packet_id == p.packet_id)
            })
            .collect();
        let Some(last) = copies.iter().max_by_key(|page| {
            let p = packet_of.get(&page.key.envelope);
            (
                p.is_some_and(|p| is_current(p)),
                p.map_or(0, |p| p.received_at_unix_ms),
                page.key,
            )
        }) else {
            continue;
        };
        let Some(p) = packet_of.get(&last.key.envelope) else {
            continue;
        };
        // Found only where the copy was verified (its room's forms are in).
        if !(p.kind == PacketKind::Forms || summary_at.contains_key(&(p.day, p.site.clone(), p.room.clone()))) {
            continue;
        }
        add(Finding {
            id: format!("duplicate:{day}:{id}"),
            day: *day,
            site: p.site.clone(),
            room: Some(p.room.clone()),
            packet: Some(p.envelope),
            page: Some(last.key),
            participant: None,
            kind: FindingKind::DuplicateBlank {
                blank: describe(&PageIdentity::Blank(*id)),
                of: first.key,
            },
        });
    }

    // Rooms whose blanks came before their summary form: they waited for it.
    for ((day, site, room), (at, envelope)) in &blanks_at {
        let form = summary_form(plan_of.get(day).copied(), site, room);
        let key = (*day, site.clone(), room.clone());
        if summary_at.get(&key).is_none_or(|t| t > at) {
            add(Finding {
                id: format!("forms-after-blanks:{day}:{site}:{room}"),
                day: *day,
                site: site.clone(),
                room: Some(room.clone()),
                packet: Some(*envelope),
                page: None,
                participant: None,
                kind: FindingKind::BlanksBeforeForms {
                    form: form.code().to_owned(),
                },
            });
        }
    }

    // A newer version replaces the older as a whole set: say what it lacks.
    let mut versions: BTreeMap<(&str, &str), Vec<&PacketEntry>> = BTreeMap::new();
    for p in packets.iter().filter(|p| matches!(p.opening, Opening::Opened { .. })) {
        versions
            .entry((p.site.as_str(), p.packet_id.as_str()))
            .or_default()
            .push(p);
    }
    let mut blanks_in: BTreeMap<[u8; 32], BTreeSet<BlankId>> = BTreeMap::new();
    for page in pages {
        if let Some(PageIdentity::Blank(id)) = identity_of(page) {
            blanks_in.entry(page.key.envelope).or_default().insert(id);
        }
    }
    let empty = BTreeSet::new();
    for list in versions.values_mut() {
        list.sort_by_key(|p| p.version);
        let Some((newest, older)) = list.split_last() else {
            continue;
        };
        let now = blanks_in.get(&newest.envelope).unwrap_or(&empty);
        for old in older {
            for id in blanks_in.get(&old.envelope).unwrap_or(&empty) {
                if !now.contains(id) {
                    add(Finding {
                        id: format!("lacks:{}:{}:{id}", newest.packet_id, newest.version),
                        day: newest.day,
                        site: newest.site.clone(),
                        room: Some(newest.room.clone()),
                        packet: Some(newest.envelope),
                        page: None,
                        participant: None,
                        kind: FindingKind::VersionLacksBlank {
                            blank: describe(&PageIdentity::Blank(*id)),
                            had_in: old.version,
                            version: newest.version,
                        },
                    });
                }
            }
        }
    }

    // Packets that did not open.
    for p in packets {
        if let Opening::Refused { reason } = &p.opening {
            add(Finding {
                id: format!("refused:{}", hex8(&p.envelope)),
                day: p.day,
                site: p.site.clone(),
                room: Some(p.room.clone()),
                packet: Some(p.envelope),
                page: None,
                participant: None,
                kind: FindingKind::PacketRefused { reason: reason.clone() },
            });
        }
    }

    // Rooms: planned ones and any seen.
    let mut room_keys: BTreeSet<RoomKey> = BTreeSet::new();
    for (day, plan) in &plan_of {
        for r in &plan.rooms {
            room_keys.insert((*day, r.site.as_str().to_owned(), r.code.clone()));
        }
    }
    for p in packets {
        room_keys.insert((p.day, p.site.clone(), p.room.clone()));
    }
    let mut waiting: BTreeMap<RoomKey, (usize, usize)> = BTreeMap::new();
    for o in &outcomes {
        let e = waiting.entry((o.day, o.site.clone(), o.room.clone())).or_default();
        match o.stage {
            PageStage::Final(_) => e.1 += 1,
            _ => e.0 += 1,
        }
    }
    let mut rooms = Vec::new();
    for key in room_keys {
        let (day, site, room) = key.clone();
        let plan = plan_of.get(&day).copied();
        let summary = summary_form(plan, &site, &room);
        let seated: Vec<u64> = plan
            .map(|pl| {
                pl.participants
                    .iter()
                    .filter(|x| x.site.as_str() == site && x.room == room)
                    .map(|x| x.kit)
                    .collect()
            })
            .unwrap_or_default();
        let has_summary = summary_at.contains_key(&key);
        let empty_room = BTreeMap::new();
        let writers = wrote.get(&key).unwrap_or(&empty_room);
        let mut complete = 0;
        let mut missing_of: BTreeMap<BlankKind, u32> = BTreeMap::new();
        for (kit, have) in writers {
            let missing: Vec<BlankId> = full_set_ids(day.exam, *kit)
                .into_iter()
                .filter(|id| !have.contains(id))
                .collect();
            if missing.is_empty() {
                complete += 1;
            }
            let who = plan
                .and_then(|_| by_kit.get(&day).and_then(|m| m.get(kit).copied()))
                .map(|x| x.code.clone());
            let packet = blanks_at.get(&key).map(|b| b.1);
            for id in missing {
                *missing_of.entry(id.kind).or_default() += 1;
                add(Finding {
                    id: format!("missing:{day}:{id}"),
                    day,
                    site: site.clone(),
                    room: Some(room.clone()),
                    packet,
                    page: None,
                    participant: who.clone(),
                    kind: FindingKind::MissingBlank {
                        blank: describe(&PageIdentity::Blank(id)),
                    },
                });
            }
        }
        // The room's counts against its summary form, beyond what missing blanks explain.
        if let Some(summary) = summaries.get(&key) {
            let mut differs = Vec::new();
            if summary.present as usize != writers.len() {
                differs.push(format!(
                    "{} reports {} present, blanks came from {}",
                    summary_form(plan, &site, &room).code(),
                    summary.present,
                    writers.len()
                ));
            }
            for kind in BlankKind::ALL {
                let got = writers.values().flatten().filter(|id| id.kind == kind).count() as u32;
                let explained = got + missing_of.get(&kind).copied().unwrap_or(0);
                if summary.blanks_of(kind) != explained && (summary.blanks_of(kind) != got) {
                    differs.push(format!(
                        "{}: {} reported, {got} registered",
                        kind.title(),
                        summary.blanks_of(kind)
                    ));
                }
            }
            if !differs.is_empty() {
                add(Finding {
                    id: format!("counts:{day}:{site}:{room}"),
                    day,
                    site: site.clone(),
                    room: Some(room.clone()),
                    packet: blanks_at.get(&key).map(|b| b.1),
                    page: None,
                    participant: None,
                    kind: FindingKind::CountsDisagree {
                        detail: differs.join("; "),
                    },
                });
            }
        }
        let (w, d) = waiting.get(&key).copied().unwrap_or_default();
        rooms.push(RoomState {
            day,
            site,
            room,
            seated: seated.len(),
            wrote: writers.len(),
            complete_sets: complete,
            has_12_04: has_12_04.contains(&key),
            has_summary,
            summary,
            waiting: w,
            done: d,
        });
    }
    let findings: Vec<Finding> = findings.into_values().collect();
    let answers = answers(packets, pages, &outcomes, &findings);
    Resolution {
        outcomes,
        findings,
        answers,
        rooms,
        sites_with_18: has_18,
        superseded: packets
            .iter()
            .filter(|p| {
                newest
                    .get(&(p.site.as_str(), p.packet_id.as_str()))
                    .is_some_and(|v| *v > p.version)
            })
            .map(|p| p.envelope)
            .collect(),
    }
}

/// The remark a finding makes to the site, if it asks anything of it.
fn remark(f: &Finding, pages: &BTreeMap<PageKey, String>) -> Option<Remark> {
    let page = f.page.and_then(|k| pages.get(&k).cloned());
    let (what, action) = match &f.kind {
        FindingKind::UnreadableBarcode { reason } => (
            format!("the barcode of this page cannot be read ({reason})"),
            RemarkAction::RescanAndResend,
        ),
        FindingKind::NotAnImage { reason } => (
            format!("a file of the packet is not a readable scan ({reason})"),
            RemarkAction::RescanAndResend,
        ),
        FindingKind::PacketRefused { reason } => (
            format!("the packet could not be loaded: {reason}"),
            RemarkAction::RescanAndResend,
        ),
        FindingKind::MissingBlank { blank } => (
            format!("{blank} is missing from the participant's set"),
            RemarkAction::RescanAndResend,
        ),
        FindingKind::VersionLacksBlank { blank, had_in, version } => (
            format!(
                "version {version} lacks {blank}, which version {had_in} had; a version replaces the earlier one whole"
            ),
            RemarkAction::RescanAndResend,
        ),
        FindingKind::BlanksBeforeForms { form } => (
            format!("the room's blanks arrived but its {form} did not; its blanks wait for it"),
            RemarkAction::SendForm { form: form.clone() },
        ),
        FindingKind::MissingForm { form } => (
            format!("{form} has not been received"),
            RemarkAction::SendForm { form: form.clone() },
        ),
        FindingKind::DuplicateBlank { blank, .. } => (
            format!("{blank} was already received in another packet; this copy is kept as a duplicate"),
            RemarkAction::Note,
        ),
        FindingKind::NotThisExam { reason } => (format!("a page of another exam: {reason}"), RemarkAction::Note),
        FindingKind::KimGroup { kim, .. } => (
            format!("recordings share KIM number {kim}; they are blocked until the center decides"),
            RemarkAction::Note,
        ),
        FindingKind::CountsDisagree { detail } => (
            format!("the room's blanks disagree with its summary form: {detail}; check the room's scans"),
            RemarkAction::RescanAndResend,
        ),
        // Matters for the exam commission and the center's senior verifier, not the site.
        FindingKind::NotInPlan { .. } | FindingKind::SeatedElsewhere { .. } | FindingKind::MarksDisagree { .. } => {
            return None
        }
    };
    Some(Remark {
        id: f.id.clone(),
        room: f.room.as_ref().map(|r| r.as_str().to_owned()),
        participant: f.participant.clone(),
        page,
        what,
        action,
    })
}

/// The answer to each packet version whose pages all reached a final state (or that
/// did not open): "loaded", or the remarks its findings make. A packet waiting only for
/// its room's forms is answered with the remark asking for them.
fn answers(
    packets: &[PacketEntry],
    pages: &[PageEntry],
    outcomes: &[PageOutcome],
    findings: &[Finding],
) -> Vec<PacketAnswer> {
    let mut pending: BTreeMap<[u8; 32], (usize, usize, usize)> = BTreeMap::new();
    for o in outcomes {
        let e = pending.entry(o.key.envelope).or_default();
        match o.stage {
            PageStage::Final(_) => e.0 += 1,
            PageStage::AwaitingForms => e.1 += 1,
            _ => e.2 += 1,
        }
    }
    let names: BTreeMap<PageKey, String> = pages
        .iter()
        .map(|p| (p.key, format!("{} p.{}", p.file_name, p.key.page + 1)))
        .collect();
    let mut out = Vec::new();
    for p in packets {
        if p.kind == PacketKind::Test {
            continue;
        }
        let (done, for_forms, for_verifier) = pending.get(&p.envelope).copied().unwrap_or_default();
        let mut remarks: Vec<Remark> = findings
            .iter()
            .filter(|f| f.packet == Some(p.envelope))
            .filter(|f| for_forms == 0 || matches!(f.kind, FindingKind::BlanksBeforeForms { .. }))
            .filter_map(|f| remark(f, &names))
            .collect();
        let waiting_for_forms = for_forms > 0;
        if for_verifier > 0 || (waiting_for_forms && remarks.is_empty()) {
            continue;
        }
        remarks.truncate(konvert_replication::answer::MAX_REMARKS);
        out.push(PacketAnswer {
            site: p.site.clone(),
            packet_id: p.packet_id.clone(),
            version: p.version,
            digest: p.envelope,
            outcome: if remarks.is_empty() {
                AnswerOutcome::Loaded
            } else {
                AnswerOutcome::Remarks(remarks)
            },
            pages: u32::try_from(done + for_forms + for_verifier).unwrap_or(u32::MAX),
            answered_at_unix_ms: 0,
        });
    }
    out
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
