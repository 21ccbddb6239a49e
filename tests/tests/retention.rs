//! Page images kept for appeals and retention, with real parts: a site seals real scans
//! per room and kind, pushes them over QUIC, the loader processes the stored envelopes
//! against the day's plan, and retention judges the records, the image store and the
//! center's store.
//!
//! The properties: processing holds exactly the images of the plan's pages, each intact
//! (a kit in no plan is never held); a sweep deletes nothing; applying it deletes exactly
//! what it listed, each deletion in the loader's audit log, the receipts staying; a hold
//! keeps what it touches until released; an envelope stays while one of its images is
//! missing, and processing keeps that image again from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use konvert_center::image_store::ImageStore;
use konvert_center::processing::{process, Workplace, LOADER_AUDIT_LOG};
use konvert_center::retention::{self, retired};
use konvert_edge::{push, seal_room, PushOptions};
use konvert_exam::scan::{write_pages, ScanFormat, ScanJob};
use konvert_exam::{
    full_set, BlankId, DayPlan, ExamDate, ExamKind, Form, FormId, PacketKind, PacketRef, PageIdentity, PlanParticipant,
    PlanRoom, PlanSite, RoomId, SiteId, SiteKind, SiteZone,
};
use konvert_records::{DecisionKind, ExamDay, HoldReason, HoldTarget, NewHold, Release, Role, SledRecords};
use konvert_tests::{on_time_day, CenterFixture, SiteFixture, LAST_ZONE};

const JOB: ScanJob = ScanJob {
    format: ScanFormat::TiffG4,
    pages_per_file: 1,
    degrade: false,
    dpi: 200,
    seed: 5,
};

fn set_of(kit: u64) -> Vec<PageIdentity> {
    let mut out = Vec::new();
    for &(kind, count) in full_set(ExamKind::Ege) {
        for sheet in 0..count {
            out.push(PageIdentity::Blank(BlankId::for_kit(kind, kit, sheet).unwrap()));
        }
    }
    out
}

fn forms(room: &str, day: &str) -> Vec<PageIdentity> {
    [Form::Ppe12_04Mash, Form::Ppe13_02Mash, Form::Ppe18Mash]
        .into_iter()
        .map(|form| {
            PageIdentity::Form(FormId {
                form,
                site: "0101".parse().unwrap(),
                room: room.parse().unwrap(),
                date: day.parse().unwrap(),
            })
        })
        .collect()
}

fn seal(site: &SiteFixture, dir: &Path, room: &str, kind: PacketKind) -> [u8; 32] {
    let packet = PacketRef {
        site: site.cfg.site.clone(),
        date: site.day.parse().unwrap(),
        exam: ExamKind::Ege,
        room: room.parse().unwrap(),
        kind,
    };
    seal_room(
        &site.cfg,
        &site.outbox,
        &site.signer,
        dir,
        packet,
        konvert_edge::cli::now_unix_ms(),
    )
    .unwrap()
    .entry
    .offer
    .digest
}

/// The SHA-256 of every scan file in `dir`.
fn files_of(dir: &Path) -> BTreeSet<[u8; 32]> {
    konvert_exam::list_scans(dir)
        .unwrap()
        .into_iter()
        .map(|(name, _)| konvert_center::image_store::sha256(&std::fs::read(dir.join(name)).unwrap()))
        .collect()
}

fn plan(day: &str) -> DayPlan {
    let seat = |code: &str, room: &str, kit: u64| PlanParticipant {
        code: code.into(),
        site: "0101".parse().unwrap(),
        room: room.parse().unwrap(),
        seat: "1А".into(),
        kit,
        consent: true,
    };
    DayPlan {
        date: day.parse().unwrap(),
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: false,
        sites: vec![PlanSite {
            code: SiteId::new("0101").unwrap(),
            kind: SiteKind::ExamSite,
            time_zone: LAST_ZONE.into(),
        }],
        rooms: ["0001", "0002"]
            .iter()
            .map(|r| PlanRoom {
                site: "0101".parse().unwrap(),
                code: RoomId::new(r).unwrap(),
                oral: false,
            })
            .collect(),
        participants: vec![seat("P1", "0001", 1), seat("P2", "0001", 2), seat("P3", "0002", 3)],
        members: vec![],
    }
}

/// The day after `day`'s anniversary `years` on (the first of the next month when that
/// day does not exist).
fn later(day: ExamDate, years: u16) -> ExamDate {
    let year = day.year + years;
    format!("{year:04}-{:02}-{:02}", day.month, day.day + 1)
        .parse()
        .or_else(|_| {
            let (year, month) = if day.month == 12 {
                (year + 1, 1)
            } else {
                (year, day.month + 1)
            };
            format!("{year:04}-{month:02}-01").parse()
        })
        .unwrap()
}

fn envelope_ids(v: &[retention::EnvelopeVerdict]) -> BTreeSet<String> {
    v.iter().map(|e| e.envelope_id.clone()).collect()
}

fn audit_text(place: &Workplace) -> String {
    String::from_utf8_lossy(&std::fs::read(place.records_dir.join(LOADER_AUDIT_LOG)).unwrap()).into_owned()
}

const CENTER: &str = env!("CARGO_BIN_EXE_readme-konvert-center");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_kept_for_the_plan_and_retention_deletes_exactly_what_it_lists() {
    day_with(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_with_the_records_on_postgresql() {
    if let Some(cluster) = konvert_records::test_cluster::TestCluster::shared() {
        day_with(Some(cluster.database("retention_day"))).await;
    }
}

/// Runs `konvert-center retention …` on the loader's center.toml.
fn retention_cli(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(CENTER)
        .arg("retention")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// The exam day, processing and retention, with the records on PostgreSQL at
/// `records_url` or (`None`) on sled.
async fn day_with(records_url: Option<String>) {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let token = fx.issue_token("0101");
    let day = on_time_day();
    let mut cfg = fx.register_days(&[(&token, "0101")], &[&day]);
    cfg.time_zone = SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut site = fx.enroll("0101", center.addr);
    site.seal_for(&day);
    let root = fx.root.path().join("scans");
    let scans = |name: &str, pages: &[PageIdentity]| -> PathBuf {
        let dir = root.join(name);
        write_pages(pages, &dir, name, JOB).unwrap();
        dir
    };

    // Room 0001: forms, then P1's and P2's blanks. Room 0002: forms, then P3's blanks and
    // the blanks of kit 99, which no plan holds (perhaps a participant without consent).
    let a_forms = scans("a-forms", &forms("0001", &day));
    let a_blanks = scans("a-blanks", &[set_of(1), set_of(2)].concat());
    let b_forms = scans("b-forms", &forms("0002", &day));
    let b_planned = set_of(3);
    let b_unplanned = set_of(99);
    let b_blanks = scans("b-blanks", &[b_planned.clone(), b_unplanned.clone()].concat());
    let env_a_forms = seal(&site, &a_forms, "0001", PacketKind::Forms);
    let env_a_blanks = seal(&site, &a_blanks, "0001", PacketKind::Blanks);
    let env_b_forms = seal(&site, &b_forms, "0002", PacketKind::Forms);
    let env_b_blanks = seal(&site, &b_blanks, "0002", PacketKind::Blanks);
    let opts = PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    };
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts).await.unwrap().delivered, 4);
    center.shutdown().await;

    // The loader's workstation.
    let keys = [fx.loader_key()];
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    let config = fx.init.config_path.clone();
    if let Some(url) = &records_url {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("records_url = \"{url}\"\n{text}")).unwrap();
    }
    let place = Workplace {
        data_dir: cfg.data_dir.clone(),
        records_dir: cfg.records.clone(),
        records_url: records_url.clone(),
        checkpoint_key: Some(cfg.receipt_key.clone()),
    };
    let mut inbox = konvert_replication::Inbox::open(&cfg.data_dir).unwrap();
    std::fs::create_dir_all(&place.records_dir).unwrap();
    if records_url.is_none() {
        drop(SledRecords::open(&konvert_center::processing::records_db(&place.records_dir)).unwrap());
    }
    let mut records = place.open_records().unwrap();

    // Registered before the plan is in: nothing can be told of whose pages these are, so
    // no image is kept yet.
    let first = process(&place, &inbox, &*records, &keys, &registry, "specialist-1", 1_000).unwrap();
    assert_eq!(first.registered.len(), 4, "{:?}", first.failed);
    assert_eq!(first.images_kept, 0);
    assert!(records.images().unwrap().is_empty());

    // With the plan, the next run opens the envelopes again and keeps the plan's pages.
    records.put_plan(&plan(&day)).unwrap();
    let second = process(&place, &inbox, &*records, &keys, &registry, "specialist-1", 2_000).unwrap();
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    let unplanned_files: BTreeSet<[u8; 32]> = {
        // Kit 99's pages are the last files of b-blanks (one page a file, in order).
        let all: Vec<_> = konvert_exam::list_scans(&b_blanks).unwrap();
        all[b_planned.len()..]
            .iter()
            .map(|(name, _)| konvert_center::image_store::sha256(&std::fs::read(b_blanks.join(name)).unwrap()))
            .collect()
    };
    assert_eq!(unplanned_files.len(), b_unplanned.len());
    let mut expected: BTreeSet<[u8; 32]> = [&a_forms, &a_blanks, &b_forms, &b_blanks]
        .into_iter()
        .flat_map(|d| files_of(d))
        .collect();
    expected.retain(|sha| !unplanned_files.contains(sha));
    let held: BTreeSet<[u8; 32]> = records.images().unwrap().iter().map(|i| i.sha256).collect();
    assert_eq!(held, expected, "exactly the plan's pages are kept");
    assert_eq!(second.images_kept, expected.len());
    let store = ImageStore::open(&place.records_dir).unwrap();
    for sha in &expected {
        assert_eq!(store.verify(sha).unwrap(), Some(true));
    }
    for sha in &unplanned_files {
        assert!(!store.has(sha), "an image of a kit in no plan was kept");
    }
    assert!(audit_text(&place).contains(konvert_center::processing::PACKET_KEEP_IMAGES));
    // A third run opens nothing again.
    let third = process(&place, &inbox, &*records, &keys, &registry, "specialist-1", 3_000).unwrap();
    assert_eq!(third.images_kept, 0);

    let zone = SiteZone::new(LAST_ZONE).unwrap();
    let today: ExamDate = day.parse().unwrap();
    let exam_day = ExamDay {
        date: today,
        exam: ExamKind::Ege,
    };
    let hex = |b: &[u8; 32]| hex::encode(b);

    // Not closed yet: every envelope stays, and kit 99's is held for investigation.
    let open = retention::sweep(&place, &*records, &zone, today).unwrap();
    assert!(open.images.is_empty() && open.envelopes.is_empty(), "{open:#?}");
    assert_eq!(open.kept.len(), 4);
    let b_blanks_kept = open.kept.iter().find(|k| k.envelope_id == hex(&env_b_blanks)).unwrap();
    assert!(b_blanks_kept.why.contains("investigation"), "{}", b_blanks_kept.why);

    // Closed; P2 appeals; one image of room 0002's forms is lost from the store.
    records
        .decide(
            "Администратор",
            Role::Administrator,
            4_000,
            DecisionKind::Close { day: exam_day },
        )
        .unwrap();
    let appeal = records
        .add_hold(NewHold {
            reason: HoldReason::Appeal,
            target: HoldTarget::Participant("P2".into()),
            by: "Председатель КК".into(),
            at_unix_ms: 4_100,
            note: "апелляция № 3".into(),
        })
        .unwrap();
    let lost = *files_of(&b_forms).iter().next().unwrap();
    std::fs::remove_file(store.path(&lost)).unwrap();

    let dry = retention::sweep(&place, &*records, &zone, today).unwrap();
    assert!(dry.images.is_empty(), "images stay ten years: {dry:#?}");
    assert_eq!(envelope_ids(&dry.envelopes), BTreeSet::from([hex(&env_a_forms)]));
    let why = |id: [u8; 32]| dry.kept.iter().find(|k| k.envelope_id == hex(&id)).unwrap().why.clone();
    assert!(
        why(env_a_blanks).contains(&format!("hold {}", appeal.id)),
        "{}",
        why(env_a_blanks)
    );
    assert!(why(env_b_forms).contains("not held or damaged"), "{}", why(env_b_forms));
    assert!(why(env_b_blanks).contains("investigation"), "{}", why(env_b_blanks));
    assert_eq!(dry.damaged, vec![hex(&lost)]);
    // The dry run deleted nothing.
    for env in [env_a_forms, env_a_blanks, env_b_forms, env_b_blanks] {
        assert!(konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &env).exists());
    }
    // The command says the same, deletes nothing without --apply, and --apply names who.
    drop(records);
    let out = retention_cli(&config, &["sweep", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: BTreeSet<String> = listed["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["envelope_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, envelope_ids(&dry.envelopes));
    let out = retention_cli(&config, &["sweep"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("this was a dry run: nothing was deleted"),
        "{text}"
    );
    let out = retention_cli(&config, &["sweep", "--apply"]);
    assert!(!out.status.success(), "--apply without --by was taken");
    let out = retention_cli(&config, &["sweep", "--as-of", "2000-01-01"]);
    assert!(!out.status.success(), "a day in the past was taken");
    let out = std::process::Command::new(CENTER)
        .args(["retention", "table"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("003:209") && text.contains("001:660"), "{text}");
    for env in [env_a_forms, env_a_blanks, env_b_forms, env_b_blanks] {
        assert!(konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &env).exists());
    }
    records = place.open_records().unwrap();

    // Applied: exactly what it listed goes, in the audit log first; the receipt stays.
    let applied = retention::apply(&place, &*records, &zone, today, "Сидорова", 5_000).unwrap();
    assert_eq!(envelope_ids(&applied.sweep.envelopes), envelope_ids(&dry.envelopes));
    assert!(!konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &env_a_forms).exists());
    assert!(retired::is_retired(&cfg.data_dir, &env_a_forms));
    for env in [env_a_blanks, env_b_forms, env_b_blanks] {
        assert!(konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &env).exists());
    }
    let stored = inbox.records().unwrap();
    assert!(
        stored.iter().any(|r| r.receipt.body.digest == env_a_forms),
        "the receipt stays"
    );
    let log = audit_text(&place);
    assert_eq!(log.matches(retention::DELETE_ENVELOPE).count(), 1);
    assert!(log.contains(&hex(&env_a_forms)));
    // A backup taken now leaves the retired envelope out and keeps its tombstone, and
    // the images with the records.
    drop((records, inbox));
    let backup = fx.root.path().join("backup");
    konvert_center::backup::take(&cfg, &backup).unwrap();
    let copy = |env: &[u8; 32]| konvert_replication::Inbox::stored_envelope(&backup.join("data"), env);
    assert!(!copy(&env_a_forms).exists());
    assert!(copy(&env_a_blanks).exists());
    assert!(retired::is_retired(&backup.join("data"), &env_a_forms));
    for sha in expected.iter().filter(|sha| **sha != lost) {
        let held = store.path(sha);
        let rel = held.strip_prefix(&place.records_dir).unwrap();
        assert!(
            backup.join("config/records").join(rel).is_file(),
            "{} not in the backup",
            rel.display()
        );
    }
    // An appeal's page image, from the image store: its envelope is gone.
    let page = {
        let records = place.open_records().unwrap();
        let pages = records.pages().unwrap();
        pages.into_iter().find(|p| p.key.envelope == env_a_forms).unwrap().key
    };
    let png = fx.root.path().join("appeal.png");
    let out = std::process::Command::new(CENTER)
        .args(["loader", "page-image", "--config"])
        .arg(&config)
        .arg(konvert_center::processing::cli::full_key(&page))
        .arg("--out")
        .arg(&png)
        .args(["--token", "specialist.token"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("from the image store"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(image::load_from_memory(&std::fs::read(&png).unwrap()).is_ok());
    records = place.open_records().unwrap();
    inbox = konvert_replication::Inbox::open(&cfg.data_dir).unwrap();
    // The retired envelope's images serve an appeal without it.
    for sha in files_of(&a_forms) {
        assert!(store.read(&sha, 10 << 20).is_ok());
    }
    // Processing after retention neither fails on the retired envelope nor opens it.
    let after = process(&place, &inbox, &*records, &keys, &registry, "specialist-1", 5_500).unwrap();
    assert!(after.failed.is_empty(), "{:?}", after.failed);
    // …and it keeps the lost image again from room 0002's envelope, which stayed for it.
    assert_eq!(after.images_kept, 0, "the reference was kept; the file is put back");
    assert_eq!(store.verify(&lost).unwrap(), Some(true));

    // The appeal is decided and released: room 0001's blanks go; room 0002's forms too now.
    records
        .release_hold(
            appeal.id,
            Release {
                by: "Председатель КК".into(),
                at_unix_ms: 6_000,
                note: "апелляция отклонена".into(),
            },
        )
        .unwrap();
    let next = retention::apply(&place, &*records, &zone, today, "Сидорова", 6_100).unwrap();
    assert_eq!(
        envelope_ids(&next.sweep.envelopes),
        BTreeSet::from([hex(&env_a_blanks), hex(&env_b_forms)])
    );
    assert_eq!(
        envelope_ids(&next.sweep.kept),
        BTreeSet::from([hex(&env_b_blanks)]),
        "kit 99's envelope stays: the investigation, and its pages' only copy"
    );

    // Ten years on: the investigation no longer keeps anything, every image goes and so
    // does the last envelope — unless a person's hold says otherwise.
    let decade = later(today, 10);
    let hold = records
        .add_hold(NewHold {
            reason: HoldReason::Investigation,
            target: HoldTarget::Packet(env_b_blanks),
            by: "ГЭК".into(),
            at_unix_ms: 7_000,
            note: "дело № 5".into(),
        })
        .unwrap();
    let held = retention::sweep(&place, &*records, &zone, decade).unwrap();
    assert!(held.envelopes.is_empty());
    let b_blank_images: BTreeSet<String> = files_of(&b_blanks).iter().map(&hex).collect();
    let listed: BTreeSet<String> = held.images.iter().map(|i| i.sha256.clone()).collect();
    assert!(listed.is_disjoint(&b_blank_images), "a held packet's images stay");
    assert_eq!(listed.len(), expected.len() - b_planned.len());
    records
        .release_hold(
            hold.id,
            Release {
                by: "ГЭК".into(),
                at_unix_ms: 7_100,
                note: "закрыто".into(),
            },
        )
        .unwrap();
    let dry = retention::sweep(&place, &*records, &zone, decade).unwrap();
    let last = retention::apply(&place, &*records, &zone, decade, "Сидорова", 8_000).unwrap();
    let gone: BTreeSet<String> = last.sweep.images.iter().map(|i| i.sha256.clone()).collect();
    assert_eq!(gone, dry.images.iter().map(|i| i.sha256.clone()).collect());
    assert_eq!(gone, expected.iter().map(&hex).collect());
    assert_eq!(
        envelope_ids(&last.sweep.envelopes),
        BTreeSet::from([hex(&env_b_blanks)])
    );
    for sha in &expected {
        assert!(!store.has(sha));
    }
    let refs = records.images().unwrap();
    assert_eq!(refs.len(), expected.len(), "references stay, marked deleted");
    assert!(refs
        .iter()
        .all(|i| i.deleted.as_ref().is_some_and(|d| d.by == "Сидорова")));
    let log = audit_text(&place);
    assert_eq!(log.matches(retention::DELETE_IMAGE).count(), expected.len());
    assert_eq!(log.matches(retention::DELETE_ENVELOPE).count(), 4);
    for sha in &expected {
        assert!(log.contains(&hex(sha)));
    }
    for env in [env_a_forms, env_a_blanks, env_b_forms, env_b_blanks] {
        assert!(log.contains(&hex(&env)));
    }
    // A run stopped between its records and its files: the next one finishes it.
    let leftover = *expected.iter().next().unwrap();
    std::fs::write(store.path(&leftover), b"left by a stopped run").unwrap();
    let stopped = konvert_replication::Inbox::stored_envelope(&cfg.data_dir, &env_a_forms);
    std::fs::write(&stopped, b"left by a stopped run").unwrap();
    let finish = retention::apply(&place, &*records, &zone, decade, "Сидорова", 8_500).unwrap();
    assert_eq!(
        finish.sweep.images.iter().map(|i| i.sha256.clone()).collect::<Vec<_>>(),
        vec![hex(&leftover)]
    );
    assert_eq!(
        envelope_ids(&finish.sweep.envelopes),
        BTreeSet::from([hex(&env_a_forms)])
    );
    assert!(!store.has(&leftover) && !stopped.exists());
    let log = audit_text(&place);
    assert_eq!(log.matches(retention::DELETE_IMAGE).count(), expected.len() + 1);
    assert_eq!(log.matches(retention::DELETE_ENVELOPE).count(), 5);
    let done = retention::sweep(&place, &*records, &zone, decade).unwrap();
    assert!(done.images.is_empty() && done.envelopes.is_empty() && done.kept.is_empty());
    // Nothing is left to delete, and a deleted image is not kept again.
    assert!(retention::sweep(&place, &*records, &zone, decade)
        .unwrap()
        .images
        .is_empty());
    let again = process(&place, &inbox, &*records, &keys, &registry, "specialist-1", 9_000).unwrap();
    assert!(again.failed.is_empty() && again.images_kept == 0);
    assert!(expected.iter().all(|sha| !store.has(sha)));

    // The loader's log verifies.
    let key = konvert_crypto::keyfile::read_signing_key(&cfg.receipt_key)
        .unwrap()
        .verifying_key();
    let log_path = place.records_dir.join(LOADER_AUDIT_LOG);
    let bytes = std::fs::read(&log_path).unwrap();
    let head = konvert_crypto::audit::read_head(&konvert_crypto::audit::head_path(&log_path)).unwrap();
    assert!(konvert_crypto::audit::verify(&bytes, head.as_ref(), &[key]).is_intact());
}
