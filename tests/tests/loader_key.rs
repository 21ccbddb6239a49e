//! The center key born on the loader's side, through the real `konvert-center` commands:
//! `loader new-key` refuses a single specialist, wraps a new key at once for two people's
//! tokens and writes only its public half, which the receiver takes (`set-center-key`)
//! and stations seal to; a rotation makes a second key the same way and packets sealed to
//! either open; `loader wrap-key` gives a fourth specialist the keys from one who holds
//! them; `loader unpack` and `test-packets preview` open packets. Every decryption and
//! key wrap is in the center's audit log, which holds no key material, and no file
//! anywhere holds a center key bare.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use konvert_center::provision::CenterFacts;
use konvert_crypto::audit::{self, Record};
use konvert_crypto::loader_key::Specialist;
use konvert_crypto::registry::TokenRole;
use konvert_crypto::token::{KdfParams, TokenFile};
use konvert_crypto::{keyfile, RecipientSecretKey};
use konvert_edge::intake::scan_recognizer;
use konvert_edge::readiness::{seal_test_packet, TestRequest};
use konvert_edge::{push, PushOptions};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{ExamKind, RoomId};
use konvert_tests::{on_time_day, CenterFixture, LAST_ZONE};

const CENTER: &str = env!("CARGO_BIN_EXE_readme-konvert-center");
const PASS: &str = "loader passphrase 2718";
const TEST_DAY: &str = "2026-05-25";

fn center(args: &[&str]) -> Output {
    Command::new(CENTER)
        .args(args)
        .env("SP_PIN", PASS)
        .env("KONVERT_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn refused(out: Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    }
}

/// Every regular file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_center_key_is_born_for_two_people_never_bare_and_every_opening_is_audited() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let center_dir = fx.center_dir();
    let config = fx.init.config_path.to_str().unwrap().to_owned();
    let registry_file = fx.init.config.registry.to_str().unwrap().to_owned();
    // Four specialists, four people; the token files sit where each specialist keeps theirs.
    let specialists: Vec<(TokenFile, PathBuf)> = ["Кузнецова М. И.", "Лебедев А. Р.", "Орлова Т. В.", "Зуев П. К."]
        .iter()
        .enumerate()
        .map(|(i, person)| {
            let path = fx.root.path().join(format!("sp-{}.token", i + 1));
            let token = TokenFile::create_specialist(
                &path,
                &format!("SP-{}", i + 1),
                person,
                PASS,
                KdfParams::insecure_fast_for_tests(),
            )
            .unwrap();
            (token, path)
        })
        .collect();
    let sp = |i: usize| specialists[i].1.to_str().unwrap().to_owned();
    let (a, b) = (fx.issue_token("0101"), fx.issue_token("0202"));
    let day = on_time_day();
    {
        let mut officers = fx.officers.lock().unwrap();
        let now = konvert_edge::cli::now_unix_ms();
        for (t, _) in &specialists {
            officers
                .issue_as(t, TokenRole::CenterSpecialist, &["0101", "0202"], &[&day], now)
                .unwrap();
        }
    }
    let mut cfg = fx.register_days(&[(&a, "0101"), (&b, "0202")], &[&day, TEST_DAY]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let import = || {
        ok(center(&[
            "registry",
            "import",
            "--config",
            &config,
            "--file",
            &registry_file,
        ]))
    };
    import();

    // One specialist is not enough (R5), and nothing is made.
    let key_pub = |n: u32| fx.root.path().join(format!("center-key-{n}.pub"));
    let k1 = key_pub(1);
    let k1s = k1.to_str().unwrap().to_owned();
    let new_key = |tokens: &[String], out: &str| {
        let mut args = vec![
            "loader",
            "new-key",
            "--config",
            &config,
            "--pin-env",
            "SP_PIN",
            "--public-out",
            out,
        ];
        for t in tokens {
            args.extend(["--token", t.as_str()]);
        }
        center(&args)
    };
    let e = refused(new_key(&[sp(0)], &k1s));
    assert!(e.contains("at least 2 specialists"), "{e}");
    assert!(!k1.exists() && !center_dir.join("loader").exists());

    // Two people's tokens: the key is born wrapped for both; its public half goes to the
    // receiver and the officers.
    let said = ok(new_key(&[sp(0), sp(1)], &k1s));
    assert!(
        said.contains("no bare copy") && said.contains("SP-1") && said.contains("SP-2"),
        "{said}"
    );
    let first = konvert_center::center_key::read_public(&k1).unwrap();
    ok(center(&["set-center-key", "--config", &config, "--file", &k1s]));
    assert_eq!(
        CenterFacts::read(&center_dir, "127.0.0.1:1", "center.konvert")
            .unwrap()
            .recipient_public,
        first
    );
    fx.publish(|body| {
        body.rotate_center_key(first, konvert_edge::cli::now_unix_ms() + 86_400_000)
            .unwrap()
    });
    import();

    // Site 0101 seals an exam room and a test packet to it.
    let running = konvert_center::serve(&cfg).await.unwrap();
    let mut site_a = fx.enroll("0101", running.addr);
    assert_eq!(site_a.cfg.recipient_key().unwrap(), first);
    site_a.seal_for(&day);
    let room_a = site_a.seal_room("0001", 2, 10_000, 1);
    let scans = site_a.dir.join("test-scans");
    let room = RoomId::new("0000").unwrap();
    let plan = synthetic_plan(
        &site_a.cfg.site,
        TEST_DAY.parse().unwrap(),
        ExamKind::Ege,
        &[(&room, 1)],
        9_000_000,
    );
    let job = ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file: 8,
        degrade: false,
        dpi: 300,
        seed: 5,
    };
    write_pages(&room_pages(&plan, &room, 0), &scans, "test", job).unwrap();
    let request = TestRequest {
        scans: &scans,
        date: TEST_DAY.parse().unwrap(),
        exam: ExamKind::Ege,
    };
    let recognizer = scan_recognizer(Duration::from_millis(1500));
    let now = konvert_edge::cli::now_unix_ms();
    let test = seal_test_packet(&site_a.cfg, &site_a.outbox, &site_a.signer, &request, &recognizer, now).unwrap();
    assert_eq!(
        push(&site_a.cfg, site_a.outbox.clone(), opts())
            .await
            .unwrap()
            .delivered,
        2
    );
    // The loader does not write the audit log of a center serving from the same folder.
    let e = refused(center(&[
        "loader",
        "new-key",
        "--config",
        &config,
        "--public-out",
        "x.pub",
    ]));
    assert!(e.contains("is serving from"), "{e}");
    running.shutdown().await;

    // A rotation: a second key born for two other people; the receiver and the officers
    // take it, and site 0202, enrolled now, seals to it.
    let k2 = key_pub(2);
    let k2s = k2.to_str().unwrap().to_owned();
    ok(new_key(&[sp(1), sp(2)], &k2s));
    let second = konvert_center::center_key::read_public(&k2).unwrap();
    ok(center(&["set-center-key", "--config", &config, "--file", &k2s]));
    fx.publish(|body| {
        body.rotate_center_key(second, konvert_edge::cli::now_unix_ms() + 86_400_000)
            .unwrap()
    });
    import();
    let running = konvert_center::serve(&cfg).await.unwrap();
    let mut site_b = fx.enroll("0202", running.addr);
    assert_eq!(site_b.cfg.recipient_key().unwrap(), second);
    site_b.seal_for(&day);
    let room_b = site_b.seal_room("0002", 2, 10_000, 2);
    assert_eq!(
        push(&site_b.cfg, site_b.outbox.clone(), opts())
            .await
            .unwrap()
            .delivered,
        1
    );
    running.shutdown().await;

    // SP-2 holds both keys: both packets open. SP-3 holds the second only.
    let unpack = |token: &str, out: &Path, site: Option<&str>| {
        let out = out.to_str().unwrap().to_owned();
        let mut args = vec![
            "loader",
            "unpack",
            "--config",
            &config,
            "--token",
            token,
            "--pin-env",
            "SP_PIN",
        ];
        args.extend(["--out", out.as_str()]);
        if let Some(s) = site {
            args.extend(["--site", s]);
        }
        center(&args)
    };
    let out2 = fx.root.path().join("unpacked-sp2");
    let said = ok(unpack(&sp(1), &out2, None));
    assert!(said.contains("2 packet(s) unpacked"), "{said}");
    ok(unpack(&sp(2), &fx.root.path().join("unpacked-sp3"), Some("0202")));
    // The fourth specialist gets the keys from SP-2, who holds them; unwrapped in memory.
    let said = ok(center(&[
        "loader",
        "wrap-key",
        "--config",
        &config,
        "--token",
        &sp(1),
        "--pin-env",
        "SP_PIN",
        "--to-token",
        &sp(3),
        "--to-pin-env",
        "SP_PIN",
    ]));
    assert_eq!(said.matches("wrapped for SP-4").count(), 2, "{said}");
    let said = ok(unpack(&sp(3), &fx.root.path().join("unpacked-sp4"), None));
    assert!(said.contains("2 packet(s) unpacked"), "{said}");
    // SP-2 previews the test packet, sealed to the first key before the rotation: it opens
    // with the older key SP-2 holds beside the active one.
    let preview = fx.root.path().join("preview");
    ok(center(&[
        "test-packets",
        "preview",
        "--config",
        &config,
        "--token",
        &sp(1),
        "--pin-env",
        "SP_PIN",
        "--out",
        preview.to_str().unwrap(),
    ]));
    assert!(preview.join("index.html").is_file());

    // The keys as the loader holds them, to look for them everywhere.
    let registry = konvert_center::registry::held(&cfg, konvert_edge::cli::now_unix_ms())
        .unwrap()
        .unwrap();
    let sp2 = specialists[1].0.unlock(PASS).unwrap();
    let keys: Vec<RecipientSecretKey> = konvert_center::loader::unwrap_for(
        &center_dir.join("loader"),
        &registry,
        Specialist::File(&sp2),
        konvert_edge::cli::now_unix_ms(),
    )
    .unwrap();
    assert_eq!(keys.len(), 2);
    let secrets: Vec<[u8; 32]> = keys.iter().map(|k| *k.to_bytes()).collect();

    // The audit log: who opened what, which tokens hold which key; intact; no secret.
    let log = std::fs::read(cfg.data_dir.join("audit.log")).unwrap();
    let entries: Vec<audit::AuditEntry> = audit::parse(&log)
        .records
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Entry { entry, .. } => Some(entry),
            Record::Checkpoint(_) => None,
        })
        .collect();
    let of =
        |action: &str| -> Vec<&audit::AuditEntry> { entries.iter().filter(|e| e.action.as_str() == action).collect() };
    let born = of("center_key.new");
    assert_eq!(born.len(), 2, "{entries:?}");
    assert!(born[0].subject.contains(&first.key_id().to_string()) && born[0].detail.contains("SP-1 (Кузнецова М. И.)"));
    assert!(born[1].subject.contains(&second.key_id().to_string()) && born[1].detail.contains("SP-3 (Орлова Т. В.)"));
    let wraps = of("center_key.wrap");
    assert_eq!(wraps.len(), 2);
    assert!(wraps
        .iter()
        .all(|e| e.actor == "specialist SP-2" && e.detail.contains("for token SP-4")));
    let unpacked = of("loader.unpack");
    assert_eq!(unpacked.len(), 2 + 1 + 2, "{unpacked:?}");
    for (entry, packet) in unpacked.iter().zip([&room_a, &room_b]) {
        assert_eq!(entry.actor, "specialist SP-2");
        assert!(
            entry.subject.contains(&packet.offer.packet_id)
                && entry.subject.contains(&hex::encode(packet.offer.digest)),
            "{entry:?}"
        );
    }
    let previews = of("loader.preview");
    assert_eq!(previews.len(), 1);
    assert_eq!(previews[0].actor, "specialist SP-2");
    assert!(previews[0].detail.contains("page(s) opened"), "{:?}", previews[0]);
    assert!(
        previews[0].subject.contains(&test.sealed.entry.offer.packet_id),
        "{:?}",
        previews[0]
    );
    assert_eq!(of("loader.login").len(), 5, "three unpacks, one wrap, one preview");
    let receipt = keyfile::read_signing_key(&cfg.receipt_key).unwrap().verifying_key();
    let head = audit::read_head(&audit::head_path(&cfg.data_dir.join("audit.log"))).unwrap();
    let report = audit::verify(&log, head.as_ref(), &[receipt]);
    assert!(report.is_intact(), "{report:?}");

    // No file anywhere — the center with its loader folder, the sites, what was unpacked,
    // the audit log — reads as a center key or holds one's bytes, raw or in hex.
    let all = files_under(fx.root.path());
    assert!(all.len() > 30, "{all:?}");
    for path in &all {
        assert!(
            keyfile::read_recipient_key(path).is_err(),
            "{} reads as a key",
            path.display()
        );
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        for secret in &secrets {
            assert!(
                !bytes.windows(32).any(|w| w == secret),
                "{} holds a key",
                path.display()
            );
            assert!(
                !text.contains(&hex::encode(secret)),
                "{} holds a key in hex",
                path.display()
            );
        }
    }
}
