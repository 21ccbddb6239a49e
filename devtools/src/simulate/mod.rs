//! `konvert simulate region`: a region's exam day in virtual time, to compare a plain FIFO
//! baseline with konvert's scheduler and broker on the only figure that matters — sites
//! missing 23:59 local time.
//!
//! What is real: the edge scheduler (`EdgeScheduler`: classes, EDF, windows, token-bucket
//! pacing, goodput, status reports), the center's broker (`Broker`: plans every 10 s and on
//! every change), and every packet's protocol exchange through the real `PacketSender` and
//! `PacketReceiver` (Offer, Accept with the resume offset after a reconnect, each 1 MiB Data
//! frame, Done, an Ed25519 receipt signed by the center and verified by the edge).
//! What is modeled: the network (a fluid model in 1 s steps: each site's link rate, zero
//! during its outage; the center's ingress shared max-min fairly among the flows, like TCP),
//! the envelope bytes (a recycled zero buffer: sealing, the center's envelope verification
//! and fsync are not run — they are measured by `konvert bench`), frame encoding, and
//! latency (none). A link that stays down for 60 s drops the connection; the packet in flight
//! resumes from the bytes the center holds when it comes back.
//!
//! konvert sends whichever packet `EdgeScheduler::next` names, chunk by chunk, so a room's
//! forms overtake the blanks in flight (each packet is its own stream; the paused one resumes).
//! Baseline (FIFO): each site sends its packets in the order they were sealed, at its link's
//! full rate, one at a time; the center's ingress is split equally among the sites sending
//! (max-min fair, so a slow link's leftover goes to the others — a generous baseline).

mod bound;
mod engine;
mod exchange;
mod network;
mod region;
mod report;

pub use engine::run;
pub use region::{SimPacket, SimSite};
pub use report::{print_table, Delivery, PolicyResult, SimReport, SiteOutcome};

use serde::Serialize;

/// 2026-06-01 00:00 UTC: the exam day.
pub const DAY0_UTC_MS: u64 = 1_780_272_000_000;
/// One minute.
pub const MINUTE_MS: u64 = 60_000;
/// One hour.
pub const HOUR_MS: u64 = 3_600_000;

/// The center's main link is down over a span and the reserve channel (domain.md §5,
/// `002:6978`) carries the traffic at a lower rate.
#[derive(Debug, Clone, Serialize)]
pub struct CenterReserve {
    /// From (UTC).
    pub from_unix_ms: u64,
    /// Until (UTC).
    pub to_unix_ms: u64,
    /// The reserve channel's rate, Mbit/s.
    pub mbit: f64,
}

/// A region's exam day to simulate.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Seed of the generator.
    pub seed: u64,
    /// Participants in the region today.
    pub participants: u32,
    /// The region's time zones (UTC offsets, hours); sites are spread over them in turn.
    pub utc_offsets_h: Vec<i32>,
    /// Fraction of sites holding an oral exam (12 MB per participant).
    pub oral_site_fraction: f64,
    /// Participants per written-exam site (range).
    pub site_participants: (u32, u32),
    /// Participants per oral-exam site (range).
    pub oral_site_participants: (u32, u32),
    /// Site link rates, Mbit/s (log-uniform over the range).
    pub link_mbit: (f64, f64),
    /// The center's ingress, Mbit/s.
    pub center_mbit: f64,
    /// The center's main link fails for a while, if at all.
    pub center_reserve: Option<CenterReserve>,
    /// Rooms are scanned between these local times (minutes after midnight).
    pub scan_local_min: (u32, u32),
    /// How many sites lose their link once.
    pub site_outages: usize,
    /// An outage starts between these local times (minutes after midnight).
    pub outage_local_min: (u32, u32),
    /// How long an outage lasts.
    pub outage_ms: u64,
    /// Simulation step.
    pub step_ms: u64,
    /// The broker re-plans at least this often.
    pub replan_ms: u64,
}

impl Scenario {
    /// A region on one time zone (UTC+3), sized per the regulations (2,500 or 16,000 a day):
    /// written exams at 3 MB per participant, one site in ten oral at 12 MB, links 2–100
    /// Mbit/s, rooms scanned 14:00–19:00, center 100 Mbit/s, one site in 25 loses its link
    /// for an hour.
    pub fn region(participants: u32) -> Self {
        Scenario {
            name: format!("region-{participants}"),
            description: "one time zone, center 100 Mbit/s, scans 14:00–19:00, some links down for an hour".into(),
            seed: 2026,
            participants,
            utc_offsets_h: vec![3],
            oral_site_fraction: 0.1,
            site_participants: (100, 400),
            oral_site_participants: (30, 120),
            link_mbit: (2.0, 100.0),
            center_mbit: 100.0,
            center_reserve: None,
            scan_local_min: (14 * 60, 19 * 60),
            site_outages: (participants as usize / 2500).max(1),
            outage_local_min: (15 * 60, 20 * 60),
            outage_ms: HOUR_MS,
            step_ms: 1000,
            replan_ms: 10_000,
        }
    }

    /// The designed case: a region over three time zones (UTC+9…+11, as Yakutia), so the
    /// eastern sites' 23:59 comes two hours before the western ones'; the center's main link
    /// fails in the afternoon and the reserve channel carries 10 Mbit/s until it is back.
    /// Equal sharing lets everyone finish at about the same time — too late for the east;
    /// least slack first serves the east first.
    pub fn zones_reserve(participants: u32) -> Self {
        let base = Scenario::region(participants);
        Scenario {
            name: format!("zones-reserve-{participants}"),
            description: "UTC+9/+10/+11, center 100 Mbit/s, main link down 06:00–12:45 UTC (reserve 2 Mbit/s)".into(),
            utc_offsets_h: vec![9, 10, 11],
            center_reserve: Some(CenterReserve {
                from_unix_ms: DAY0_UTC_MS + 6 * HOUR_MS,
                to_unix_ms: DAY0_UTC_MS + 12 * HOUR_MS + 45 * MINUTE_MS,
                mbit: 2.0,
            }),
            ..base
        }
    }

    /// The scenarios `konvert simulate region` runs by default.
    pub fn presets() -> Vec<Scenario> {
        vec![
            Scenario::region(2_500),
            Scenario::region(16_000),
            Scenario::zones_reserve(16_000),
        ]
    }
}
