//! Verifying an audit log (sans-IO): the chain, the sequence numbers, the checkpoints and
//! the head file's checkpoint, reporting the first problem.

use std::fmt;

use serde::Serialize;

use super::record::{parse, Record, RecordAt};
use super::Checkpoint;
use crate::VerifyingKey;

/// What shows that an entry was edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The next entry commits to a different version of it.
    NextEntry,
    /// A signed checkpoint in the log commits to a different version of it.
    Checkpoint,
    /// The head file's signed checkpoint commits to a different version of it.
    HeadFile,
    /// Its own number or link to its (confirmed) predecessor does not fit the chain.
    LinkToPrevious,
    /// An anchor recorded outside the log's folder commits to a different version of it.
    Anchor,
}

/// The first problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// Entry `seq` is not what was written.
    Edited {
        /// The edited entry.
        seq: u64,
        /// What shows it.
        evidence: Evidence,
    },
    /// Entries are missing after `after_seq`.
    Removed {
        /// The last entry before the gap.
        after_seq: u64,
        /// How many entries are missing.
        missing: u64,
    },
    /// Entry `seq` stands where entry `expected` belongs.
    Reordered {
        /// The entry found.
        seq: u64,
        /// The entry that belongs there.
        expected: u64,
    },
    /// The log ends at entry `log_ends_at`, but a checkpoint covers `checkpoint_seq`.
    Truncated {
        /// The last entry in the log.
        log_ends_at: u64,
        /// The entries a signed checkpoint covers.
        checkpoint_seq: u64,
    },
    /// A checkpoint's signature does not verify, or its signer is not trusted.
    BadCheckpoint {
        /// The entry it claims to cover.
        seq: u64,
        /// The head file's checkpoint rather than one in the log.
        in_head_file: bool,
    },
    /// The log's newest signed checkpoint covers fewer entries than an anchor recorded
    /// outside the log's folder earlier: the log and its head file were rolled back.
    RolledBack {
        /// The entries the newest signed checkpoint covers (0: none).
        checkpoint_seq: u64,
        /// The entries the anchor says were already checkpointed.
        anchor_seq: u64,
    },
    /// The record at `offset` cannot be read.
    Damaged {
        /// Byte offset of the record.
        offset: u64,
    },
    /// The last record, at `offset`, is incomplete (a write cut short).
    TornTail {
        /// Byte offset of the record.
        offset: u64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Finding::Edited { seq, evidence } => {
                write!(f, "entry {seq} was edited: ")?;
                match evidence {
                    Evidence::NextEntry => write!(f, "entry {} commits to a different entry {seq}", seq + 1),
                    Evidence::Checkpoint => write!(f, "the signed checkpoint after it commits to a different entry {seq}"),
                    Evidence::HeadFile => write!(f, "the head file's signed checkpoint commits to a different entry {seq}"),
                    Evidence::Anchor => write!(f, "the anchor recorded outside the log commits to a different entry {seq}"),
                    Evidence::LinkToPrevious => write!(
                        f,
                        "its number or its link to entry {} does not fit the chain",
                        seq.saturating_sub(1)
                    ),
                }
            }
            Finding::Removed { after_seq, missing } => write!(
                f,
                "{missing} entr{} removed after entry {after_seq}: the next entry in the file is {}",
                if missing == 1 { "y was" } else { "ies were" },
                after_seq + missing + 1
            ),
            Finding::Reordered { seq, expected } => write!(
                f,
                "entries are out of order: entry {seq} stands where entry {expected} belongs"
            ),
            Finding::Truncated {
                log_ends_at,
                checkpoint_seq,
            } => write!(
                f,
                "the log was cut short: it ends at entry {log_ends_at}, but a signed checkpoint covers {checkpoint_seq} entries"
            ),
            Finding::BadCheckpoint { seq, in_head_file } => write!(
                f,
                "the checkpoint at entry {seq}{} is not signed by a trusted key",
                if in_head_file { " in the head file" } else { "" }
            ),
            Finding::RolledBack {
                checkpoint_seq,
                anchor_seq,
            } => write!(
                f,
                "the log was rolled back: its newest signed checkpoint covers {checkpoint_seq} entries, but {anchor_seq} were already checkpointed when the anchor was recorded"
            ),
            Finding::Damaged { offset } => write!(
                f,
                "the record at byte {offset} cannot be read: the file is damaged or was altered there"
            ),
            Finding::TornTail { offset } => write!(
                f,
                "the last record, at byte {offset}, is incomplete (a write cut short by a crash or a copy)"
            ),
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// The first problem, `None` when the log is intact.
    pub finding: Option<Finding>,
    /// Entries read in order before the problem (all of them when intact).
    pub entries: u64,
    /// Checkpoints in the log that verified.
    pub checkpoints: u64,
    /// The last entry read in order (0 for none).
    pub last_seq: u64,
    /// Its hash (zeros for none).
    pub last_hash: [u8; 32],
    /// The newest checkpoint that verified, in the log or in the head file.
    pub last_checkpoint: Option<Checkpoint>,
    /// Entries after `last_checkpoint`: no checkpoint vouches for them yet.
    pub uncovered: u64,
    /// The length of the readable part of the file.
    pub readable_len: u64,
}

impl AuditReport {
    /// True when no problem was found.
    pub fn is_intact(&self) -> bool {
        self.finding.is_none()
    }
}

/// Verifies a log's bytes and its head file's checkpoint against `trusted` checkpoint keys;
/// a checkpoint by any other key is a [`Finding::BadCheckpoint`].
pub fn verify(log: &[u8], head: Option<&Checkpoint>, trusted: &[VerifyingKey]) -> AuditReport {
    walk(log, head, Some(trusted))
}

/// [`verify`], then checks the log against an anchor recorded earlier outside the log's
/// folder ([`AuditAnchor`]): its newest signed checkpoint must cover at least `anchor.seq`
/// entries ([`Finding::RolledBack`]) and, when the anchor names a hash, entry `anchor.seq`
/// must hash to it ([`Finding::Edited`] with [`Evidence::Anchor`]). Only checkpointed
/// entries count: entries after the newest checkpoint can be written by anyone.
pub fn verify_anchored(
    log: &[u8],
    head: Option<&Checkpoint>,
    trusted: &[VerifyingKey],
    anchor: &AuditAnchor,
) -> AuditReport {
    let mut report = verify(log, head, trusted);
    if report.finding.is_some() {
        return report;
    }
    let covered = report.last_checkpoint.as_ref().map_or(0, |c| c.seq);
    if covered < anchor.seq {
        report.finding = Some(Finding::RolledBack {
            checkpoint_seq: covered,
            anchor_seq: anchor.seq,
        });
        return report;
    }
    if let Some(want) = anchor.head {
        let found = super::parse(log).records.iter().find_map(|r| match &r.record {
            Record::Entry { entry, hash } if entry.seq == anchor.seq => Some(*hash),
            _ => None,
        });
        if anchor.seq > 0 && found != Some(want) {
            report.finding = Some(Finding::Edited {
                seq: anchor.seq,
                evidence: Evidence::Anchor,
            });
        }
    }
    report
}

/// What to keep about an audit log outside its folder (a metric, a day's backup, the
/// officers' notes): a signed checkpoint's entry count and head hash. A log that later
/// verifies against it ([`verify_anchored`]) was not rolled back past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditAnchor {
    /// Entries the checkpoint covered.
    pub seq: u64,
    /// The hash of entry `seq`, when known (`--expect-at-least N` gives only the count).
    pub head: Option<[u8; 32]>,
}

impl AuditAnchor {
    /// The anchor of a signed checkpoint.
    pub fn of(cp: &Checkpoint) -> Self {
        AuditAnchor {
            seq: cp.seq,
            head: Some(cp.head),
        }
    }

    /// One line to write down or keep: `seq=<N> head=<64 hex digits>`.
    pub fn to_line(&self) -> String {
        match self.head {
            Some(h) => format!("seq={} head={}", self.seq, hex::encode(h)),
            None => format!("seq={}", self.seq),
        }
    }

    /// Parses [`AuditAnchor::to_line`]'s form (`seq=N` alone is accepted).
    pub fn parse_line(line: &str) -> Option<Self> {
        let mut seq = None;
        let mut head = None;
        for part in line.split_whitespace() {
            if let Some(v) = part.strip_prefix("seq=") {
                seq = Some(v.parse().ok()?);
            } else if let Some(v) = part.strip_prefix("head=") {
                let bytes = hex::decode(v).ok()?;
                head = Some(<[u8; 32]>::try_from(bytes.as_slice()).ok()?);
            } else {
                return None;
            }
        }
        Some(AuditAnchor { seq: seq?, head })
    }
}

/// [`verify`]; with `trusted` `None`, signatures are not checked (the writer's own
/// structural check on open).
pub(crate) fn walk(log: &[u8], head: Option<&Checkpoint>, trusted: Option<&[VerifyingKey]>) -> AuditReport {
    let parsed = parse(log);
    let mut report = AuditReport {
        readable_len: parsed.end,
        ..AuditReport::default()
    };
    let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(parsed.records.len());
    // Whether the hash of the last entry is vouched for by a checkpoint (or is the start).
    let mut confirmed = true;
    let records = &parsed.records;
    let check_sig = |cp: &Checkpoint| trusted.is_none_or(|t| cp.verify(t).is_ok());
    for (i, RecordAt { record, .. }) in records.iter().enumerate() {
        let current = report.last_seq;
        let expected = current + 1;
        let finding = match record {
            Record::Entry { entry, hash } => {
                if entry.seq != expected && entry.prev != report.last_hash {
                    let later = records[i + 1..]
                        .iter()
                        .any(|r| matches!(&r.record, Record::Entry { entry, .. } if entry.seq == expected));
                    Some(if entry.seq > expected && !later {
                        Finding::Removed {
                            after_seq: current,
                            missing: entry.seq - expected,
                        }
                    } else {
                        Finding::Reordered {
                            seq: entry.seq,
                            expected,
                        }
                    })
                } else if entry.seq != expected || (entry.prev != report.last_hash && confirmed) {
                    Some(Finding::Edited {
                        seq: expected,
                        evidence: Evidence::LinkToPrevious,
                    })
                } else if entry.prev != report.last_hash {
                    Some(Finding::Edited {
                        seq: current,
                        evidence: Evidence::NextEntry,
                    })
                } else {
                    hashes.push(*hash);
                    report.last_seq = expected;
                    report.last_hash = *hash;
                    report.entries += 1;
                    report.uncovered += 1;
                    confirmed = false;
                    None
                }
            }
            Record::Checkpoint(cp) => {
                if !check_sig(cp) {
                    Some(Finding::BadCheckpoint {
                        seq: cp.seq,
                        in_head_file: false,
                    })
                } else if cp.seq == current && cp.head != report.last_hash {
                    Some(Finding::Edited {
                        seq: current,
                        evidence: Evidence::Checkpoint,
                    })
                } else if cp.seq > current {
                    let entries_follow = records[i + 1..]
                        .iter()
                        .any(|r| matches!(r.record, Record::Entry { .. }));
                    Some(if entries_follow {
                        Finding::Removed {
                            after_seq: current,
                            missing: cp.seq - current,
                        }
                    } else {
                        Finding::Truncated {
                            log_ends_at: current,
                            checkpoint_seq: cp.seq,
                        }
                    })
                } else if cp.seq < current {
                    Some(Finding::Reordered {
                        seq: cp.seq,
                        expected: current,
                    })
                } else {
                    confirmed = true;
                    report.checkpoints += 1;
                    report.uncovered = 0;
                    report.last_checkpoint = Some(cp.clone());
                    None
                }
            }
        };
        if finding.is_some() {
            report.finding = finding;
            return report;
        }
    }
    if let Some(damaged @ Finding::Damaged { .. }) = parsed.problem {
        report.finding = Some(damaged);
        return report;
    }
    if let Some(h) = head {
        let current = report.last_seq;
        let finding = if !check_sig(h) {
            Some(Finding::BadCheckpoint {
                seq: h.seq,
                in_head_file: true,
            })
        } else if h.seq > current {
            Some(Finding::Truncated {
                log_ends_at: current,
                checkpoint_seq: h.seq,
            })
        } else {
            let at = usize::try_from(h.seq).ok().and_then(|s| s.checked_sub(1));
            let chained = at.and_then(|i| hashes.get(i)).copied().unwrap_or([0u8; 32]);
            if chained != h.head {
                Some(Finding::Edited {
                    seq: h.seq,
                    evidence: Evidence::HeadFile,
                })
            } else {
                if report.last_checkpoint.as_ref().is_none_or(|c| c.seq < h.seq) {
                    report.uncovered = current - h.seq;
                    report.last_checkpoint = Some(h.clone());
                }
                None
            }
        };
        if finding.is_some() {
            report.finding = finding;
            return report;
        }
    }
    report.finding = parsed.problem;
    report
}
