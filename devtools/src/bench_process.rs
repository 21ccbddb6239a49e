//! `konvert bench process`: the loader's work on a sample exam day — decrypt, verify,
//! recognize and register every page — projected to the 16,000-participant day against
//! the goal of everything up to verification within 2 hours on one 2-core machine
//! (stricter than the regulations' 2 hours with several loading stations, 002:8433,
//! 8577). Also decrypt-plus-verify throughput against raw ring AES-256-GCM plus SHA-256
//! over the same bytes, in the same run (goal ≥ 50 %).
//!
//! The sample day is built without a network: real rendered and degraded 300 dpi pages
//! with real barcodes, sealed into real envelopes by a member key, committed to a real
//! inbox with signed receipts; then `processing::process` runs on it as the loader does.

use std::path::Path;
use std::time::Instant;

use konvert_center::processing::{process, Workplace};
use konvert_crypto::envelope::{self, SealRequest};
use konvert_crypto::registry::{
    Authority, CenterKeyRecord, CenterKeyState, RegistryBody, TokenRecord, TokenRole, TokenStatus,
};
use konvert_crypto::{RecipientSecretKey, SigningKey};
use konvert_exam::scan::{room_pages, synthetic_plan, write_pages, ScanFormat, ScanJob};
use konvert_exam::{
    ArchiveReader, DayPlan, ExamKind, PacketKind, PacketRef, PageIdentity, PlanParticipant, PlanRoom, PlanSite, RoomId,
    SiteId, SiteKind,
};
use konvert_records::{Records, SledRecords};
use konvert_replication::{Inbox, InboxRecord, Offer, Receipt, ReceiptBody};

/// Participants of the regulations' large center (002:8211, 8459).
const REGION_DAY: f64 = 16_000.0;
/// The goal for everything up to verification, seconds.
const GOAL_SECONDS: f64 = 2.0 * 3600.0;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct ProcessBench {
    /// Participants in the sample day.
    pub participants: usize,
    /// Participants per room.
    pub per_room: usize,
}

/// Seals `dir` as `packet` into `inbox` with a signed receipt, as the receiver would.
fn store(
    inbox: &Inbox,
    dir: &Path,
    packet: PacketRef,
    member: &SigningKey,
    center: &RecipientSecretKey,
    receipt_key: &SigningKey,
) -> anyhow::Result<u64> {
    let files = konvert_exam::list_scans(dir)?;
    let packet_id = packet.packet_id();
    let metadata = postcard::to_allocvec(&packet)?;
    let recipients = [center.public_key()];
    let now = crate::clock::now_unix_ms();
    let request = SealRequest {
        packet_id: &packet_id,
        version: 1,
        sender_site: packet.site.as_str(),
        sealed_at_unix_ms: now,
        metadata: &metadata,
        recipients: &recipients,
    };
    let mut sealed = Vec::new();
    let summary = envelope::seal(
        &request,
        member,
        ArchiveReader::new(packet.clone(), 1, dir, &files),
        &mut sealed,
    )?;
    let offer = Offer {
        packet_id: packet_id.clone(),
        version: 1,
        size: summary.envelope_bytes,
        digest: summary.digest,
        priority: packet.kind.priority(),
        sealed_at_unix_ms: now,
        deadline_unix_ms: u64::MAX / 2,
    };
    let mut staged = inbox.fresh_staging(&offer)?;
    inbox.write_staged(&mut staged, 0, &sealed)?;
    let body = ReceiptBody {
        packet_id,
        version: 1,
        site: packet.site.as_str().to_owned(),
        digest: summary.digest,
        bytes: summary.envelope_bytes,
        received_at_unix_ms: now,
        center_key: receipt_key.key_id(),
    };
    let record = InboxRecord {
        receipt: Receipt::sign(body, receipt_key)?,
        signer: member.key_id(),
        sealed_at_unix_ms: now,
        test_packet: false,
        late: false,
        packet: Some(packet.clone()),
    };
    inbox.commit(&staged.path, &record)?;
    Ok(summary.envelope_bytes)
}

/// Runs the benchmark and prints its report.
pub fn run(b: &ProcessBench) -> anyhow::Result<()> {
    let root = tempfile::Builder::new().prefix("konvert-bench-process-").tempdir()?;
    let date: konvert_exam::ExamDate = "2026-06-01".parse()?;
    let site = SiteId::new("0101")?;
    let rooms: Vec<RoomId> = (1..=b.participants.div_ceil(b.per_room.max(1)))
        .map(|r| RoomId::new(&format!("{r:04}")))
        .collect::<Result<_, _>>()?;
    let seats: Vec<(&RoomId, usize)> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r, b.per_room.min(b.participants - i * b.per_room)))
        .collect();
    let seating = synthetic_plan(&site, date, ExamKind::Ege, &seats, 5_000_000_000);
    let plan = DayPlan {
        date,
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: false,
        sites: vec![PlanSite {
            code: site.clone(),
            kind: SiteKind::ExamSite,
            time_zone: "Europe/Moscow".into(),
        }],
        rooms: rooms
            .iter()
            .map(|r| PlanRoom {
                site: site.clone(),
                code: r.clone(),
                oral: false,
            })
            .collect(),
        participants: seating
            .participants
            .iter()
            .map(|p| PlanParticipant {
                code: p.code.clone(),
                site: site.clone(),
                room: p.room.clone(),
                seat: p.seat.clone(),
                kit: p.kit,
                consent: true,
            })
            .collect(),
        members: vec![],
    };

    println!(
        "konvert bench process — {} participants in {} rooms, 300 dpi degraded G4 TIFF, 4 pages a file",
        b.participants,
        rooms.len()
    );
    let member = SigningKey::generate()?;
    let center = RecipientSecretKey::generate()?;
    let receipt_key = SigningKey::generate()?;
    let data_dir = root.path().join("center");
    std::fs::create_dir_all(&data_dir)?;
    let inbox = Inbox::open(&data_dir)?;
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut pages_total = 0usize;
    for (r, room) in rooms.iter().enumerate() {
        let pages = room_pages(&seating, room, 0);
        pages_total += pages.len();
        let job = ScanJob {
            format: ScanFormat::TiffG4,
            pages_per_file: 4,
            degrade: true,
            dpi: 300,
            seed: r as u64,
        };
        let (forms, blanks): (Vec<_>, Vec<_>) = pages.into_iter().partition(|p| matches!(p, PageIdentity::Form(_)));
        for (kind, list) in [(PacketKind::Forms, forms), (PacketKind::Blanks, blanks)] {
            let dir = root.path().join("scans").join(format!("{room}-{}", kind.code()));
            write_pages(&list, &dir, kind.code(), job)?;
            let packet = PacketRef {
                site: site.clone(),
                date,
                exam: ExamKind::Ege,
                room: room.clone(),
                kind,
            };
            bytes += store(&inbox, &dir, packet, &member, &center, &receipt_key)?;
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!(
        "  sample day built in {:.0} s: {pages_total} pages, {:.1} MB sealed (not measured)",
        started.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );

    let now = crate::clock::now_unix_ms();
    let registry = RegistryBody {
        version: 1,
        issued_at_unix_ms: now,
        expires_at_unix_ms: now + 86_400_000,
        authority: Authority {
            officers: vec![SigningKey::generate()?.verifying_key()],
            threshold: 1,
        },
        tokens: vec![TokenRecord {
            token_id: "TK-0101".into(),
            person: "member".into(),
            role: TokenRole::Member,
            public: member.verifying_key(),
            status: TokenStatus::Issued,
            status_since_unix_ms: now,
            sites: vec![site.as_str().to_owned()],
            dates: vec![date.to_string()],
        }],
        center_keys: vec![CenterKeyRecord {
            key: center.public_key(),
            state: CenterKeyState::Active,
        }],
        agreement_keys: Vec::new(),
    };
    let trusted = |id: &konvert_crypto::KeyId| konvert_center::registry::CenterRegistry::token_key(&registry, id);
    let keys = [center];

    // Decrypt and verify alone (no recognition), against raw ring over the same bytes: as
    // processing does it (in memory, checked while decrypted), and as `loader unpack` does
    // (checked, then decrypted into a folder).
    let t = Instant::now();
    for r in inbox.records()? {
        let claim = konvert_center::unpack::receipted(&r.receipt.body);
        let opened = konvert_center::unpack::open_stored_in_memory(&data_dir, &claim, &keys, &trusted)?;
        anyhow::ensure!(opened.is_some(), "a sample packet was too large to open in memory");
    }
    let open_s = t.elapsed().as_secs_f64();
    let scratch = root.path().join("open");
    let t = Instant::now();
    for r in inbox.records()? {
        let claim = konvert_center::unpack::receipted(&r.receipt.body);
        let checked = konvert_center::unpack::check_stored(&data_dir, &claim, &trusted)?;
        let work = scratch.join(hex::encode(r.receipt.body.digest));
        konvert_center::unpack::open_checked(&checked, &claim, &keys, &trusted, &work, &work.join("files"))?;
        std::fs::remove_dir_all(&work)?;
    }
    let unpack_s = t.elapsed().as_secs_f64();
    let raw_s = raw_aes_sha(bytes)?;

    // The loader's processing, as `konvert-center loader process` runs it.
    let place = Workplace {
        data_dir: data_dir.clone(),
        records_dir: root.path().join("records"),
        records_url: None,
        checkpoint_key: None,
    };
    let records = SledRecords::open(&place.records_dir.join("records.sled"))?;
    records.put_plan(&plan)?;
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let report = process(
        &place,
        &inbox,
        &records,
        &keys,
        &registry,
        "bench",
        crate::clock::now_unix_ms(),
    )?;
    let process_s = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let pages = records.pages()?.len();
    anyhow::ensure!(report.failed.is_empty(), "packets failed: {:?}", report.failed);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rate = pages as f64 / process_s;
    let per_participant = pages as f64 / b.participants as f64;
    let projected = REGION_DAY * per_participant / rate;
    println!("  process: {pages} pages in {process_s:.1} s = {rate:.1} pages/s on {cores} cores ({:.1} pages/s per core; {cpu:.0} CPU-s)", rate / cores as f64);
    for (stage, n) in &report.stages {
        println!("    {stage}: {n}");
    }
    println!(
        "  16,000 participants ({:.0} pages): {:.0} min projected, goal {:.0} min → {:.0} % of the goal used",
        REGION_DAY * per_participant,
        projected / 60.0,
        GOAL_SECONDS / 60.0,
        100.0 * projected / GOAL_SECONDS
    );
    let open_rate = bytes as f64 / open_s;
    let raw_rate = bytes as f64 / raw_s;
    println!(
        "  decrypt + verify: {:.0} MB/s; raw ring AES-256-GCM + SHA-256: {:.0} MB/s → {:.0} % (goal ≥ 50 %)",
        open_rate / 1e6,
        raw_rate / 1e6,
        100.0 * open_rate / raw_rate
    );
    let unpack_rate = bytes as f64 / unpack_s;
    println!(
        "  decrypt + verify into files (loader unpack): {:.0} MB/s → {:.0} % of raw",
        unpack_rate / 1e6,
        100.0 * unpack_rate / raw_rate
    );
    Ok(())
}

/// Seconds for ring's AES-256-GCM and SHA-256 over `bytes` bytes in 64 KiB chunks.
fn raw_aes_sha(bytes: u64) -> anyhow::Result<f64> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| anyhow::anyhow!("aes key"))?);
    let mut chunk = vec![0x5au8; 64 * 1024];
    let t = Instant::now();
    let mut left = bytes;
    let mut n = 0u64;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    while left > 0 {
        let len = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        ctx.update(&chunk[..len]);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut chunk[..len])
            .map_err(|_| anyhow::anyhow!("aes seal"))?;
        let _ = std::hint::black_box(tag);
        left -= len as u64;
        n += 1;
    }
    std::hint::black_box(ctx.finish());
    Ok(t.elapsed().as_secs_f64())
}

/// This process's CPU time so far, seconds (user + system).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
