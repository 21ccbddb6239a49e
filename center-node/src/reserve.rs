//! The reserve channel at the center: `konvert-center import` takes the sealed envelopes a
//! site carried on a drive (written by `konvert-edge export`), with exactly the network
//! path's dedup and verification ([`CenterIntake::take_carried`]), keys judged by the time
//! of the import, and writes the center's signed receipts back to the drive.
//!
//! Why a spool folder. The inbox is a sled database that only one process can open, and
//! on the exam day `konvert-center serve` holds it. Staff commands already live with that
//! by leaving files for the service (the registry file it watches) and reading folders
//! (review, test desk). Import does the same: it first tries to open the inbox itself — the
//! center is not serving — and takes the drive in-process. If the inbox is held, it leaves
//! a request in `data_dir/reserve/requests/`; the running service looks at that folder
//! every [`WATCH_INTERVAL`], takes the drive with the *same* [`CenterIntake`] that serves
//! stations — so a packet arriving by network and by drive at once is claimed once, and
//! every decision lands in the one audit log, which only one process may write — and
//! leaves the outcome in `data_dir/reserve/results/`. The import command waits for it and
//! writes the receipts to the drive itself (the operator's process holds the drive; the
//! service only reads it, so the service's user needs read access to the mount).
//!
//! A request is renamed to `.taking` when the service starts on it; one left by a crash is
//! taken again on restart, harmlessly (what was stored is then already held). An import
//! that no service takes within [`PICKUP_WAIT`] withdraws its request and says why.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::keyfile;
use konvert_exam::{ExamDate, ExamKind, PacketKind, PacketRef, RoomId, SiteId};
use konvert_replication::logging::printable;
use konvert_replication::reserve::{self, DriveIndex, DrivePacket};
use konvert_replication::Inbox;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::CenterConfig;
use crate::intake::{now_ms, Carried, CenterIntake};
use crate::metrics::Metrics;
use crate::registry::{CenterRegistry, WATCH_INTERVAL};
use crate::service::{AUDIT_CHECKPOINT_EVERY, AUDIT_LOG};
use crate::{Error, Result};

/// How long an import waits for a running center to take its request.
pub const PICKUP_WAIT: Duration = Duration::from_secs(10);
/// The longest operator name recorded.
pub const MAX_OPERATOR_LEN: usize = 128;
/// The longest operator's statement recorded.
pub const MAX_STATEMENT_LEN: usize = 8 * 1024;
const SPOOL_MAGIC: &[u8; 8] = b"KNVRTSP1";
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
const MAX_RESULT_BYTES: u64 = 64 << 20;
const POLL: Duration = Duration::from_millis(100);
/// A result nobody picked up for this long belongs to an import that was stopped (its
/// outcome is in the audit log): it goes.
const STALE_RESULT: Duration = Duration::from_secs(3600);

/// Who imports which drive, and what they state (recorded in the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The drive folder, absolute.
    pub drive: PathBuf,
    /// Who imports it.
    pub operator: String,
    /// The operator's statement (how the drive came, seals, courier …).
    pub statement: String,
}

/// What became of one envelope on the drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketOutcome {
    /// The drive's index entry.
    pub packet: DrivePacket,
    /// What the center did.
    pub carried: Carried,
}

/// What became of a drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveOutcome {
    /// The site the drive's index names.
    pub site: String,
    /// Every envelope, in index order.
    pub packets: Vec<PacketOutcome>,
}

impl DriveOutcome {
    /// Envelopes taken (stored now or already held): those with a receipt.
    pub fn receipted(&self) -> usize {
        self.packets
            .iter()
            .filter(|p| matches!(p.carried, Carried::Stored(_) | Carried::AlreadyHeld(_)))
            .count()
    }
}

impl ImportRequest {
    /// A request for `drive` (made absolute), refusing names and statements too long to
    /// record.
    pub fn new(drive: &Path, operator: &str, statement: &str) -> Result<Self> {
        let operator = operator.trim();
        if operator.is_empty() || operator.len() > MAX_OPERATOR_LEN || operator.chars().any(char::is_control) {
            return Err(Error::Reserve(format!(
                "--operator must name who imports the drive, in at most {MAX_OPERATOR_LEN} bytes on one line"
            )));
        }
        if statement.len() > MAX_STATEMENT_LEN {
            return Err(Error::Reserve(format!(
                "the statement is {} bytes; at most {MAX_STATEMENT_LEN} are recorded",
                statement.len()
            )));
        }
        let drive = drive.canonicalize().map_err(Error::file(drive))?;
        Ok(ImportRequest {
            drive,
            operator: operator.to_owned(),
            statement: statement.to_owned(),
        })
    }
}

/// The drive's index, refused whole unless its site is a site code and every packet id is
/// one of that site's (`<site>-<YYYY-MM-DD>-<exam>-<room>-<kind>`): nothing from it reaches
/// the console, the log or the audit log unchecked.
fn read_index(drive: &Path) -> Result<DriveIndex> {
    let index = DriveIndex::read(drive)?.ok_or_else(|| {
        Error::Reserve(format!(
            "{} holds no {}: it is not a drive written by `konvert-edge export`",
            drive.display(),
            reserve::INDEX_FILE
        ))
    })?;
    let refuse = |what: String| {
        Error::Reserve(format!(
            "{}: {} — the index is damaged or forged; nothing on the drive was taken, export it again at the site",
            drive.join(reserve::INDEX_FILE).display(),
            printable(&what)
        ))
    };
    let site = SiteId::new(&index.site).map_err(|e| refuse(format!("its site: {e}")))?;
    for p in &index.packets {
        if !is_packet_id_of(&site, &p.packet_id) {
            return Err(refuse(format!(
                "the packet id {:?} is not a packet id of site {site} (<site>-<YYYY-MM-DD>-<exam>-<room>-<kind>)",
                p.packet_id
            )));
        }
    }
    Ok(index)
}

/// Whether `id` is the packet id of a packet of `site`, exactly as a site writes it.
fn is_packet_id_of(site: &SiteId, id: &str) -> bool {
    let parse = || -> Option<PacketRef> {
        let rest = id.strip_prefix(site.as_str())?.strip_prefix('-')?;
        let date = ExamDate::from_str(rest.get(..10)?).ok()?;
        let (exam, rest) = rest.get(10..)?.strip_prefix('-')?.split_once('-')?;
        let (room, kind) = rest.rsplit_once('-')?;
        Some(PacketRef {
            site: site.clone(),
            date,
            exam: ExamKind::from_str(exam).ok()?,
            room: RoomId::new(room).ok()?,
            kind: PacketKind::from_str(kind).ok()?,
        })
    };
    // Rebuilt and compared, so only the spelling a site writes passes (not `EGE`, `егэ`).
    parse().is_some_and(|r| r.packet_id() == id)
}

/// Takes every envelope on the drive through `intake`, recording the import and the
/// operator's statement in the audit log first.
pub fn take_drive(intake: &CenterIntake, request: &ImportRequest) -> Result<DriveOutcome> {
    let index = read_index(&request.drive)?;
    // Refused whole before anything is stored: a drive whose receipts cannot be written
    // back would leave packets stored that the operator is told nothing about.
    reserve::check_folders(&request.drive)?;
    let drive = request.drive.display().to_string();
    let subject: String = drive.chars().take(512).collect();
    let detail = format!(
        "operator {}: {} packet(s) of site {}; statement: {}",
        request.operator,
        index.packets.len(),
        index.site,
        if request.statement.is_empty() {
            "(none)"
        } else {
            &request.statement
        }
    );
    intake.note(
        &format!("reserve drive, imported by {}", request.operator),
        AuditAction::Other("reserve.import".into()),
        &subject,
        &detail,
    );
    info!(drive = %drive, operator = %request.operator, packets = index.packets.len(), "taking a reserve drive");
    // The envelopes folder once, refused whole if it is a link: every file is then opened
    // relative to it, never through a link.
    let (_drive, envelopes) = reserve::open_envelopes(&request.drive)?;
    let packets = index
        .packets
        .into_iter()
        .map(|packet| {
            let carried = match packet.offer() {
                Ok(offer) => intake.take_carried(&request.operator, &offer, envelopes.as_ref(), &packet.file),
                Err(detail) => Carried::Unreadable {
                    detail: format!("the drive's index entry is malformed: {detail}"),
                },
            };
            PacketOutcome { packet, carried }
        })
        .collect();
    Ok(DriveOutcome {
        site: index.site,
        packets,
    })
}

/// Imports a drive: in this process when the center is not serving, else through the
/// running service; then writes the receipts back to the drive.
pub fn import(cfg: &CenterConfig, request: &ImportRequest) -> Result<DriveOutcome> {
    import_waiting(cfg, request, PICKUP_WAIT)
}

/// [`import`], waiting `pickup` for a running center to take the request.
pub fn import_waiting(cfg: &CenterConfig, request: &ImportRequest, pickup: Duration) -> Result<DriveOutcome> {
    read_index(&request.drive)?;
    reserve::check_folders(&request.drive)?;
    let outcome = match Inbox::open(&cfg.data_dir) {
        Ok(inbox) => take_directly(cfg, inbox, request)?,
        Err(held) => through_service(cfg, request, &held.to_string(), pickup)?,
    };
    for p in &outcome.packets {
        if let Carried::Stored(receipt) | Carried::AlreadyHeld(receipt) = &p.carried {
            reserve::write_receipt(&request.drive, &p.packet, receipt)?;
        }
    }
    Ok(outcome)
}

/// The center is not serving: this process holds the inbox (so a center started now
/// refuses to start) and builds the intake the service would.
fn take_directly(cfg: &CenterConfig, inbox: Inbox, request: &ImportRequest) -> Result<DriveOutcome> {
    let inbox = Arc::new(inbox);
    let audit = Arc::new(AuditLog::open(
        &cfg.data_dir.join(AUDIT_LOG),
        Some(keyfile::read_signing_key(&cfg.receipt_key)?),
        AUDIT_CHECKPOINT_EVERY,
    )?);
    let registry = Arc::new(CenterRegistry::open(cfg, now_ms(), Some(audit.clone()))?);
    if let Err(e) = registry.refresh(&inbox, now_ms()) {
        warn!("the key registry file was not taken: {e}");
    }
    let intake = CenterIntake::new(
        cfg,
        inbox,
        registry,
        keyfile::read_signing_key(&cfg.receipt_key)?,
        Metrics::new()?,
        audit.clone(),
    )?;
    let outcome = take_drive(&intake, request);
    if let Err(e) = audit.checkpoint() {
        warn!("cannot write the audit log's checkpoint: {e}");
    }
    outcome
}

fn through_service(cfg: &CenterConfig, request: &ImportRequest, held: &str, pickup: Duration) -> Result<DriveOutcome> {
    let spool = Spool::open(&cfg.data_dir)?;
    let id = format!("{}-{}", now_ms(), std::process::id());
    spool.submit(&id, request)?;
    info!(id = %id, "the inbox is held (the center is serving): the running center takes the drive");
    let deadline = Instant::now() + pickup;
    loop {
        if let Some(result) = spool.take_result(&id)? {
            return result.map_err(Error::Reserve);
        }
        if Instant::now() >= deadline && spool.withdraw(&id)? {
            return Err(Error::Reserve(format!(
                "the inbox cannot be opened here ({held}), and no running center took the import within {:.1} s; \
                 start `konvert-center serve`, or stop whatever holds the inbox, and import again",
                pickup.as_secs_f64()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// The folder through which import asks the running service.
#[derive(Debug, Clone)]
struct Spool {
    requests: PathBuf,
    results: PathBuf,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = SPOOL_MAGIC.to_vec();
    bytes.extend_from_slice(&postcard::to_allocvec(value).map_err(|e| Error::Reserve(e.to_string()))?);
    Ok(bytes)
}

fn decode<T: for<'de> Deserialize<'de>>(path: &Path, max: u64) -> Result<T> {
    let bytes = keyfile::read_bounded(path, max)?;
    let bad = || Error::Reserve(format!("{} is not a konvert spool file; move it away", path.display()));
    let body = bytes.strip_prefix(SPOOL_MAGIC.as_slice()).ok_or_else(bad)?;
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        _ => Err(bad()),
    }
}

impl Spool {
    fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("reserve");
        let spool = Spool {
            requests: dir.join("requests"),
            results: dir.join("results"),
        };
        for d in [&spool.requests, &spool.results] {
            std::fs::create_dir_all(d).map_err(Error::file(d))?;
        }
        Ok(spool)
    }

    fn submit(&self, id: &str, request: &ImportRequest) -> Result<()> {
        keyfile::write_atomic(&self.requests.join(format!("{id}.req")), &encode(request)?, 0o640)?;
        Ok(())
    }

    /// Removes a request no service has taken; `false` if one just took it.
    fn withdraw(&self, id: &str) -> Result<bool> {
        let path = self.requests.join(format!("{id}.req"));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::File { path, source: e }),
        }
    }

    fn take_result(&self, id: &str) -> Result<Option<std::result::Result<DriveOutcome, String>>> {
        let path = self.results.join(format!("{id}.res"));
        if !path.exists() {
            return Ok(None);
        }
        let result = decode(&path, MAX_RESULT_BYTES)?;
        let _ = std::fs::remove_file(&path);
        Ok(Some(result))
    }

    /// Removes results older than `age` that no importer came for (it was stopped while it
    /// waited); returns how many.
    fn prune_results(&self, age: Duration) -> Result<usize> {
        let mut pruned = 0;
        for entry in std::fs::read_dir(&self.results)
            .map_err(Error::file(&self.results))?
            .flatten()
        {
            let path = entry.path();
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|elapsed| elapsed > age);
            if stale && path.extension().is_some_and(|x| x == "res") && std::fs::remove_file(&path).is_ok() {
                info!(file = %path.display(), "removed a reserve import result nobody picked up (its outcome is in the audit log)");
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// The waiting requests (and any a crash left half taken) that are not under way in
    /// this process, by id, oldest first.
    fn pending(&self, under_way: &HashSet<String>) -> Result<Vec<(String, PathBuf)>> {
        self.prune_results(STALE_RESULT)?;
        let mut waiting: Vec<(String, PathBuf)> = std::fs::read_dir(&self.requests)
            .map_err(Error::file(&self.requests))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "req" || x == "taking"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p)))
            .filter(|(id, _)| !under_way.contains(id))
            .collect();
        waiting.sort();
        Ok(waiting)
    }

    /// Takes one request and leaves its outcome for its importer.
    fn serve_one(&self, intake: &CenterIntake, id: &str, path: &Path) -> Result<()> {
        let taking = self.requests.join(format!("{id}.taking"));
        if path != taking {
            match std::fs::rename(path, &taking) {
                Ok(()) => {}
                // Withdrawn by its importer a moment ago.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(Error::File {
                        path: path.to_owned(),
                        source: e,
                    })
                }
            }
        }
        let result = decode::<ImportRequest>(&taking, MAX_REQUEST_BYTES)
            .and_then(|request| take_drive(intake, &request))
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            warn!(id = %id, "a reserve import failed: {e}");
        }
        keyfile::write_atomic(&self.results.join(format!("{id}.res")), &encode(&result)?, 0o640)?;
        std::fs::remove_file(&taking).map_err(Error::file(&taking))?;
        Ok(())
    }
}

/// Takes reserve-drive imports left in `data_dir/reserve/` every [`WATCH_INTERVAL`] for as
/// long as the runtime runs. Each import runs on a thread of its own: one whose drive
/// stops answering (every file has a time limit, but a read the kernel never returns from
/// cannot be cut short) holds up only itself, never the imports after it.
pub fn watch_spool(intake: Arc<CenterIntake>, data_dir: &Path) -> Result<()> {
    let spool = Spool::open(data_dir)?;
    // Weak: the watch ends with the center it serves, and never keeps its inbox open.
    let intake = Arc::downgrade(&intake);
    let under_way: Arc<Mutex<HashSet<String>>> = Arc::default();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(i) = intake.upgrade() else { return };
            let waiting = {
                let taken = under_way.lock().unwrap_or_else(PoisonError::into_inner);
                spool.pending(&taken)
            };
            let waiting = match waiting {
                Ok(w) => w,
                Err(e) => {
                    warn!("reserve imports: {e}");
                    continue;
                }
            };
            for (id, path) in waiting {
                under_way
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.clone());
                let (s, i, under_way) = (spool.clone(), i.clone(), under_way.clone());
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = s.serve_one(&i, &id, &path) {
                        warn!(id = %id, "reserve import: {e}");
                    }
                    under_way.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                });
            }
        }
    });
    Ok(())
}

#[cfg(test)]
#[path = "reserve_tests.rs"]
mod tests;
