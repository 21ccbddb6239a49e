//! `konvert bench mirror` on a small day: it runs whole on a real PostgreSQL, every row
//! is applied once, typed, and copied, and bad sizes are refused before anything starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn a_small_day_is_applied_typed_and_copied_and_the_table_says_so() {
    if TestCluster::shared().is_none() {
        return;
    }
    let b = MirrorBench {
        regions: 2,
        participants: 300,
        row_bytes: 320,
        batch_rows: 100,
        ..MirrorBench::default()
    };
    let f = run(&b);
    let table = rows(&b, &f).render();
    let f = f.unwrap();
    assert_eq!(f.rows, 600);
    assert_eq!(f.payload_bytes, 600 * 320);
    assert_eq!(f.batches, 6);
    assert!(f.store <= f.receive && !f.copy.is_zero() && !f.batches_only.is_zero());
    assert!(
        table.contains("2 region(s) × 300 results") && table.contains("% of COPY"),
        "{table}"
    );
}

#[test]
fn nonsense_sizes_are_refused_before_anything_starts() {
    for b in [
        MirrorBench {
            regions: 0,
            ..MirrorBench::default()
        },
        MirrorBench {
            participants: 0,
            ..MirrorBench::default()
        },
        MirrorBench {
            row_bytes: 10,
            ..MirrorBench::default()
        },
    ] {
        let e = run(&b).unwrap_err().to_string();
        assert!(e.starts_with("--"), "{e}");
    }
}
