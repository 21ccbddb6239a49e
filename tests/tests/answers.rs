//! Every packet is answered (R10) end to end: a school's packet goes to a real center over
//! real QUIC through a relay; the loader's answer with a remark is signed by a center
//! specialist's token and exported onto a drive; the serving center takes the drive
//! through its one-way folder, refuses forged drives, and re-issues the answer as a
//! notice that reaches that school (and only it) through the relay; the school's status
//! shows what to do, and its version 2 is shown — at the school and at the center — as
//! answering the remark.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use konvert_center::answers::{self, AnswerDesk, ImportReport};
use konvert_center::CenterConfig;
use konvert_crypto::registry::TokenRole;
use konvert_crypto::token::{KdfParams, TokenFile};
use konvert_crypto::{MemberSigner, SigningKey};
use konvert_edge::{push, PushOptions};
use konvert_replication::{AnswerOutcome, OutboxEntry, PacketAnswer, Remark, RemarkAction};
use konvert_tests::{CenterFixture, EXAM_DAY, PIN};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    }
}

fn now() -> u64 {
    konvert_edge::cli::now_unix_ms()
}

fn remark_on(entry: &OutboxEntry, site: &str) -> PacketAnswer {
    PacketAnswer {
        site: site.into(),
        packet_id: entry.offer.packet_id.clone(),
        version: entry.offer.version,
        digest: entry.offer.digest,
        outcome: AnswerOutcome::Remarks(vec![Remark {
            id: "barcode-zone-p3".into(),
            room: Some("0007".into()),
            participant: Some("100042".into()),
            page: Some("page-0001.tif p.1".into()),
            what: "the barcode zone of the answer blank is unreadable".into(),
            action: RemarkAction::RescanAndResend,
        }]),
        pages: 2,
        answered_at_unix_ms: now(),
    }
}

fn loaded(entry: &OutboxEntry, site: &str) -> PacketAnswer {
    PacketAnswer {
        outcome: AnswerOutcome::Loaded,
        ..remark_on(entry, site)
    }
}

/// Exports `answers` onto a fresh drive folder named `name`.
fn export(fx: &CenterFixture, name: &str, answers: &[PacketAnswer], signer: &dyn MemberSigner) -> PathBuf {
    export_for(fx, name, answers, signer, fx.init.receipt_public.key_id())
}

fn export_for(
    fx: &CenterFixture,
    name: &str,
    answers: &[PacketAnswer],
    signer: &dyn MemberSigner,
    center: konvert_crypto::KeyId,
) -> PathBuf {
    let drive = fx.root.path().join("drives").join(name);
    std::fs::create_dir_all(&drive).unwrap();
    let report = answers::export_answers(answers, signer, center, &drive, now()).unwrap();
    assert_eq!(report.answers, answers.len());
    drive
}

/// Imports a drive into the serving center (through its one-way folder: the serving
/// center holds the inbox).
async fn import(cfg: &CenterConfig, drive: &Path) -> konvert_center::Result<ImportReport> {
    let (cfg, drive) = (cfg.clone(), drive.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut outcomes = answers::import_drive(&cfg, &drive, "Иванова А. П.")?;
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_remark_crosses_on_a_drive_reaches_its_school_through_a_relay_and_a_version_2_answers_it() {
    let fx = CenterFixture::new(loopback());
    let (t1, t2) = (fx.issue_token("0101"), fx.issue_token("0102"));
    let specialist = TokenFile::create(
        &fx.root.path().join("specialist.token"),
        "SP-0001",
        "Кузнецова М. И. (РЦОИ)",
        PIN,
        KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    fx.officers
        .lock()
        .unwrap()
        .issue_as(
            &specialist,
            TokenRole::CenterSpecialist,
            &["0101", "0102"],
            &[EXAM_DAY],
            now(),
        )
        .unwrap();
    let cfg = fx.register(&[(&t1, "0101"), (&t2, "0102")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let relay_fx = fx.enroll_relay("mouo-01", &["0101", "0102"], &[], loopback(), center.addr, None);
    let relay = relay_fx.start().await;
    let mut school = fx.enroll("0101", center.addr);
    let mut other = fx.enroll("0102", center.addr);
    school.via_relay("mouo-01", relay.addr);
    other.via_relay("mouo-01", relay.addr);

    let v1 = school.seal_room("0007", 2, 20_000, 1);
    let theirs = other.seal_room("0003", 2, 20_000, 2);
    for site in [&school, &other] {
        let report = push(&site.cfg, site.outbox.clone(), opts()).await.unwrap();
        assert_eq!(report.delivered, 1, "{report:?}");
    }

    // The loader answers: a remark on the school's packet, "loaded" for the other's. A
    // center specialist's token signs them onto a drive.
    let sp_key = specialist.unlock(PIN).unwrap();
    let answers = [remark_on(&v1, "0101"), loaded(&theirs, "0102")];
    let drive = export(&fx, "remarks", &answers, &sp_key);

    // Forged drives first: none of them leaves anything behind.
    let member_key = t1.unlock(PIN).unwrap();
    let by_member = export(&fx, "by-member", &answers[..1], &member_key);
    let report = import(&cfg, &by_member).await.unwrap();
    assert!(report.taken.is_empty());
    assert!(
        report.refused[0].contains("member's token, not a center specialist's"),
        "{report:?}"
    );
    let elsewhere = SigningKey::generate().unwrap().key_id();
    let other_center = export_for(&fx, "other-center", &answers[..1], &sp_key, elsewhere);
    let err = import(&cfg, &other_center).await.unwrap_err().to_string();
    assert!(err.contains("a remark drive from another center"), "{err}");
    let mut unknown = remark_on(&v1, "0101");
    unknown.digest = [0xee; 32];
    let unknown_digest = export(&fx, "unknown-digest", &[unknown], &sp_key);
    let report = import(&cfg, &unknown_digest).await.unwrap();
    assert!(report.taken.is_empty());
    assert!(
        report.refused[0].contains("this center received envelope"),
        "{report:?}"
    );
    let mut never = remark_on(&v1, "0101");
    never.version = 5;
    let never_sent = export(&fx, "never-received", &[never], &sp_key);
    let report = import(&cfg, &never_sent).await.unwrap();
    assert!(report.refused[0].contains("never received"), "{report:?}");
    let desk = AnswerDesk::open(&cfg.data_dir).unwrap();
    assert!(desk.held().unwrap().is_empty(), "nothing forged was taken");

    // The true drive: both answers taken; taking it again changes nothing.
    let report = import(&cfg, &drive).await.unwrap();
    assert_eq!(report.taken.len(), 2, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    let held = desk.held().unwrap();
    let again = import(&cfg, &drive).await.unwrap();
    assert!(again.taken.is_empty() && again.already.len() == 2, "{again:?}");
    assert_eq!(desk.held().unwrap(), held, "a second import changes nothing");
    assert_eq!(held[0].token_id, "SP-0001");

    // Every decision is in the center's audit log.
    let log = std::fs::read(cfg.data_dir.join("audit.log")).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert_eq!(log.matches("answer.take").count(), 2, "{log}");
    assert_eq!(log.matches("answer.refuse").count(), 3, "{log}");
    assert!(log.contains("answers.refuse"), "the other center's drive is recorded");
    assert!(log.contains("operator Иванова А. П. via the one-way folder"), "{log}");

    // The center lists the remark as open.
    let open = answers::list(&desk, &center.inbox, true).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].remarks[0].answered_by, None);
    // `konvert-center answers list --open` beside the serving center asks it.
    let listed = konvert_center::control::ask_center(&cfg.data_dir, "answers --open")
        .unwrap()
        .unwrap();
    assert!(
        listed.contains("1 answer(s) with open remarks, 1 open remark(s)"),
        "{listed}"
    );
    assert!(listed.contains("[OPEN] barcode-zone-p3"), "{listed}");

    // The answer reaches the school through the relay, and only the school: `day` asks
    // for notices as it runs and prints each new answer with what to do.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let no_scans = tempfile::tempdir().unwrap();
    let journal = konvert_edge::intake::Journal::open(no_scans.path()).unwrap();
    let watch = konvert_edge::answers::NoticeWatch::start(
        school.cfg.clone(),
        school.outbox.clone(),
        journal,
        log.clone(),
        wake.clone(),
    );
    tokio::time::timeout(Duration::from_secs(120), wake.notified())
        .await
        .expect("the day never showed the center's answer");
    drop(watch);
    let shown = log.lock().unwrap().join("\n");
    assert!(
        shown.contains(&format!(
            "answer: {} v1: 1 REMARK(S) from the center",
            v1.offer.packet_id
        )),
        "{shown}"
    );
    assert!(
        shown.contains("to do: rescan and send a new version of the packet"),
        "{shown}"
    );
    let kept = konvert_edge::answers::fetch_notices(&school.cfg, &school.outbox)
        .await
        .unwrap();
    assert!(kept.answers.is_empty(), "kept once");
    assert_eq!(school.outbox.answers().unwrap()[0].answer, answers[0]);
    let status = konvert_edge::inspect::status(&school.cfg, &school.outbox, None, false).unwrap();
    assert!(status.contains("1 REMARK(S) from the center"), "{status}");
    assert!(
        status.contains(
            "[barcode-zone-p3] room 0007, participant 100042, page page-0001.tif p.1: the barcode zone of the answer blank is unreadable — to do: rescan and send a new version of the packet"
        ),
        "{status}"
    );
    let kept = konvert_edge::answers::fetch_notices(&other.cfg, &other.outbox)
        .await
        .unwrap();
    assert_eq!(kept.answers.len(), 1);
    assert_eq!(kept.answers[0].site, "0102");
    let status = konvert_edge::inspect::status(&other.cfg, &other.outbox, None, true).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(doc["answers"][0]["loaded"], true, "{status}");

    // The school rescans and sends version 2: the remark is answered by it, at the
    // school and at the center.
    let v2 = school.seal_room("0007", 2, 20_000, 3);
    assert_eq!(v2.offer.packet_id, v1.offer.packet_id);
    assert_eq!(v2.offer.version, 2);
    let status = konvert_edge::inspect::status(&school.cfg, &school.outbox, None, false).unwrap();
    assert!(
        status.contains("answered by v2 (sealed, not yet delivered)"),
        "{status}"
    );
    assert_eq!(
        push(&school.cfg, school.outbox.clone(), opts())
            .await
            .unwrap()
            .delivered,
        1
    );
    let status = konvert_edge::inspect::status(&school.cfg, &school.outbox, None, false).unwrap();
    assert!(status.contains("answered by v2 (delivered)"), "{status}");
    assert!(status.contains("0 open remark(s)"), "{status}");
    let all = answers::list(&desk, &center.inbox, false).unwrap();
    let remarked = all.iter().find(|a| a.site == "0101").unwrap();
    assert_eq!(remarked.remarks[0].answered_by, Some(2));
    assert!(answers::list(&desk, &center.inbox, true).unwrap().is_empty());
    let text = answers::list_text(&cfg.data_dir, &center.inbox, false, false).unwrap();
    assert!(text.contains("[answered by v2] barcode-zone-p3"), "{text}");
    assert!(text.contains("loaded (2 page(s))"), "{text}");

    relay.shutdown().await;
    center.shutdown().await;
}

fn center_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_readme-konvert-center"))
        .args(args)
        .env("SPECIALIST_PIN", PIN)
        .env("KONVERT_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_export_import_and_list_answers_with_no_center_serving() {
    let fx = CenterFixture::new(loopback());
    let t1 = fx.issue_token("0101");
    let sp_path = fx.root.path().join("specialist.token");
    let specialist = TokenFile::create(
        &sp_path,
        "SP-0002",
        "Кузнецова М. И. (РЦОИ)",
        PIN,
        KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    fx.officers
        .lock()
        .unwrap()
        .issue_as(&specialist, TokenRole::CenterSpecialist, &["0101"], &[EXAM_DAY], now())
        .unwrap();
    let cfg = fx.register(&[(&t1, "0101")]);
    let center = konvert_center::serve(&cfg).await.unwrap();
    let school = fx.enroll("0101", center.addr);
    let v1 = school.seal_room("0007", 2, 20_000, 1);
    assert_eq!(
        push(&school.cfg, school.outbox.clone(), opts())
            .await
            .unwrap()
            .delivered,
        1
    );
    center.shutdown().await;

    // The loader's workstation: the answers (from a file until processing feeds them),
    // signed with the specialist's token onto a drive.
    let source = fx.root.path().join("answers.json");
    std::fs::write(&source, serde_json::to_vec(&[remark_on(&v1, "0101")]).unwrap()).unwrap();
    let drive = fx.root.path().join("drive");
    std::fs::create_dir_all(&drive).unwrap();
    let config = fx.init.config_path.to_str().unwrap();
    let (ok, out) = center_cli(&[
        "loader",
        "answers",
        "export",
        "--config",
        config,
        "--answers",
        source.to_str().unwrap(),
        "--to",
        drive.to_str().unwrap(),
        "--token",
        sp_path.to_str().unwrap(),
        "--pin-env",
        "SPECIALIST_PIN",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("1 answer(s) signed by token SP-0002"), "{out}");

    // The receiver, not serving: the import takes it in-process, once.
    let import = [
        "answers",
        "import",
        "--config",
        config,
        "--from",
        drive.to_str().unwrap(),
        "--operator",
        "Иванова",
    ];
    let (ok, out) = center_cli(&import);
    assert!(ok && out.contains("1 taken, 0 already held, 0 refused"), "{out}");
    let (ok, out) = center_cli(&import);
    assert!(ok && out.contains("0 taken, 1 already held, 0 refused"), "{out}");
    let (ok, out) = center_cli(&["answers", "list", "--config", config, "--open", "--json"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["remarks"][0]["id"], "barcode-zone-p3", "{out}");
    assert_eq!(listed[0]["signed_by"], "SP-0002", "{out}");

    // A drive whose batch is a link to somewhere else is refused, naming it.
    let evil = fx.root.path().join("evil-drive");
    std::fs::create_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", evil.join("x.kanswers")).unwrap();
    let (ok, out) = center_cli(&[
        "answers",
        "import",
        "--config",
        config,
        "--from",
        evil.to_str().unwrap(),
        "--operator",
        "Иванова",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("x.kanswers") && out.contains("not a file of answers"),
        "{out}"
    );
}
