//! The center's exam day after the receiver, end to end with real parts: two sites seal
//! real scans (rendered pages with real barcodes) per room and kind, push them over QUIC,
//! and the loader processes the stored envelopes against the day's plan.
//!
//! The property: the set of page digests received equals the set across the processing
//! records, every page reaches exactly one final state, and each injected anomaly is
//! reported exactly once with nothing else reported — a duplicate blank, a missing blank,
//! a participant seated in another room, a participant not in the plan, a version 2
//! missing a blank, an unreadable barcode zone, a file that is not an image, a manifest
//! that lies about a digest, a room whose forms arrive after its blanks, and recordings
//! sharing a KIM number across two audio packets. A second run changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use konvert_center::processing::{process, Workplace};
use konvert_edge::{push, seal_room, PushOptions};
use konvert_exam::scan::{render_page, write_pages, write_scan, Degradation, PageMark, ScanFormat, ScanJob};
use konvert_exam::{
    full_set, BlankId, BlankKind, DayPlan, ExamKind, Form, FormId, PacketKind, PacketRef, PageIdentity,
    PlanParticipant, PlanRoom, PlanSite, RoomId, SiteId, SiteKind,
};
use konvert_records::{page_digest, FinalState, FindingKind, PageStage, Records, SledRecords};
use konvert_tests::{on_time_day, CenterFixture, SiteFixture, LAST_ZONE};

fn opts() -> PushOptions {
    PushOptions {
        max_wait: Duration::from_secs(60),
        ..Default::default()
    }
}

const JOB: ScanJob = ScanJob {
    format: ScanFormat::TiffG4,
    pages_per_file: 4,
    degrade: false,
    dpi: 200,
    seed: 11,
};

/// A participant's full set of blanks.
fn set_of(kit: u64) -> Vec<PageIdentity> {
    let mut out = Vec::new();
    for &(kind, count) in full_set(ExamKind::Ege) {
        for sheet in 0..count {
            out.push(PageIdentity::Blank(BlankId::for_kit(kind, kit, sheet).unwrap()));
        }
    }
    out
}

fn form(form: Form, site: &str, room: &str, date: &str) -> PageIdentity {
    PageIdentity::Form(FormId {
        form,
        site: site.parse().unwrap(),
        room: room.parse().unwrap(),
        date: date.parse().unwrap(),
    })
}

/// Seals `dir` as `room`'s packet of `kind` for the site's day.
fn seal(site: &SiteFixture, dir: &Path, room: &str, kind: PacketKind) -> konvert_replication::OutboxEntry {
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
}

/// Writes `pages` as scans into a fresh folder.
fn scans(root: &Path, name: &str, pages: &[PageIdentity]) -> PathBuf {
    let dir = root.join(name);
    write_pages(pages, &dir, name, JOB).unwrap();
    dir
}

/// The page digests of every scan file in `dir`, as processing computes them.
fn digests_of(dir: &Path) -> BTreeSet<[u8; 32]> {
    let mut out = BTreeSet::new();
    for (name, _) in konvert_exam::list_scans(dir).unwrap() {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let sha: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .try_into()
            .unwrap();
        let pages = konvert_exam::scan::read_scan_pages(&bytes).map_or(1, |p| p.count());
        for n in 0..pages as u32 {
            out.insert(page_digest(&sha, n));
        }
    }
    out
}

/// The page digests of the recordings in `dir`: one "page" per file.
fn recordings_of(dir: &Path) -> BTreeSet<[u8; 32]> {
    konvert_exam::list_scans(dir)
        .unwrap()
        .into_iter()
        .map(|(name, _)| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let sha: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &bytes)
                .as_ref()
                .try_into()
                .unwrap();
            page_digest(&sha, 0)
        })
        .collect()
}

/// Seals `dir` as a blanks packet whose manifest lies: one byte of the first file's body
/// is changed on its way into the envelope, after the archive hashed it.
fn seal_lying(site: &SiteFixture, dir: &Path, room: &str) -> konvert_replication::OutboxEntry {
    struct Flip<R> {
        inner: R,
        at: u64,
        pos: u64,
    }
    impl<R: Read> Read for Flip<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            if (self.pos..self.pos + n as u64).contains(&self.at) {
                buf[(self.at - self.pos) as usize] ^= 0x55;
            }
            self.pos += n as u64;
            Ok(n)
        }
    }
    let packet = PacketRef {
        site: site.cfg.site.clone(),
        date: site.day.parse().unwrap(),
        exam: ExamKind::Ege,
        room: room.parse().unwrap(),
        kind: PacketKind::Blanks,
    };
    let packet_id = packet.packet_id();
    let version = site.outbox.next_version(&packet_id).unwrap();
    let metadata = postcard::to_allocvec(&packet).unwrap();
    let center = konvert_crypto::registry::RegistryStore::open(&site.cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .and_then(|b| b.active_center_key().copied())
        .unwrap_or_else(|| site.cfg.recipient_key().unwrap());
    let recipients = [center];
    let request = konvert_crypto::envelope::SealRequest {
        packet_id: &packet_id,
        version,
        sender_site: site.cfg.site.as_str(),
        sealed_at_unix_ms: konvert_edge::cli::now_unix_ms(),
        metadata: &metadata,
        recipients: &recipients,
    };
    let files = konvert_exam::list_scans(dir).unwrap();
    let archive = konvert_exam::ArchiveReader::new(packet.clone(), version, dir, &files);
    // Well inside the first file's body (the magic and entry header come first).
    let lying = Flip {
        inner: archive,
        at: 600,
        pos: 0,
    };
    let staging = site.outbox.staging_path(&packet_id, version);
    let out = std::fs::File::create(&staging).unwrap();
    let summary = konvert_crypto::envelope::seal(&request, &site.signer, lying, out).unwrap();
    let offer = konvert_replication::Offer {
        packet_id: packet_id.clone(),
        version,
        size: summary.envelope_bytes,
        digest: summary.digest,
        priority: PacketKind::Blanks.priority(),
        sealed_at_unix_ms: request.sealed_at_unix_ms,
        deadline_unix_ms: u64::MAX / 2,
    };
    site.outbox.add(&staging, offer, "lying".into()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_reports_each_injected_anomaly_once_and_accounts_for_every_page() {
    let fx = CenterFixture::new("127.0.0.1:0".parse().unwrap());
    let tokens = [fx.issue_token("0101"), fx.issue_token("0202")];
    let day = on_time_day();
    let mut cfg = fx.register_days(&[(&tokens[0], "0101"), (&tokens[1], "0202")], &[&day]);
    cfg.time_zone = konvert_exam::SiteZone::new(LAST_ZONE).unwrap();
    let center = konvert_center::serve(&cfg).await.unwrap();
    let mut a = fx.enroll("0101", center.addr);
    let mut b = fx.enroll("0202", center.addr);
    a.seal_for(&day);
    b.seal_for(&day);
    let root = fx.root.path().join("scans");

    // The plan: 0101 rooms 0001 (kits 1–3) and 0002 (kits 4–6); 0202 room 0001 (kits 7–8)
    // and 0002 (nobody), and one participant without consent who is left out.
    let seat = |code: &str, site: &str, room: &str, seat: &str, kit: u64| PlanParticipant {
        code: code.into(),
        site: site.parse().unwrap(),
        room: room.parse().unwrap(),
        seat: seat.into(),
        kit,
        consent: true,
    };
    let plan = DayPlan {
        date: day.parse().unwrap(),
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: false,
        sites: ["0101", "0202"]
            .iter()
            .map(|s| PlanSite {
                code: SiteId::new(s).unwrap(),
                kind: SiteKind::ExamSite,
                time_zone: LAST_ZONE.into(),
            })
            .collect(),
        rooms: [("0101", "0001"), ("0101", "0002"), ("0202", "0001"), ("0202", "0002")]
            .iter()
            .map(|(s, r)| PlanRoom {
                site: s.parse().unwrap(),
                code: RoomId::new(r).unwrap(),
                oral: false,
            })
            .collect(),
        participants: vec![
            seat("P1", "0101", "0001", "1А", 1),
            seat("P2", "0101", "0001", "1Б", 2),
            seat("P3", "0101", "0001", "1В", 3),
            seat("P4", "0101", "0002", "1А", 4),
            seat("P5", "0101", "0002", "1Б", 5),
            seat("P6", "0101", "0002", "1В", 6),
            seat("P7", "0202", "0001", "1А", 7),
            seat("P8", "0202", "0001", "1Б", 8),
        ],
        members: vec![],
    };
    let with_refusal = format!(
        "{}\n[[participants]]\ncode = \"P9\"\nsite = \"0202\"\nroom = \"0001\"\nseat = \"2А\"\nkit = 9\nconsent = false\n",
        plan.to_toml().unwrap()
    );
    let (plan, reading) = DayPlan::from_toml(&with_refusal).unwrap();
    assert_eq!(reading.without_consent, 1);
    let mut received: BTreeSet<[u8; 32]> = BTreeSet::new();

    // 0101 room 0001: forms first, then the blanks of P1–P3 and — seated elsewhere — P5.
    let forms = scans(
        &root,
        "a1-forms",
        &[
            form(Form::Ppe12_04Mash, "0101", "0001", &day),
            form(Form::Ppe13_02Mash, "0101", "0001", &day),
            form(Form::Ppe18Mash, "0101", "0001", &day),
        ],
    );
    received.extend(digests_of(&forms));
    seal(&a, &forms, "0001", PacketKind::Forms);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let pages: Vec<PageIdentity> = [1, 2, 3, 5].into_iter().flat_map(set_of).collect();
    let blanks = scans(&root, "a1-blanks", &pages);
    received.extend(digests_of(&blanks));
    seal(&a, &blanks, "0001", PacketKind::Blanks);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);

    // 0101 room 0001's oral part: two audio packets; a KIM number in the first comes
    // again in the second.
    let kims = |list: &[&str]| -> Vec<konvert_exam::KimNumber> { list.iter().map(|k| k.parse().unwrap()).collect() };
    let audio = root.join("a1-audio");
    konvert_exam::write_synthetic_recordings(&audio, "rec", &kims(&["1000001", "1000002"]), 1).unwrap();
    received.extend(recordings_of(&audio));
    seal(&a, &audio, "0001", PacketKind::Audio);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let audio = root.join("a1-audio-2");
    konvert_exam::write_synthetic_recordings(&audio, "rec2", &kims(&["1000003", "1000001"]), 2).unwrap();
    received.extend(recordings_of(&audio));
    seal(&a, &audio, "0002", PacketKind::Audio);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);

    // 0101 room 0002: its blanks before its forms; P4 lacks answer blank 2 sheet 2; a page
    // without a barcode; a file that is not an image.
    let mut pages: Vec<PageIdentity> = [4, 6].into_iter().flat_map(set_of).collect();
    pages.retain(|p| *p != PageIdentity::Blank(BlankId::for_kit(BlankKind::Answer2Sheet2, 4, 0).unwrap()));
    let blanks = scans(&root, "a2-blanks", &pages);
    let stray = render_page(
        &PageMark::NoBarcode,
        5,
        &Degradation {
            dpi: 200,
            ..Degradation::clean()
        },
    );
    let mut bytes = Vec::new();
    write_scan(&[stray], ScanFormat::Png, &mut bytes).unwrap();
    std::fs::write(blanks.join("stray.png"), &bytes).unwrap();
    std::fs::write(
        blanks.join("notes.png"),
        b"this is not an image, whatever its name says",
    )
    .unwrap();
    received.extend(digests_of(&blanks));
    seal(&a, &blanks, "0002", PacketKind::Blanks);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let forms = scans(
        &root,
        "a2-forms",
        &[
            form(Form::Ppe12_04Mash, "0101", "0002", &day),
            form(Form::Ppe13_02Mash, "0101", "0002", &day),
        ],
    );
    received.extend(digests_of(&forms));
    seal(&a, &forms, "0002", PacketKind::Forms);
    assert_eq!(push(&a.cfg, a.outbox.clone(), opts()).await.unwrap().delivered, 1);

    // 0202 room 0001: forms, then blanks of P7, P8, kit 99 (in no plan) and a copy of P1's
    // answer blank 1 (a duplicate across sites); then a version 2 that lacks P8's answer
    // blank 1. Room 0002: a packet whose manifest lies.
    let forms = scans(
        &root,
        "b1-forms",
        &[
            form(Form::Ppe12_04Mash, "0202", "0001", &day),
            form(Form::Ppe13_02Mash, "0202", "0001", &day),
            form(Form::Ppe18Mash, "0202", "0001", &day),
        ],
    );
    received.extend(digests_of(&forms));
    seal(&b, &forms, "0001", PacketKind::Forms);
    assert_eq!(push(&b.cfg, b.outbox.clone(), opts()).await.unwrap().delivered, 1);
    let mut pages: Vec<PageIdentity> = [7, 8, 99].into_iter().flat_map(set_of).collect();
    pages.push(PageIdentity::Blank(BlankId::for_kit(BlankKind::Answer1, 1, 0).unwrap()));
    let v1 = scans(&root, "b1-blanks-v1", &pages);
    received.extend(digests_of(&v1));
    seal(&b, &v1, "0001", PacketKind::Blanks);
    pages.retain(|p| *p != PageIdentity::Blank(BlankId::for_kit(BlankKind::Answer1, 8, 0).unwrap()));
    let v2 = root.join("b1-blanks-v2");
    write_pages(&pages, &v2, "b1-blanks-v2", ScanJob { seed: 12, ..JOB }).unwrap();
    received.extend(digests_of(&v2));
    let second = seal(&b, &v2, "0001", PacketKind::Blanks);
    assert_eq!(second.offer.version, 2);
    let lying_dir = scans(&root, "b2-lying", &[form(Form::Ppe12_04Mash, "0202", "0002", &day)]);
    let lying = seal_lying(&b, &lying_dir, "0002");
    assert_eq!(push(&b.cfg, b.outbox.clone(), opts()).await.unwrap().delivered, 3);
    center.shutdown().await;

    // The loader, on its workstation.
    let keys = [fx.loader_key()];
    let registry = konvert_crypto::registry::RegistryStore::open(&cfg.data_dir)
        .unwrap()
        .last_known()
        .unwrap()
        .unwrap();
    let place = Workplace {
        data_dir: cfg.data_dir.clone(),
        records_dir: fx.root.path().join("records"),
        // The loader's log is checkpointed and anchored in the data folder's log.
        records_url: None,
        checkpoint_key: Some(cfg.receipt_key.clone()),
    };
    let inbox = konvert_replication::Inbox::open(&cfg.data_dir).unwrap();
    let records = SledRecords::open(&place.records_dir.join("records.sled")).unwrap();
    records.put_plan(&plan).unwrap();
    let report = process(&place, &inbox, &records, &keys, &registry, "specialist-1", 1_000).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.registered.len(), 10, "{:?}", report.registered);
    // Every packet was opened in memory: no scan in clear ever touched the disk.
    assert!(
        !place.scratch().exists(),
        "a scratch folder was made for scans in clear"
    );

    // The two recordings of KIM 1000001 are blocked as one group until the audio
    // operator decides each: one admitted, one annulled.
    let blocked: Vec<_> = records
        .outcomes()
        .unwrap()
        .into_iter()
        .filter(|o| o.stage == PageStage::Blocked)
        .collect();
    assert_eq!(blocked.len(), 2, "{blocked:#?}");
    // Each decision opens the log afresh, as each command does: a log has one writer at a time.
    use konvert_center::processing::desk;
    desk::decide_recording(
        &records,
        &place.audit().unwrap(),
        blocked[0].key,
        konvert_records::AudioChoice::Admit,
        "Оператор",
        1_100,
    )
    .unwrap();
    desk::decide_recording(
        &records,
        &place.audit().unwrap(),
        blocked[1].key,
        konvert_records::AudioChoice::Annul,
        "Оператор",
        1_200,
    )
    .unwrap();
    let decided = process(&place, &inbox, &records, &keys, &registry, "specialist-1", 1_500).unwrap();
    assert!(decided.registered.is_empty());
    // Once applied, a recording is no longer blocked: another decision on it is refused.
    assert!(desk::decide_recording(
        &records,
        &place.audit().unwrap(),
        blocked[1].key,
        konvert_records::AudioChoice::Admit,
        "Оператор",
        1_600
    )
    .is_err());

    // Every page received is in the records, and nothing else; each has one final state.
    let outcomes = records.outcomes().unwrap();
    let recorded: BTreeSet<[u8; 32]> = outcomes.iter().map(|o| o.digest).collect();
    assert_eq!(recorded, received);
    assert_eq!(recorded.len(), outcomes.len(), "one record per page");
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcomes {
        match &o.stage {
            PageStage::Final(s) => *states.entry(s.name()).or_default() += 1,
            other => panic!("page {} ({}) is still {other:?}", o.key, o.what),
        }
    }
    // P5's set in room 0001, kit 99's set: withheld. v1's pages the rescan repeats and both
    // copies of P1's answer blank 1 in 0202: duplicates. The stray page and the text file:
    // quarantined.
    assert_eq!(states.get("withheld"), Some(&8), "{states:?}");
    // Quarantined: the stray page, the text file, and the recording annulled last.
    assert_eq!(states.get("quarantined"), Some(&3), "{states:?}");
    assert_eq!(states.get("duplicate"), Some(&(pages.len() + 1)), "{states:?}");
    assert_eq!(states.get("not-this-exam"), None, "{states:?}");

    // Each anomaly exactly once, nothing else.
    let findings = records.findings().unwrap();
    let mut kinds: Vec<&'static str> = findings
        .iter()
        .map(|f| match &f.finding.kind {
            FindingKind::DuplicateBlank { .. } => "duplicate",
            FindingKind::MissingBlank { .. } => "missing-blank",
            FindingKind::SeatedElsewhere { .. } => "seated-elsewhere",
            FindingKind::NotInPlan { .. } => "not-in-plan",
            FindingKind::KimGroup { .. } => "kim-group",
            FindingKind::VersionLacksBlank { .. } => "version-lacks-blank",
            FindingKind::UnreadableBarcode { .. } => "unreadable",
            FindingKind::NotAnImage { .. } => "not-an-image",
            FindingKind::PacketRefused { .. } => "manifest-lies",
            FindingKind::BlanksBeforeForms { .. } => "forms-after-blanks",
            FindingKind::MissingForm { .. } => "missing-form",
            FindingKind::NotThisExam { .. } => "not-this-exam",
            FindingKind::MarksDisagree { .. } => "marks-disagree",
            FindingKind::CountsDisagree { .. } => "counts-disagree",
        })
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "duplicate",
            "forms-after-blanks",
            "kim-group",
            "manifest-lies",
            "missing-blank",
            "not-an-image",
            "not-in-plan",
            "seated-elsewhere",
            "unreadable",
            "version-lacks-blank",
        ],
        "{findings:#?}"
    );
    let by_kind = |k: &str| findings.iter().find(|f| kinds_of(&f.finding.kind) == k).unwrap();
    assert_eq!(by_kind("seated-elsewhere").finding.participant.as_deref(), Some("P5"));
    assert_eq!(by_kind("missing-blank").finding.participant.as_deref(), Some("P4"));
    assert_eq!(by_kind("manifest-lies").finding.packet, Some(lying.offer.digest));
    assert_eq!(by_kind("version-lacks-blank").finding.packet, Some(second.offer.digest));
    let refused = &by_kind("manifest-lies").finding.kind;
    assert!(
        format!("{refused:?}").contains("does not match its manifest digest"),
        "{refused:?}"
    );

    // Every packet version is answered: the lying one and the ones with findings for the
    // site with remarks, the rest "loaded".
    let answers = records.answers().unwrap();
    assert_eq!(answers.len(), 10, "{answers:#?}");
    let remarked: BTreeSet<String> = answers
        .iter()
        .filter(|a| !a.remarks().is_empty())
        .map(|a| format!("{} v{}", a.packet_id, a.version))
        .collect();
    assert_eq!(remarked.len(), 4, "{remarked:?}");
    let lying_answer = answers.iter().find(|a| a.digest == lying.offer.digest).unwrap();
    assert_eq!(
        lying_answer.remarks()[0].action,
        konvert_replication::RemarkAction::RescanAndResend
    );

    // Again: nothing changes.
    let again = process(&place, &inbox, &records, &keys, &registry, "specialist-1", 2_000).unwrap();
    assert!(again.registered.is_empty() && again.new_findings.is_empty() && again.answers_changed.is_empty());
    assert_eq!(again.already, 10);
    assert_eq!(records.outcomes().unwrap(), outcomes);
    assert!(matches!(
        outcomes
            .iter()
            .find(|o| o.participant.as_deref() == Some("P1"))
            .unwrap()
            .stage,
        PageStage::Final(FinalState::Registered)
    ));

    // The loader's log verifies, and its newest checkpoint is anchored in the data
    // folder's log, which verifies too.
    let key = konvert_crypto::keyfile::read_signing_key(&cfg.receipt_key)
        .unwrap()
        .verifying_key();
    let verify = |log: &Path| {
        let bytes = std::fs::read(log).unwrap();
        let head = konvert_crypto::audit::read_head(&konvert_crypto::audit::head_path(log)).unwrap();
        let report = konvert_crypto::audit::verify(&bytes, head.as_ref(), &[key]);
        assert!(report.is_intact(), "{}: {:?}", log.display(), report.finding);
        (String::from_utf8_lossy(&bytes).into_owned(), head.unwrap())
    };
    let (_, loader_head) = verify(&place.records_dir.join(konvert_center::processing::LOADER_AUDIT_LOG));
    let (center_log, _) = verify(&cfg.data_dir.join("audit.log"));
    let anchor = konvert_crypto::audit::AuditAnchor::of(&loader_head).to_line();
    assert!(
        center_log.contains(konvert_center::processing::RECORDS_ANCHOR) && center_log.contains(&anchor),
        "the data folder's log does not anchor {anchor}"
    );
}

fn kinds_of(k: &FindingKind) -> &'static str {
    match k {
        FindingKind::SeatedElsewhere { .. } => "seated-elsewhere",
        FindingKind::MissingBlank { .. } => "missing-blank",
        FindingKind::PacketRefused { .. } => "manifest-lies",
        FindingKind::VersionLacksBlank { .. } => "version-lacks-blank",
        _ => "other",
    }
}
