//! The consent canary (R18): a unique string is planted as a participant without consent
//! at every input — the plan file, the site's seating plan, and a site's packet (an essay
//! participant without consent whose blanks the site scanned by mistake: the string in the
//! scans' file names and in the images' metadata, a kit in no plan). The real path runs:
//! the site seals and pushes, the center receives, the loader imports the plan and
//! processes on PostgreSQL records, closes the exam, backs up; the region's mirror sends to
//! a federal node (two PgMirror nodes on two databases, pumped in-process; every message
//! byte kept as the link). Then the string is searched for, as bytes, and found nowhere:
//! not in the regional database or its dump, the loader's folder (audit logs, records
//! folder) or its backup, the link, the federal database or its dump. That it was really
//! at each input is asserted too, so the test can fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use konvert_crypto::token::TokenFile;
use konvert_crypto::SigningKey;
use konvert_edge::{push, seal_room, PushOptions};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{
    DayPlan, ExamKind, Form, FormId, PacketKind, PacketRef, PageIdentity, Participant, PlanParticipant, PlanRoom,
    PlanSite, RoomId, SeatingPlan, SiteKind,
};
use konvert_mirror::{Endpoint, Node, RecordKind, SenderLimits};
use konvert_records::mirror_outbox;
use konvert_records::mirror_pump::{pump, PumpNode};
use konvert_records::test_cluster::TestCluster;
use konvert_records::PgRecords;
use konvert_tests::{on_time_day, CenterFixture, LAST_ZONE};

const PASSPHRASE: &str = "loader passphrase 2026";
const CENTER: &str = env!("CARGO_BIN_EXE_readme-konvert-center");
const PG_DUMP: &str = "/usr/lib/postgresql/15/bin/pg_dump";
const REGION: Node = Node::Region(76);
/// The kit the site handed the participant without consent: in no plan.
const CANARY_KIT: u64 = 9_000_000_001;

fn loader(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(CENTER);
    c.arg("loader").args(args).arg("--config").arg(config);
    c.env("KONVERT_TEST_PIN", PASSPHRASE);
    c
}

fn run(mut c: Command) -> String {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{c:?}: {text}");
    text
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        if contains(path.as_os_str().as_encoded_bytes(), needle) {
            out.push(format!("{} (its name)", path.display()));
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(files_holding(&path, needle));
        } else if e.file_type().unwrap().is_file() && contains(&std::fs::read(&path).unwrap(), needle) {
            out.push(path.display().to_string());
        }
    }
    out
}

/// CRC-32 (IEEE) of a PNG chunk's type and data, as the format asks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Puts a `tEXt` chunk (`Comment`, `text`) right after the PNG's header chunk.
fn with_text_chunk(png: &[u8], text: &str) -> Vec<u8> {
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    assert_eq!(&png[12..16], b"IHDR");
    let mut data = b"Comment\0".to_vec();
    data.extend_from_slice(text.as_bytes());
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = b"tEXt".to_vec();
    body.extend_from_slice(&data);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    let mut out = png[..ihdr_end].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[ihdr_end..]);
    out
}

fn key(node: Node) -> SigningKey {
    let b = match node {
        Node::Federal => 200,
        Node::Region(c) => c,
    };
    SigningKey::from_seed(&[b; 32]).unwrap()
}

fn endpoint_of(me: Node) -> impl Fn() -> Endpoint + 'static {
    let peer = if me == Node::Federal { REGION } else { Node::Federal };
    move || {
        let peers = BTreeMap::from([(peer, key(peer).verifying_key())]);
        Endpoint::new(me, &key(me), peers, 1, 1..=1, SenderLimits::default()).unwrap()
    }
}

fn dump(url: &str) -> Vec<u8> {
    let out = Command::new(PG_DUMP).arg("--dbname").arg(url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.len() > 1000, "the dump holds the records");
    out.stdout
}

/// Every table's rows as text (bytea as hex), and the raw hex of the needle to look for.
fn rows_holding(url: &str, needle: &str) -> Vec<String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let tables: Vec<String> = c
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let hex = hex::encode(needle.as_bytes());
    let mut out = Vec::new();
    for t in tables {
        for r in c.query(&format!("SELECT x::text FROM {t} x"), &[]).unwrap() {
            let s: String = r.get(0);
            if s.contains(needle) || s.contains(&hex) {
                out.push(format!("{t}: {s:.200}"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_without_consent_is_in_no_records_no_backup_no_link_and_not_at_fis() {
    let Some(cluster) = TestCluster::shared() else { return };
    let canary = format!("CANARY-{}", hex::encode(rand::random::<[u8; 8]>()));
    let needle = canary.as_bytes();

    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let member = fx.issue_token("0101");
    let day = on_time_day();
    let center_dir = fx.center_dir();
    std::fs::create_dir_all(center_dir.join("loader")).unwrap();
    let specialist = TokenFile::create_specialist(
        &center_dir.join("loader/specialist.token"),
        "SP-0001",
        "Кузнецова М. И.",
        PASSPHRASE,
        konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    fx.officers
        .lock()
        .unwrap()
        .issue_as(
            &specialist,
            konvert_crypto::registry::TokenRole::CenterSpecialist,
            &["0101"],
            &[&day],
            konvert_edge::cli::now_unix_ms(),
        )
        .unwrap();
    let unlocked = specialist.unlock(PASSPHRASE).unwrap();
    let mut cfg = fx.register_days(&[(&member, "0101")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    konvert_center::center_key::wrap_for_more(
        &registry,
        &[fx.loader_key()],
        &[konvert_center::center_key::Holder::File {
            token: Box::new(specialist),
            key: unlocked,
        }],
        &center_dir.join("loader"),
    )
    .unwrap();
    let mut site = fx.enroll("0101", center.addr);
    site.seal_for(&day);

    // One room of three participants with consent.
    let room = RoomId::new("0001").unwrap();
    let date = day.parse().unwrap();
    let seating = synthetic_plan(&site.cfg.site, date, ExamKind::Ege, &[(&room, 3)], 100);

    // Input 2: the site's seating plan lists the canary without consent; the site reads
    // it without them.
    let mut seating_text = toml::to_string(&seating).unwrap();
    seating_text.push_str(&format!(
        "\n[[participants]]\ncode = \"{canary}\"\nroom = \"{room}\"\nseat = \"9Я\"\nkit = {CANARY_KIT}\nconsent = false\n"
    ));
    let day_cfg: konvert_edge::config::DayConfig = toml::from_str(&format!(
        "hot_folder = {:?}\nseating_plan = {:?}\n",
        fx.root.path().join("hot"),
        fx.root.path().join("seating.toml")
    ))
    .unwrap();
    std::fs::write(&day_cfg.seating_plan, &seating_text).unwrap();
    assert!(contains(&std::fs::read(&day_cfg.seating_plan).unwrap(), needle));
    let read = day_cfg.plan().unwrap();
    assert_eq!(read, seating, "the site's seating plan without the row without consent");

    // Input 3: the room's packets; the blanks hold the canary's pages, scanned by mistake,
    // named after them and with the string in the images' metadata.
    let (mut forms, blanks): (Vec<_>, Vec<_>) = room_pages(&seating, &room, 0)
        .into_iter()
        .partition(|p| matches!(p, PageIdentity::Form(_)));
    forms.push(PageIdentity::Form(FormId {
        form: Form::Ppe18Mash,
        site: site.cfg.site.clone(),
        room: room.clone(),
        date,
    }));
    let canary_seating = SeatingPlan {
        participants: vec![Participant {
            code: "x".into(),
            room: room.clone(),
            seat: "9Я".into(),
            kit: CANARY_KIT,
        }],
        ..seating.clone()
    };
    let canary_pages: Vec<PageIdentity> = room_pages(&canary_seating, &room, 0)
        .into_iter()
        .filter(|p| matches!(p, PageIdentity::Blank(_)))
        .collect();
    assert!(!canary_pages.is_empty());
    for (kind, pages) in [(PacketKind::Forms, forms), (PacketKind::Blanks, blanks)] {
        let dir = fx.root.path().join("scans").join(kind.code());
        let job = ScanJob {
            format: ScanFormat::Png,
            pages_per_file: 1,
            degrade: false,
            dpi: 200,
            seed: 1,
        };
        write_pages(&pages, &dir, kind.code(), job).unwrap();
        if kind == PacketKind::Blanks {
            let written = write_pages(
                &canary_pages,
                &dir,
                &format!("{canary}-blank"),
                ScanJob { seed: 2, ..job },
            )
            .unwrap();
            for f in written {
                let bytes = with_text_chunk(&std::fs::read(&f).unwrap(), &format!("participant {canary}"));
                assert!(
                    image::load_from_memory(&bytes).is_ok(),
                    "the PNG with its text chunk reads"
                );
                std::fs::write(&f, bytes).unwrap();
                assert!(contains(f.as_os_str().as_encoded_bytes(), needle));
                assert!(contains(&std::fs::read(&f).unwrap(), needle));
            }
        }
        let packet = PacketRef {
            site: site.cfg.site.clone(),
            date,
            exam: ExamKind::Ege,
            room: room.clone(),
            kind,
        };
        seal_room(
            &site.cfg,
            &site.outbox,
            &site.signer,
            &dir,
            packet,
            konvert_edge::cli::now_unix_ms(),
        )
        .unwrap();
    }
    let opts = PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    };
    assert_eq!(push(&site.cfg, site.outbox.clone(), opts).await.unwrap().delivered, 2);
    center.shutdown().await;

    // Input 1: the plan file lists the canary without consent.
    let plan = DayPlan {
        date,
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: false,
        sites: vec![PlanSite {
            code: site.cfg.site.clone(),
            kind: SiteKind::ExamSite,
            time_zone: LAST_ZONE.into(),
        }],
        rooms: vec![PlanRoom {
            site: site.cfg.site.clone(),
            code: room.clone(),
            oral: false,
        }],
        participants: seating
            .participants
            .iter()
            .map(|p| PlanParticipant {
                code: p.code.clone(),
                site: site.cfg.site.clone(),
                room: p.room.clone(),
                seat: p.seat.clone(),
                kit: p.kit,
                consent: true,
            })
            .chain([PlanParticipant {
                code: canary.clone(),
                site: site.cfg.site.clone(),
                room: room.clone(),
                seat: "9Я".into(),
                kit: CANARY_KIT,
                consent: false,
            }])
            .collect(),
        members: vec![],
    };
    let plan_file = fx.root.path().join("plan.toml");
    std::fs::write(&plan_file, plan.to_toml().unwrap()).unwrap();
    assert!(contains(&std::fs::read(&plan_file).unwrap(), needle));

    // The region's records on PostgreSQL with its mirror set up, and the federal node's.
    let (region_url, fed_url) = (cluster.database("canary_region"), cluster.database("canary_fed"));
    let region_records = Arc::new(PgRecords::connect(&region_url).unwrap());
    let mut region = PumpNode::new(region_records.clone(), REGION, endpoint_of(REGION)).unwrap();
    let fed_records = Arc::new(PgRecords::connect(&fed_url).unwrap());
    let mut fed = PumpNode::new(fed_records.clone(), Node::Federal, endpoint_of(Node::Federal)).unwrap();
    let config = center_dir.join("center.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("records_url = \"{region_url}\"\n{text}")).unwrap();

    let out = run({
        let mut c = loader(&config, &["import-plan"]);
        c.arg(&plan_file);
        c
    });
    assert!(out.contains("1 participant(s) without consent"), "{out}");
    assert!(out.contains("planning rows queued for ФИС"), "{out}");
    let token = center_dir.join("loader/specialist.token");
    let out = run(loader(
        &config,
        &[
            "process",
            "--pin-env",
            "KONVERT_TEST_PIN",
            "--token",
            token.to_str().unwrap(),
        ],
    ));
    println!("{out}");
    let out = run(loader(
        &config,
        &["close", "--date", &day, "--exam", "ege", "--by", "Администратор"],
    ));
    assert!(out.contains("results of participants queued for ФИС"), "{out}");

    // The appeals desk: a planned participant's appeal goes; one naming the canary is
    // refused before anything is logged.
    let document = fx.root.path().join("ppe-02.png");
    std::fs::write(&document, b"scanned appeal").unwrap();
    let appeal = |who: &str| {
        let mut c = loader(
            &config,
            &[
                "appeal",
                "--date",
                &day,
                "--exam",
                "ege",
                "--participant",
                who,
                "--kind",
                "procedural",
            ],
        );
        c.args(["--outcome", "rejected", "--by", "Белова", "--document"])
            .arg(&document);
        c
    };
    let out = run(appeal(&seating.participants[0].code));
    assert!(out.contains("queued for ФИС"), "{out}");
    let out = appeal(&canary).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in a stored plan"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let backup = fx.root.path().join("backup");
    run({
        let mut c = Command::new(CENTER);
        c.args(["backup", "--config"]).arg(&config).arg("--to").arg(&backup);
        c
    });

    let seen = pump(&mut region, &mut fed, 100).unwrap();
    assert!(seen.refused.is_empty(), "{:?}", seen.refused);
    // The exchange did carry the day: planning and results at ФИС.
    let planned = mirror_outbox::planned(
        &fed_records,
        76,
        konvert_records::ExamDay {
            date,
            exam: ExamKind::Ege,
        },
    )
    .unwrap();
    assert_eq!(planned.len(), 3);
    assert_eq!(
        mirror_outbox::held(&fed_records, 76, RecordKind::ProcessingResults)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        mirror_outbox::held(&fed_records, 76, RecordKind::AppealDecisions)
            .unwrap()
            .len(),
        1
    );

    // Nowhere. (The plain PostgreSQL client blocks: off the runtime's threads.)
    let (r, f, c) = (region_url.clone(), fed_url.clone(), canary.clone());
    let (region_rows, fed_rows, canary_pages) = tokio::task::spawn_blocking(move || {
        // The site's mistake did reach the loader: the canary's pages are registered, as
        // pages of a kit in no plan.
        let findings = konvert_records::Records::findings(&PgRecords::connect(&r).unwrap()).unwrap();
        let canary_pages = findings
            .iter()
            .filter(|f| matches!(f.finding.kind, konvert_records::FindingKind::NotInPlan { kit } if kit == CANARY_KIT))
            .count();
        (rows_holding(&r, &c), rows_holding(&f, &c), canary_pages)
    })
    .await
    .unwrap();
    assert!(canary_pages > 0, "the canary's blanks were registered at the center");
    assert_eq!(region_rows, Vec::<String>::new(), "regional records");
    assert!(!contains(&dump(&region_url), needle), "regional dump");
    assert_eq!(
        files_holding(&center_dir, needle),
        Vec::<String>::new(),
        "the center's and loader's folders"
    );
    assert_eq!(files_holding(&backup, needle), Vec::<String>::new(), "the backup");
    let link: Vec<u8> = seen.link.concat();
    assert!(link.len() > 1000, "the link carried the day");
    assert!(!contains(&link, needle), "the link");
    assert_eq!(fed_rows, Vec::<String>::new(), "ФИС records");
    assert!(!contains(&dump(&fed_url), needle), "ФИС dump");
}
