//! What writes the mirror's outbox, each in the same transaction as the change it records:
//! a plan's import (planning), an exam's close (its results), an appeal decision, a
//! regional re-check, a personal-data correction on a region; on ФИС the down kinds for one
//! region. Only records on PostgreSQL whose database a mirror node claimed
//! ([`crate::PgMirror::open`], done by the node's mirror process) have a mirror; on sled, or
//! before the mirror is set up, the change is made and no row is written (the callers say so).
//!
//! The writers run in the loader's commands, not in the mirror's process: they append rows
//! with no endpoint in memory and send `NOTIFY konvert_mirror`, which wakes the mirror's
//! process to load what is new and exchange at once (closing an exam sends its results up
//! at once, `002:7451`).
//!
//! The consent allow-list (R18, the second line): a row about a participant is written
//! only if the participant is in the stored plan of that exam day (for a row with no day,
//! in any stored plan). Plans never hold participants without consent
//! (`konvert_exam::DayPlan::from_toml` drops them), so nobody else gets a row; a page of a
//! kit in no plan gets none either, and is only counted.

use std::collections::{BTreeMap, BTreeSet};

use konvert_exam::DayPlan;
use konvert_mirror::{Node, RecordKind, Side};
use postgres::Transaction;

use crate::mirror_rows::{
    place_detail, write_row, write_rows, ImageRef, MirrorRow, PlanningRow, ProcessingResultRow, ResultPage,
};
use crate::pg_mirror::{applied_payloads, mirror_node_of, node_code, push_in};
use crate::pg_records::decode;
use crate::{Decision, DecisionKind, Error, ExamDay, PageEntry, PageOutcome, PageStage, PgRecords, Result, Role};

/// The channel the mirror's process listens on.
pub const NOTIFY_CHANNEL: &str = "konvert_mirror";

/// What a writer put in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mirrored {
    /// Whether the records have a mirror at all (PostgreSQL with a mirror node).
    pub mirror: bool,
    /// Rows written.
    pub rows: u64,
    /// Participants (or pages) left out: not in the stored plan.
    pub left_out: u64,
}

/// The region whose mirror these records hold; `None` without a mirror; an error (naming
/// `what` was tried) on the federal node's records.
pub fn mirror_region(records: &PgRecords, what: &str) -> Result<Option<u8>> {
    match mirror_node_of(records)? {
        None => Ok(None),
        Some(Node::Region(c)) => Ok(Some(c)),
        Some(Node::Federal) => Err(Error::MirrorUnavailable {
            what: format!("{what} on the federal node's records"),
            hint: "regional records are written at the region's center; the federal node only publishes the down kinds",
        }),
    }
}

fn notify(tx: &mut Transaction<'_>, kind: RecordKind) -> Result<()> {
    tx.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &kind.name()])
        .map_err(|e| Error::database("the records' mirror outbox", e))?;
    Ok(())
}

/// Wakes the database's running mirror driver (`mirror run`): it exchanges at once, as
/// when a writer committed rows.
pub fn wake_driver(records: &PgRecords) -> Result<()> {
    records.with(|c| {
        c.execute("SELECT pg_notify($1, 'sync')", &[&NOTIFY_CHANNEL])
            .map_err(|e| records.db(e))?;
        Ok(())
    })
}

fn stored_plans(tx: &mut Transaction<'_>) -> Result<Vec<DayPlan>> {
    tx.query("SELECT value FROM plans ORDER BY key", &[])
        .map_err(|e| Error::database("the records' plans", e))?
        .iter()
        .map(|r| {
            decode(
                "plan",
                r.try_get(0).map_err(|e| Error::database("the records' plans", e))?,
            )
        })
        .collect()
}

/// The consent allow-list: per exam day, the participants of its stored plan.
struct AllowList(BTreeMap<ExamDay, BTreeSet<String>>);

impl AllowList {
    fn read(tx: &mut Transaction<'_>) -> Result<AllowList> {
        let mut days = BTreeMap::new();
        for p in stored_plans(tx)? {
            let day = ExamDay {
                date: p.date,
                exam: p.exam,
            };
            days.insert(day, p.participants.into_iter().map(|p| p.code).collect());
        }
        Ok(AllowList(days))
    }

    fn allows(&self, row: &MirrorRow) -> bool {
        // Planning rows are made from the plan itself (seats) or from what was sent before
        // (a participant taken off).
        if let MirrorRow::Planning(_) = row {
            return true;
        }
        let Some(who) = row.participant() else { return true };
        match row.day() {
            Some(day) => self.0.get(&day).is_some_and(|s| s.contains(who)),
            None => self.0.values().any(|s| s.contains(who)),
        }
    }
}

/// What this region sent as planning for `day`: seats by participant (site, room, seat,
/// kit) and places by (site, room) with their detail, as the typed tables hold them.
struct SentPlanning {
    seats: BTreeMap<String, (String, String, String, i64)>,
    places: BTreeMap<(String, String), String>,
}

impl SentPlanning {
    fn read(tx: &mut Transaction<'_>, region: u8, day: ExamDay) -> Result<SentPlanning> {
        let db = |e| Error::database("the mirrored planning", e);
        let args: [&(dyn postgres::types::ToSql + Sync); 3] =
            [&i16::from(region), &day.date.to_string(), &day.exam.code()];
        let mut seats = BTreeMap::new();
        for r in tx
            .query(
                "SELECT participant, site, room, seat, kit FROM mirror_participants
                 WHERE region = $1 AND date = $2 AND exam = $3",
                &args,
            )
            .map_err(db)?
        {
            seats.insert(
                r.try_get(0).map_err(db)?,
                (
                    r.try_get(1).map_err(db)?,
                    r.try_get(2).map_err(db)?,
                    r.try_get(3).map_err(db)?,
                    r.try_get(4).map_err(db)?,
                ),
            );
        }
        let mut places = BTreeMap::new();
        for r in tx
            .query(
                "SELECT site, room, detail FROM mirror_places WHERE region = $1 AND date = $2 AND exam = $3",
                &args,
            )
            .map_err(db)?
        {
            places.insert(
                (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?),
                r.try_get(2).map_err(db)?,
            );
        }
        Ok(SentPlanning { seats, places })
    }
}

/// The planning rows that bring what was sent for the plan's day to the plan: places and
/// seats new or changed, participants taken off. Nothing if it was all sent before.
fn planning_rows(sent: &SentPlanning, plan: &DayPlan) -> Vec<MirrorRow> {
    let day = ExamDay {
        date: plan.date,
        exam: plan.exam,
    };
    let mut rows = Vec::new();
    for s in &plan.sites {
        let row = PlanningRow::Site {
            day,
            site: s.code.clone(),
            kind: s.kind,
            time_zone: s.time_zone.clone(),
        };
        if sent.places.get(&(s.code.as_str().to_owned(), String::new())) != Some(&place_detail(&row)) {
            rows.push(row);
        }
    }
    for r in &plan.rooms {
        let row = PlanningRow::Room {
            day,
            site: r.site.clone(),
            room: r.code.clone(),
            oral: r.oral,
        };
        let key = (r.site.as_str().to_owned(), r.code.as_str().to_owned());
        if sent.places.get(&key) != Some(&place_detail(&row)) {
            rows.push(row);
        }
    }
    for p in plan.participants.iter().filter(|p| p.consent) {
        let now = (
            p.site.as_str().to_owned(),
            p.room.as_str().to_owned(),
            p.seat.clone(),
            i64::try_from(p.kit).unwrap_or(i64::MAX),
        );
        if sent.seats.get(&p.code) != Some(&now) {
            rows.push(PlanningRow::Seat {
                day,
                participant: p.code.clone(),
                site: p.site.clone(),
                room: p.room.clone(),
                seat: p.seat.clone(),
                kit: p.kit,
            });
        }
    }
    let planned: BTreeSet<&str> = plan.participants.iter().map(|p| p.code.as_str()).collect();
    for code in sent.seats.keys().filter(|c| !planned.contains(c.as_str())) {
        rows.push(PlanningRow::Unseated {
            day,
            participant: code.clone(),
        });
    }
    rows.into_iter().map(MirrorRow::Planning).collect()
}

/// Appends region-owned `rows` to the outbox (and to this region's typed tables), those the
/// allow-list lets through; returns how many were written and left out.
fn push_regional(tx: &mut Transaction<'_>, region: u8, kind: RecordKind, rows: Vec<MirrorRow>) -> Result<Mirrored> {
    Ok(push_regional_numbered(tx, region, kind, rows)?.0)
}

/// [`push_regional`], with the numbers the written rows got.
fn push_regional_numbered(
    tx: &mut Transaction<'_>,
    region: u8,
    kind: RecordKind,
    rows: Vec<MirrorRow>,
) -> Result<(Mirrored, Vec<u64>)> {
    let allow = AllowList::read(tx)?;
    let (allowed, left_out): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| allow.allows(r));
    let payloads = allowed.iter().map(MirrorRow::encode).collect::<Result<Vec<_>>>()?;
    if payloads.is_empty() {
        let none = Mirrored {
            mirror: true,
            rows: 0,
            left_out: left_out.len() as u64,
        };
        return Ok((none, Vec::new()));
    }
    let seqs: Vec<u64> = push_in(tx, Node::Region(region), Node::Federal, kind, payloads.clone())?.collect();
    let written: Vec<_> = seqs.iter().copied().zip(&allowed).collect();
    write_rows(tx, i16::from(region), &written)?;
    notify(tx, kind)?;
    let written = Mirrored {
        mirror: true,
        rows: allowed.len() as u64,
        left_out: left_out.len() as u64,
    };
    Ok((written, seqs))
}

/// Stores an exam day's plan and, with a mirror, the planning rows that bring what this
/// region sent for the day to the plan (sites and rooms, seats added or moved,
/// participants taken off; everything the first time after the mirror is set up), all in
/// one transaction. A plan of another region than the mirror's is refused.
pub fn import_plan(records: &PgRecords, plan: &DayPlan) -> Result<Mirrored> {
    let region = mirror_region(records, "importing a plan")?;
    if let Some(c) = region {
        if plan.region != format!("{c:02}") {
            return Err(Error::MirrorUnavailable {
                what: format!(
                    "the plan is of region {}, these records are region {c:02}'s",
                    plan.region
                ),
                hint: "import the plan at its own region's center",
            });
        }
    }
    records.with(|c| {
        let mut tx = c.transaction().map_err(|e| records.db(e))?;
        records.put_plan_in(&mut tx, plan)?;
        let out = match region {
            None => Mirrored::default(),
            Some(c) => {
                let day = ExamDay {
                    date: plan.date,
                    exam: plan.exam,
                };
                let rows = planning_rows(&SentPlanning::read(&mut tx, c, day)?, plan);
                push_regional(&mut tx, c, RecordKind::Planning, rows)?
            }
        };
        tx.commit().map_err(|e| records.db(e))?;
        Ok(out)
    })
}

/// The results of a closed exam day, one row per participant of the plan: each of their
/// pages in its final state with its digest and image reference. Pages of no planned
/// participant (a kit in no plan: a participant without consent whose blanks a site
/// scanned by mistake) make no row; their number is returned.
pub fn results_of(plan: &DayPlan, outcomes: &[PageOutcome], pages: &[PageEntry]) -> (Vec<ProcessingResultRow>, u64) {
    let day = ExamDay {
        date: plan.date,
        exam: plan.exam,
    };
    let planned: BTreeMap<&str, _> = plan.participants.iter().map(|p| (p.code.as_str(), p)).collect();
    let images: BTreeMap<_, _> = pages.iter().map(|p| (p.key, ImageRef(p.file_sha256))).collect();
    let mut rows: BTreeMap<&str, ProcessingResultRow> = BTreeMap::new();
    let mut left_out = 0;
    for o in outcomes.iter().filter(|o| o.day == day) {
        let PageStage::Final(state) = &o.stage else { continue };
        let Some(p) = o.participant.as_deref().and_then(|c| planned.get(c)) else {
            left_out += 1;
            continue;
        };
        let Some(&image) = images.get(&o.key) else {
            left_out += 1;
            continue;
        };
        rows.entry(p.code.as_str())
            .or_insert_with(|| ProcessingResultRow {
                day,
                participant: p.code.clone(),
                site: p.site.clone(),
                pages: Vec::new(),
            })
            .pages
            .push(ResultPage {
                what: o.what.clone(),
                state: state.name().to_owned(),
                page_digest: o.digest,
                image,
            });
    }
    (rows.into_values().collect(), left_out)
}

/// Closes an exam day: the Close decision and, with a mirror, the day's results rows in
/// one transaction, then `NOTIFY konvert_mirror` (delivered at the commit) so the mirror
/// sends them at once. `results` are [`results_of`]'s; a row of a participant not in the
/// day's stored plan is not written, only counted.
pub fn close_day(
    records: &PgRecords,
    by: &str,
    role: Role,
    at_unix_ms: u64,
    day: ExamDay,
    results: Vec<ProcessingResultRow>,
) -> Result<(Decision, Mirrored)> {
    let region = mirror_region(records, "closing an exam")?;
    records.with(|c| {
        let mut tx = c.transaction().map_err(|e| records.db(e))?;
        let decision = records.decide_in(&mut tx, by, role, at_unix_ms, DecisionKind::Close { day })?;
        let rows = results.into_iter().map(MirrorRow::ProcessingResult).collect();
        let out = match region {
            None => Mirrored::default(),
            Some(c) => push_regional(&mut tx, c, RecordKind::ProcessingResults, rows)?,
        };
        tx.commit().map_err(|e| records.db(e))?;
        Ok((decision, out))
    })
}

/// Records a region-owned row that is its own change (an appeal decision, a regional
/// re-check, a personal-data correction) and its outbox row, in one transaction. Needs a
/// mirror: on these records the row is the record. A row about a participant who is not
/// in the stored plan is refused ([`Error::NotPlanned`]). Returns the row's number in
/// the outbox to ФИС.
pub fn record(records: &PgRecords, row: MirrorRow) -> Result<u64> {
    let kind = row.kind();
    if kind.owner() != Side::Region || kind == RecordKind::Planning || kind == RecordKind::ProcessingResults {
        return Err(Error::MirrorUnavailable {
            what: format!("{kind} rows are not entered one by one at a region"),
            hint: "planning comes with a plan's import, results with closing the exam; the down kinds come from ФИС",
        });
    }
    let Some(region) = mirror_region(records, "entering a record for ФИС")? else {
        return Err(Error::MirrorUnavailable {
            what: format!("{kind} go to ФИС through the mirror, which these records do not have"),
            hint:
                "the mirror needs the records on PostgreSQL (records_url in center.toml) and the region's mirror set up",
        });
    };
    records.with(|c| {
        let mut tx = c.transaction().map_err(|e| records.db(e))?;
        let (_, seqs) = push_regional_numbered(&mut tx, region, kind, vec![row])?;
        let Some(&seq) = seqs.first() else {
            return Err(Error::NotPlanned {
                what: format!("a {kind} row"),
            });
        };
        tx.commit().map_err(|e| records.db(e))?;
        Ok(seq)
    })
}

/// Whether `participant` is in the stored plan of `day` (or of any day): the allow-list a
/// regional row must pass, for a caller to ask before it logs anything about them.
pub fn in_plan(records: &PgRecords, day: Option<ExamDay>, participant: &str) -> Result<bool> {
    records.with(|c| {
        let mut tx = c.transaction().map_err(|e| records.db(e))?;
        let allow = AllowList::read(&mut tx)?;
        Ok(match day {
            Some(day) => allow.0.get(&day).is_some_and(|s| s.contains(participant)),
            None => allow.0.values().any(|s| s.contains(participant)),
        })
    })
}

/// On ФИС: writes a down row (centralized checking, recomputed scores, token certificate
/// data, a request for documents) addressed to `region`, with its outbox row, in one
/// transaction. A row about a participant the region never sent as planning is refused
/// ([`Error::NotPlanned`]): ФИС holds nobody the region did not plan.
pub fn publish(records: &PgRecords, region: u8, row: MirrorRow) -> Result<u64> {
    let kind = row.kind();
    if kind.owner() != Side::Federal {
        return Err(konvert_mirror::Error::NotOwner {
            node: Node::Federal,
            kind,
        }
        .into());
    }
    match mirror_node_of(records)? {
        Some(Node::Federal) => {}
        _ => {
            return Err(Error::MirrorUnavailable {
                what: format!("publishing {kind} for region {region:02}"),
                hint: "publish on the federal node's records (PostgreSQL, with its mirror set up)",
            })
        }
    }
    let payload = row.encode()?;
    records.with(|c| {
        let mut tx = c.transaction().map_err(|e| records.db(e))?;
        let code = i16::from(region);
        if let Some(who) = row.participant() {
            if !crate::mirror_rows::is_planned(&mut tx, code, who)? {
                return Err(Error::NotPlanned {
                    what: format!("a {kind} row for region {region:02}"),
                });
            }
        }
        let seqs = push_in(
            &mut tx,
            Node::Federal,
            Node::Region(region),
            kind,
            vec![payload.clone()],
        )?;
        write_row(&mut tx, code, *seqs.start(), &row)?;
        notify(&mut tx, kind)?;
        tx.commit().map_err(|e| records.db(e))?;
        Ok(*seqs.start())
    })
}

/// The rows of `kind` these records hold for `region` (on ФИС: a region's; on a region:
/// its own and ФИС's to it), in order, decoded. A row's bytes are kept once: in this
/// node's outbox when it owns the kind, else in the signed batches that brought them.
pub fn held(records: &PgRecords, region: u8, kind: RecordKind) -> Result<Vec<MirrorRow>> {
    let Some(me) = mirror_node_of(records)? else {
        return Ok(Vec::new());
    };
    let peer = match me {
        Node::Federal => Node::Region(region),
        Node::Region(_) => Node::Federal,
    };
    let payloads = if kind.owner() == me.side() {
        records.with(|c| {
            c.query(
                "SELECT payload FROM mirror_outbox WHERE peer = $1 AND kind = $2 ORDER BY seq",
                &[&node_code(peer)?, &i16::from(kind.code())],
            )
            .map_err(|e| records.db(e))?
            .iter()
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(|e| records.db(e)))
            .collect::<Result<Vec<_>>>()
        })?
    } else {
        applied_payloads(records, peer, kind)?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    };
    payloads
        .iter()
        .map(|v| {
            MirrorRow::decode(kind, v).map_err(|message| Error::Corrupt {
                what: "mirrored row",
                message,
            })
        })
        .collect()
}

/// The participants these records hold as planned for `region` on `day`.
pub fn planned(records: &PgRecords, region: u8, day: ExamDay) -> Result<Vec<String>> {
    records.with(|c| {
        c.query(
            "SELECT participant FROM mirror_participants WHERE region = $1 AND date = $2 AND exam = $3
             ORDER BY participant",
            &[&i16::from(region), &day.date.to_string(), &day.exam.code()],
        )
        .map_err(|e| records.db(e))?
        .iter()
        .map(|r| r.try_get(0).map_err(|e| records.db(e)))
        .collect()
    })
}

/// The token certificate data ФИС sent to this region, for the officers' review.
pub fn token_certificates(records: &PgRecords, region: u8) -> Result<crate::mirror_rows::CertificateImport> {
    let certificates = held(records, region, RecordKind::TokenCertificates)?
        .into_iter()
        .filter_map(|r| match r {
            MirrorRow::TokenCertificate(c) => Some(c),
            _ => None,
        })
        .collect();
    Ok(crate::mirror_rows::CertificateImport {
        region: format!("{region:02}"),
        certificates,
    })
}
