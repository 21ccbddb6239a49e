//! `konvert-edge day`: the exam site's day in one command. It watches the scanner's hot
//! folder, recognizes and sorts pages into rooms, checks each room, seals a room once it
//! is complete and has been quiet for a while, and pushes the outbox to the center —
//! with one live line per room and the time left until 23:59 local. The operator types
//! `present ROOM N` (from ППЭ-13-02МАШ) and `seal ROOM <reason>` (override) as the day
//! goes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use konvert_crypto::MemberSigner;
use konvert_exam::RoomId;
use konvert_replication::service::{sd_notify, ControlSocket};
use konvert_replication::Outbox;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use crate::cli::now_unix_ms;
use crate::config::SiteConfig;
use crate::deadline::DeadlineStatus;
use crate::intake::{HotFolderWatch, Intake, IntakeEvent};
use crate::push::{push, Expected, PushEvent, PushOptions};
use crate::rooms::{day_rooms, seal_day_room, seal_room_state, RoomState, SealDesk};
use crate::{Error, Result};

/// Scan data per participant for written exams, m of T = x·m/v (domain.md §6).
const PARTICIPANT_BYTES: u64 = 3_000_000;

/// How often the hot folder is listed while nothing is going on. The watcher wakes the
/// day for every change that can concern a scan; this only catches what a watcher misses
/// (a network share, an overflowing event queue), and keeps the live view's clock moving.
pub const IDLE_POLL: Duration = Duration::from_secs(2);
/// How often while files settle or a complete room waits for its quiet time: both are
/// counted between listings, and no event marks their end.
pub const BUSY_POLL: Duration = Duration::from_millis(250);
/// How often when the hot folder cannot be watched (no inotify, or its limit reached).
const UNWATCHED_POLL: Duration = Duration::from_secs(1);
/// The least time between two listings: a scanner writing a file sends an event for every
/// write, and one listing per burst sees the same as one per write.
const MIN_GAP: Duration = Duration::from_millis(100);

/// How the day runs.
#[derive(Debug, Clone, Copy)]
pub struct DayOptions {
    /// Exit once everything taken is sealed and delivered and nothing new came for this long.
    pub until_idle: Option<Duration>,
    /// Push to the center as packets are sealed.
    pub push: bool,
}

/// One line of the live view for a room.
pub fn room_line(r: &RoomState) -> String {
    let c = &r.check.counts;
    let present = c.present_reported.map_or("–".to_owned(), |p| p.to_string());
    let state = if !r.has_scans() {
        "waiting for scans".to_owned()
    } else if r.is_sealed() {
        let v: Vec<String> = r
            .packets
            .iter()
            .filter_map(|p| p.sealed.as_ref().map(|s| format!("{} v{}", p.kind.code(), s.version)))
            .collect();
        format!("sealed ({})", v.join(", "))
    } else if r.check.is_complete() {
        "complete, sealing when quiet".to_owned()
    } else {
        format!(
            "{} discrepancies — `check {}`",
            r.check.discrepancies.len(),
            r.check.room
        )
    };
    format!(
        "room {:<8} seated {:>3} present {:>3} reg {:>3} sets {:>3} pages {:>4} unread {:>2}  {state}",
        r.check.room.as_str(),
        c.seated,
        present,
        c.registrations,
        c.complete_sets,
        c.pages,
        c.unreadable
    )
}

/// Runs the day until Ctrl-C, `quit`, or idleness when asked for.
pub async fn run_day(cfg: SiteConfig, signer: Box<dyn MemberSigner>, opts: DayOptions) -> Result<()> {
    let day = cfg.day()?.clone();
    let plan = day.plan()?;
    let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
    let mut intake = Intake::for_day(&cfg)?;
    intake.journal().reconcile(&outbox)?;
    let wake = Arc::new(Notify::new());
    // A day without a watcher still works, listing the folder every second.
    let watch = match HotFolderWatch::start(&day.hot_folder, wake.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "{e}; listing the hot folder every {} s instead",
                UNWATCHED_POLL.as_secs()
            );
            None
        }
    };
    // Installed once, before any work: a signal that arrives while a room is being
    // sealed waits in the stream instead of being lost between two `select!`s.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // `status`, `check` and `attendance` beside the day ask it here: it holds the locks.
    let journal_changed = Arc::new(AtomicBool::new(false));
    let control = {
        let data_dir = cfg.data_dir.clone();
        let (cfg, plan, journal, outbox) = (cfg.clone(), plan.clone(), intake.journal().clone(), outbox.clone());
        let (changed, wake) = (journal_changed.clone(), wake.clone());
        let handler = Arc::new(move |request: &str| {
            let mark = || {
                changed.store(true, Ordering::Release);
                wake.notify_one();
            };
            crate::inspect::serve_request(&cfg, &plan, &journal, &outbox, request, &mark)
        });
        // Not fatal: the day matters more than looking at it from beside.
        ControlSocket::start(&data_dir, handler)
            .map_err(|e| tracing::warn!("status, check and attendance will not work beside this day: {e}"))
            .ok()
    };
    sd_notify("READY=1\nSTATUS=taking scans from the hot folder");

    let multi = MultiProgress::new();
    let header = multi.add(ProgressBar::new_spinner());
    header.set_style(
        ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut room_bars: HashMap<RoomId, ProgressBar> = HashMap::new();

    let more_coming = Arc::new(AtomicBool::new(true));
    let expected = Arc::new(Expected::default());
    let push_log = Arc::new(Mutex::new(Vec::<String>::new()));
    let delivered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The push's ETA of the whole backlog (measured goodput), for the header.
    let eta = Arc::new(Mutex::new(None::<u64>));
    let pusher = opts.push.then(|| {
        let log = push_log.clone();
        let delivered = delivered.clone();
        let eta = eta.clone();
        let wake = wake.clone();
        let on_event = Arc::new(move |ev: PushEvent| {
            let line = match ev {
                PushEvent::Schedule { eta_unix_ms, .. } => {
                    if let Ok(mut e) = eta.lock() {
                        *e = eta_unix_ms;
                    }
                    None
                }
                PushEvent::Delivered { packet_id, .. } => {
                    delivered.fetch_add(1, Ordering::Relaxed);
                    Some(format!("receipt ✓ {packet_id}"))
                }
                PushEvent::Rejected { packet_id, reason, .. } => {
                    Some(format!("refused ✗ {packet_id}: {}", reason.plain_words()))
                }
                PushEvent::Retrying { error, in_seconds } => {
                    Some(format!("not delivered yet: {error}; retry in {in_seconds:.0} s"))
                }
                PushEvent::Registry { version } => Some(format!("key registry v{version} in force")),
                PushEvent::Revocations { revoked, .. } => {
                    Some(format!("station revocation list in force ({revoked} revoked)"))
                }
                PushEvent::Held { packet_id, relay, .. } => Some(format!(
                    "held at relay {relay} ⧗ {packet_id}: waiting for the center's receipt"
                )),
                _ => None,
            };
            if let (Some(line), Ok(mut log)) = (line, log.lock()) {
                log.push(line);
                // Shown now, not at the next idle tick.
                wake.notify_one();
            }
        });
        let push_opts = PushOptions {
            max_wait: Duration::from_secs(24 * 3600),
            on_event,
            more_coming: Some(more_coming.clone()),
            expected: Some(expected.clone()),
        };
        let (cfg, outbox) = (cfg.clone(), outbox.clone());
        tokio::spawn(async move { push(&cfg, outbox, push_opts).await })
    });

    // The center's answers to the packets (loaded, or remarks to act on) as they come.
    let _answers = opts.push.then(|| {
        crate::answers::NoticeWatch::start(
            cfg.clone(),
            outbox.clone(),
            intake.journal().clone(),
            push_log.clone(),
            wake.clone(),
        )
    });
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel::<String>(16);
    // A plain thread, not tokio's stdin: that read runs on the blocking pool and cannot be
    // cancelled, so the runtime's shutdown would wait for the operator to press Enter.
    let _ = std::thread::Builder::new().name("day-commands".into()).spawn(move || {
        for line in std::io::stdin().lines().map_while(std::result::Result::ok) {
            if cmd_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let deadline_ms = cfg.time_zone.deadline_unix_ms(plan.date)?;
    let mut last_activity = Instant::now();
    let quiet = Duration::from_secs(day.quiet_seconds);
    // The rooms change only when a file is taken, a command runs or a room is sealed;
    // between those, rebuilding them from the whole journal every tick is wasted work.
    let mut rooms: Option<Vec<RoomState>> = None;
    // A command read while waiting, handled first in the next round.
    let mut next_command: Option<String> = None;
    let mut stdin_open = true;
    loop {
        let polled_at = Instant::now();
        let now = now_unix_ms();
        let events = tokio::task::block_in_place(|| intake.poll(now))?;
        if !events.is_empty() || journal_changed.swap(false, Ordering::AcqRel) {
            last_activity = Instant::now();
            rooms = None;
        }
        for e in &events {
            multi.suspend(|| println!("{}", event_line(e)));
        }
        if let Ok(mut log) = push_log.lock() {
            for line in log.drain(..) {
                multi.suspend(|| println!("  {line}"));
            }
        }
        let desk = SealDesk {
            cfg: &cfg,
            outbox: &outbox,
            signer: &*signer,
            plan: &plan,
            intake: &intake,
        };
        while let Some(cmd) = next_command.take().or_else(|| cmd_rx.try_recv().ok()) {
            rooms = None;
            match command(&cmd, &desk) {
                Ok(Some(msg)) => multi.suspend(|| println!("{msg}")),
                Ok(None) => {
                    more_coming.store(false, Ordering::Release);
                    header.finish_and_clear();
                    return finish(pusher).await;
                }
                Err(e) => multi.suspend(|| println!("✗ {e}")),
            }
        }
        let current = match rooms.take() {
            Some(r) => r,
            None => tokio::task::block_in_place(|| day_rooms(&plan, &intake))?,
        };
        let mut sealed_any = false;
        let mut waiting_for_quiet = false;
        for r in &current {
            let quiet_enough = r
                .last_taken_ms
                .is_some_and(|t| now.saturating_sub(t) >= quiet.as_millis() as u64);
            let sealable = r.has_scans() && !r.is_sealed() && r.check.is_complete();
            waiting_for_quiet |= sealable && !quiet_enough;
            if sealable && quiet_enough && !intake.is_settling() {
                sealed_any = true;
                match tokio::task::block_in_place(|| seal_room_state(&desk, r, None, now_unix_ms())) {
                    Ok(done) => {
                        last_activity = Instant::now();
                        for s in done {
                            multi.suspend(|| println!("{s}"));
                        }
                    }
                    Err(e) => multi.suspend(|| println!("✗ sealing room {}: {e}", r.check.room)),
                }
            }
        }
        let rooms = rooms.insert(if sealed_any {
            tokio::task::block_in_place(|| day_rooms(&plan, &intake))?
        } else {
            current
        });
        for r in rooms.iter() {
            let bar = room_bars.entry(r.check.room.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            });
            bar.set_message(room_line(r));
        }
        // Rooms not sealed yet will bring m = 3 MB per participant (domain.md §6): the ETA
        // and the center's plan count them before they are queued.
        let unsealed: u64 = rooms
            .iter()
            .filter(|r| !r.is_sealed())
            .map(|r| u64::from(r.check.counts.present_reported.unwrap_or(r.check.counts.seated)))
            .sum();
        expected.set(unsealed * PARTICIPANT_BYTES, u64::try_from(deadline_ms).unwrap_or(0));
        let pending = outbox.pending()?;
        let backlog: u64 = pending.iter().map(|e| e.offer.size).sum();
        let status = DeadlineStatus {
            left_ms: deadline_ms - now as i64,
            eta_ms: eta.lock().ok().and_then(|e| *e).map(|e| e as i64 - now as i64),
        };
        header.set_message(format!(
            "site {} · {} {} · {} packet(s) to send ({:.1} MB), {} delivered · {status}",
            plan.site,
            plan.exam.code(),
            plan.date,
            pending.len(),
            backlog as f64 / 1e6,
            delivered.load(Ordering::Relaxed)
        ));
        header.tick();

        let mut wait = if watch.is_none() {
            UNWATCHED_POLL
        } else if intake.is_settling() || waiting_for_quiet {
            BUSY_POLL
        } else {
            IDLE_POLL
        };
        if let Some(idle) = opts.until_idle {
            wait = wait.min(idle.saturating_sub(last_activity.elapsed()).max(MIN_GAP));
            let all_sealed = rooms.iter().filter(|r| r.has_scans()).all(RoomState::is_sealed);
            // Without a push, sealed packets stay pending by design: sealed is done.
            let all_sent = pending.is_empty() || !opts.push;
            if all_sealed && all_sent && !intake.is_settling() && last_activity.elapsed() >= idle {
                more_coming.store(false, Ordering::Release);
                header.finish_and_clear();
                for bar in room_bars.values() {
                    bar.finish();
                }
                return finish(pusher).await;
            }
        }
        let stop = tokio::select! {
            _ = wake.notified() => {
                tokio::time::sleep_until((polled_at + MIN_GAP).into()).await;
                None
            }
            _ = tokio::time::sleep(wait) => None,
            cmd = cmd_rx.recv(), if stdin_open => {
                match cmd {
                    Some(cmd) => next_command = Some(cmd),
                    None => stdin_open = false,
                }
                None
            }
            _ = sigint.recv() => Some("Ctrl-C (SIGINT)"),
            _ = sigterm.recv() => Some("SIGTERM"),
        };
        if let Some(signal) = stop {
            sd_notify("STOPPING=1");
            drop(control);
            more_coming.store(false, Ordering::Release);
            header.finish_and_clear();
            for bar in room_bars.values() {
                bar.finish();
            }
            // What is in flight stays in the outbox and resumes where it was at the next
            // start; the journal and the outbox are flushed at every write.
            if let Some(p) = pusher {
                p.abort();
                let _ = p.await;
            }
            tracing::info!(signal, "day stopped");
            println!("stopped by {signal}; everything taken is kept and the day resumes where it was");
            return Ok(());
        }
    }
}

async fn finish(pusher: Option<tokio::task::JoinHandle<Result<crate::PushReport>>>) -> Result<()> {
    if let Some(p) = pusher {
        let report = p.await.map_err(|e| Error::Push(format!("push task failed: {e}")))??;
        println!(
            "{} packet(s) delivered with verified receipts, {} refused",
            report.delivered,
            report.rejected.len()
        );
    }
    Ok(())
}

/// One line about an intake event, for the operator.
pub fn event_line(e: &IntakeEvent) -> String {
    match e {
        IntakeEvent::Taken {
            name,
            pages,
            unreadable,
            problem,
        } => {
            let mut s = format!("taken {name}: {pages} page(s)");
            if *unreadable > 0 {
                s.push_str(&format!(", {unreadable} unreadable — flagged for a manual check"));
            }
            if let Some(p) = problem {
                s.push_str(&format!(" ⚠ {p}"));
            }
            s
        }
        IntakeEvent::Copy { name, of } => format!("{name} is a copy of {of}, already taken; not taken again"),
        IntakeEvent::Refused { name, reason } => format!("✗ {name} not taken: {reason}"),
    }
}

/// An operator's command; `Ok(None)` means quit.
fn command(line: &str, desk: &SealDesk<'_>) -> Result<Option<String>> {
    let (plan, intake) = (desk.plan, desk.intake);
    let mut words = line.split_whitespace();
    let usage =
        || "commands: present ROOM N · check ROOM · seal ROOM <reason> · export DIR · receipts DIR · quit".to_owned();
    match words.next() {
        None => Ok(Some(usage())),
        Some("quit") | Some("exit") => Ok(None),
        Some("present") => {
            let (Some(room), Some(n)) = (words.next(), words.next()) else {
                return Ok(Some(usage()));
            };
            let room: RoomId = room.parse()?;
            let n: u32 = n
                .parse()
                .map_err(|_| Error::Push(format!("{n} is not a number of participants")))?;
            intake.journal().set_attendance(&room, n)?;
            Ok(Some(format!("room {room}: {n} present recorded from ППЭ-13-02МАШ")))
        }
        Some("check") => {
            let room: Option<RoomId> = words.next().map(str::parse).transpose()?;
            let rooms = day_rooms(plan, intake)?;
            Ok(Some(check_table(&rooms, room.as_ref())))
        }
        Some("seal") => {
            let Some(room) = words.next() else {
                return Ok(Some(usage()));
            };
            let room: RoomId = room.parse()?;
            let reason: Vec<&str> = words.collect();
            let reason = reason.join(" ");
            let done = seal_day_room(
                desk,
                &room,
                (!reason.is_empty()).then_some(reason.as_str()),
                now_unix_ms(),
            )?;
            Ok(Some(format!("room {room}: {} packet(s) sealed", done.len())))
        }
        // The reserve channel without leaving the day: this process holds the outbox.
        Some("export") => {
            let Some(dir) = words.next() else {
                return Ok(Some(usage()));
            };
            let dir = std::path::Path::new(dir);
            let report = crate::reserve::export(desk.cfg, desk.outbox, dir, now_unix_ms())?;
            let back_here = format!("type `receipts {}` in this day", dir.display());
            Ok(Some(crate::reserve::export_summary(&report, dir, &back_here)))
        }
        Some("receipts") => {
            let Some(dir) = words.next() else {
                return Ok(Some(usage()));
            };
            let outcomes = crate::reserve::import_receipts(desk.cfg, desk.outbox, std::path::Path::new(dir))?;
            Ok(Some(
                crate::reserve::receipts_summary(&outcomes, desk.outbox.pending()?.len()).0,
            ))
        }
        Some(_) => Ok(Some(usage())),
    }
}

/// The completeness table `check` prints.
pub fn check_table(rooms: &[RoomState], only: Option<&RoomId>) -> String {
    let mut out = String::new();
    for r in rooms.iter().filter(|r| only.is_none_or(|o| o == &r.check.room)) {
        out.push_str(&room_line(r));
        out.push('\n');
        for d in &r.check.discrepancies {
            out.push_str(&format!("    - {d}\n"));
        }
    }
    out
}
