use super::*;
use crate::bench_table::{Outcome, Verdict};

fn floor() -> CpuFloor {
    CpuFloor {
        bytes: 900_000_000,
        cores: 2,
        transport_core_s: 2.0,
        sha256_per_s: 1.5e9,
        aes_gcm_per_s: 4.5e9,
        fsynced_write_core_s: 0.5,
    }
}

#[test]
fn the_floor_adds_the_transport_two_hashes_one_cipher_pass_and_two_fsynced_writes() {
    let f = floor();
    // 2.0 + 2 × 0.6 + 0.2 + 2 × 0.5 = 4.4 core-s; on 2 cores at least 2.2 s.
    assert!((f.sha256_core_s() - 1.2).abs() < 1e-9);
    assert!((f.aes_gcm_core_s() - 0.2).abs() < 1e-9);
    assert!((f.core_seconds() - 4.4).abs() < 1e-9);
    assert_eq!(f.shortest(), Duration::from_millis(2200));
    // rsync took 6.6 s: the design allows at most 3×.
    assert!((f.most_against(Duration::from_millis(6600)) - 3.0).abs() < 1e-9);
}

#[test]
fn the_row_states_the_bound_and_every_part_it_is_made_of() {
    let row = floor().row(Duration::from_millis(6600), Duration::from_millis(2750));
    let Outcome::Measured {
        figure,
        verdict,
        detail,
    } = row.outcome
    else {
        panic!("measured")
    };
    assert_eq!(figure, "3.00×");
    assert_eq!(verdict, Verdict::NoGoal);
    for part in [
        "transport 2.0",
        "1.50 GB/s",
        " 1.2 ",
        "4.50 GB/s",
        "2 × 0.5",
        "4.4 core-s",
        "2.20 s on 2 cores",
        "6.60 s",
        "konvert took 2.75 s: 80 % of its floor",
    ] {
        assert!(detail.contains(part), "{part:?} missing from {detail}");
    }
}

#[test]
fn speed_probes_measure_ring_on_this_machine() {
    let sha = sha256_speed();
    let aes = aes_gcm_speed().unwrap();
    // Any machine that runs the tests hashes and encrypts faster than 10 MB/s and slower
    // than a memory copy could feed it.
    for (what, speed) in [("SHA-256", sha), ("AES-256-GCM", aes)] {
        assert!((1e7..1e11).contains(&speed), "{what}: {speed} B/s");
    }
}
