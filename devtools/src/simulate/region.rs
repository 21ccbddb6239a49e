//! A region's exam day, generated from a scenario with a fixed seed: sites, their links and
//! outages, and the packets each room's scanning releases.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{Scenario, DAY0_UTC_MS, HOUR_MS, MINUTE_MS};

/// Scan data per participant, written exams (domain.md §6: m = 3 MB).
pub(super) const M_WRITTEN: u64 = 3_000_000;
/// Scan data and audio per participant, oral exams (m = 12 MB).
pub(super) const M_ORAL: u64 = 12_000_000;
/// Machine-readable forms of one room (ППЭ-13-02МАШ, ППЭ-12-04МАШ, ППЭ-18МАШ).
pub(super) const FORMS_BYTES: u64 = 400_000;
/// A station log (journal) sent at the end of the day.
pub(super) const JOURNAL_BYTES: u64 = 2_000_000;
/// Participants per room.
pub(super) const ROOM_SEATS: u32 = 15;

/// Packet classes (`PacketKind::priority`).
pub(super) const FORMS: u8 = 0;
/// Blanks.
pub(super) const BLANKS: u8 = 1;
/// Journal.
pub(super) const JOURNAL: u8 = 2;
/// Audio.
pub(super) const AUDIO: u8 = 3;

/// One packet of the day.
#[derive(Debug, Clone, Serialize)]
pub struct SimPacket {
    /// Packet id.
    pub id: String,
    /// Class (`Offer::priority`).
    pub priority: u8,
    /// Envelope bytes.
    pub size: u64,
    /// When scanning and sealing released it.
    pub ready_unix_ms: u64,
}

/// One exam site.
#[derive(Debug, Clone, Serialize)]
pub struct SimSite {
    /// Site code.
    pub code: String,
    /// UTC offset, hours.
    pub utc_offset_h: i32,
    /// Participants today.
    pub participants: u32,
    /// Oral exam (12 MB per participant).
    pub oral: bool,
    /// Link rate, bytes per second.
    pub link_bytes_per_s: u64,
    /// The link is down over this span, if at all.
    pub outage: Option<(u64, u64)>,
    /// 23:59 local time.
    pub deadline_unix_ms: u64,
    /// Packets in release order.
    pub packets: Vec<SimPacket>,
}

impl SimSite {
    /// Whether the link is up at `t`.
    pub fn link_up(&self, t: u64) -> bool {
        self.outage.is_none_or(|(from, to)| t < from || t >= to)
    }

    /// Bytes of all its packets.
    pub fn bytes(&self) -> u64 {
        self.packets.iter().map(|p| p.size).sum()
    }

    /// Local midnight of the exam day.
    pub fn local_midnight(&self) -> u64 {
        (DAY0_UTC_MS as i64 - i64::from(self.utc_offset_h) * HOUR_MS as i64) as u64
    }
}

/// Generates the region's sites and packets.
pub(super) fn generate(s: &Scenario) -> Vec<SimSite> {
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut sites = Vec::new();
    let mut left = s.participants;
    let mut i = 0usize;
    while left > 0 {
        let oral = rng.gen_bool(s.oral_site_fraction.clamp(0.0, 1.0));
        let (lo, hi) = if oral {
            s.oral_site_participants
        } else {
            s.site_participants
        };
        let participants = rng.gen_range(lo..=hi.max(lo)).min(left).max(1);
        left -= participants;
        let offset = s.utc_offsets_h[i % s.utc_offsets_h.len().max(1)];
        let (l0, l1) = s.link_mbit;
        let mbit = (l0.ln() + rng.gen::<f64>() * (l1.ln() - l0.ln())).exp();
        let mut site = SimSite {
            code: format!("{:04}", 101 + i),
            utc_offset_h: offset,
            participants,
            oral,
            link_bytes_per_s: (mbit * 1e6 / 8.0) as u64,
            outage: None,
            deadline_unix_ms: 0,
            packets: Vec::new(),
        };
        let midnight = site.local_midnight();
        site.deadline_unix_ms = midnight + 23 * HOUR_MS + 59 * MINUTE_MS;
        let (scan0, scan1) = s.scan_local_min;
        let m = if oral { M_ORAL } else { M_WRITTEN };
        let rooms = participants.div_ceil(ROOM_SEATS);
        let mut seated = participants;
        for room in 0..rooms {
            let n = seated.min(ROOM_SEATS);
            seated -= n;
            let at =
                midnight + u64::from(rng.gen_range(scan0..=scan1.max(scan0))) * MINUTE_MS + rng.gen_range(0..MINUTE_MS);
            let id = |kind: &str| format!("{}-r{:03}-{kind}", site.code, room + 1);
            site.packets.push(SimPacket {
                id: id("forms"),
                priority: FORMS,
                size: FORMS_BYTES,
                ready_unix_ms: at,
            });
            // Blanks are sealed a minute after the room's forms.
            let written = u64::from(n) * M_WRITTEN - FORMS_BYTES;
            site.packets.push(SimPacket {
                id: id("blanks"),
                priority: BLANKS,
                size: written,
                ready_unix_ms: at + MINUTE_MS,
            });
            if oral {
                site.packets.push(SimPacket {
                    id: id("audio"),
                    priority: AUDIO,
                    size: u64::from(n) * (m - M_WRITTEN),
                    ready_unix_ms: at + 2 * MINUTE_MS,
                });
            }
        }
        // The station log at the end of the scanning.
        site.packets.push(SimPacket {
            id: format!("{}-journal", site.code),
            priority: JOURNAL,
            size: JOURNAL_BYTES,
            ready_unix_ms: midnight + u64::from(s.scan_local_min.1) * MINUTE_MS + 5 * MINUTE_MS,
        });
        site.packets.sort_by_key(|p| (p.ready_unix_ms, p.priority));
        sites.push(site);
        i += 1;
    }
    // Some links go down for an hour during the afternoon's transfers.
    let n = sites.len();
    for k in 0..s.site_outages.min(n) {
        let idx = (k * n / s.site_outages.max(1) + rng.gen_range(0..n.div_ceil(s.site_outages.max(1)))) % n;
        let site = &mut sites[idx];
        let (o0, o1) = s.outage_local_min;
        let from = site.local_midnight() + u64::from(rng.gen_range(o0..=o1.max(o0))) * MINUTE_MS;
        site.outage = Some((from, from + s.outage_ms));
    }
    sites
}
