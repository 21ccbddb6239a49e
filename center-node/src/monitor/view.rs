//! What the monitoring page shows, as plain data (seed 002:7856–7885, domain.md §3): the
//! region's indicators per exam day, and every expected site with its rooms. Built by
//! [`super::build`], drawn by [`super::render`]; neither reads a file or a clock.
//!
//! # Risk colours (seed 002:8914: late steps of the schedule are coloured)
//! A site's colour, at the instant the page is built, in the site's local time:
//! - [`Risk::Done`]: every planned room is complete — forms and blanks packets loaded, no
//!   remark open — and ППЭ-18МАШ is in.
//! - [`Risk::Late`] (red): its delivery deadline (23:59 local) has passed with something
//!   missing; or the blanks window (step 7, 11:00–17:30 local, seed 002:8970–8974) has
//!   closed with no packet at all; or at its rate so far it finishes after the deadline
//!   less [`LATE_MARGIN_MS`]; or it has been silent for [`SILENT_LATE_MS`] with less than
//!   [`NEAR_DEADLINE_MS`] left.
//! - [`Risk::Behind`] (amber): the blanks window has closed with rooms still missing (the
//!   schedule's step is late); or at its rate it finishes after 17:30; or a remark is open;
//!   or it has been silent for [`SILENT_MS`] with rooms outstanding.
//! - [`Risk::OnTrack`] (green): none of these.
//!
//! The final essay has no same-day blanks window (its delivery deadline is the seventh
//! day's 23:59, seed 001 §12.6): only the deadline rules apply to it.

use konvert_exam::{ExamDate, ExamKind};

/// No packet for this long, with rooms outstanding, makes a site silent (amber).
pub const SILENT_MS: u64 = 30 * 60_000;
/// No packet for this long with the deadline near makes a silent site red.
pub const SILENT_LATE_MS: u64 = 60 * 60_000;
/// "The deadline is near": less than this left before 23:59 local.
pub const NEAR_DEADLINE_MS: u64 = 3 * 3_600_000;
/// A site whose projected finish is later than its deadline less this is red.
pub const LATE_MARGIN_MS: u64 = 3_600_000;
/// The end of the blanks window, 17:30 local, as time before the 23:59 deadline.
pub const BLANKS_WINDOW_END_BEFORE_DEADLINE_MS: u64 = (6 * 60 + 29) * 60_000;

/// The whole page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorView {
    /// When the view was built, Unix ms.
    pub built_at_unix_ms: u64,
    /// One per exam-day plan, in date order.
    pub days: Vec<DayView>,
    /// Sites that sent packets no plan expects (or every site seen, when there is no plan).
    pub unplanned: Vec<UnplannedSite>,
}

/// Where an exam day stands as a whole (002:7856–7885).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Indicators {
    /// Participants in the plan.
    pub participants: u64,
    /// Participants whose room's blanks packet is loaded (person-exams processed).
    pub participants_processed: u64,
    /// Pages the loader registered from the current versions of blanks packets.
    pub blanks_pages_registered: u64,
    /// Packets expected: a forms and a blanks packet per planned room.
    pub packets_expected: u64,
    /// Expected packets received (any version).
    pub packets_received: u64,
    /// Expected packets whose current version is loaded with no open remark.
    pub packets_complete: u64,
    /// Sites planned.
    pub sites: u64,
    /// Sites whose processing has begun (a packet answered).
    pub sites_started: u64,
    /// Sites complete.
    pub sites_complete: u64,
    /// Rooms planned.
    pub rooms: u64,
    /// Rooms whose processing has begun.
    pub rooms_started: u64,
    /// Rooms complete.
    pub rooms_complete: u64,
    /// Remarks open (their packet has no newer version yet).
    pub open_remarks: u64,
}

/// How far closing an exam day has gone, as the closing desk records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayClosing {
    /// The exam day.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The exam is closed in the region (002:7451).
    pub closed: bool,
    /// Results passed on to the municipal bodies and schools.
    pub results_passed: bool,
}

/// One exam day (one plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayView {
    /// The date.
    pub date: ExamDate,
    /// The exam.
    pub exam: ExamKind,
    /// The region's code.
    pub region: String,
    /// The region's indicators.
    pub indicators: Indicators,
    /// The exam is closed in the region.
    pub closed: bool,
    /// Results passed on.
    pub results_passed: bool,
    /// Every expected site, silent ones first, then by risk, then by code.
    pub sites: Vec<SiteView>,
}

/// A site's colour (see the module documentation for the thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Risk {
    /// Red.
    Late,
    /// Amber.
    Behind,
    /// Green.
    OnTrack,
    /// Everything in and loaded.
    Done,
}

impl Risk {
    /// A word for the colour, for readers who cannot see it (and for print).
    pub fn word(self) -> &'static str {
        match self {
            Risk::Late => "late",
            Risk::Behind => "behind",
            Risk::OnTrack => "on track",
            Risk::Done => "done",
        }
    }
}

/// When a site will have sent everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eta {
    /// Nothing received yet, so no rate to project.
    Unknown,
    /// Every expected packet is in; the last came at this instant.
    AllIn(u64),
    /// Projected at this instant from its rate so far.
    At(u64),
}

/// A form's state at the center, as far as the receiver and the loader's answers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormState {
    /// No packet that could carry it yet.
    Missing,
    /// A forms packet is in, not answered yet.
    Received,
    /// Loaded, no remark about it.
    Loaded,
    /// An open remark asks for it.
    Remark,
}

impl FormState {
    /// The state in a word.
    pub fn word(self) -> &'static str {
        match self {
            FormState::Missing => "missing",
            FormState::Received => "received",
            FormState::Loaded => "loaded",
            FormState::Remark => "remark",
        }
    }
}

/// How the loader answered a packet's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerState {
    /// Not answered yet.
    Waiting,
    /// Received and loaded.
    Loaded,
    /// Remarks, this many, open (no newer version yet).
    Remarks(u32),
}

/// A packet's current (highest) version as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketView {
    /// The packet id.
    pub packet_id: String,
    /// What it carries (`forms`, `blanks`, `audio`, `journal`).
    pub kind: String,
    /// The current version.
    pub version: u32,
    /// Bytes of every version received.
    pub bytes: u64,
    /// When the current version arrived.
    pub received_at_unix_ms: u64,
    /// It arrived after the site's deadline.
    pub late: bool,
    /// The loader's answer to the current version.
    pub answer: AnswerState,
    /// Remarks on earlier versions answered by a newer one.
    pub answered_remarks: u32,
    /// Held for review: the token that signed it is now blocked (its status, e.g.
    /// "compromised"); the loader holds it back until an operator decides.
    pub held: Option<String>,
}

/// A room's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    /// Nothing received.
    Waiting,
    /// Some of its packets are in.
    Partial,
    /// Both packets in, the loader has not answered both.
    Loading,
    /// A remark is open.
    Remarks,
    /// Forms and blanks loaded, no remark open.
    Complete,
}

impl RoomState {
    /// The state in a word.
    pub fn word(self) -> &'static str {
        match self {
            RoomState::Waiting => "nothing yet",
            RoomState::Partial => "partly in",
            RoomState::Loading => "loading",
            RoomState::Remarks => "remarks open",
            RoomState::Complete => "complete",
        }
    }
}

/// One planned room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    /// The room's code.
    pub code: String,
    /// The oral part: its summary form is ППЭ-13-03-У МАШ.
    pub oral: bool,
    /// Participants seated.
    pub participants: u32,
    /// The room's forms: ППЭ-12-04МАШ and ППЭ-13-02МАШ (or 13-03-У МАШ), with their state.
    pub forms: Vec<(&'static str, FormState)>,
    /// Its packets (forms, blanks, and any audio or journal), current versions.
    pub packets: Vec<PacketView>,
    /// Overall.
    pub state: RoomState,
}

/// One expected site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteView {
    /// The site's code.
    pub code: String,
    /// ППЭ, ОО or ППОИ.
    pub kind: &'static str,
    /// Its IANA time zone.
    pub time_zone: String,
    /// Its offset from UTC on the exam day, seconds (for showing local times).
    pub utc_offset_s: i32,
    /// Its delivery deadline (23:59 local), Unix ms.
    pub deadline_unix_ms: u64,
    /// Distinct packets received (test packets excluded).
    pub packets_received: u32,
    /// Packets whose current version is loaded.
    pub packets_loaded: u32,
    /// Packets whose current version has remarks.
    pub packets_remarked: u32,
    /// Remarks open.
    pub open_remarks: u32,
    /// Rooms complete.
    pub rooms_complete: u32,
    /// Rooms planned.
    pub rooms_planned: u32,
    /// Bytes received (every version).
    pub bytes: u64,
    /// The last packet's arrival, Unix ms.
    pub last_packet_unix_ms: Option<u64>,
    /// Packets that arrived after the deadline.
    pub late_packets: u32,
    /// When it will have sent everything.
    pub eta: Eta,
    /// Its colour.
    pub risk: Risk,
    /// Silent: nothing yet, or nothing for [`SILENT_MS`] with rooms outstanding.
    pub silent: bool,
    /// Current packet versions held for review (signed by a token blocked since).
    pub held_for_review: u32,
    /// ППЭ-18МАШ, the site's public-observer act.
    pub form18: FormState,
    /// Every planned room, in the plan's order.
    pub rooms: Vec<RoomView>,
    /// Packets for rooms the plan does not list (e.g. UNSORTED), current versions.
    pub extra_packets: Vec<PacketView>,
}

/// A site that sent packets no plan expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnplannedSite {
    /// The site's code as its receipts name it.
    pub code: String,
    /// Packets (distinct ids) received.
    pub packets: u32,
    /// Bytes received.
    pub bytes: u64,
    /// The last packet's arrival, Unix ms.
    pub last_packet_unix_ms: Option<u64>,
    /// The packet ids, current versions.
    pub packet_ids: Vec<String>,
}
