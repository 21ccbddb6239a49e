//! `konvert demo`: a center and three exam sites on this machine, over real QUIC with
//! mutual TLS on loopback — every step the real one, on generated scans.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::now_unix_ms;
use crate::quick_authority::QuickAuthority;
use anyhow::Context;
use konvert_center::provision::{self, CenterFacts};
use konvert_crypto::registry::RegistryStore;
use konvert_crypto::token::TokenFile;
use konvert_edge::day::check_table;
use konvert_edge::intake::{scan_recognizer, Intake};
use konvert_edge::rooms::{day_rooms, seal_room_state, SealDesk};
use konvert_edge::{push, PushOptions, SiteConfig};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{ExamKind, PageIdentity, RoomId};
use konvert_replication::{Outbox, OutboxState};

use crate::stats::quantile;

/// The demo's sites: (code, member, IANA time zone).
pub const DEMO_SITES: [(&str, &str, &str); 3] = [
    ("0101", "Иванова А. П.", "Europe/Moscow"),
    ("0202", "Петров С. В.", "Asia/Novosibirsk"),
    ("0303", "Сидорова Е. Н.", "Asia/Kamchatka"),
];
const DEMO_PIN: &str = "493817";
/// The demo specialist's passphrase: a specialist's token opens every scan, so it takes a
/// passphrase of at least 12 characters, not a PIN.
const DEMO_PASSPHRASE: &str = "demo loader passphrase";
/// The center's specialists (R5: the center key on at least two people's tokens): token
/// id, person, token file in the loader's folder.
const DEMO_SPECIALISTS: [(&str, &str, &str); 2] = [
    ("SP-0001", "Кузнецова М. И. (РЦОИ)", "specialist.token"),
    ("SP-0002", "Лебедев А. Р. (РЦОИ)", "specialist-2.token"),
];
/// The demo's exam day and, five days before it, its readiness check: chosen so that
/// every demo site still has most of the day before its 23:59 — a fixed date long past
/// would put every site at "will miss" (and its packets late) in a run that goes well.
fn demo_days() -> &'static (String, String) {
    static DAYS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    DAYS.get_or_init(|| {
        // The easternmost demo site's 23:59 comes first: today there, or tomorrow when
        // fewer than three hours are left of today.
        let zone = jiff::tz::TimeZone::get("Asia/Kamchatka").unwrap_or(jiff::tz::TimeZone::UTC);
        let now = zone.to_datetime(jiff::Timestamp::now());
        let mut day = now.date();
        if now.hour() >= 21 {
            day = day.tomorrow().unwrap_or(day);
        }
        let readiness = day.checked_sub(jiff::Span::new().days(5)).unwrap_or(day);
        (readiness.to_string(), day.to_string())
    })
}

/// The demo's readiness day, YYYY-MM-DD.
fn readiness_day() -> &'static str {
    &demo_days().0
}

/// The demo's exam day, YYYY-MM-DD.
fn exam_day() -> &'static str {
    &demo_days().1
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Rooms per site.
    pub rooms: usize,
    /// Participants seated per room.
    pub participants: usize,
    /// Work in this folder instead of a temporary one (kept).
    pub dir: Option<PathBuf>,
    /// Keep the temporary folder.
    pub keep: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rooms: 4,
            participants: 10,
            dir: None,
            keep: false,
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Packets sealed and delivered.
    pub packets: usize,
    /// The progress lines the demo said (printed with `print`).
    /// The loader's remark to the site whose room lost a blank was answered by its version 2,
    /// which the loader then loaded.
    pub remark_answered_by_v2: bool,
    /// Pages the loader's records hold a stage for.
    pub pages_processed: usize,
    pub said: Vec<String>,
    /// Packets the center holds.
    pub stored: usize,
    /// Envelope bytes delivered.
    pub bytes: u64,
    /// Wall time of the concurrent push.
    pub push_time: Duration,
    /// Seal → receipt latencies, seconds.
    pub latencies: Vec<f64>,
    /// Receipts that verified against the center's receipt key.
    pub receipts_verified: usize,
    /// Where everything is (if kept).
    pub dir: PathBuf,
    /// Prometheus text from the center's /metrics endpoint at the end.
    pub metrics_text: String,
    /// From a token's block to every connected station holding the registry that says so.
    pub registry_propagation: Duration,
    /// Packets the loader decrypted and verified at the end.
    pub unpacked: usize,
    /// Packets the loader held back for review (signed with the compromised token).
    pub held_for_review: usize,
}

/// The demo center's ingress, Mbit/s, which its bandwidth broker shares out.
const DEMO_INGRESS_MBIT: f64 = 100.0;

/// The next event any station reports (30 s at most).
async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, konvert_edge::push::PushEvent)>,
) -> anyhow::Result<(usize, konvert_edge::push::PushEvent)> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .ok()
        .flatten()
        .context("the stations stopped reporting")
}

/// What the compromise drill found.
struct Drill {
    version: u64,
    propagation: Duration,
    refusal: konvert_replication::RejectReason,
    flagged: usize,
}

/// The last site's token is reported compromised while every station is connected: the
/// officers block it and publish; the drill times how long until every station holds the
/// new registry, then shows the token's next packet refused and its earlier ones flagged.
async fn compromise_drill(
    sites: &[(SiteConfig, Arc<Outbox>)],
    officers: &mut QuickAuthority,
    center_cfg: &konvert_center::CenterConfig,
    say: &dyn Fn(String),
) -> anyhow::Result<Drill> {
    use konvert_edge::push::PushEvent;
    let more = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut pushes = Vec::new();
    for (i, (cfg, outbox)) in sites.iter().enumerate() {
        let tx = tx.clone();
        let opts = PushOptions {
            max_wait: Duration::from_secs(60),
            on_event: Arc::new(move |ev| {
                let _ = tx.send((i, ev));
            }),
            more_coming: Some(more.clone()),
            expected: None,
        };
        let (cfg, outbox) = (cfg.clone(), outbox.clone());
        pushes.push(tokio::spawn(async move { push(&cfg, outbox, opts).await }));
    }
    let mut connected = std::collections::HashSet::new();
    while connected.len() < sites.len() {
        if let (i, PushEvent::Connected) = next_event(&mut rx).await? {
            connected.insert(i);
        }
    }
    // Let each station's registry watch reach the center before the block.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cfg, outbox) = sites.last().context("no sites")?;
    let token = TokenFile::read(cfg.token_file()?)?;
    let blocked_at = Instant::now();
    officers.draft_mut().set_status(
        &token.token_id,
        konvert_crypto::registry::TokenStatus::Compromised,
        None,
        now_unix_ms(),
    )?;
    let version = officers.publish(now_unix_ms())?.decode_body()?.version;
    let mut holding = std::collections::HashSet::new();
    while holding.len() < sites.len() {
        if let (i, PushEvent::Registry { version: v }) = next_event(&mut rx).await? {
            if v == version {
                holding.insert(i);
            }
        }
    }
    let propagation = blocked_at.elapsed();
    say(format!(
        "▸ token {} reported compromised: blocked, registry v{version} published; all {} connected stations hold it after {:.2} s",
        token.token_id,
        sites.len(),
        propagation.as_secs_f64()
    ));
    // The token's holder seals once more (the station's clock is no defence).
    let signer = token.unlock(DEMO_PIN)?;
    let room = cfg.data_dir.join("drill-room");
    crate::rooms::write_room(&room, 99, 2, 20_000)?;
    let packet = konvert_exam::PacketRef {
        site: cfg.site.clone(),
        date: exam_day().parse()?,
        exam: ExamKind::Ege,
        room: "0099".parse()?,
        kind: konvert_exam::PacketKind::Blanks,
    };
    konvert_edge::seal_room(cfg, outbox, &signer, &room, packet, now_unix_ms() - 3_600_000)?;
    let refusal = loop {
        if let (_, PushEvent::Rejected { reason, .. }) = next_event(&mut rx).await? {
            break reason;
        }
    };
    say(format!(
        "  its next packet (claiming to be sealed an hour ago) is refused: {}",
        refusal.plain_words()
    ));
    more.store(false, std::sync::atomic::Ordering::Release);
    for p in pushes {
        p.await??;
    }
    let flagged = konvert_center::review::ReviewDesk::open(&center_cfg.data_dir)?
        .list()?
        .len();
    say(format!(
        "  {flagged} packet(s) it signed earlier are flagged for review (konvert-center review)"
    ));
    Ok(Drill {
        version,
        propagation,
        refusal,
        flagged,
    })
}

/// Runs the demo and returns its report; `print` narrates it.
pub async fn run(opts: &DemoOptions, print: bool) -> anyhow::Result<DemoReport> {
    let mut temp = None;
    let root = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            let t = tempfile::Builder::new().prefix("konvert-demo-").tempdir()?;
            let root = t.path().to_owned();
            temp = Some(t);
            root
        }
    };
    let said = std::cell::RefCell::new(Vec::new());
    let say = |s: String| {
        if print {
            println!("{s}");
        }
        said.borrow_mut().push(s);
    };
    let center_dir = root.join("center");
    let init = provision::init_center(
        &center_dir,
        "center.konvert",
        "127.0.0.1:0".parse()?,
        Some("127.0.0.1:0".parse()?),
    )?;
    let folder = DemoFolder {
        root: root.clone(),
        kept: opts.keep || opts.dir.is_some(),
    };
    say(format!(
        "▸ center: CA, TLS certificate and receipt key in {} (no decryption key on the receiver)",
        folder.show(&center_dir)
    ));

    // The security officer issues one token per member — through every status the
    // regulations name, bound to its site and to the readiness and exam days — and
    // publishes the signed key registry where the center takes it.
    let mut center_cfg = init.config.clone();
    // The center brokers its ingress among the sites, as a regional center would.
    center_cfg.ingress_mbit = Some(DEMO_INGRESS_MBIT);
    // Each site's 23:59 is its own: the center judges late packets in the site's zone.
    for (site, _, zone) in DEMO_SITES {
        center_cfg.site_time_zones.insert(site.to_owned(), zone.parse()?);
    }
    let mut officers = QuickAuthority::before_center_key(&center_cfg, now_unix_ms())?;
    for (site, holder, _) in DEMO_SITES {
        let site_dir = root.join("sites").join(site);
        std::fs::create_dir_all(&site_dir)?;
        let token = TokenFile::create(
            &site_dir.join("member.token"),
            &format!("TK-{site}"),
            holder,
            DEMO_PIN,
            konvert_crypto::token::KdfParams::default(),
        )?;
        officers.issue(&token, site, &[readiness_day(), exam_day()], now_unix_ms())?;
    }
    // Two center specialists, two people, each with a token (R5). The center's decryption
    // key is born on the loader's workstation, wrapped at once to both tokens, and never
    // written bare: from now on envelopes open only after a specialist's PIN.
    let sites_codes: Vec<&str> = DEMO_SITES.iter().map(|(code, _, _)| *code).collect();
    let mut holders = Vec::new();
    std::fs::create_dir_all(center_dir.join("loader"))?;
    for (id, person, file) in DEMO_SPECIALISTS {
        let token = TokenFile::create_specialist(
            &center_dir.join("loader").join(file),
            id,
            person,
            DEMO_PASSPHRASE,
            konvert_crypto::token::KdfParams::default(),
        )?;
        officers.issue_as(
            &token,
            konvert_crypto::registry::TokenRole::CenterSpecialist,
            &sites_codes,
            &[readiness_day(), exam_day()],
            now_unix_ms(),
        )?;
        let key = token.unlock(DEMO_PASSPHRASE)?;
        holders.push(konvert_center::center_key::Holder::File {
            token: Box::new(token),
            key,
        });
    }
    let before_key = officers.publish(now_unix_ms())?.decode_body()?;
    let public_out = root.join("center-key.pub");
    let born = konvert_center::center_key::new_key(&before_key, &holders, &center_dir.join("loader"), &public_out)?;
    let audit = konvert_center::loader_audit::LoaderAudit::open(&center_cfg)?;
    audit.born(&born.public, &born.holders)?;
    audit.finish();
    drop(audit);
    // The staff carry its public half to the receiver and the officers.
    provision::install_recipient_key(&center_dir, &konvert_center::center_key::read_public(&public_out)?)?;
    officers.draft_mut().rotate_center_key(born.public, now_unix_ms())?;
    officers.publish(now_unix_ms())?;
    say(format!(
        "▸ security officer: {} member tokens and 2 specialists' tokens Loaded → Received → Bound → Statement printed → Issued; key registry v1 published",
        DEMO_SITES.len()
    ));
    say(format!(
        "▸ loader: center key {} born on the loader's workstation, wrapped at once for {} — no bare copy anywhere; the receiver and the officers took its public half (registry v2)",
        born.public.key_id(),
        born.holders
            .iter()
            .map(|(id, person)| format!("{id} ({person})"))
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let center = konvert_center::serve(&center_cfg).await?;
    let metrics_at = center
        .metrics_addr
        .map(|a| format!("http://{a}/metrics"))
        .unwrap_or_else(|| "off".into());
    say(format!(
        "▸ center listening on {} (QUIC, mutual TLS; {DEMO_INGRESS_MBIT} Mbit/s of ingress shared out, least slack first); metrics at {metrics_at}",
        center.addr
    ));
    if let Some(a) = center.metrics_addr {
        say(format!(
            "▸ monitoring page for the center head at http://{a}/monitor (plain HTML, refreshes itself)"
        ));
    }

    // Each site: a station certificate, its config, scans of its rooms, sealed.
    let facts = CenterFacts {
        address: center.addr.to_string(),
        name: center_cfg.name.clone(),
        recipient_public: born.public,
        receipt_public: init.receipt_public,
    };
    let date = exam_day().parse()?;
    let mut sites = Vec::new();
    let mut demo_sites = Vec::new();
    let mut pushes = Vec::new();
    let started = Instant::now();
    for (i, (site, holder, zone)) in DEMO_SITES.iter().enumerate() {
        let site_dir = root.join("sites").join(site);
        let toml = provision::enroll_station(&center_dir, site, &facts, &site_dir)?;
        // The station trusts registries signed by the officers, and no one else's.
        RegistryStore::open(&site_dir.join("data"))?.anchor(officers.authority())?;
        let text = std::fs::read_to_string(&toml)?
            .replace("time_zone = \"Europe/Moscow\"", &format!("time_zone = \"{zone}\""));
        std::fs::write(&toml, text)?;
        // The seating plan from the center, and the scanner's hot folder.
        let rooms: Vec<RoomId> = (1..=opts.rooms)
            .map(|r| format!("{r:04}").parse())
            .collect::<Result<_, _>>()?;
        let seats: Vec<(&RoomId, usize)> = rooms.iter().map(|r| (r, opts.participants)).collect();
        let plan = synthetic_plan(
            &site.parse()?,
            date,
            ExamKind::Ege,
            &seats,
            4_000_000_000 + i as u64 * 100_000,
        );
        std::fs::write(site_dir.join("plan.toml"), toml::to_string(&plan)?)?;
        let hot = site_dir.join("scans");
        std::fs::create_dir_all(&hot)?;
        let mut text = std::fs::read_to_string(&toml)?;
        // The demo runs on today's exam day at any hour: it sends at once, where a real site
        // holds blanks and logs until the regulations' windows open (11:00, 10:30 local).
        text.push_str(
            "\n[day]\nhot_folder = \"scans\"\nseating_plan = \"plan.toml\"\nsettle_ms = 200\n\
             \n[push]\nwindows = false\n",
        );
        std::fs::write(&toml, text)?;
        let cfg = SiteConfig::load(&toml)?;
        let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
        let signer = TokenFile::read(cfg.token_file()?)?.unlock(DEMO_PIN)?;
        let day = cfg.day()?;
        if i == 0 {
            readiness(
                &cfg,
                &outbox,
                &signer,
                &center_cfg,
                &center_dir.join("loader"),
                &folder,
                &say,
            )
            .await?;
        }

        // The scanner: degraded pages, four per multi-page G4 TIFF, the last room as PNG.
        // The last room of the first site lost one answer blank, so it needs an override (and
        // the center answers it with a remark, which the site answers with a version 2).
        let started = Instant::now();
        let mut page_count = 0;
        for (r, room) in rooms.iter().enumerate() {
            let absent = r % 3; // a few absent participants
            let mut pages = room_pages(&plan, room, absent);
            if i == 0 && r + 1 == rooms.len() {
                pages.pop();
            }
            page_count += pages.len();
            let format = if r + 1 == rooms.len() {
                ScanFormat::Png
            } else {
                ScanFormat::TiffG4
            };
            let job = ScanJob {
                format,
                pages_per_file: 4,
                degrade: true,
                dpi: 300,
                seed: (i * 100 + r) as u64,
            };
            // Forms are scanned as their own batch, so they travel first in their own packet.
            let (forms, blanks): (Vec<_>, Vec<_>) = pages.into_iter().partition(|p| matches!(p, PageIdentity::Form(_)));
            write_pages(&forms, &hot, &format!("room{room}-forms"), job)?;
            write_pages(&blanks, &hot, &format!("room{room}-blanks"), job)?;
        }
        let scanned = started.elapsed();

        // The edge takes the hot folder, recognizes every page, checks each room.
        let started = Instant::now();
        let mut intake = Intake::for_day(&cfg)?;
        let mut waited = Instant::now();
        loop {
            let events = intake.poll(now_unix_ms())?;
            if !events.is_empty() {
                waited = Instant::now();
            }
            if !intake.is_settling() && waited.elapsed() > Duration::from_millis(day.settle_ms + 100) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (r, room) in rooms.iter().enumerate() {
            intake
                .journal()
                .set_attendance(room, u32::try_from(opts.participants - r % 3)?)?;
        }
        let recognized = started.elapsed();
        let day_rooms = day_rooms(&plan, &intake)?;
        let unread: u32 = day_rooms.iter().map(|r| r.check.counts.unreadable).sum();
        say(format!(
            "▸ site {site} ({holder}, {zone}): {page_count} pages scanned in {:.1} s, recognized in {:.1} s ({} unreadable)",
            scanned.as_secs_f64(),
            recognized.as_secs_f64(),
            unread
        ));
        if print {
            print!("{}", check_table(&day_rooms, None).replace("room ", "    room "));
        }
        let desk = SealDesk {
            cfg: &cfg,
            outbox: &outbox,
            signer: &signer,
            plan: &plan,
            intake: &intake,
        };
        for r in &day_rooms {
            let reason = (!r.check.is_complete()).then_some("demo: the missing blank is sent in the next packet");
            seal_room_state(&desk, r, reason, now_unix_ms())
                .with_context(|| format!("sealing room {} at site {site}", r.check.room))?;
        }
        // Each site pushes as soon as its rooms are sealed, while the next site scans.
        let (c, o) = (cfg.clone(), outbox.clone());
        let push_opts = PushOptions {
            max_wait: Duration::from_secs(120),
            ..Default::default()
        };
        pushes.push(tokio::spawn(async move { push(&c, o, push_opts).await }));
        demo_sites.push(crate::demo_center_day::DemoSite {
            cfg: cfg.clone(),
            outbox: outbox.clone(),
            plan: plan.clone(),
            signer: TokenFile::read(cfg.token_file()?)?.unlock(DEMO_PIN)?,
            zone: (*zone).to_owned(),
        });
        sites.push((cfg, outbox));
    }
    for p in pushes {
        p.await??;
    }
    let push_time = started.elapsed();

    let receipt_key = init.receipt_public;
    let (mut packets, mut bytes, mut verified, mut latencies) = (0, 0u64, 0, Vec::new());
    for (_, outbox) in &sites {
        for e in outbox.entries()? {
            if konvert_edge::readiness::is_test_packet(&e) {
                continue; // readiness, not the exam day
            }
            packets += 1;
            if let OutboxState::Delivered { receipt } = &e.state {
                if receipt.verify_for(&receipt_key, &e.offer).is_ok() {
                    verified += 1;
                }
                bytes += e.offer.size;
                latencies.push(
                    receipt
                        .body
                        .received_at_unix_ms
                        .saturating_sub(e.offer.sealed_at_unix_ms) as f64
                        / 1000.0,
                );
            }
        }
    }
    let stored = center.inbox.records()?.iter().filter(|r| !r.test_packet).count();
    let drill = compromise_drill(&sites, &mut officers, &center_cfg, &say).await?;
    // The loader decrypts what arrived, as on its offline workstation; what the
    // compromised token signed stays sealed for review.
    let registry = RegistryStore::open(&center_cfg.data_dir)?
        .last_known()?
        .context("the center holds no key registry")?;
    let unpacked_dir = root.join("loader-packets");
    let unpacked = konvert_center::unpack::unpack(
        &center_cfg.data_dir,
        &center.inbox,
        &loader_keys(&center_dir.join("loader"), &registry)?,
        &registry,
        &konvert_center::unpack::Filter::default(),
        &unpacked_dir,
    )?;
    anyhow::ensure!(
        unpacked.failed.is_empty() && unpacked.unpacked.len() + unpacked.held_for_review.len() == stored,
        "the loader could not open every stored packet: {:?}",
        unpacked.failed
    );
    // The center's day after the receiver: the loader processes, answers go back, a remark
    // is answered by a version 2.
    let specialist =
        TokenFile::read(&center_dir.join("loader").join(DEMO_SPECIALISTS[0].2))?.unlock(DEMO_PASSPHRASE)?;
    let center_day = crate::demo_center_day::run(
        &root,
        &center_cfg,
        &center,
        &registry,
        &loader_keys(&center_dir.join("loader"), &registry)?,
        &specialist,
        &demo_sites,
        &say,
    )
    .await?;
    let metrics_text = match center.metrics_addr {
        Some(a) => scrape(a).await.unwrap_or_default(),
        None => String::new(),
    };
    center.shutdown().await;
    if print {
        let secs = push_time.as_secs_f64().max(1e-9);
        println!();
        println!("konvert demo — report");
        println!(
            "  packets sealed           {packets} ({} sites × {} rooms × forms + blanks)",
            DEMO_SITES.len(),
            opts.rooms
        );
        println!("  packets stored at center {stored} (each exactly once)");
        println!("  bytes delivered          {:.1} MB", bytes as f64 / 1e6);
        println!(
            "  wall time                {secs:.1} s (scan → recognize → check → seal → push; each site pushes once sealed)"
        );
        println!(
            "  delivery latency         p50 {:.3} s, p99 {:.3} s (sealed → signed receipt)",
            quantile(&latencies, 0.5).unwrap_or(0.0),
            quantile(&latencies, 0.99).unwrap_or(0.0)
        );
        println!(
            "  receipts verified        {verified}/{packets} {}",
            if verified == packets { "✓ all" } else { "✗ NOT ALL" }
        );
        println!(
            "  token compromised        {} connected stations held registry v{} {:.2} s after the block; \
             its next packet refused ({}); {} earlier packet(s) flagged for review",
            sites.len(),
            drill.version,
            drill.propagation.as_secs_f64(),
            drill.refusal.as_str(),
            drill.flagged
        );
        println!(
            "  loader                   {} packets decrypted and verified ({:.1} MB of scans) into {}; {} held for review",
            unpacked.unpacked.len(),
            unpacked.unpacked.iter().map(|(_, b)| *b).sum::<u64>() as f64 / 1e6,
            unpacked_dir.display(),
            unpacked.held_for_review.len()
        );
        println!(
            "  processing               {} packet versions registered; pages: {}; {} finding(s); remark answered by v2: {}",
            center_day.registered,
            center_day
                .stages
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            center_day.findings,
            if center_day.answered_by_v2 { "✓" } else { "✗" }
        );
        println!("  center store             {}", center_dir.join("data/store").display());
        println!(
            "  site outboxes            {}",
            root.join("sites/<site>/data").display()
        );
        if opts.keep || opts.dir.is_some() {
            println!("  kept in                  {}", root.display());
        } else {
            println!("  (temporary folder removed; run with --keep to look at it)");
        }
    }
    let report = DemoReport {
        packets,
        stored,
        bytes,
        push_time,
        latencies,
        receipts_verified: verified,
        dir: root.clone(),
        metrics_text,
        registry_propagation: drill.propagation,
        unpacked: unpacked.unpacked.len(),
        held_for_review: unpacked.held_for_review.len(),
        remark_answered_by_v2: center_day.answered_by_v2,
        pages_processed: center_day.stages.values().sum(),
        said: said.borrow().clone(),
    };
    if let (true, Some(t)) = (opts.keep, temp) {
        let _kept = t.keep();
    }
    anyhow::ensure!(
        verified == packets && stored == packets,
        "not every packet was delivered and receipted"
    );
    Ok(report)
}

/// Fetches `/metrics` over plain HTTP/1.1 (the endpoint is loopback-only).
pub async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8(buf)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("metrics response has no header end")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "metrics endpoint answered: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_owned())
}

/// The loader: the specialist's token, checked against the registry, unlocked by PIN,
/// and the center keys wrapped for it (the active one first).
fn loader_keys(
    loader_dir: &std::path::Path,
    registry: &konvert_crypto::registry::RegistryBody,
) -> anyhow::Result<Vec<konvert_crypto::RecipientSecretKey>> {
    let specialist_path = loader_dir.join(DEMO_SPECIALISTS[0].2);
    let specialist = TokenFile::read(&specialist_path)?;
    konvert_center::loader::check_specialist(registry, &specialist, &specialist_path)?;
    let key = specialist.unlock(DEMO_PASSPHRASE)?;
    Ok(konvert_center::loader::unwrap_for(
        loader_dir,
        registry,
        konvert_crypto::loader_key::Specialist::File(&key),
        now_unix_ms(),
    )?)
}

/// The demo's folder, and whether it outlives the demo.
struct DemoFolder {
    root: std::path::PathBuf,
    kept: bool,
}

impl DemoFolder {
    /// A path inside the folder as the demo names it: only where it will still be after
    /// the demo (a temporary folder is removed at its end).
    fn show(&self, path: &std::path::Path) -> String {
        if self.kept {
            path.display().to_string()
        } else {
            "the demo's temporary folder (kept with --keep)".to_owned()
        }
    }
}

/// Technical readiness at the first site, days before the exam in real life: a test
/// packet of printed blanks goes to the center, the loader previews it, the staff confirm
/// it, and the signed verdict comes back to the site.
async fn readiness(
    cfg: &SiteConfig,
    outbox: &Arc<Outbox>,
    signer: &konvert_crypto::SigningKey,
    center_cfg: &konvert_center::CenterConfig,
    loader_dir: &std::path::Path,
    folder: &DemoFolder,
    say: &dyn Fn(String),
) -> anyhow::Result<()> {
    use konvert_edge::readiness::{fetch_verdicts, seal_test_packet, test_statuses, TestRequest};
    let scans = folder.root.join("readiness").join(cfg.site.as_str());
    let room = RoomId::new(konvert_edge::readiness::TEST_ROOM)?;
    let date = readiness_day().parse()?;
    let plan = synthetic_plan(&cfg.site, date, ExamKind::Ege, &[(&room, 1)], 9_000_000);
    let job = ScanJob {
        format: ScanFormat::TiffG4,
        pages_per_file: 8,
        degrade: true,
        dpi: 300,
        seed: 99,
    };
    write_pages(&room_pages(&plan, &room, 0), &scans, "test", job)?;
    let request = TestRequest {
        scans: &scans,
        date,
        exam: ExamKind::Ege,
    };
    let recognizer = scan_recognizer(cfg.page_budget());
    let test = seal_test_packet(cfg, outbox, signer, &request, &recognizer, now_unix_ms())?;
    let opts = PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    };
    let report = push(cfg, outbox.clone(), opts).await?;
    anyhow::ensure!(
        report.rejected.is_empty(),
        "the test packet was refused: {:?}",
        report.rejected
    );
    let desk = konvert_center::test_packets::TestDesk::open(&center_cfg.data_dir)?;
    let packet = desk.find(&test.sealed.entry.offer.packet_id, None)?;
    let registry = RegistryStore::open(&center_cfg.data_dir)?
        .last_known()?
        .context("the center holds no key registry")?;
    let recipient = loader_keys(loader_dir, &registry)?.remove(0);
    let (index, previews) = konvert_center::preview::render_previews(
        &center_cfg.data_dir,
        std::slice::from_ref(&packet),
        &recipient,
        &registry,
        &folder.root.join("readiness-preview"),
    )?;
    let pages = previews.first().and_then(|p| p.pages.as_ref().ok()).map_or(0, Vec::len);
    let problems = previews.first().map_or(0, |p| p.problem_pages());
    let key = konvert_crypto::keyfile::read_signing_key(&center_cfg.receipt_key)?;
    desk.judge(
        &packet,
        konvert_replication::Verdict::Confirmed,
        "",
        "Кузнецова М. И. (РЦОИ)",
        &key,
        now_unix_ms(),
    )?;
    fetch_verdicts(cfg, outbox).await?;
    let shown = test_statuses(outbox)?
        .into_iter()
        .last()
        .map(|s| s.to_string())
        .unwrap_or_default();
    // The preview page is named only where it will still be after the demo.
    let page = folder.show(&index);
    say(format!(
        "▸ readiness at site {}: test packet of {} pages delivered; the loader previewed it \
         ({pages} pages, {problems} with a quality problem, {page}); the verdict came back: {shown}",
        cfg.site,
        test.pages.len(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_day_leaves_every_demo_site_time_before_its_2359() {
        let now = i64::try_from(now_unix_ms()).unwrap_or(i64::MAX);
        let exam: konvert_exam::ExamDate = exam_day().parse().unwrap();
        let readiness: konvert_exam::ExamDate = readiness_day().parse().unwrap();
        assert!(readiness < exam);
        for (site, _, zone) in DEMO_SITES {
            let deadline = konvert_exam::SiteZone::new(zone)
                .unwrap()
                .deadline_unix_ms(exam)
                .unwrap();
            assert!(
                deadline - now > 2 * 3_600_000,
                "site {site} ({zone}): the demo's exam day {exam} ends in {} s",
                (deadline - now) / 1000
            );
        }
    }
}
