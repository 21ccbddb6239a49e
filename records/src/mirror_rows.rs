//! What the mirror carries (РИС ↔ ФИС): the payload of every [`RecordKind`], and how a
//! receiving node writes applied rows into typed tables (migration 6) so it can say what it
//! holds per region.
//!
//! A payload is one format byte ([`ROW_FORMAT`]) and then the postcard bytes of a
//! [`MirrorRow`], at most [`MAX_ROW_PAYLOAD`]. The variant must be the channel's kind: a
//! planning row on the results channel is refused like an undecodable one. Images never
//! travel in a row: a page or document image is named by the SHA-256 of its file
//! ([`ImageRef`]) in the content-addressed image store, which keeps it for the records'
//! retention.
//!
//! Consent (R18): a participant who refused consent is in no row at all. Three lines keep
//! them out: the plan drops them on reading (`konvert_exam::DayPlan::from_toml`); the
//! owner's outbox writes rows only about participants of the stored plan
//! ([`crate::mirror_outbox`]); and the receiver checks each row again ([`row_check`]): a row
//! naming a participant its sender never sent as planning is refused, whole batch and all.
//! The refusal's reason never repeats the participant's code, since refusals are stored and
//! sent back over the link.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use konvert_exam::{RoomId, SiteId, SiteKind};
use konvert_mirror::{AppliedBatch, Node, RecordKind, RowCheck, MAX_ROW_PAYLOAD};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Transaction;
use serde::{Deserialize, Serialize};

use crate::pg_records::int;
use crate::{Error, ExamDay, PgRecords, Result};

/// The first byte of every row: the layout of what follows. A receiver refuses a row of a
/// format it does not know (the batch fails whole) rather than guess.
pub const ROW_FORMAT: u8 = 1;

/// An image by reference: the SHA-256 of the image file in the content-addressed store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImageRef(pub [u8; 32]);

impl ImageRef {
    /// The reference of an image file's bytes.
    pub fn of_bytes(bytes: &[u8]) -> ImageRef {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        ImageRef(out)
    }
}

/// Planning data (region → ФИС): sites, rooms and seating per exam day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanningRow {
    /// A site expected on the exam day.
    Site {
        /// The exam day.
        day: ExamDay,
        /// The site.
        site: SiteId,
        /// What kind of place it is.
        kind: SiteKind,
        /// Its IANA time zone.
        time_zone: String,
    },
    /// A room of a site on the exam day.
    Room {
        /// The exam day.
        day: ExamDay,
        /// The site.
        site: SiteId,
        /// The room.
        room: RoomId,
        /// The oral part of a foreign language.
        oral: bool,
    },
    /// A participant seated for the exam day (with consent: nobody else is ever planned).
    Seat {
        /// The exam day.
        day: ExamDay,
        /// The participant's code in the regional records.
        participant: String,
        /// The site.
        site: SiteId,
        /// The room.
        room: RoomId,
        /// The seat.
        seat: String,
        /// The kit handed out.
        kit: u64,
    },
    /// A participant taken off the exam day's plan by a newer plan.
    Unseated {
        /// The exam day.
        day: ExamDay,
        /// The participant's code.
        participant: String,
    },
}

/// One page of a closed exam's results, in its final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultPage {
    /// What the page is (the blank or form, as processing names it).
    pub what: String,
    /// Its final state's name (`registered`, `withheld`, `duplicate`…).
    pub state: String,
    /// The page's digest in the records.
    pub page_digest: [u8; 32],
    /// The scan's image in the content-addressed store.
    pub image: ImageRef,
}

/// Results of processing of one participant on a closed exam day (region → ФИС, sent when
/// the exam is closed, `002:7451`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingResultRow {
    /// The exam day.
    pub day: ExamDay,
    /// The participant's code.
    pub participant: String,
    /// The site.
    pub site: SiteId,
    /// Every page of the participant, in final state.
    pub pages: Vec<ResultPage>,
}

/// Which appeal (`002:7479`, `7543`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppealKind {
    /// On a breach of the procedure (ППЭ-02, ППЭ-03).
    Procedural,
    /// Disagreement with the scores (2-АП).
    Scores,
}

/// What the conflict commission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppealOutcome {
    /// Upheld (удовлетворена).
    Upheld,
    /// Rejected (отклонена).
    Rejected,
}

/// An appeal decision with its documents' images (region → ФИС).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppealDecisionRow {
    /// The exam day.
    pub day: ExamDay,
    /// The participant's code.
    pub participant: String,
    /// Procedural or on scores.
    pub kind: AppealKind,
    /// The decision.
    pub outcome: AppealOutcome,
    /// The appeal documents' images.
    pub documents: Vec<ImageRef>,
    /// When it was entered, Unix milliseconds.
    pub decided_at_unix_ms: u64,
}

/// A score of one task, as a re-check or a recomputation sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskScore {
    /// The task's number or name.
    pub task: String,
    /// The score.
    pub score: u32,
}

/// A re-check ordered by the regional authority and its result (`002:7587–7619`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecheckRow {
    /// The exam day.
    pub day: ExamDay,
    /// The participant's code.
    pub participant: String,
    /// The changed task scores (empty: unchanged).
    pub scores: Vec<TaskScore>,
    /// The re-check protocol and the ГЭК decision's images.
    pub documents: Vec<ImageRef>,
}

/// A personal-data correction (`002:7647`, `7657`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrectionRow {
    /// The participant's code.
    pub participant: String,
    /// Which field (surname, name, document…).
    pub field: String,
    /// The corrected value.
    pub value: String,
    /// The correction protocol's images.
    pub documents: Vec<ImageRef>,
}

/// Centralized checking's result of one participant, or their work sent for a federal
/// re-check (ФИС → region, `002:7455`, `7625`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralizedCheckingRow {
    /// The exam day.
    pub day: ExamDay,
    /// The participant's code.
    pub participant: String,
    /// The primary score.
    pub primary_score: u32,
    /// Sent for a re-check by Rosobrnadzor's commission.
    pub sent_for_recheck: bool,
}

/// Scores recomputed after an appeal (ФИС → region, `002:7481`, `7551`, `7575`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecomputedScoreRow {
    /// The exam day.
    pub day: ExamDay,
    /// The participant's code.
    pub participant: String,
    /// The new primary score.
    pub primary_score: u32,
    /// The task scores changed.
    pub scores: Vec<TaskScore>,
}

/// A token certificate's data (ФИС → region, `002:6860`): what the officers review against
/// their signed registry, never a change to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCertificateRow {
    /// The token's id.
    pub token_id: String,
    /// Whose token (the member's name as the certificate has it).
    pub holder: String,
    /// The certificate's public key, hex.
    pub public_key_hex: String,
    /// Valid from, `YYYY-MM-DD`.
    pub valid_from: String,
    /// Valid until, `YYYY-MM-DD`.
    pub valid_until: String,
}

/// The token certificate data a region received from ФИС, as a file for the security
/// officers to review against their registry (`konvert keys review-certificates`). The
/// file is only read by the review: the signed registry changes only by the officers' own
/// commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateImport {
    /// The region, two digits.
    pub region: String,
    /// The certificates, in the order received.
    pub certificates: Vec<TokenCertificateRow>,
}

/// The federal center's request for documents (ФИС → region, `002:7483–7493`, `7561–7573`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequestRow {
    /// The request's id at ФИС.
    pub request_id: String,
    /// The exam day.
    pub day: ExamDay,
    /// The participant's code.
    pub participant: String,
    /// What is asked for.
    pub documents: String,
}

/// A row of the mirror: one variant per [`RecordKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MirrorRow {
    /// [`RecordKind::Planning`].
    Planning(PlanningRow),
    /// [`RecordKind::ProcessingResults`].
    ProcessingResult(ProcessingResultRow),
    /// [`RecordKind::AppealDecisions`].
    AppealDecision(AppealDecisionRow),
    /// [`RecordKind::RegionalRechecks`].
    RegionalRecheck(RecheckRow),
    /// [`RecordKind::PersonalDataCorrections`].
    PersonalDataCorrection(CorrectionRow),
    /// [`RecordKind::CentralizedChecking`].
    CentralizedChecking(CentralizedCheckingRow),
    /// [`RecordKind::RecomputedScores`].
    RecomputedScore(RecomputedScoreRow),
    /// [`RecordKind::TokenCertificates`].
    TokenCertificate(TokenCertificateRow),
    /// [`RecordKind::DocumentRequests`].
    DocumentRequest(DocumentRequestRow),
}

impl MirrorRow {
    /// The kind (and so the channel) the row belongs to.
    pub fn kind(&self) -> RecordKind {
        match self {
            MirrorRow::Planning(_) => RecordKind::Planning,
            MirrorRow::ProcessingResult(_) => RecordKind::ProcessingResults,
            MirrorRow::AppealDecision(_) => RecordKind::AppealDecisions,
            MirrorRow::RegionalRecheck(_) => RecordKind::RegionalRechecks,
            MirrorRow::PersonalDataCorrection(_) => RecordKind::PersonalDataCorrections,
            MirrorRow::CentralizedChecking(_) => RecordKind::CentralizedChecking,
            MirrorRow::RecomputedScore(_) => RecordKind::RecomputedScores,
            MirrorRow::TokenCertificate(_) => RecordKind::TokenCertificates,
            MirrorRow::DocumentRequest(_) => RecordKind::DocumentRequests,
        }
    }

    /// The participant the row is about, if any: what the consent allow-list checks.
    pub fn participant(&self) -> Option<&str> {
        match self {
            MirrorRow::Planning(PlanningRow::Seat { participant, .. })
            | MirrorRow::Planning(PlanningRow::Unseated { participant, .. })
            | MirrorRow::ProcessingResult(ProcessingResultRow { participant, .. })
            | MirrorRow::AppealDecision(AppealDecisionRow { participant, .. })
            | MirrorRow::RegionalRecheck(RecheckRow { participant, .. })
            | MirrorRow::PersonalDataCorrection(CorrectionRow { participant, .. })
            | MirrorRow::CentralizedChecking(CentralizedCheckingRow { participant, .. })
            | MirrorRow::RecomputedScore(RecomputedScoreRow { participant, .. })
            | MirrorRow::DocumentRequest(DocumentRequestRow { participant, .. }) => Some(participant),
            MirrorRow::Planning(_) | MirrorRow::TokenCertificate(_) => None,
        }
    }

    /// The exam day the row is about, if any.
    pub fn day(&self) -> Option<ExamDay> {
        match self {
            MirrorRow::Planning(
                PlanningRow::Site { day, .. }
                | PlanningRow::Room { day, .. }
                | PlanningRow::Seat { day, .. }
                | PlanningRow::Unseated { day, .. },
            )
            | MirrorRow::ProcessingResult(ProcessingResultRow { day, .. })
            | MirrorRow::AppealDecision(AppealDecisionRow { day, .. })
            | MirrorRow::RegionalRecheck(RecheckRow { day, .. })
            | MirrorRow::CentralizedChecking(CentralizedCheckingRow { day, .. })
            | MirrorRow::RecomputedScore(RecomputedScoreRow { day, .. })
            | MirrorRow::DocumentRequest(DocumentRequestRow { day, .. }) => Some(*day),
            MirrorRow::PersonalDataCorrection(_) | MirrorRow::TokenCertificate(_) => None,
        }
    }

    /// The row's payload: the format byte, then postcard; refused if over
    /// [`MAX_ROW_PAYLOAD`] (images go by reference, so only a malformed row gets there).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![ROW_FORMAT];
        let body = postcard::to_allocvec(self).map_err(|e| Error::Encode {
            what: "mirror row",
            message: e.to_string(),
        })?;
        out.extend_from_slice(&body);
        if out.len() > MAX_ROW_PAYLOAD {
            return Err(Error::Encode {
                what: "mirror row",
                message: format!(
                    "{} bytes, more than a row may carry ({MAX_ROW_PAYLOAD}); images go by reference",
                    out.len()
                ),
            });
        }
        Ok(out)
    }

    /// Reads a payload of channel `kind`: bounded, of a known format, the kind's variant.
    pub fn decode(kind: RecordKind, payload: &[u8]) -> std::result::Result<MirrorRow, String> {
        if payload.len() > MAX_ROW_PAYLOAD {
            return Err(format!("{} bytes, more than {MAX_ROW_PAYLOAD}", payload.len()));
        }
        let Some((&format, body)) = payload.split_first() else {
            return Err("an empty row".into());
        };
        if format != ROW_FORMAT {
            return Err(format!(
                "row format {format}, this node knows {ROW_FORMAT}; upgrade the receiving node"
            ));
        }
        let row: MirrorRow = match postcard::take_from_bytes::<MirrorRow>(body) {
            Ok((row, [])) => row,
            Ok((_, rest)) => return Err(format!("{} bytes after the row", rest.len())),
            Err(e) => return Err(format!("the row does not decode: {e}")),
        };
        if row.kind() != kind {
            return Err(format!("a {} row on the {kind} channel", row.kind()));
        }
        Ok(row)
    }
}

/// What the typed records keep of a row other than planning: its day and participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowHead<'a> {
    /// The row's kind.
    pub kind: RecordKind,
    /// The exam day it concerns, if any.
    pub day: Option<ExamDay>,
    /// The participant it names, if any.
    pub participant: Option<&'a str>,
}

/// The leading fields most kinds share (postcard reads a struct's fields in order, so a
/// struct of the first fields reads the start of a longer one).
#[derive(Deserialize)]
struct DayWho<'a> {
    day: ExamDay,
    #[serde(borrow)]
    participant: &'a str,
}

#[derive(Deserialize)]
struct RequestHead<'a> {
    #[serde(borrow)]
    _request_id: &'a str,
    day: ExamDay,
    #[serde(borrow)]
    participant: &'a str,
}

impl MirrorRow {
    /// The head of a row that is not planning, read without decoding the rest: applying a
    /// batch reads what its typed row keeps this way, since the receiver's row check has
    /// decoded every row whole already. `None` for planning (or a row that does not
    /// start as its kind does; [`MirrorRow::decode`] says what is wrong with it).
    pub(crate) fn head(payload: &[u8]) -> Option<RowHead<'_>> {
        let (&ROW_FORMAT, body) = payload.split_first()? else {
            return None;
        };
        // The variant's index, as postcard writes an enum (the order of `MirrorRow`).
        let (variant, rest) = postcard::take_from_bytes::<u32>(body).ok()?;
        let kind = *RecordKind::ALL.get(usize::try_from(variant).ok()?)?;
        let day_who = |rest| postcard::take_from_bytes::<DayWho<'_>>(rest).ok().map(|(h, _)| h);
        let (day, participant) = match kind {
            RecordKind::Planning => return None,
            RecordKind::ProcessingResults
            | RecordKind::AppealDecisions
            | RecordKind::RegionalRechecks
            | RecordKind::CentralizedChecking
            | RecordKind::RecomputedScores => {
                let h = day_who(rest)?;
                (Some(h.day), Some(h.participant))
            }
            RecordKind::PersonalDataCorrections => (None, Some(postcard::take_from_bytes::<&str>(rest).ok()?.0)),
            RecordKind::TokenCertificates => (None, None),
            RecordKind::DocumentRequests => {
                let h = postcard::take_from_bytes::<RequestHead<'_>>(rest).ok()?.0;
                (Some(h.day), Some(h.participant))
            }
        };
        Some(RowHead { kind, day, participant })
    }
}

/// The region a row concerns, seen from node `me` receiving from `from`: a region's own
/// code for its rows at ФИС, this region's code for ФИС's rows here.
fn region_of(me: Node, from: Node) -> Result<i16> {
    match (me, from) {
        (Node::Federal, Node::Region(c)) | (Node::Region(c), Node::Federal) => Ok(i16::from(c)),
        _ => Err(Error::Encode {
            what: "mirror row",
            message: format!("{from} → {me} is not a channel of the mirror"),
        }),
    }
}

/// Writes the rows of an applied batch into the typed tables, in the transaction that
/// stores the batch ([`crate::PgMirror::apply`]'s `rows_into`). Planning rows are decoded
/// whole; of the others only the head the typed table keeps is read: the receiver's row
/// check ([`row_check`], which the node always sets) decoded every row whole before the
/// batch was applied. A row that does not read fails the whole batch, and nothing of it is
/// stored.
pub fn apply_rows(tx: &mut Transaction<'_>, me: Node, batch: &AppliedBatch) -> Result<()> {
    apply_batches(tx, me, &[batch])
}

/// [`apply_rows`] for the batches [`crate::PgMirror::apply_many`] stores together, in
/// order: the rows of consecutive batches from one sender are written as one run (one
/// `COPY` for a closed exam's results, not one per batch).
pub fn apply_batches(tx: &mut Transaction<'_>, me: Node, batches: &[&AppliedBatch]) -> Result<()> {
    for same_sender in batches.chunk_by(|a, b| a.from == b.from) {
        let Some(first) = same_sender.first() else { continue };
        let region = region_of(me, first.from)?;
        let mut rows = Vec::with_capacity(same_sender.iter().map(|b| b.rows.len()).sum());
        for batch in same_sender {
            for (row, seq) in batch.rows.iter().zip(batch.first_seq..) {
                let typed = match MirrorRow::head(row) {
                    Some(head) if head.kind == batch.kind => Typed::Head(head),
                    _ => MirrorRow::decode(batch.kind, row)
                        .map(Typed::Whole)
                        .map_err(|message| Error::MirrorRow {
                            from: batch.from,
                            kind: batch.kind,
                            seq,
                            message,
                        })?,
                };
                rows.push((seq, typed));
            }
        }
        write_typed(tx, region, &rows)?;
    }
    Ok(())
}

/// A row as the typed tables take it: decoded whole, or (not planning) only its head.
enum Typed<'a> {
    /// Decoded whole.
    Whole(MirrorRow),
    /// Its head only.
    Head(RowHead<'a>),
}

impl Typed<'_> {
    fn whole(&self) -> Option<&MirrorRow> {
        match self {
            Typed::Whole(row) => Some(row),
            Typed::Head(_) => None,
        }
    }

    fn target(&self) -> Target {
        match self {
            Typed::Whole(row) => target(row),
            Typed::Head(_) => Target::Record,
        }
    }

    fn head(&self) -> RowHead<'_> {
        match self {
            Typed::Whole(row) => RowHead {
                kind: row.kind(),
                day: row.day(),
                participant: row.participant(),
            },
            Typed::Head(head) => *head,
        }
    }
}

/// Writes one row into the typed tables for `region`.
pub(crate) fn write_row(tx: &mut Transaction<'_>, region: i16, seq: u64, row: &MirrorRow) -> Result<()> {
    write_rows(tx, region, &[(seq, row)])
}

/// The typed table a row changes, and how: consecutive rows with the same target are
/// written by one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A participant's seat, inserted or moved.
    Seat,
    /// A participant taken off the day.
    Unseat,
    /// A site or room.
    Place,
    /// Any other row, kept whole by its number.
    Record,
}

fn target(row: &MirrorRow) -> Target {
    match row {
        MirrorRow::Planning(PlanningRow::Seat { .. }) => Target::Seat,
        MirrorRow::Planning(PlanningRow::Unseated { .. }) => Target::Unseat,
        MirrorRow::Planning(PlanningRow::Site { .. } | PlanningRow::Room { .. }) => Target::Place,
        _ => Target::Record,
    }
}

/// The last of `items` per key, as a row-by-row upsert would leave them (one statement
/// may not change a row twice).
fn last_per_key<K: std::hash::Hash + Eq, T>(items: impl DoubleEndedIterator<Item = (K, T)>) -> Vec<T> {
    let mut seen = HashSet::new();
    let mut out: Vec<T> = items.rev().filter_map(|(k, t)| seen.insert(k).then_some(t)).collect();
    out.reverse();
    out
}

/// Writes rows (number, row) into the typed tables for `region`, in order.
pub(crate) fn write_rows(tx: &mut Transaction<'_>, region: i16, rows: &[(u64, &MirrorRow)]) -> Result<()> {
    let rows: Vec<_> = rows
        .iter()
        .map(|(seq, row)| (*seq, Typed::Whole((*row).clone())))
        .collect();
    write_typed(tx, region, &rows)
}

/// Writes rows into the typed tables for `region`, in order: a row-by-row round trip per
/// result was most of a closed exam's apply, so each run of rows with the same target is
/// one statement over arrays (or one `COPY`).
fn write_typed(tx: &mut Transaction<'_>, region: i16, rows: &[(u64, Typed<'_>)]) -> Result<()> {
    let db = |e| Error::database("the mirrored records", e);
    let date_exam = |day: &ExamDay| (day.date.to_string(), day.exam.code().to_owned());
    for run in rows.chunk_by(|a, b| a.1.target() == b.1.target()) {
        let Some(first) = run.first() else { continue };
        match first.1.target() {
            Target::Seat => {
                let seats = last_per_key(run.iter().filter_map(|(_, row)| match row.whole()? {
                    MirrorRow::Planning(PlanningRow::Seat {
                        day,
                        participant,
                        site,
                        room,
                        seat,
                        kit,
                    }) => Some(((*day, participant.as_str()), (day, participant, site, room, seat, *kit))),
                    _ => None,
                }));
                let (mut date, mut exam, mut who, mut sites, mut rooms, mut places, mut kits) =
                    (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
                for (day, participant, site, room, seat, kit) in seats {
                    let (d, e) = date_exam(day);
                    date.push(d);
                    exam.push(e);
                    who.push(participant.as_str());
                    sites.push(site.as_str());
                    rooms.push(room.as_str());
                    places.push(seat.as_str());
                    kits.push(int("kit", kit)?);
                }
                tx.execute(
                    "INSERT INTO mirror_participants (region, date, exam, participant, site, room, seat, kit)
                     SELECT $1, u.date, u.exam, u.participant, u.site, u.room, u.seat, u.kit
                     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
                         AS u(date, exam, participant, site, room, seat, kit)
                     ON CONFLICT (region, date, exam, participant)
                     DO UPDATE SET site = excluded.site, room = excluded.room, seat = excluded.seat, kit = excluded.kit",
                    &[&region, &date, &exam, &who, &sites, &rooms, &places, &kits],
                )
                .map_err(db)?;
            }
            Target::Unseat => {
                let (mut date, mut exam, mut who) = (vec![], vec![], vec![]);
                for (_, row) in run {
                    if let Some(MirrorRow::Planning(PlanningRow::Unseated { day, participant })) = row.whole() {
                        let (d, e) = date_exam(day);
                        date.push(d);
                        exam.push(e);
                        who.push(participant.as_str());
                    }
                }
                tx.execute(
                    "DELETE FROM mirror_participants p
                     USING unnest($2::text[], $3::text[], $4::text[]) AS u(date, exam, participant)
                     WHERE p.region = $1 AND p.date = u.date AND p.exam = u.exam AND p.participant = u.participant",
                    &[&region, &date, &exam, &who],
                )
                .map_err(db)?;
            }
            Target::Place => {
                let places = last_per_key(run.iter().filter_map(|(_, row)| match row.whole()? {
                    MirrorRow::Planning(p @ PlanningRow::Site { day, site, .. }) => {
                        Some(((*day, site.as_str(), ""), (day, site.as_str(), "", place_detail(p))))
                    }
                    MirrorRow::Planning(p @ PlanningRow::Room { day, site, room, .. }) => Some((
                        (*day, site.as_str(), room.as_str()),
                        (day, site.as_str(), room.as_str(), place_detail(p)),
                    )),
                    _ => None,
                }));
                let (mut date, mut exam, mut sites, mut rooms, mut details) = (vec![], vec![], vec![], vec![], vec![]);
                for (day, site, room, detail) in places {
                    let (d, e) = date_exam(day);
                    date.push(d);
                    exam.push(e);
                    sites.push(site);
                    rooms.push(room);
                    details.push(detail);
                }
                tx.execute(
                    "INSERT INTO mirror_places (region, date, exam, site, room, detail)
                     SELECT $1, u.date, u.exam, u.site, u.room, u.detail
                     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                         AS u(date, exam, site, room, detail)
                     ON CONFLICT (region, date, exam, site, room) DO UPDATE SET detail = excluded.detail",
                    &[&region, &date, &exam, &sites, &rooms, &details],
                )
                .map_err(db)?;
            }
            Target::Record => {
                // A record's number is new: its batch is applied once (or, at the owner,
                // its outbox row numbered once), so the rows are copied in, not merged.
                let types = [Type::INT2, Type::INT2, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT];
                let sink = tx
                    .copy_in(
                        "COPY mirror_records (region, kind, seq, date, exam, participant) FROM STDIN (FORMAT binary)",
                    )
                    .map_err(db)?;
                let mut w = BinaryCopyInWriter::new(sink, &types);
                // A run is mostly one exam day: its text is made once.
                let mut text: Option<(ExamDay, String, String)> = None;
                for (seq, row) in run {
                    let head = row.head();
                    let day = head.day;
                    if let Some(day) = day {
                        if text.as_ref().map(|t| t.0) != Some(day) {
                            let (d, e) = date_exam(&day);
                            text = Some((day, d, e));
                        }
                    }
                    let (date, exam) = match (day, &text) {
                        (Some(_), Some((_, d, e))) => (Some(d.as_str()), Some(e.as_str())),
                        _ => (None, None),
                    };
                    w.write(&[
                        &region,
                        &i16::from(head.kind.code()),
                        &int("mirror row", *seq)?,
                        &date,
                        &exam,
                        &head.participant,
                    ])
                    .map_err(db)?;
                }
                w.finish().map_err(db)?;
            }
        }
    }
    Ok(())
}

/// How the typed table describes a site or room row (its `detail`).
pub(crate) fn place_detail(row: &PlanningRow) -> String {
    match row {
        PlanningRow::Site { kind, time_zone, .. } => format!("{kind:?} {time_zone}"),
        PlanningRow::Room { oral: true, .. } => "oral".into(),
        PlanningRow::Room { oral: false, .. } => "written".into(),
        PlanningRow::Seat { .. } | PlanningRow::Unseated { .. } => String::new(),
    }
}

/// Whether `participant` was planned in `region` (sent as planning, or planned here).
pub(crate) fn is_planned(tx: &mut Transaction<'_>, region: i16, participant: &str) -> Result<bool> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM mirror_participants WHERE region = $1 AND participant = $2 LIMIT 1",
            &[&region, &participant],
        )
        .map_err(|e| Error::database("the mirrored records", e))?;
    Ok(row.is_some())
}

/// Whether applying rows of `kind` changes what [`row_check`] answers for the rows after
/// them: the planning says who is planned. A driver that stores several batches in one
/// transaction ([`crate::PgMirror::apply_many`]) stores such a batch before it lets the
/// receiver check the next one.
pub fn feeds_row_check(kind: RecordKind) -> bool {
    kind == RecordKind::Planning
}

/// The receiver's check of every row before its batch is applied (set it with
/// `Receiver::set_row_check`): the row decodes as its channel's kind, and a row naming a
/// participant names one its sender sent as planning (ФИС) or one this region planned (a
/// region). The planned participants are cached per region and read again on a miss, so
/// planning applied a moment ago counts. The reason never names the participant.
pub fn row_check(records: Arc<PgRecords>, me: Node) -> RowCheck {
    // Per region, the participants planned as far as this node has seen; looked up by
    // `&str`, since a closed exam's batches are checked row by row.
    let known: Arc<Mutex<HashMap<i16, HashSet<String>>>> = Arc::default();
    Box::new(move |from, kind, _seq, payload| {
        let row = MirrorRow::decode(kind, payload)?;
        let Some(participant) = row.participant() else {
            return Ok(());
        };
        // A planning seat introduces the participant; only the other rows must name one.
        if matches!(row, MirrorRow::Planning(PlanningRow::Seat { .. })) {
            return Ok(());
        }
        // A participant taken off the plan is planned no more for the rows after.
        let unseated = matches!(row, MirrorRow::Planning(PlanningRow::Unseated { .. }));
        let region = region_of(me, from).map_err(|e| e.to_string())?;
        let seen = |k: &mut HashMap<i16, HashSet<String>>| {
            let planned = k.entry(region).or_default();
            let hit = planned.contains(participant);
            if hit && unseated {
                planned.remove(participant);
            }
            hit
        };
        if known.lock().map(|mut k| seen(&mut k)).unwrap_or(false) {
            return Ok(());
        }
        // On a miss the region's whole planning is read at once: a closed exam's batch
        // names thousands of participants, and one query beats one per row. A miss is
        // always asked of the database, so a row is never refused on the cache's word.
        let planned = records
            .with(|c| {
                // One array, not a message per participant.
                let all: Vec<String> = c
                    .query_one(
                        "SELECT coalesce(array_agg(participant), '{}') FROM mirror_participants WHERE region = $1",
                        &[&region],
                    )
                    .map_err(|e| records.db(e))?
                    .try_get(0)
                    .map_err(|e| records.db(e))?;
                Ok(all.into_iter().collect::<HashSet<String>>())
            })
            .map_err(|e| format!("cannot check the row against the plan: {e}"))?;
        let found = planned.contains(participant);
        if let Ok(mut k) = known.lock() {
            k.insert(region, planned);
            seen(&mut k);
        }
        if !found {
            return Err(format!(
                "the row names a participant who is not in region {region:02}'s planning as sent (consent allow-list, R18)"
            ));
        }
        Ok(())
    })
}

#[cfg(test)]
#[path = "mirror_rows_tests.rs"]
mod tests;
