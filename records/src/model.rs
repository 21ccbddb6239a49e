//! What the regional records hold: each registered packet version, each of its pages
//! with what recognition made of it, the page's final state once verified, the human
//! decisions taken on the way, the answers sent back to sites, and the marks that close
//! an exam.

use std::fmt;

use konvert_exam::{ExamDate, ExamKind, FormContents, PacketKind, PageIdentity, RoomId};
use serde::{Deserialize, Serialize};

/// An exam day: its date and exam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExamDay {
    /// The date.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
}

impl fmt::Display for ExamDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.date, self.exam.code())
    }
}

/// Where a page is: the envelope it came in, the file's index in the manifest, the page's
/// index in the file. Orders pages as they were received within a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PageKey {
    /// The envelope id (SHA-256 of the sealed file).
    pub envelope: [u8; 32],
    /// The file's index in the packet's manifest.
    pub file: u32,
    /// The page's index in the file, from 0.
    pub page: u32,
}

impl PageKey {
    /// The key as bytes that sort like the key (sled's order).
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..32].copy_from_slice(&self.envelope);
        b[32..36].copy_from_slice(&self.file.to_be_bytes());
        b[36..].copy_from_slice(&self.page.to_be_bytes());
        b
    }
}

impl fmt::Display for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            hex::encode(&self.envelope[..8]),
            self.file,
            self.page + 1
        )
    }
}

impl std::str::FromStr for PageKey {
    type Err = String;
    /// Reads `<envelope id, 64 hex digits>:<file>:<page from 1>`, as the key prints.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not a page key; it looks like <envelope id>:<file>:<page>, as `loader queue` prints");
        let mut parts = s.split(':');
        let (Some(env), Some(file), Some(page), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let bytes = hex::decode(env).map_err(|_| bad())?;
        let envelope: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        let file = file.parse().map_err(|_| bad())?;
        let page: u32 = page.parse().map_err(|_| bad())?;
        Ok(PageKey {
            envelope,
            file,
            page: page.checked_sub(1).ok_or_else(bad)?,
        })
    }
}

/// How a packet version's opening went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Opening {
    /// Opened and every file checked against the manifest.
    Opened {
        /// Files in the manifest.
        files: u32,
        /// Pages registered.
        pages: u32,
    },
    /// Could not be opened or did not check; nothing of it was registered.
    Refused {
        /// Why, in words.
        reason: String,
    },
}

/// A registered packet version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketEntry {
    /// The envelope id.
    pub envelope: [u8; 32],
    /// The site that sent it.
    pub site: String,
    /// The packet id.
    pub packet_id: String,
    /// The version.
    pub version: u32,
    /// The exam day, from the signed header.
    pub day: ExamDay,
    /// The room, from the signed header.
    pub room: RoomId,
    /// What it carries, from the signed header.
    pub kind: PacketKind,
    /// When the receiver took it (receiver's clock).
    pub received_at_unix_ms: u64,
    /// When the loader registered it (loader's clock).
    pub registered_at_unix_ms: u64,
    /// How opening went.
    pub opening: Opening,
}

/// What recognition made of a page at the center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageReading {
    /// The barcode was read.
    Read {
        /// What it names.
        identity: PageIdentity,
        /// How the page lay, degrees clockwise.
        orientation: u16,
        /// Found outside the template's zone: the reading goes to a verifier.
        via_fallback: bool,
        /// What a form's QR code reports besides its identity (a room summary, an act's kits).
        contents: Option<FormContents>,
    },
    /// An oral-part recording and the KIM number it carries (R14).
    Recording {
        /// The KIM number.
        kim: String,
    },
    /// The barcode zone is missing or unreadable.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The file is not an image konvert can read (or is a damaged one).
    NotImage {
        /// Why.
        reason: String,
    },
}

/// A mark on a page measured by recognition: a box (removal, early finish) or a page's
/// handwriting (empty or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mark {
    /// Clearly marked / written.
    Yes,
    /// Clearly not.
    No,
    /// In between: a verifier looks.
    Unsure,
}

/// One registered page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEntry {
    /// Where it is.
    pub key: PageKey,
    /// How the scan file is named in the records: its place in the packet and the start of
    /// its digest, never the site's file name (which could say who wrote it).
    pub file_name: String,
    /// SHA-256 of the scan file (as the manifest lists it).
    pub file_sha256: [u8; 32],
    /// SHA-256 over the file's digest and the page's index: the page's identity across
    /// records.
    pub digest: [u8; 32],
    /// What recognition made of it.
    pub reading: PageReading,
    /// What the site's station recognized, if its manifest said (compared, never trusted).
    pub site_reading: Option<PageIdentity>,
    /// A registration blank's removal mark ("удалён"), where measured.
    pub removed_mark: Option<Mark>,
    /// A registration blank's early-finish mark, where measured.
    pub early_finish_mark: Option<Mark>,
    /// An answer page's handwriting: `No` is a presumed-empty page.
    pub written: Option<Mark>,
}

/// The page digest: SHA-256 over the file's digest and the page's index.
pub fn page_digest(file_sha256: &[u8; 32], page: u32) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"konvert/v1/page\0");
    ctx.update(file_sha256);
    ctx.update(&page.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The one final state every page reaches, only after verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalState {
    /// Registered: its results count.
    Registered,
    /// Registered, results withheld for the exam commission's investigation (002:6838).
    Withheld {
        /// Why, in words.
        reason: String,
    },
    /// The same blank was registered before: this page is a duplicate of that one.
    Duplicate {
        /// The page it duplicates.
        of: PageKey,
    },
    /// The barcode zone is missing or unreadable, or the file is not an image: the page
    /// is never read for personal data; the site gets a remark.
    Quarantined {
        /// Why.
        reason: String,
    },
    /// A page of another exam, day, site or template.
    NotThisExam {
        /// Why.
        reason: String,
    },
}

impl FinalState {
    /// A short name for listings and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            FinalState::Registered => "registered",
            FinalState::Withheld { .. } => "withheld",
            FinalState::Duplicate { .. } => "duplicate",
            FinalState::Quarantined { .. } => "quarantined",
            FinalState::NotThisExam { .. } => "not-this-exam",
        }
    }
}

impl fmt::Display for FinalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalState::Registered => f.write_str("registered"),
            FinalState::Withheld { reason } => write!(f, "registered, results withheld: {reason}"),
            FinalState::Duplicate { of } => write!(f, "duplicate of page {of}"),
            FinalState::Quarantined { reason } => write!(f, "quarantined: {reason}"),
            FinalState::NotThisExam { reason } => write!(f, "not a page of this exam: {reason}"),
        }
    }
}

/// Where a page stands in processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageStage {
    /// Registered; its exam day has no plan imported yet, so nothing can be checked.
    AwaitingPlan,
    /// Registered; waits for its room's ППЭ-13-02МАШ (13-03-У МАШ) before verification.
    AwaitingForms,
    /// In the verification queue (the recognizer was unsure).
    AwaitingVerifier,
    /// A verifier passed it to a senior verifier.
    AwaitingSenior,
    /// A recording in a KIM duplicate group: blocked until an operator admits, annuls or
    /// renumbers it (002:7385–7401).
    Blocked,
    /// Verified: its final state.
    Final(FinalState),
}

/// The outcome of processing for one page, as the last run left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageOutcome {
    /// The page.
    pub key: PageKey,
    /// The page digest.
    pub digest: [u8; 32],
    /// The exam day.
    pub day: ExamDay,
    /// The site and room it came from.
    pub site: String,
    /// The room it came from.
    pub room: RoomId,
    /// The participant's code, if the page is a blank of a planned participant.
    pub participant: Option<String>,
    /// What the page is, in words ("Бланк ответов № 1 …", "ППЭ-13-02МАШ").
    pub what: String,
    /// Where it stands.
    pub stage: PageStage,
    /// A presumed-empty answer page, listed for two experts (002:7371–7373).
    pub presumed_empty: bool,
}

/// Who decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Оператор станции верификации.
    Verifier,
    /// Оператор станции старшего верификатора.
    SeniorVerifier,
    /// Оператор станции управления экспертизой устного экзамена (audio).
    AudioOperator,
    /// Администратор проекта.
    Administrator,
}

impl Role {
    /// The role's name in commands and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Verifier => "verifier",
            Role::SeniorVerifier => "senior-verifier",
            Role::AudioOperator => "audio-operator",
            Role::Administrator => "administrator",
        }
    }
}

/// What a verifier says a page is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The recognizer's reading is right (or the page is what `identity` says).
    Is(PageIdentity),
    /// The barcode cannot be read by a person either: quarantine.
    Unreadable,
    /// A verifier cannot tell: pass it to a senior verifier.
    ToSenior,
}

/// What an audio operator does with a recording of a KIM duplicate group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AudioChoice {
    /// Admit it to processing.
    Admit,
    /// Annul it.
    Annul,
    /// Give it another KIM number.
    Renumber(String),
}

/// Counts from a site's ППЭ-14-01 act, entered by staff when the paper arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOverAct {
    /// The site.
    pub site: String,
    /// Safe bags handed over.
    pub safe_bags: u32,
    /// Blanks handed over, by kind of material as the act lists them (title → count).
    pub materials: Vec<(String, u32)>,
}

/// A human decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionKind {
    /// A verifier's verdict on a queued page.
    Verify {
        /// The page.
        page: PageKey,
        /// What it is.
        verdict: Verdict,
    },
    /// An audio operator's choice on a recording of a KIM group.
    Audio {
        /// The recording (its page key: file index, page 0).
        recording: PageKey,
        /// What to do.
        choice: AudioChoice,
    },
    /// A site's ППЭ-14-01 counts.
    HandOver {
        /// The exam day.
        day: ExamDay,
        /// The act.
        act: HandOverAct,
    },
    /// Expert checking of the day is complete (002:7429).
    ExpertCheckingDone {
        /// The exam day.
        day: ExamDay,
    },
    /// A finding reconciled by a senior verifier or the project administrator, with what
    /// they found (e.g. a removal mark checked against the site's act, 002:7183–7188).
    Reconcile {
        /// The finding's id.
        finding: String,
        /// What was found.
        note: String,
    },
    /// The exam is closed (002:7451).
    Close {
        /// The exam day.
        day: ExamDay,
    },
}

/// A decision and who took it, in the order taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Order of decisions, from 1.
    pub seq: u64,
    /// Who, by name.
    pub by: String,
    /// In which role.
    pub role: Role,
    /// When (loader's clock).
    pub at_unix_ms: u64,
    /// What.
    pub kind: DecisionKind,
}

/// Something processing found that a person must know of, with a stable id (the same
/// finding gets the same id on every run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id.
    pub id: String,
    /// The exam day.
    pub day: ExamDay,
    /// The site.
    pub site: String,
    /// The room, if about one.
    pub room: Option<RoomId>,
    /// The packet version the site is answered about, if any.
    pub packet: Option<[u8; 32]>,
    /// The page, if about one.
    pub page: Option<PageKey>,
    /// The participant's code, if about a planned one.
    pub participant: Option<String>,
    /// What was found.
    pub kind: FindingKind,
}

/// The kinds of finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FindingKind {
    /// The same blank barcode twice (across packets, versions or sites).
    DuplicateBlank {
        /// The blank, in words.
        blank: String,
        /// The page registered first.
        of: PageKey,
    },
    /// A participant who wrote has a blank of the full set missing.
    MissingBlank {
        /// The blank, in words.
        blank: String,
    },
    /// A planned participant's blank came from another room or site.
    SeatedElsewhere {
        /// Where the plan seats them.
        planned: String,
    },
    /// A blank whose kit no participant of this exam day holds.
    NotInPlan {
        /// The kit number.
        kit: u64,
    },
    /// Recordings that share a KIM number: blocked until an operator decides each.
    KimGroup {
        /// The KIM number.
        kim: String,
        /// The recordings.
        recordings: Vec<PageKey>,
    },
    /// A newer version of a packet lacks a blank the older one had.
    VersionLacksBlank {
        /// The blank, in words.
        blank: String,
        /// The older version that had it.
        had_in: u32,
        /// The newer version.
        version: u32,
    },
    /// A page's barcode zone is missing or unreadable.
    UnreadableBarcode {
        /// Why.
        reason: String,
    },
    /// A file that is not a readable image.
    NotAnImage {
        /// Why.
        reason: String,
    },
    /// A packet version that could not be opened or whose manifest did not check.
    PacketRefused {
        /// Why.
        reason: String,
    },
    /// A room's blanks arrived before its ППЭ-13-02МАШ (13-03-У МАШ); they wait for it.
    BlanksBeforeForms {
        /// The form awaited.
        form: String,
    },
    /// A room's or site's machine-readable form has not been received.
    MissingForm {
        /// The form's code.
        form: String,
    },
    /// A page of another exam, day, site or template.
    NotThisExam {
        /// Why.
        reason: String,
    },
    /// A removal or early-finish mark on a registration blank and the site's acts
    /// (ППЭ-21, ППЭ-22) disagree about a participant (R16).
    MarksDisagree {
        /// The participant's kit.
        kit: u64,
        /// Which mark, as printed.
        mark: String,
        /// What the blank and the act say.
        detail: String,
    },
    /// A room's registered blanks disagree with its ППЭ-13-02МАШ (13-03-У МАШ) beyond
    /// what other findings explain.
    CountsDisagree {
        /// What differs.
        detail: String,
    },
}

/// A finding as the records keep it: when it was first made and, once it no longer
/// holds (the missing form arrived), when it was resolved. Findings are never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// The finding.
    pub finding: Finding,
    /// When processing first made it (loader's clock).
    pub first_seen_unix_ms: u64,
    /// When a run no longer found it.
    pub resolved_at_unix_ms: Option<u64>,
}

impl FindingRecord {
    /// What a run that found `finding` again (`old`: its record so far) writes, the same
    /// rule for every backend: nothing when it stands unchanged; the new text, keeping when
    /// it was first seen, when it changed or was resolved before; a new record otherwise.
    pub fn found_again(old: Option<&FindingRecord>, finding: &Finding, now_unix_ms: u64) -> Option<FindingRecord> {
        match old {
            Some(old) if old.resolved_at_unix_ms.is_none() && old.finding == *finding => None,
            Some(old) => Some(FindingRecord {
                finding: finding.clone(),
                first_seen_unix_ms: old.first_seen_unix_ms,
                resolved_at_unix_ms: None,
            }),
            None => Some(FindingRecord {
                finding: finding.clone(),
                first_seen_unix_ms: now_unix_ms,
                resolved_at_unix_ms: None,
            }),
        }
    }
}
