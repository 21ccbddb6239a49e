#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn a_journal_closed_and_opened_again_in_one_process_opens_and_a_held_one_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::open(dir.path()).unwrap();
    // Held: a second day loop on the same folder is told why, after the short wait.
    let err = Journal::open(dir.path()).err().expect("the journal is in use");
    assert!(err.to_string().contains("another konvert-edge"), "{err}");
    // Let go: sled's flusher still holds the lock for a moment, which open waits out.
    drop(first);
    Journal::open(dir.path()).unwrap();
}
