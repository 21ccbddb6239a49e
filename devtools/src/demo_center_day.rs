//! The demo's center day after the receiver: the plan imported at both ends, the loader
//! processing what arrived (a verifier settling what the recognizer was unsure of), the
//! signed answers crossing to the receiver through its one-way folder and reaching the
//! sites, and the site whose room lost a blank answering the remark with a version 2.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::now_unix_ms;
use anyhow::Context;
use konvert_center::processing::{desk, process, Workplace};
use konvert_center::service::RunningCenter;
use konvert_center::CenterConfig;
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::{RecipientSecretKey, SigningKey};
use konvert_edge::{push, seal_room, PushOptions, SiteConfig};
use konvert_exam::scan::{room_pages, write_pages, ScanFormat, ScanJob};
use konvert_exam::{
    DayPlan, ExamKind, PacketKind, PacketRef, PageIdentity, PlanParticipant, PlanRoom, PlanSite, RoomId, SeatingPlan,
    SiteKind,
};
use konvert_records::{PageReading, PageStage, Records, Role, SledRecords, Verdict};
use konvert_replication::Outbox;

/// A site as the demo ran it.
pub(crate) struct DemoSite {
    /// Its config.
    pub cfg: SiteConfig,
    /// Its outbox.
    pub outbox: Arc<Outbox>,
    /// Its seating plan.
    pub plan: SeatingPlan,
    /// Its member's unlocked key.
    pub signer: SigningKey,
    /// Its time zone.
    pub zone: String,
}

/// What the center's day did.
#[derive(Debug, Default)]
pub(crate) struct CenterDayReport {
    /// Packet versions registered by the loader.
    pub registered: usize,
    /// Pages by stage after the last run.
    pub stages: BTreeMap<&'static str, usize>,
    /// Findings made.
    pub findings: usize,
    /// Pages a verifier settled.
    pub verified: usize,
    /// The remark the site read, if there was one.
    pub remark: Option<String>,
    /// Whether version 2 answered it and was loaded.
    pub answered_by_v2: bool,
}

/// The one day plan of the demo's sites.
fn day_plan(sites: &[DemoSite]) -> anyhow::Result<DayPlan> {
    let first = sites.first().context("no sites")?;
    let mut plan = DayPlan {
        date: first.plan.date,
        exam: ExamKind::Ege,
        region: "76".into(),
        expert_checking: false,
        sites: Vec::new(),
        rooms: Vec::new(),
        participants: Vec::new(),
        members: Vec::new(),
    };
    for s in sites {
        plan.sites.push(PlanSite {
            code: s.cfg.site.clone(),
            kind: SiteKind::ExamSite,
            time_zone: s.zone.clone(),
        });
        for room in s.plan.rooms().keys() {
            plan.rooms.push(PlanRoom {
                site: s.cfg.site.clone(),
                code: (*room).clone(),
                oral: false,
            });
        }
        for p in &s.plan.participants {
            plan.participants.push(PlanParticipant {
                code: p.code.clone(),
                site: s.cfg.site.clone(),
                room: p.room.clone(),
                seat: p.seat.clone(),
                kit: p.kit,
                consent: true,
            });
        }
    }
    plan.check()?;
    Ok(plan)
}

/// Signs every answer in the records and drops the batch into the receiver's one-way
/// folder; waits until the serving center took it.
async fn answers_to_receiver(
    records: &SledRecords,
    center_cfg: &CenterConfig,
    specialist: &SigningKey,
) -> anyhow::Result<usize> {
    let answers = records.answers()?;
    let desk = konvert_center::answers::AnswerDesk::open(&center_cfg.data_dir)?;
    let receipt = konvert_crypto::keyfile::read_signing_key(&center_cfg.receipt_key)?;
    let staging = center_cfg.data_dir.join("answers-out");
    std::fs::create_dir_all(&staging)?;
    let report =
        konvert_center::answers::export_answers(&answers, specialist, receipt.key_id(), &staging, now_unix_ms())?;
    // Written whole elsewhere, then renamed in: the folder is one-way and watched.
    let name = report.file.file_name().context("batch without a name")?;
    std::fs::rename(&report.file, desk.incoming().join(name))?;
    let started = Instant::now();
    loop {
        let held = desk.held()?;
        let current = answers.iter().all(|a| held.iter().any(|h| h.signed.answer == *a));
        if current {
            return Ok(answers.len());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the receiver did not take the loader's answers from its one-way folder"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the center's day; `say` tells what happens.
#[allow(clippy::too_many_arguments)] // The demo's parts, as `demo::run` holds them.
pub(crate) async fn run(
    root: &Path,
    center_cfg: &CenterConfig,
    center: &RunningCenter,
    registry: &RegistryBody,
    keys: &[RecipientSecretKey],
    specialist: &SigningKey,
    sites: &[DemoSite],
    say: &dyn Fn(String),
) -> anyhow::Result<CenterDayReport> {
    let mut out = CenterDayReport::default();
    // The plan, the same file at both ends.
    let plan = day_plan(sites)?;
    let plan_file = root.join("plan.toml");
    std::fs::write(&plan_file, plan.to_toml()?)?;
    konvert_center::plans::PlanDesk::open(&center_cfg.data_dir)?.import(&plan_file, "demo")?;
    let place = Workplace {
        data_dir: center_cfg.data_dir.clone(),
        records_dir: root.join("loader-records"),
        // The demo's loader shares the serving receiver's folder, whose log is the
        // receiver's own: its records' log is not anchored there.
        records_url: None,
        checkpoint_key: None,
    };
    std::fs::create_dir_all(&place.records_dir)?;
    let records = SledRecords::open(&konvert_center::processing::records_db(&place.records_dir))?;
    records.put_plan(&plan)?;

    // The loader: register, recognize, verify, answer.
    let run_loader = || -> anyhow::Result<konvert_center::processing::ProcessReport> {
        let report = process(
            &place,
            &center.inbox,
            &records,
            keys,
            registry,
            "SP-0001",
            now_unix_ms(),
        )?;
        anyhow::ensure!(
            report.failed.is_empty(),
            "the loader could not register: {:?}",
            report.failed
        );
        Ok(report)
    };
    let started = Instant::now();
    let report = run_loader()?;
    out.registered = report.registered.len();
    let pages: usize = report.registered.iter().map(|(_, n)| *n as usize).sum();
    // A verifier looks at what the recognizer was unsure of and confirms its reading.
    let audit = place.audit()?;
    let pages_by_key: BTreeMap<_, _> = records.pages()?.into_iter().map(|p| (p.key, p)).collect();
    for o in desk::queue(&records)? {
        if let Some(PageReading::Read { identity, .. }) = pages_by_key.get(&o.key).map(|p| &p.reading) {
            if o.stage == PageStage::AwaitingVerifier {
                let verdict = Verdict::Is(identity.clone());
                desk::verify(
                    &records,
                    &audit,
                    o.key,
                    verdict,
                    "Орлова Т. В.",
                    Role::Verifier,
                    now_unix_ms(),
                )?;
                out.verified += 1;
            }
        }
    }
    // A log has one writer at a time: the next run opens it afresh.
    drop(audit);
    let report = run_loader()?;
    let findings = records.findings()?;
    say(format!(
        "▸ loader: {} packet versions registered — {pages} pages decrypted, recognized and verified in {:.1} s \
         ({} settled by a verifier); {}; {} finding(s): {}",
        out.registered,
        started.elapsed().as_secs_f64(),
        out.verified,
        report
            .stages
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        findings.len(),
        findings
            .iter()
            .map(|f| konvert_center::processing::findings::describe(&f.finding))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    let sent = answers_to_receiver(&records, center_cfg, specialist).await?;
    say(format!(
        "▸ loader → receiver: {sent} signed answers (\"loaded\" or remarks) through the receiver's one-way folder"
    ));

    // The site whose room lost a blank reads the remark and rescans the room.
    for site in sites {
        let kept = konvert_edge::answers::fetch_notices(&site.cfg, &site.outbox).await?;
        let Some(answer) = kept.answers.iter().find(|a| !a.remarks().is_empty()) else {
            continue;
        };
        // The site's own file names where its journal is free to read (the day that
        // took the scans has ended).
        let journal = konvert_edge::intake::Journal::open(&site.cfg.data_dir).ok();
        let names = konvert_edge::answers::LocalNames::of(journal.as_ref());
        let lines = konvert_edge::answers::answer_lines(answer, None, &names);
        say(format!("▸ site {} reads: {}", site.cfg.site, lines.join(" / ")));
        out.remark = Some(lines.join(" / "));
        let room: RoomId = answer
            .remarks()
            .iter()
            .find_map(|r| r.room.as_ref())
            .context("a remark without a room")?
            .parse()?;
        let rescan = site.cfg.data_dir.join("..").join("rescan").join(room.as_str());
        // The participants the room had: the ones its first version named.
        let kits: std::collections::BTreeSet<u64> = records
            .pages()?
            .iter()
            .filter(|x| x.key.envelope == answer.digest)
            .filter_map(|x| match &x.reading {
                PageReading::Read {
                    identity: PageIdentity::Blank(b),
                    ..
                } => Some(b.kit()),
                _ => None,
            })
            .collect();
        let blanks: Vec<PageIdentity> = room_pages(&site.plan, &room, 0)
            .into_iter()
            .filter(|p| matches!(p, PageIdentity::Blank(id) if kits.contains(&id.kit())))
            .collect();
        let job = ScanJob {
            format: ScanFormat::TiffG4,
            pages_per_file: 4,
            degrade: false,
            dpi: 300,
            seed: 77,
        };
        write_pages(&blanks, &rescan, "rescan", job)?;
        let packet = PacketRef {
            site: site.cfg.site.clone(),
            date: site.plan.date,
            exam: ExamKind::Ege,
            room: room.clone(),
            kind: PacketKind::Blanks,
        };
        let sealed = seal_room(&site.cfg, &site.outbox, &site.signer, &rescan, packet, now_unix_ms())?;
        let opts = PushOptions {
            max_wait: Duration::from_secs(60),
            ..Default::default()
        };
        push(&site.cfg, site.outbox.clone(), opts).await?;
        run_loader()?;
        answers_to_receiver(&records, center_cfg, specialist).await?;
        konvert_edge::answers::fetch_notices(&site.cfg, &site.outbox).await?;
        let kept = site.outbox.answers()?;
        let v2_loaded = kept
            .iter()
            .any(|k| k.answer.digest == sealed.entry.offer.digest && k.answer.remarks().is_empty());
        let v1_answered = kept
            .iter()
            .any(|k| k.answer.digest == answer.digest && matches!(k.answered_by, Some((2, _))));
        out.answered_by_v2 = v2_loaded && v1_answered;
        say(format!(
            "▸ site {}: room {room} rescanned and sent as version 2 ({} pages); the center loaded it{} — the remark is {}",
            site.cfg.site,
            blanks.len(),
            if v2_loaded { "" } else { " (answer not back yet)" },
            if v1_answered { "answered by version 2" } else { "still open" }
        ));
        break;
    }
    for o in records.outcomes()? {
        *out.stages
            .entry(konvert_center::processing::stage_name(&o.stage))
            .or_default() += 1;
    }
    out.findings = records.findings()?.len();
    Ok(out)
}
