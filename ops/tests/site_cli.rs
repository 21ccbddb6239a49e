#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A site's one-shot commands run as the binary on a real enrolled folder with a real token
//! and drill scans: what `seal` refuses, and what it says when it cannot ask for a PIN.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use konvert_center::provision::{self, CenterFacts};

const KONVERT: &str = env!("CARGO_BIN_EXE_konvert");
const PIN: &str = "582914";

fn konvert(args: &[&str]) -> Command {
    let mut c = Command::new(KONVERT);
    c.args(args).stdin(Stdio::null()).env("TEST_PIN", PIN);
    c
}

/// Runs `konvert` in a new session: no controlling terminal, as under cron or systemd.
fn without_terminal(args: &[&str]) -> Output {
    Command::new("setsid")
        .arg("-w")
        .arg(KONVERT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An enrolled site with a member token, and a drill room's scans: (site.toml, room folder).
fn site(dir: &Path) -> (PathBuf, PathBuf) {
    let center = dir.join("center");
    provision::init_center_with_key(&center, "center.konvert", "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let facts = CenterFacts::read(&center, "127.0.0.1:9", "center.konvert").unwrap();
    let toml = provision::enroll_station(&center, "0101", &facts, &dir.join("site-0101")).unwrap();
    let token = dir.join("site-0101/member.token");
    let out = konvert(&[
        "keys",
        "issue-token",
        "--out",
        token.to_str().unwrap(),
        "--token-id",
        "TK-1",
        "--holder",
        "Иванова А. П.",
        "--pin-env",
        "TEST_PIN",
        "--insecure-fast-kdf",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let drill = dir.join("drill");
    let out = konvert(&[
        "edge",
        "drill",
        "--out",
        drill.to_str().unwrap(),
        "--site",
        "0101",
        "--date",
        "2026-06-01",
        "--room",
        "0012",
        "--participants",
        "2",
        "--absent",
        "0",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (toml, drill.join("scans/0012"))
}

fn seal(toml: &Path, room: &Path, kind: &str, pin_env: bool) -> Output {
    let mut args = vec![
        "edge",
        "seal",
        "--config",
        toml.to_str().unwrap(),
        "--room-dir",
        room.to_str().unwrap(),
        "--room",
        "0012",
        "--date",
        "2026-06-01",
        "--kind",
        kind,
    ];
    if pin_env {
        args.extend(["--pin-env", "TEST_PIN"]);
        konvert(&args).output().unwrap()
    } else {
        without_terminal(&args)
    }
}

#[test]
fn seal_refuses_empty_files_and_non_scans_and_says_how_to_give_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, room) = site(dir.path());

    // No terminal, no --pin-env: the operator learns that a PIN is needed and how to give it.
    let out = seal(&toml, &room, "blanks", false);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("a PIN is needed to unlock member token TK-1"), "{said}");
    assert!(said.contains("--pin-env"), "{said}");

    // A text file in a blanks packet: named, nothing sealed, no PIN asked.
    std::fs::write(room.join("notes.txt"), "room 0012: two present\n").unwrap();
    let out = seal(&toml, &room, "blanks", false);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("notes.txt: not a scan for a blanks packet"), "{said}");
    assert!(said.contains("--kind journal"), "{said}");
    assert!(!said.contains("PIN"), "{said}");
    // As a station log it is what it is, and it is sealed.
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    std::fs::copy(room.join("notes.txt"), journal.join("notes.txt")).unwrap();
    let out = seal(&toml, &journal, "journal", true);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_file(room.join("notes.txt")).unwrap();

    // A zero-byte file, of any kind.
    std::fs::write(room.join("0012-blanks-0009.tif"), b"").unwrap();
    for kind in ["blanks", "audio"] {
        let out = seal(&toml, &room, kind, true);
        assert!(!out.status.success());
        let said = text(&out);
        assert!(
            said.contains("0012-blanks-0009.tif: the file is empty (0 bytes)"),
            "{said}"
        );
    }
    std::fs::remove_file(room.join("0012-blanks-0009.tif")).unwrap();

    // The drill room as it is seals.
    let out = seal(&toml, &room, "blanks", true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sealed 0101-2026-06-01-ege-0012-blanks v1"),
        "{}",
        text(&out)
    );
}

/// Adds a `[day]` section: hot folder `scans`, the drill's seating plan.
fn with_day(toml: &Path, plan: &Path) -> PathBuf {
    let site_dir = toml.parent().unwrap();
    let hot = site_dir.join("scans");
    std::fs::create_dir_all(&hot).unwrap();
    let mut text = std::fs::read_to_string(toml).unwrap();
    text.push_str(&format!(
        "\n[day]\nhot_folder = \"scans\"\nseating_plan = \"{}\"\nsettle_ms = 200\n",
        plan.display()
    ));
    std::fs::write(toml, text).unwrap();
    hot
}

fn set_mtime_back(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn one_shot_check_names_a_damaged_empty_or_foreign_file_and_takes_it_flagged_once_it_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, room) = site(dir.path());
    let hot = with_day(&toml, &dir.path().join("drill/plan.toml"));
    for entry in std::fs::read_dir(&room).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), hot.join(entry.file_name())).unwrap();
    }
    let damaged = hot.join("0012-blanks-0099.tif");
    let mut bytes = std::fs::read(room.join("0012-forms-0001.tif")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&damaged, &bytes).unwrap();
    std::fs::write(hot.join("0012-blanks-0100.tif"), b"").unwrap();
    std::fs::write(hot.join("0012-blanks-0101.png"), "not an image\n").unwrap();
    let check = || {
        let out = konvert(&["edge", "check", "--config", toml.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };

    // Just written: each is named with what is wrong, and waited for a moment.
    let said = check();
    for name in ["0012-blanks-0099.tif", "0012-blanks-0100.tif", "0012-blanks-0101.png"] {
        assert!(
            said.contains(&format!("{name}: does not read to its end yet")),
            "{said}"
        );
    }
    assert!(!said.contains("some files are still being written"), "{said}");

    // Unchanged for a minute (the scanner is long done): taken, flagged, and named.
    for name in ["0012-blanks-0099.tif", "0012-blanks-0100.tif", "0012-blanks-0101.png"] {
        set_mtime_back(&hot.join(name), 60);
    }
    let said = check();
    for name in ["0012-blanks-0099.tif", "0012-blanks-0100.tif", "0012-blanks-0101.png"] {
        assert!(said.contains(&format!("taken {name}")), "{said}");
    }
    assert!(said.contains("the file is empty"), "{said}");
    assert!(!said.contains("does not read to its end yet"), "{said}");
    // `day` without a terminal and without --pin-env says what it needs, too.
    let out = without_terminal(&["edge", "day", "--config", toml.to_str().unwrap(), "--no-push"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("a PIN is needed to unlock member token TK-1"), "{said}");
    assert!(said.contains("--pin-env"), "{said}");
    // And a run after that has nothing left waiting.
    let said = check();
    assert!(!said.contains("does not read"), "{said}");
    assert!(!said.contains("still being written"), "{said}");
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_not_with_a_panic() {
    // `konvert-center status | head -1`: the reader is gone before the command prints.
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(KONVERT)
        .args(["center", "init", "--dir"])
        .arg(dir.path().join("center"))
        .args(["--name", "center.konvert", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
