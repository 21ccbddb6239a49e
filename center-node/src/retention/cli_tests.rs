#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn participant(code: &str) -> TargetArgs {
    TargetArgs {
        packet: None,
        participant: Some(code.into()),
        date: None,
        exam: None,
    }
}

#[test]
fn a_hold_refuses_an_empty_or_control_character_participant_and_note() {
    assert!(matches!(
        participant("P-0001").target().unwrap(),
        HoldTarget::Participant(c) if c == "P-0001"
    ));
    for bad in ["", "   ", "P-0001\nP-0002", "P\u{1b}[2J"] {
        let e = participant(bad).target().expect_err(bad).to_string();
        assert!(e.contains("--participant"), "{e}");
    }
    check_text("--note", "апелляция 12/2026", 500, "").unwrap();
    for bad in ["", "a\u{0}b", "решение\nподделка"] {
        assert!(check_text("--note", bad, 500, "").is_err(), "{bad:?} accepted");
    }
    assert!(check_text("--note", &"я".repeat(501), 500, "").is_err());
}
