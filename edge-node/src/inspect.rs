//! What `status`, `check` and `attendance` show and do, whether they open the station's
//! files themselves or ask a running `day` through its control socket (the day holds the
//! sled locks, so opening the files beside it fails). Both paths use these functions, so
//! the answers are the same.

use std::path::Path;

use konvert_exam::{RoomId, SeatingPlan};
use konvert_replication::{Outbox, OutboxState};
use serde_json::json;

use crate::day::check_table;
use crate::deadline::DeadlineStatus;
use crate::intake::Journal;
use crate::rooms::{journal_rooms, RoomState};
use crate::{Error, Result, SiteConfig};

/// The outbox as `status` shows it.
pub fn status(cfg: &SiteConfig, outbox: &Outbox, journal: Option<&Journal>, as_json: bool) -> Result<String> {
    let entries = outbox.entries()?;
    let mut rows = Vec::new();
    let mut text = format!("site {}: {} packet version(s) in the outbox\n", cfg.site, entries.len());
    for e in entries {
        let (state, detail) = match &e.state {
            OutboxState::Sealed => match outbox.exported(&e.offer)? {
                Some(x) => (
                    "exported",
                    format!(
                        "sealed, exported to drive {} — waiting for its receipt (network or drive)",
                        x.drive
                    ),
                ),
                None => ("sealed", "sealed, waiting to send".to_owned()),
            },
            OutboxState::Delivered { receipt } => (
                "delivered",
                format!("delivered, receipt signed by {}", receipt.body.center_key),
            ),
            OutboxState::Rejected { reason, .. } => ("refused", format!("REFUSED: {}", reason.plain_words())),
        };
        text.push_str(&format!(
            "  {:<48} v{:<3} {:>10.1} MB  {}\n",
            e.offer.packet_id,
            e.offer.version,
            e.offer.size as f64 / 1e6,
            detail
        ));
        rows.push(json!({
            "packet_id": e.offer.packet_id,
            "version": e.offer.version,
            "bytes": e.offer.size,
            "state": state,
            "detail": detail,
        }));
    }
    let answers = outbox.answers()?;
    let names = crate::answers::LocalNames::of(journal);
    if as_json {
        let doc = json!({
            "site": cfg.site.as_str(),
            "packets": rows,
            "answers": crate::answers::status_json(&answers, &names),
        });
        return Ok(format!("{}\n", pretty(&doc)));
    }
    text.push_str(&crate::answers::status_text(&answers, &names));
    Ok(text)
}

/// Each room's completeness as `check` shows it (`only`: one room).
pub fn check(
    cfg: &SiteConfig,
    plan: &SeatingPlan,
    journal: &Journal,
    only: Option<&RoomId>,
    as_json: bool,
) -> Result<String> {
    let rooms = journal_rooms(plan, journal)?;
    let now = crate::cli::now_unix_ms() as i64;
    let deadline = cfg.time_zone.deadline_unix_ms(plan.date)?;
    if as_json {
        let rooms: Vec<serde_json::Value> = rooms
            .iter()
            .filter(|r| only.is_none_or(|o| o == &r.check.room))
            .map(room_json)
            .collect();
        let doc = json!({
            "site": plan.site.as_str(),
            "exam": plan.exam.code(),
            "date": plan.date.to_string(),
            "deadline_unix_ms": deadline,
            "rooms": rooms,
        });
        return Ok(format!("{}\n", pretty(&doc)));
    }
    let status = DeadlineStatus::at(now, deadline, 0, 0.0);
    Ok(format!(
        "site {} · {} {} · {status}\n{}",
        plan.site,
        plan.exam.code(),
        plan.date,
        check_table(&rooms, only)
    ))
}

fn room_json(r: &RoomState) -> serde_json::Value {
    let c = &r.check.counts;
    json!({
        "room": r.check.room.as_str(),
        "seated": c.seated,
        "present": c.present_reported,
        "registrations": c.registrations,
        "complete_sets": c.complete_sets,
        "pages": c.pages,
        "unreadable": c.unreadable,
        "complete": r.check.is_complete(),
        "sealed": r.is_sealed(),
        "discrepancies": r.check.discrepancies.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// Records how many were present in `room` (from ППЭ-13-02МАШ); says what was recorded.
pub fn attendance(plan: &SeatingPlan, journal: &Journal, room: &RoomId, present: u32) -> Result<String> {
    let seated = plan.seated_in(room);
    if present as usize > seated {
        return Err(Error::Push(format!(
            "room {room} seats {seated}; {present} present cannot be right — check ППЭ-13-02МАШ"
        )));
    }
    journal.set_attendance(room, present)?;
    Ok(format!(
        "room {room}: {present} of {seated} present, from ППЭ-13-02МАШ\n"
    ))
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A control-socket answer: `ok` or `error` on the first line, then the text.
pub fn answer(result: Result<String>) -> String {
    match result {
        Ok(text) => format!("ok\n{text}"),
        Err(e) => format!("error\n{e}"),
    }
}

/// Asks a `day` running on `data_dir`; `None` if none runs there. An answer that is an
/// error comes back as one.
pub fn ask_day(data_dir: &Path, request: &str) -> Option<Result<String>> {
    let reply = konvert_replication::service::ask(data_dir, request)?;
    Some(match reply {
        Err(e) => Err(Error::Push(format!(
            "the running `konvert-edge day` did not answer: {e}"
        ))),
        Ok(text) => match text.split_once('\n') {
            Some(("ok", body)) => Ok(body.to_owned()),
            Some(("error", body)) => Err(Error::Push(body.trim_end().to_owned())),
            _ => Err(Error::Push(format!("the running `konvert-edge day` answered {text:?}"))),
        },
    })
}

/// What the running day answers on its control socket: `status [--json]`,
/// `check [ROOM] [--json]`, `attendance ROOM N`. `changed` is called after a change to
/// the journal, so the day shows it.
pub fn serve_request(
    cfg: &SiteConfig,
    plan: &SeatingPlan,
    journal: &Journal,
    outbox: &Outbox,
    request: &str,
    changed: &dyn Fn(),
) -> String {
    let words: Vec<&str> = request.split_whitespace().collect();
    let as_json = words.contains(&"--json");
    let args: Vec<&str> = words.iter().copied().filter(|w| *w != "--json").collect();
    answer(match args.as_slice() {
        ["status"] => status(cfg, outbox, Some(journal), as_json),
        ["check"] => check(cfg, plan, journal, None, as_json),
        ["check", room] => room
            .parse::<RoomId>()
            .map_err(Error::from)
            .and_then(|r| check(cfg, plan, journal, Some(&r), as_json)),
        ["attendance", room, n] => (|| {
            let room: RoomId = room.parse()?;
            let n: u32 = n
                .parse()
                .map_err(|_| Error::Push(format!("{n} is not a number of participants")))?;
            let said = attendance(plan, journal, &room, n)?;
            changed();
            Ok(said)
        })(),
        _ => Err(Error::Push(format!(
            "the running day does not know {request:?}: ask status, check [ROOM] or attendance ROOM N"
        ))),
    })
}
