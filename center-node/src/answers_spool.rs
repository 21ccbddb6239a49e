//! The receiver's one-way folder of loader answers (`data_dir/answers/incoming/`): the
//! serving center holds the inbox's lock and the audit log, so `answers import` beside it
//! leaves each batch there (with a note naming the operator) and waits for the outcome the
//! center writes to `results/`; a data diode may feed the folder directly.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_crypto::audit::AuditLog;
use konvert_crypto::keyfile;
use konvert_replication::drive::DriveDir;
use konvert_replication::logging::printable;
use konvert_replication::Inbox;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    import_batch, read_drive, AnswerDesk, ImportContext, ImportReport, EXTENSION, MAX_BATCH_FILES, MAX_FILE_BYTES,
    MAX_OPERATOR_NOTE, OPERATOR, PICKUP_WAIT, WATCH_INTERVAL,
};
use crate::config::CenterConfig;
use crate::intake::now_ms;
use crate::registry::CenterRegistry;
use crate::{Error, Result};

/// How long an outcome waits in `results/` for the import that asked for it.
const STALE_RESULT: Duration = Duration::from_secs(3600);

/// The outcome a serving center leaves for `answers import` in `results/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum SpoolResult {
    Done(ImportReport),
    Failed(String),
}

/// Takes the batches a drive holds into the center of `cfg`: in this process when no
/// center serves, else through the serving center's one-way folder (waiting up to
/// [`PICKUP_WAIT`] for each outcome). `operator` is recorded.
pub fn import_drive(cfg: &CenterConfig, drive: &Path, operator: &str) -> Result<Vec<Result<ImportReport>>> {
    let batches = read_drive(drive)?;
    let desk = AnswerDesk::open(&cfg.data_dir)?;
    let operator = format!("operator {}", printable(operator.trim()));
    match Inbox::open(&cfg.data_dir) {
        Ok(inbox) => {
            let registry = crate::registry::held(cfg, now_ms())?.ok_or_else(|| Error::Answers {
                what: "the center holds no key registry".into(),
                hint: "import the officers' registry first (`konvert-center registry import`)",
            })?;
            let receipt_key = keyfile::read_signing_key(&cfg.receipt_key)?;
            let audit = AuditLog::open(
                &cfg.data_dir.join(crate::service::AUDIT_LOG),
                Some(keyfile::read_signing_key(&cfg.receipt_key)?),
                crate::service::AUDIT_CHECKPOINT_EVERY,
            )?;
            let ctx = ImportContext {
                inbox: &inbox,
                registry: &registry,
                receipt_key: &receipt_key,
                audit: &audit,
                desk: &desk,
                now_unix_ms: now_ms(),
            };
            Ok(batches
                .iter()
                .map(|(name, bytes)| import_batch(&ctx, bytes, name, &operator))
                .collect())
        }
        Err(held) if crate::control::ask_center(&cfg.data_dir, "status").is_some() => {
            let _ = held;
            Ok(batches
                .iter()
                .map(|(name, bytes)| hand_to_serving(&desk, name, bytes, &operator))
                .collect())
        }
        Err(e) => Err(e.into()),
    }
}

/// Leaves a batch in the serving center's one-way folder and waits for its outcome.
fn hand_to_serving(desk: &AnswerDesk, name: &str, bytes: &[u8], operator: &str) -> Result<ImportReport> {
    let mut stamp = [0u8; 4];
    konvert_crypto::random_bytes(&mut stamp)?;
    let spooled = format!("{}-{}{EXTENSION}", now_ms(), hex::encode(stamp));
    let path = desk.incoming().join(&spooled);
    // Who imports goes beside the batch, first, so the serving center records them.
    let beside = desk.incoming().join(format!("{spooled}{OPERATOR}"));
    keyfile::write_atomic(&beside, operator.as_bytes(), 0o644)?;
    keyfile::write_atomic(&path, bytes, 0o644)?;
    let result = desk.dir.join("results").join(format!("{spooled}.json"));
    let start = Instant::now();
    while start.elapsed() < PICKUP_WAIT {
        if result.exists() {
            let text = keyfile::read_bounded(&result, MAX_FILE_BYTES)?;
            let _ = std::fs::remove_file(&result);
            let outcome: SpoolResult = serde_json::from_slice(&text).map_err(|e| Error::Answers {
                what: format!("the serving center's outcome {} is damaged: {e}", result.display()),
                hint: "see the center's audit log for what was taken",
            })?;
            return match outcome {
                SpoolResult::Done(mut report) => {
                    report.file = name.to_owned();
                    Ok(report)
                }
                SpoolResult::Failed(why) => Err(Error::Answers {
                    what: why,
                    hint: "the batch was moved to the answers/refused folder",
                }),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Answers {
        what: format!(
            "the serving center did not take {name} within {} s",
            PICKUP_WAIT.as_secs()
        ),
        hint: "it stays in the one-way folder answers/incoming and is taken once the center serves; see `konvert-center answers list`",
    })
}

/// Who left batch `name` in the one-way folder: the operator `answers import` named
/// (and the note is removed), else the folder itself (a data diode feeds it).
fn who(dir: &DriveDir, name: &str) -> String {
    let beside = format!("{name}{OPERATOR}");
    let named = dir
        .open_file(&beside, MAX_OPERATOR_NOTE)
        .ok()
        .flatten()
        .and_then(|f| f.read_all().ok())
        .and_then(|b| String::from_utf8(b).ok());
    let _ = dir.remove(&beside);
    match named {
        Some(n) => format!("{} via the one-way folder", printable(&n)),
        None => "one-way folder".to_owned(),
    }
}

/// Takes every batch in the one-way folder once, with the serving center's inbox and
/// audit log: outcomes to `results/`, each batch then removed (or moved to `refused/`).
pub fn take_incoming(ctx: &ImportContext<'_>) -> Result<usize> {
    drop_stale_results(&ctx.desk.dir.join("results"));
    let dir = DriveDir::open(&ctx.desk.incoming())?;
    let names = dir.files(EXTENSION, MAX_BATCH_FILES)?;
    for name in &names {
        let outcome = dir
            .open_file(name, MAX_FILE_BYTES)
            .and_then(|f| f.map(|f| f.read_all()).transpose())
            .map_err(Error::from)
            .and_then(|bytes| match bytes {
                Some(bytes) => import_batch(ctx, &bytes, name, &who(&dir, name)),
                None => Err(Error::Answers {
                    what: format!("{name} vanished"),
                    hint: "put it in the folder again",
                }),
            });
        let result = match &outcome {
            Ok(report) => {
                info!(
                    file = %name,
                    taken = report.taken.len(),
                    already = report.already.len(),
                    refused = report.refused.len(),
                    "loader answers taken"
                );
                dir.remove(name)?;
                SpoolResult::Done(report.clone())
            }
            Err(e) => {
                warn!(file = %name, "loader answers refused: {e}");
                let from = ctx.desk.incoming().join(name);
                let to = ctx.desk.dir.join("refused").join(name);
                std::fs::rename(&from, &to).map_err(Error::file(&from))?;
                SpoolResult::Failed(e.to_string())
            }
        };
        let text = serde_json::to_vec(&result).map_err(|e| Error::Answers {
            what: format!("cannot write an outcome: {e}"),
            hint: "report this as a bug",
        })?;
        keyfile::write_atomic(&ctx.desk.dir.join("results").join(format!("{name}.json")), &text, 0o644)?;
    }
    Ok(names.len())
}

/// Removes outcomes nobody picked up for [`STALE_RESULT`]: their import gave up waiting
/// (what was taken is in the audit log and `answers list`).
fn drop_stale_results(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_RESULT);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Looks into the one-way folder every [`WATCH_INTERVAL`] for as long as the runtime runs.
pub fn watch_incoming(
    cfg: &CenterConfig,
    inbox: Arc<Inbox>,
    registry: Arc<CenterRegistry>,
    audit: Arc<AuditLog>,
) -> Result<()> {
    let desk = AnswerDesk::open(&cfg.data_dir)?;
    let receipt_key = Arc::new(keyfile::read_signing_key(&cfg.receipt_key)?);
    // Weak: the watch ends with the center, and never keeps its inbox open after it.
    let (inbox, registry, audit) = (
        Arc::downgrade(&inbox),
        Arc::downgrade(&registry),
        Arc::downgrade(&audit),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(inbox), Some(registry), Some(audit)) = (inbox.upgrade(), registry.upgrade(), audit.upgrade())
            else {
                return;
            };
            let (desk, key) = (desk.clone(), receipt_key.clone());
            let job = tokio::task::spawn_blocking(move || {
                let now = now_ms();
                let Some(in_force) = registry.in_force(now) else {
                    return Ok(0);
                };
                let ctx = ImportContext {
                    inbox: &inbox,
                    registry: in_force.body(),
                    receipt_key: &key,
                    audit: &audit,
                    desk: &desk,
                    now_unix_ms: now,
                };
                take_incoming(&ctx)
            });
            match job.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!("the one-way folder of loader answers cannot be read: {e}"),
                Err(_) => return,
            }
        }
    });
    Ok(())
}
