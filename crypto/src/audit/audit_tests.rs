use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{entry_record, parse, Record};
use super::*;
use crate::Error;

const T0: u64 = 1_780_300_800_000; // 2026-06-01 08:00 UTC

/// A log of `n` entries with a checkpoint every 3 and one on "shutdown".
fn log_of(n: u64) -> (tempfile::TempDir, PathBuf, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let log = AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 3).unwrap();
    for i in 1..=n {
        let seq = log
            .append_at(
                T0 + i * 60_000,
                "center",
                AuditAction::PacketAccept,
                &format!("0101-{i:03}"),
                &format!("packet {i} accepted"),
            )
            .unwrap();
        assert_eq!(seq, i);
    }
    log.checkpoint_at(T0 + (n + 1) * 60_000).unwrap();
    (dir, path, key)
}

fn check(path: &Path, key: &SigningKey) -> AuditReport {
    let bytes = std::fs::read(path).unwrap();
    let head = read_head(&head_path(path)).unwrap();
    verify(&bytes, head.as_ref(), &[key.verifying_key()])
}

/// Each record's byte range and content.
fn spans(bytes: &[u8]) -> Vec<(usize, usize, Record)> {
    let parsed = parse(bytes);
    assert!(parsed.problem.is_none());
    let ends: Vec<usize> = parsed
        .records
        .iter()
        .skip(1)
        .map(|r| r.offset as usize)
        .chain([bytes.len()])
        .collect();
    parsed
        .records
        .into_iter()
        .zip(ends)
        .map(|(r, end)| (r.offset as usize, end, r.record))
        .collect()
}

fn entry_span(bytes: &[u8], seq: u64) -> (usize, usize, AuditEntry) {
    spans(bytes)
        .into_iter()
        .find_map(|(s, e, r)| match r {
            Record::Entry { entry, .. } if entry.seq == seq => Some((s, e, entry)),
            _ => None,
        })
        .unwrap()
}

/// Rewrites entry `seq` with `detail`, re-encoded as a valid record.
fn edit_detail(path: &Path, seq: u64, detail: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let (start, end, mut entry) = entry_span(&bytes, seq);
    entry.detail = detail.to_owned();
    let (record, _) = entry_record(&entry).unwrap();
    bytes.splice(start..end, record);
    std::fs::write(path, bytes).unwrap();
}

fn finding(path: &Path, key: &SigningKey) -> Finding {
    check(path, key).finding.expect("the change must be detected")
}

#[test]
fn a_clean_log_verifies() {
    let (_dir, path, key) = log_of(7);
    let r = check(&path, &key);
    assert_eq!(r.finding, None);
    assert_eq!((r.entries, r.checkpoints, r.last_seq, r.uncovered), (7, 3, 7, 0));
    let last = r.last_checkpoint.unwrap();
    assert_eq!((last.seq, last.at_unix_ms), (7, T0 + 8 * 60_000));
}

#[test]
fn an_entry_edited_at_the_same_length_is_named() {
    let (_dir, path, key) = log_of(7);
    edit_detail(&path, 4, "packet 9 accepted");
    assert_eq!(
        finding(&path, &key),
        Finding::Edited {
            seq: 4,
            evidence: Evidence::NextEntry
        }
    );
}

#[test]
fn an_entry_edited_at_another_length_is_named() {
    let (_dir, path, key) = log_of(7);
    edit_detail(&path, 4, "packet 4 rejected: the signature does not verify");
    assert_eq!(
        finding(&path, &key),
        Finding::Edited {
            seq: 4,
            evidence: Evidence::NextEntry
        }
    );
    // An entry right before a checkpoint is named by the checkpoint.
    let (_dir, path, key) = log_of(7);
    edit_detail(&path, 3, "");
    assert_eq!(
        finding(&path, &key),
        Finding::Edited {
            seq: 3,
            evidence: Evidence::Checkpoint
        }
    );
}

#[test]
fn a_relinked_entry_after_a_checkpoint_is_named_itself() {
    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, end, mut entry) = entry_span(&bytes, 4);
    entry.prev[0] ^= 1;
    bytes.splice(start..end, entry_record(&entry).unwrap().0);
    std::fs::write(&path, bytes).unwrap();
    // Entry 3 is vouched for by the checkpoint after it, so the broken link is entry 4's.
    assert_eq!(
        finding(&path, &key),
        Finding::Edited {
            seq: 4,
            evidence: Evidence::LinkToPrevious
        }
    );
}

#[test]
fn the_last_entry_edited_is_caught_by_the_head_file() {
    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    // Drop the final in-log checkpoint too: only the head file still vouches for entry 7.
    let (cp_start, _, _) = spans(&bytes).pop().unwrap();
    bytes.truncate(cp_start);
    std::fs::write(&path, &bytes).unwrap();
    edit_detail(&path, 7, "nothing happened");
    assert_eq!(
        finding(&path, &key),
        Finding::Edited {
            seq: 7,
            evidence: Evidence::HeadFile
        }
    );
}

#[test]
fn a_removed_entry_is_named() {
    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, end, _) = entry_span(&bytes, 5);
    bytes.drain(start..end);
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        finding(&path, &key),
        Finding::Removed {
            after_seq: 4,
            missing: 1
        }
    );

    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, end, _) = entry_span(&bytes, 1);
    bytes.drain(start..end);
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        finding(&path, &key),
        Finding::Removed {
            after_seq: 0,
            missing: 1
        }
    );
}

#[test]
fn swapped_entries_are_named() {
    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    let (s4, e4, _) = entry_span(&bytes, 4);
    let (s5, e5, _) = entry_span(&bytes, 5);
    assert_eq!(e4, s5);
    let mut swapped = bytes[s5..e5].to_vec();
    swapped.extend_from_slice(&bytes[s4..e4]);
    bytes.splice(s4..e5, swapped);
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(finding(&path, &key), Finding::Reordered { seq: 5, expected: 4 });
}

#[test]
fn a_cut_tail_is_caught_by_the_head_file() {
    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    let (_, end, _) = entry_span(&bytes, 4);
    bytes.truncate(end);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        finding(&path, &key),
        Finding::Truncated {
            log_ends_at: 4,
            checkpoint_seq: 7
        }
    );
    // Without the head file the shorter chain is valid: the documented limit, bounded by
    // the checkpoint interval (entry 4 is after the last checkpoint left, at 3).
    let r = verify(&bytes, None, &[key.verifying_key()]);
    assert_eq!((r.finding, r.entries, r.uncovered), (None, 4, 1));
}

#[test]
fn a_checkpoint_by_another_key_is_refused() {
    let (_dir, path, key) = log_of(7);
    let forger = SigningKey::from_seed(&[9; 32]).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, end, _) = entry_span(&bytes, 3);
    let Record::Entry { hash, .. } = parse(&bytes)
        .records
        .into_iter()
        .find(|r| r.offset == start as u64)
        .unwrap()
        .record
    else {
        panic!("not an entry")
    };
    let forged = Checkpoint::sign(&forger, 3, hash, T0).unwrap();
    let (_, cp_end, _) = spans(&bytes).into_iter().find(|(s, _, _)| *s == end).unwrap();
    bytes.splice(end..cp_end, super::record::checkpoint_record(&forged).unwrap());
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        finding(&path, &key),
        Finding::BadCheckpoint {
            seq: 3,
            in_head_file: false
        }
    );

    // A head file signed by another key.
    let (_dir, path, key) = log_of(7);
    let head = read_head(&head_path(&path)).unwrap().unwrap();
    let forged = Checkpoint::sign(&forger, head.seq, head.head, head.at_unix_ms).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        verify(&bytes, Some(&forged), &[key.verifying_key()]).finding,
        Some(Finding::BadCheckpoint {
            seq: 7,
            in_head_file: true
        })
    );
    // Trusting the wrong key refuses every checkpoint.
    assert!(matches!(
        verify(&bytes, None, &[forger.verifying_key()]).finding,
        Some(Finding::BadCheckpoint { seq: 3, .. })
    ));
}

#[test]
fn every_single_bit_flip_is_detected() {
    let (_dir, path, key) = log_of(7);
    let clean = std::fs::read(&path).unwrap();
    let head = read_head(&head_path(&path)).unwrap().unwrap();
    let (s4, e4, entry) = entry_span(&clean, 4);
    let detail_at = s4
        + clean[s4..e4]
            .windows(entry.detail.len())
            .position(|w| w == entry.detail.as_bytes())
            .unwrap();
    for i in 0..clean.len() {
        for bit in [0x01u8, 0x80] {
            let mut bytes = clean.clone();
            bytes[i] ^= bit;
            let r = verify(&bytes, Some(&head), &[key.verifying_key()]);
            assert!(r.finding.is_some(), "a flip of bit {bit:#x} at byte {i} went unnoticed");
            if (detail_at..detail_at + entry.detail.len()).contains(&i) {
                assert!(
                    matches!(
                        r.finding,
                        Some(Finding::Edited { seq: 4, .. }) | Some(Finding::Damaged { .. })
                    ),
                    "{:?}",
                    r.finding
                );
            }
        }
    }
}

#[test]
fn a_torn_last_record_is_cut_on_open_and_the_repair_recorded() {
    let (_dir, path, key) = log_of(5);
    let tail = entry_record(&AuditEntry {
        seq: 6,
        at_unix_ms: T0,
        actor: "center".into(),
        action: AuditAction::PacketReject,
        subject: "0101-006".into(),
        detail: "never finished".into(),
        prev: [0; 32],
    })
    .unwrap()
    .0;
    let clean_len = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&tail[..9]);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        check(&path, &key).finding,
        Some(Finding::TornTail { offset: clean_len })
    );

    let log = AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 3).unwrap();
    assert_eq!(log.last_seq().unwrap(), 6);
    log.checkpoint().unwrap();
    drop(log);
    let r = check(&path, &key);
    assert_eq!((r.finding, r.entries), (None, 6));
    let parsed = parse(&std::fs::read(&path).unwrap());
    let repair = parsed
        .records
        .iter()
        .find_map(|r| match &r.record {
            Record::Entry { entry, .. } if entry.seq == 6 => Some(entry.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(repair.action, AuditAction::AuditRepair);
    assert!(repair.detail.contains(&format!(
        "cut 9 byte(s) of an incomplete last record at byte {clean_len}"
    )));
}

#[test]
fn a_torn_record_is_not_cut_when_a_checkpoint_covers_more() {
    let (_dir, path, key) = log_of(7);
    let mut bytes = std::fs::read(&path).unwrap();
    let (start, _, _) = entry_span(&bytes, 6);
    bytes.truncate(start + 7);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        check(&path, &key).finding,
        Some(Finding::Truncated {
            log_ends_at: 5,
            checkpoint_seq: 7
        })
    );
    let e = AuditLog::open(&path, None, 0).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::AuditLogRefused {
                finding: Finding::Truncated { .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[test]
fn a_tampered_log_is_refused_by_the_writer() {
    let (_dir, path, _key) = log_of(7);
    edit_detail(&path, 2, "edited");
    let e = AuditLog::open(&path, None, 0).unwrap_err();
    assert!(e.to_string().contains("entry 2 was edited"), "{e}");
}

#[test]
fn the_log_survives_reopening_and_continues_the_chain() {
    let (_dir, path, key) = log_of(4);
    for round in 0..2u64 {
        let log = AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 3).unwrap();
        let seq = log
            .append("officer", AuditAction::TokenStatus, "T1", &format!("round {round}"))
            .unwrap();
        assert_eq!(seq, 5 + round);
        // Killed without a checkpoint (no drop): the next open continues from the chain.
        std::mem::forget(log);
    }
    let r = check(&path, &key);
    assert_eq!((r.finding, r.entries, r.uncovered), (None, 6, 2));
    // Nothing new: no second checkpoint.
    let log = AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 3).unwrap();
    assert!(log.checkpoint().unwrap().is_some());
    assert!(log.checkpoint().unwrap().is_none());
}

#[test]
fn the_head_file_catches_up_after_a_crash_before_it_was_written() {
    let (_dir, path, key) = log_of(7);
    let head = head_path(&path);
    // A head file one checkpoint behind the log (the process stopped after writing the
    // checkpoint record, before replacing the head file) still verifies.
    let bytes = std::fs::read(&path).unwrap();
    let hash6 = parse(&bytes)
        .records
        .into_iter()
        .find_map(|r| match r.record {
            Record::Entry { entry, hash } if entry.seq == 6 => Some(hash),
            _ => None,
        })
        .unwrap();
    let old = Checkpoint::sign(&key, 6, hash6, T0).unwrap();
    let r = verify(&bytes, Some(&old), &[key.verifying_key()]);
    assert_eq!((r.finding, r.last_checkpoint.map(|c| c.seq)), (None, Some(7)));
    std::fs::remove_file(&head).unwrap();
    drop(AuditLog::open(&path, None, 0).unwrap());
    assert_eq!(read_head(&head).unwrap().unwrap().seq, 7);
}

#[test]
fn fields_are_bounded_and_nothing_is_written_for_a_refused_entry() {
    let (_dir, path, key) = log_of(2);
    let log = AuditLog::open(&path, None, 0).unwrap();
    let long = "x".repeat(MAX_DETAIL_LEN + 1);
    assert!(matches!(
        log.append("center", AuditAction::PacketAccept, "p", &long),
        Err(Error::AuditField { field: "detail", .. })
    ));
    assert!(matches!(
        log.append("center", AuditAction::Other("Bad Kind".into()), "p", ""),
        Err(Error::AuditField { field: "action", .. })
    ));
    assert_eq!(log.append("center", AuditAction::PacketAccept, "p", "ok").unwrap(), 3);
    drop(log);
    assert_eq!(check(&path, &key).finding, None);
}

#[test]
fn many_threads_append_to_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let key = SigningKey::from_seed(&[3; 32]).unwrap();
    let log = Arc::new(AuditLog::open(&path, Some(SigningKey::from_seed(&[3; 32]).unwrap()), 10).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..25 {
                    log.append("center", AuditAction::PacketAccept, &format!("{t}-{i}"), "")
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    log.checkpoint().unwrap();
    let r = check(&path, &key);
    assert_eq!((r.finding, r.entries, r.checkpoints), (None, 100, 10));
}

#[test]
fn actions_keep_their_stable_strings() {
    for s in [
        "packet.accept",
        "packet.reject",
        "registry.publish",
        "station.revoke",
        "token.status",
    ] {
        assert_eq!(AuditAction::parse(s).as_str(), s);
        assert!(!matches!(AuditAction::parse(s), AuditAction::Other(_)));
    }
    assert_eq!(
        AuditAction::parse("loader.upload"),
        AuditAction::Other("loader.upload".into())
    );
}

#[test]
fn oversized_and_foreign_records_are_damaged_not_allocated() {
    let mut bytes = super::record::HEADER.to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse(&bytes).problem, Some(Finding::Damaged { offset: 9 }));
    assert_eq!(parse(b"not a log").problem, Some(Finding::Damaged { offset: 0 }));
    assert_eq!(parse(b"KNVRT").problem, Some(Finding::TornTail { offset: 0 }));
}

proptest::proptest! {
    /// Whatever bytes a log file holds, reading and verifying it never panics, never
    /// allocates beyond the record bound, and never calls arbitrary bytes intact.
    #[test]
    fn arbitrary_bytes_are_parsed_and_verified_without_panicking(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)
    ) {
        let parsed = parse(&bytes);
        proptest::prop_assert!(parsed.records.len() <= bytes.len());
        let key = crate::SigningKey::generate().unwrap().verifying_key();
        let report = verify(&bytes, None, &[key]);
        // Without the header it is not a log; with it, random records do not chain.
        proptest::prop_assert!(!report.is_intact() || bytes.starts_with(super::record::HEADER));
        let mut framed = super::record::HEADER.to_vec();
        framed.extend_from_slice(&bytes);
        let report = verify(&framed, None, &[key]);
        proptest::prop_assert!(bytes.is_empty() || !report.is_intact() || report.entries == 0);
    }
}

/// A log whose head file names the checkpoint that ends at byte `end`, and nothing after:
/// what whoever can write the log's folder makes of it.
fn roll_back_to(path: &Path, end: usize, cp: Option<&Checkpoint>) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..end]).unwrap();
    match cp {
        Some(cp) => {
            let mut head = b"KNVRTAHD".to_vec();
            head.extend_from_slice(&postcard::to_allocvec(cp).unwrap());
            std::fs::write(head_path(path), head).unwrap();
        }
        None => std::fs::remove_file(head_path(path)).unwrap(),
    }
}

#[test]
fn a_log_rolled_back_with_its_head_file_is_caught_by_an_anchor_kept_elsewhere() {
    let (_dir, path, key) = log_of(20);
    let trusted = [key.verifying_key()];
    let anchor = AuditAnchor::of(&read_head(&head_path(&path)).unwrap().unwrap());
    assert_eq!(anchor.seq, 20);
    assert_eq!(AuditAnchor::parse_line(&anchor.to_line()), Some(anchor));
    let at_least = AuditAnchor::parse_line("seq=20").unwrap();
    let original = std::fs::read(&path).unwrap();

    // Cut back to checkpoint 6, that checkpoint copied into the head file.
    let (end, cp6) = spans(&original)
        .into_iter()
        .find_map(|(_, e, r)| match r {
            Record::Checkpoint(cp) if cp.seq == 6 => Some((e, cp)),
            _ => None,
        })
        .unwrap();
    roll_back_to(&path, end, Some(&cp6));
    let bytes = std::fs::read(&path).unwrap();
    let head = read_head(&head_path(&path)).unwrap();
    // Inside the folder it looks intact: that is the attack.
    assert!(verify(&bytes, head.as_ref(), &trusted).is_intact());
    for a in [&anchor, &at_least] {
        assert_eq!(
            verify_anchored(&bytes, head.as_ref(), &trusted, a).finding,
            Some(Finding::RolledBack {
                checkpoint_seq: 6,
                anchor_seq: 20
            })
        );
    }
    // The writer carries on from entry 6 and even writes 14 entries back without a key:
    // only checkpointed entries count, so it is still a rollback.
    let log = AuditLog::open(&path, None, 0).unwrap();
    for i in 7..=20 {
        assert_eq!(
            log.append("center", AuditAction::PacketAccept, "x", "forged").unwrap(),
            i
        );
    }
    drop(log);
    let bytes = std::fs::read(&path).unwrap();
    assert!(verify(&bytes, head.as_ref(), &trusted).is_intact());
    assert!(matches!(
        verify_anchored(&bytes, head.as_ref(), &trusted, &at_least).finding,
        Some(Finding::RolledBack { .. })
    ));

    // Cut to its header, the head file deleted.
    std::fs::write(&path, &original).unwrap();
    roll_back_to(&path, 9, None);
    let bytes = std::fs::read(&path).unwrap();
    assert!(verify(&bytes, None, &trusted).is_intact());
    assert_eq!(
        verify_anchored(&bytes, None, &trusted, &anchor).finding,
        Some(Finding::RolledBack {
            checkpoint_seq: 0,
            anchor_seq: 20
        })
    );

    // The untouched log verifies against its anchor; an anchor with another hash is an edit.
    assert!(verify_anchored(&original, Some(&cp6), &trusted, &anchor).is_intact());
    let other = AuditAnchor {
        head: Some([9; 32]),
        ..anchor
    };
    assert_eq!(
        verify_anchored(&original, None, &trusted, &other).finding,
        Some(Finding::Edited {
            seq: 20,
            evidence: Evidence::Anchor
        })
    );
}

#[test]
fn every_checkpoint_reaches_the_hooks_and_dropping_the_log_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 64).unwrap();
    let s = seen.clone();
    log.on_checkpoint(move |a| s.lock().unwrap().push(a.seq)).unwrap();
    for _ in 0..5 {
        log.append("officer", AuditAction::TokenIssue, "T1", "issued").unwrap();
    }
    // Far from 64 entries; the command ends and the log is dropped.
    drop(log);
    assert_eq!(*seen.lock().unwrap(), vec![5]);
    assert_eq!(read_head(&head_path(&path)).unwrap().map(|c| c.seq), Some(5));
    let r = check(&path, &key);
    assert_eq!((r.finding, r.entries, r.uncovered), (None, 5, 0));
    // A hook added later hears the newest checkpoint at once.
    let log = AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 2).unwrap();
    let s = seen.clone();
    log.on_checkpoint(move |a| s.lock().unwrap().push(a.seq)).unwrap();
    for _ in 0..3 {
        log.append("officer", AuditAction::TokenIssue, "T1", "issued").unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec![5, 5, 7]);
    assert_eq!(log.anchor().unwrap().map(|a| a.seq), Some(7));
}

#[test]
fn a_copy_taken_while_threads_append_ends_on_a_checkpoint_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let log = Arc::new(AuditLog::open(&path, Some(SigningKey::from_seed(&[7; 32]).unwrap()), 5).unwrap());
    // Not empty before the first copy, whenever the writers get going: an empty log has
    // no checkpoint to anchor.
    log.append("center", AuditAction::PacketAccept, "first", "").unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    log.append("center", AuditAction::PacketAccept, &format!("{w}-{i}"), "")
                        .unwrap();
                }
            })
        })
        .collect();
    let mut copies = Vec::new();
    for n in 0..5 {
        let copy = dir.path().join(format!("copy-{n}.log"));
        let anchor = log.copy_to(&copy).unwrap();
        copies.push((copy, anchor));
    }
    for w in writers {
        w.join().unwrap();
    }
    for (copy, anchor) in copies {
        let report = check(&copy, &key);
        assert!(report.is_intact(), "{:?}", report.finding);
        assert_eq!(report.uncovered, 0, "the copy ends on a signed checkpoint");
        let anchor = anchor.unwrap();
        assert_eq!(report.last_seq, anchor.seq);
        let bytes = std::fs::read(&copy).unwrap();
        let head = read_head(&head_path(&copy)).unwrap();
        assert!(verify_anchored(&bytes, head.as_ref(), &[key.verifying_key()], &anchor).is_intact());
    }
    // A copy never goes over a file that is there.
    assert!(log.copy_to(&path).is_err());
}
