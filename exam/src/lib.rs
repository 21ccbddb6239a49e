//! The exam domain that edge and center share: sites and their time zones, exam days,
//! rooms, the seating plan, blank kinds, forms and page templates, packet kinds,
//! packet ids, and the room packet's manifest and archive layout.
//!
//! Contract: this crate knows nothing of networks, keys or durable storage. It reads a
//! room's folder of scan files and writes the plaintext archive that the edge seals; the
//! center's loader reads it back, checking every file against the manifest.

pub mod agreement;
mod archive;
mod audio;
mod belonging;
mod blank;
mod completeness;
mod digest_hex;
mod error;
mod form_contents;
mod ids;
mod manifest;
mod page;
mod plan;
pub mod scan;
mod seating;
mod zone;

pub use archive::{
    parse_archive, read_archive, write_archive, ArchiveReader, ArchiveSource, ARCHIVE_MAGIC, MAX_MANIFEST_LEN,
};
pub use audio::{
    read_kim, read_kim_from, synthetic_recording, write_recording, write_synthetic_recordings, KimNumber, KIM_CHUNK,
    MAX_RECORDING_HEADER, RECORDING_EXTENSION, SYNTHETIC_SAMPLE_RATE,
};
pub use belonging::{belongs_to, exam_uses, Belonging, ExamContext, ForeignReason};
pub use blank::{
    full_set, BlankId, BlankKind, Form, FormId, MarkBox, PageMm, PageTemplate, Symbology, ZoneMm, A4, ANSWER_AREA,
    MARK_BOX_MM, MARK_FRAME_MM,
};
pub use completeness::{
    check_room, page_room, place_file, unsorted_room, Discrepancy, Placement, RoomCheck, RoomCounts, ROOM_FORMS,
    UNSORTED_ROOM,
};
pub use error::Error;
pub use form_contents::{FormContents, FormQr, RoomSummary, MAX_ACT_KITS, MAX_SUMMARY_COUNT};
pub use ids::{ExamDate, ExamKind, PacketKind, RoomId, SiteId};
pub use manifest::{is_scan_file, list_scans, Manifest, ManifestFile, PacketRef, RoomRecord};
pub use page::{PageIdentity, PageRecord, PageStatus};
pub use plan::{DayPlan, PlanMember, PlanParticipant, PlanReading, PlanRoom, PlanSite};
pub use seating::{Participant, SeatingPlan, Site, SiteKind};
pub use zone::SiteZone;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
