//! Technical readiness: the site scans a set of printed test blanks, seals them as a test
//! packet (`PacketKind::Test`) and sends it by the same path as the exam day's packets —
//! recognition, manifest, member's signature, encryption to the center, push, receipt.
//! The center never processes it; its staff judge print and scan quality and send back a
//! signed verdict, which the station fetches over the same connection and keeps.

use std::path::Path;

use konvert_crypto::MemberSigner;
use konvert_exam::{ArchiveSource, ExamDate, ExamKind, PacketKind, PacketRef, PageRecord, RoomId, RoomRecord};
use konvert_replication::{Outbox, OutboxEntry, OutboxState, TestVerdict};

use crate::config::SiteConfig;
use crate::intake::{Recognizer, MAX_SCAN_FILE};
use crate::seal::{seal_sources, SealedPacket};
use crate::{Error, Result};

/// The room code test packets are filed under (no exam room is numbered 0000).
pub const TEST_ROOM: &str = "0000";

/// A sealed test packet and what the station's recognition made of its pages.
#[derive(Debug, Clone)]
pub struct SealedTest {
    /// The sealed packet.
    pub sealed: SealedPacket,
    /// One record per page, as in the manifest.
    pub pages: Vec<PageRecord>,
}

/// Which test: the folder of scanned test blanks and the exam day it prepares for.
#[derive(Debug, Clone)]
pub struct TestRequest<'a> {
    /// The folder with the scans of the printed test blanks.
    pub scans: &'a Path,
    /// The exam day the readiness check is for.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
}

/// Recognizes and seals the request's scans as the next version of the site's test
/// packet.
pub fn seal_test_packet(
    cfg: &SiteConfig,
    outbox: &Outbox,
    signer: &dyn MemberSigner,
    request: &TestRequest<'_>,
    recognizer: &Recognizer,
    now_unix_ms: u64,
) -> Result<SealedTest> {
    let scans = request.scans;
    let files = konvert_exam::list_scans(scans)?;
    if files.is_empty() {
        return Err(Error::Push(format!(
            "{} holds no scan files; scan the printed test blanks into it first",
            scans.display()
        )));
    }
    let mut sources = Vec::new();
    let mut pages = Vec::new();
    for (name, size) in files {
        let path = scans.join(&name);
        if size > MAX_SCAN_FILE {
            return Err(Error::Push(format!(
                "{} is {} MB, larger than a scan can be; check the scanner's settings",
                path.display(),
                size / 1_000_000
            )));
        }
        let bytes = std::fs::read(&path).map_err(Error::file(&path))?;
        let sha256 = crate::intake::sha256(&bytes);
        let scanned_at = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(now_unix_ms);
        pages.extend(recognizer(&bytes).page_records(&name, sha256, scanned_at));
        sources.push(ArchiveSource {
            name,
            path,
            size: bytes.len() as u64,
            sha256: Some(sha256),
        });
    }
    let packet = PacketRef {
        site: cfg.site.clone(),
        date: request.date,
        exam: request.exam,
        room: RoomId::new(TEST_ROOM)?,
        kind: PacketKind::Test,
    };
    let record = RoomRecord {
        pages: pages.clone(),
        ..RoomRecord::default()
    };
    let sealed = seal_sources(cfg, outbox, signer, packet, sources, Some(record), now_unix_ms)?;
    Ok(SealedTest { sealed, pages })
}

/// A test packet in the outbox with what the center said about it.
#[derive(Debug, Clone)]
pub struct TestStatus {
    /// The outbox entry.
    pub entry: OutboxEntry,
    /// The verdict, once the center's staff gave it.
    pub verdict: Option<TestVerdict>,
}

impl std::fmt::Display for TestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.entry.offer;
        write!(f, "{} v{}: ", o.packet_id, o.version)?;
        match (&self.entry.state, &self.verdict) {
            (_, Some(v)) if v.reason.is_empty() => write!(f, "{} by {}", verdict_words(v), v.judged_by),
            (_, Some(v)) => write!(f, "{} by {} — {}", verdict_words(v), v.judged_by, v.reason),
            (OutboxState::Sealed, None) => f.write_str("sealed, not yet delivered"),
            (OutboxState::Delivered { .. }, None) => f.write_str("delivered, waiting for the center's verdict"),
            (OutboxState::Rejected { reason, .. }, None) => {
                write!(f, "refused by the center: {}", reason.plain_words())
            }
        }
    }
}

fn verdict_words(v: &TestVerdict) -> &'static str {
    match v.verdict {
        konvert_replication::Verdict::Confirmed => "CONFIRMED — print and scan quality are fit for the exam,",
        konvert_replication::Verdict::Rejected => {
            "REJECTED — fix what the center says and send a new test packet; rejected"
        }
    }
}

/// Whether an outbox entry is a technical-readiness test packet (its class says so).
pub fn is_test_packet(entry: &OutboxEntry) -> bool {
    entry.offer.priority == PacketKind::Test.priority()
}

/// Every test packet in the outbox, newest last, with its verdict.
pub fn test_statuses(outbox: &Outbox) -> Result<Vec<TestStatus>> {
    let mut all = Vec::new();
    for entry in outbox.entries()? {
        if !is_test_packet(&entry) {
            continue;
        }
        let verdict = outbox.verdict(&entry.offer.packet_id, entry.offer.version)?;
        all.push(TestStatus { entry, verdict });
    }
    all.sort_by_key(|s| s.entry.offer.sealed_at_unix_ms);
    Ok(all)
}

/// Asks the center for its verdicts and keeps each that verifies and names a packet sent
/// from here. Returns how many are new.
pub async fn fetch_verdicts(cfg: &SiteConfig, outbox: &Outbox) -> Result<usize> {
    // Answers to packets come on the same stream: they are kept too.
    Ok(crate::answers::fetch_notices(cfg, outbox).await?.verdicts)
}
