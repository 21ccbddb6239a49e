//! The exam domain that edge and center share: sites and their time zones, exam days,
//! rooms, the seating plan, blank kinds, forms and page templates, packet kinds,
//! packet ids, and the room packet's manifest and archive layout.
//!
//! Contract: this crate knows nothing of networks, keys or durable storage. It reads a
//! room's folder of scan files and writes the plaintext archive that the edge seals; the
//! center's loader reads it back, checking every file against the manifest.

pub mod agreement;
mod archive;
mod blank;
mod completeness;
mod digest_hex;
mod error;
mod ids;
mod manifest;
mod page;
mod plan;
pub mod scan;
mod seating;
mod zone;

pub use archive::{read_archive, write_archive, ArchiveReader, ArchiveSource, ARCHIVE_MAGIC, MAX_MANIFEST_LEN};
pub use blank::{full_set, BlankId, BlankKind, Form, FormId, PageMm, PageTemplate, Symbology, ZoneMm, A4};
pub use completeness::{
    check_room, page_room, place_file, unsorted_room, Discrepancy, Placement, RoomCheck, RoomCounts, ROOM_FORMS,
    UNSORTED_ROOM,
};
pub use error::Error;
pub use ids::{ExamDate, ExamKind, PacketKind, RoomId, SiteId};
pub use manifest::{is_scan_file, list_scans, Manifest, ManifestFile, PacketRef, RoomRecord};
pub use page::{PageIdentity, PageRecord, PageStatus};
pub use plan::{DayPlan, PlanMember, PlanParticipant, PlanReading, PlanRoom, PlanSite};
pub use seating::{Participant, SeatingPlan, Site, SiteKind};
pub use zone::SiteZone;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
