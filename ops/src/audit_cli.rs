//! `konvert keys audit`: verify an audit log (the officers' `audit.log`, or the center's)
//! against trusted checkpoint keys, and list its entries.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use konvert_crypto::audit::{self, AuditAnchor, AuditReport, Checkpoint, Finding, Record};
use konvert_crypto::{keyfile, VerifyingKey};

/// The largest log read (the writer's own limit).
const MAX_LOG: u64 = 1 << 30;

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no entry was edited, removed, reordered or cut off; exits non-zero
    /// naming the first problem.
    Verify {
        /// The log file.
        #[arg(long)]
        log: PathBuf,
        /// The head file with the newest signed checkpoint (default: `<log>.head` if it exists).
        #[arg(long)]
        head: Option<PathBuf>,
        /// A trusted checkpoint public key, 64 hex digits (repeat for older keys).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// Refuse a log whose signed checkpoints cover fewer entries than this: the `seq` of
        /// an anchor recorded earlier outside the log's folder (a rolled-back log and head
        /// file look intact without it).
        #[arg(long, value_name = "N")]
        expect_at_least: Option<u64>,
        /// An anchor line recorded earlier (`seq=N head=<hex>`, as verify prints it): the
        /// log must still hold that very entry under a signed checkpoint.
        #[arg(long, value_name = "LINE", conflicts_with = "expect_at_least")]
        anchor: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the entries and checkpoints (without verifying them).
    Show {
        /// The log file.
        #[arg(long)]
        log: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A time as the officers read it: `2026-06-01 10:02 UTC`.
pub(crate) fn when(unix_ms: u64) -> String {
    i64::try_from(unix_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{unix_ms} ms"))
}

/// User text made safe to print on a terminal (shared with `konvert-center import`).
pub(crate) use konvert_replication::logging::printable;

fn read_log(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(keyfile::read_bounded(path, MAX_LOG)
        .with_context(|| format!("reading the audit log {}", path.display()))?
        .to_vec())
}

/// The finding in plain words, with what the named entry says now.
fn describe(finding: &Finding, bytes: &[u8]) -> String {
    let parsed = audit::parse(bytes);
    let entry = |seq: u64| {
        parsed.records.iter().find_map(|r| match &r.record {
            Record::Entry { entry, .. } if entry.seq == seq => Some(entry.clone()),
            _ => None,
        })
    };
    let about = |seq: u64, label: &str| {
        entry(seq)
            .map(|e| {
                format!(
                    " ({label}: action {} on {:?} at {}, by {})",
                    e.action,
                    e.subject,
                    when(e.at_unix_ms),
                    printable(&e.actor)
                )
            })
            .unwrap_or_default()
    };
    let context = match *finding {
        Finding::Edited { seq, .. } => about(seq, "as it reads now"),
        Finding::Removed { after_seq, .. } => about(after_seq, "the last one before the gap"),
        Finding::Reordered { seq, .. } => about(seq, "the misplaced one"),
        Finding::Truncated { log_ends_at, .. } => about(log_ends_at, "the last one left"),
        Finding::RolledBack { .. } => {
            "; restore the log from a copy kept elsewhere and find out who could write its folder".to_owned()
        }
        Finding::BadCheckpoint { .. } => {
            "; only trust this log with the key that signs its checkpoints (--key)".to_owned()
        }
        Finding::Damaged { .. } | Finding::TornTail { .. } => String::new(),
    };
    format!("{finding}{context}")
}

fn checkpoint_json(cp: &Checkpoint) -> serde_json::Value {
    serde_json::json!({
        "seq": cp.seq,
        "at_unix_ms": cp.at_unix_ms,
        "signer": cp.signer.to_string(),
        "head": hex::encode(cp.head),
    })
}

fn print_report(log: &Path, report: &AuditReport, head_used: Option<&Path>) {
    println!(
        "audit log {} is intact: {} entr{}, {} signed checkpoint(s) in the log",
        log.display(),
        report.entries,
        if report.entries == 1 { "y" } else { "ies" },
        report.checkpoints
    );
    match &report.last_checkpoint {
        Some(cp) => println!(
            "the newest checkpoint covers entry {}, signed {} by key {}\nanchor: {}\n  (keep this line away from this machine; `verify --anchor '<line>'` later proves the log was not rolled back past it)",
            cp.seq,
            when(cp.at_unix_ms),
            cp.signer,
            AuditAnchor::of(cp).to_line()
        ),
        None => println!("no signed checkpoint: nothing vouches for the entries yet"),
    }
    if report.uncovered > 0 {
        println!(
            "{} entr{} after it {} no checkpoint yet: removing them from the end could not be seen",
            report.uncovered,
            if report.uncovered == 1 { "y" } else { "ies" },
            if report.uncovered == 1 { "has" } else { "have" }
        );
    }
    if head_used.is_none() {
        println!("no head file: a tail cut off together with its checkpoints could not be seen");
    }
}

/// Runs one audit command.
pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            log,
            head,
            keys,
            expect_at_least,
            anchor,
            json,
        } => {
            let anchor = match (anchor, expect_at_least) {
                (Some(line), _) => Some(AuditAnchor::parse_line(&line).with_context(|| {
                    format!("--anchor {line:?}: expected `seq=N head=<64 hex digits>`, as verify prints it")
                })?),
                (None, Some(seq)) => Some(AuditAnchor { seq, head: None }),
                (None, None) => None,
            };
            let trusted = keys
                .iter()
                .map(|k| VerifyingKey::from_hex(k).with_context(|| format!("--key {k}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let bytes = read_log(&log)?;
            let head = head.or_else(|| Some(audit::head_path(&log)).filter(|p| p.exists()));
            let head_cp = match &head {
                Some(p) => Some(
                    audit::read_head(p)?.with_context(|| format!("the head file {} does not exist", p.display()))?,
                ),
                None => None,
            };
            let report = match &anchor {
                Some(a) => audit::verify_anchored(&bytes, head_cp.as_ref(), &trusted, a),
                None => audit::verify(&bytes, head_cp.as_ref(), &trusted),
            };
            let message = report.finding.as_ref().map(|f| describe(f, &bytes));
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "intact": report.is_intact(),
                        "finding": report.finding,
                        "message": message,
                        "entries": report.entries,
                        "checkpoints": report.checkpoints,
                        "last_checkpoint": report.last_checkpoint.as_ref().map(checkpoint_json),
                        "anchor": report.last_checkpoint.as_ref().map(|c| AuditAnchor::of(c).to_line()),
                        "uncovered": report.uncovered,
                        "head_file": head.as_ref().map(|p| p.display().to_string()),
                    })
                );
            } else if report.is_intact() {
                print_report(&log, &report, head.as_deref());
            }
            if let Some(message) = message {
                anyhow::bail!("audit log {} is NOT intact: {message}", log.display());
            }
        }
        AuditCommand::Show { log, json } => {
            let bytes = read_log(&log)?;
            let parsed = audit::parse(&bytes);
            if json {
                let records: Vec<_> = parsed
                    .records
                    .iter()
                    .map(|r| match &r.record {
                        Record::Entry { entry, hash } => serde_json::json!({
                            "type": "entry",
                            "offset": r.offset,
                            "seq": entry.seq,
                            "at_unix_ms": entry.at_unix_ms,
                            "actor": entry.actor,
                            "action": entry.action.as_str(),
                            "subject": entry.subject,
                            "detail": entry.detail,
                            "hash": hex::encode(hash),
                        }),
                        Record::Checkpoint(cp) => {
                            let mut v = checkpoint_json(cp);
                            v["type"] = "checkpoint".into();
                            v["offset"] = r.offset.into();
                            v
                        }
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "records": records,
                        "problem": parsed.problem.as_ref().map(|f| f.to_string()),
                    })
                );
            } else {
                for r in &parsed.records {
                    match &r.record {
                        Record::Entry { entry, .. } => println!(
                            "{:>6}  {}  {:<18} {:<24} {:<20} {}",
                            entry.seq,
                            when(entry.at_unix_ms),
                            entry.action.as_str(),
                            printable(&entry.actor),
                            printable(&entry.subject),
                            printable(&entry.detail)
                        ),
                        Record::Checkpoint(cp) => println!(
                            "        checkpoint of entry {} signed {} by key {}",
                            cp.seq,
                            when(cp.at_unix_ms),
                            cp.signer
                        ),
                    }
                }
                if let Some(problem) = &parsed.problem {
                    println!("stopped: {problem}");
                }
            }
        }
    }
    Ok(())
}
