//! The regional records (РИС) on the loader's side: the exam days' plans, every packet
//! version the loader registered with its pages, each page's outcome, the findings, the
//! human decisions and the answers for sites — behind one interface, [`Records`], so that
//! the embedded [`SledRecords`] (the demo, a small region) and [`PgRecords`] on PostgreSQL
//! 15 (a real region, the federal node) are interchangeable; one test suite runs on both.
//! The mirror between a region and the federal node keeps its state in the same PostgreSQL
//! database ([`PgMirror`]), so that an outbox row is written with the change it records.
//!
//! Contract: registration of a packet version is atomic (its entry and all its pages, or
//! nothing) and idempotent (registering the same version again changes nothing); what
//! processing derives (outcomes, findings, answers) is written so that a run repeated on
//! the same records writes the same thing. Decisions are appended, never changed.

mod error;
pub mod mirror_outbox;
#[cfg(any(test, feature = "test-cluster"))]
pub mod mirror_pump;
pub mod mirror_rows;
pub mod model;
pub mod pg_dump;
mod pg_listen;
mod pg_migrations;
mod pg_mirror;
mod pg_records;
pub mod retention;
mod sled_records;
#[cfg(test)]
mod suite_tests;
#[cfg(any(test, feature = "test-cluster"))]
pub mod test_cluster;

use konvert_exam::DayPlan;
use konvert_replication::PacketAnswer;

pub use error::{Error, OutOfStep};
pub use model::*;
pub use pg_listen::{PgListener, MIRROR_CHANNEL};
pub use pg_mirror::{mirror_node_of, MirrorChannelStatus, MirrorDirection, MirrorDriverLock, PgMirror};
pub use pg_records::PgRecords;
pub use retention::{Hold, HoldReason, HoldTarget, ImageRef, NewHold, Release, Removal};
pub use sled_records::SledRecords;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The regional records, whatever holds them.
pub trait Records: Send + Sync {
    /// Stores an exam day's plan, replacing the one of the same day and exam.
    fn put_plan(&self, plan: &DayPlan) -> Result<()>;
    /// Every stored plan.
    fn plans(&self) -> Result<Vec<DayPlan>>;

    /// Whether packet version `envelope` is registered.
    fn is_registered(&self, envelope: &[u8; 32]) -> Result<bool>;
    /// Registers a packet version with all its pages at once; `false` if it was already
    /// (with the same contents), an error if it was with others.
    fn register(&self, packet: &PacketEntry, pages: &[PageEntry]) -> Result<bool>;
    /// Every registered packet version.
    fn packets(&self) -> Result<Vec<PacketEntry>>;
    /// Every registered page, in key order.
    fn pages(&self) -> Result<Vec<PageEntry>>;

    /// Replaces the outcomes with `outcomes` (one per page).
    fn put_outcomes(&self, outcomes: &[PageOutcome]) -> Result<()>;
    /// The outcomes the last run left.
    fn outcomes(&self) -> Result<Vec<PageOutcome>>;

    /// Records the findings of a run made at `now`: new ones are added, ones no longer
    /// found are marked resolved, none is deleted. Returns the ids first seen now.
    fn put_findings(&self, found: &[Finding], now_unix_ms: u64) -> Result<Vec<String>>;
    /// Every finding ever made.
    fn findings(&self) -> Result<Vec<FindingRecord>>;

    /// Appends a decision; returns it with its sequence number.
    fn decide(&self, by: &str, role: Role, at_unix_ms: u64, kind: DecisionKind) -> Result<Decision>;
    /// Every decision, in order.
    fn decisions(&self) -> Result<Vec<Decision>>;

    /// Stores the answer to a packet version, replacing an earlier one; `true` if it
    /// changed (and so must travel to the site again).
    fn put_answer(&self, answer: &PacketAnswer) -> Result<bool>;
    /// Every answer.
    fn answers(&self) -> Result<Vec<PacketAnswer>>;

    /// Records scan files now held in the image store; a file already recorded keeps its
    /// first record. Returns how many were new.
    fn hold_images(&self, images: &[ImageRef]) -> Result<usize>;
    /// Every image reference, deleted ones included, by digest.
    fn images(&self) -> Result<Vec<ImageRef>>;
    /// Marks the images with these digests deleted by retention (unknown ones are
    /// skipped; one deleted before keeps its first deletion).
    fn images_deleted(&self, sha256: &[[u8; 32]], removal: &Removal) -> Result<()>;

    /// Places a hold; returns it with its number.
    fn add_hold(&self, hold: NewHold) -> Result<Hold>;
    /// Releases hold `id`; an error if there is none or it was released before.
    fn release_hold(&self, id: u64, release: Release) -> Result<Hold>;
    /// Every hold, released ones included, in the order placed.
    fn holds(&self) -> Result<Vec<Hold>>;
}
