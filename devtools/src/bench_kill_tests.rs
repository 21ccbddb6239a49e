use super::*;

#[test]
fn bytes_sent_count_each_attempt_from_where_it_resumed() {
    let c = SentCounter::default();
    // First attempt: 0 → 10 MB.
    for off in [0, 4_000_000, 8_000_000, 10_000_000] {
        c.on_progress("a", off);
    }
    // The connection died; the center held 4 MiB: the second attempt starts there.
    for off in [4_194_304, 8_000_000, 12_000_000] {
        c.on_progress("a", off);
    }
    // Another packet, sent once.
    for off in [0, 3_000_000] {
        c.on_progress("b", off);
    }
    let first = 10_000_000;
    let second = 12_000_000 - 4_194_304;
    assert_eq!(c.sent.load(Ordering::Relaxed), first + second + 3_000_000);
    assert_eq!(
        c.skipped.load(Ordering::Relaxed),
        4_194_304,
        "resumed past the durable 4 MiB"
    );
}

#[test]
fn a_restart_from_the_same_offset_adds_nothing_by_itself() {
    let c = SentCounter::default();
    c.on_progress("a", 0);
    c.on_progress("a", 5);
    c.on_progress("a", 5); // resumed exactly where it was
    c.on_progress("a", 9);
    assert_eq!(c.sent.load(Ordering::Relaxed), 9);
    assert_eq!(c.skipped.load(Ordering::Relaxed), 5);
}
