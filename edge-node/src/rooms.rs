//! The day's rooms as the intake sees them: each taken file placed into a room packet
//! (forms or blanks) by its pages' identifiers and the seating plan, each room checked
//! for completeness, and each packet compared with what was last sealed — and sealing a
//! room, which needs an override with a reason while the room has discrepancies.

use std::collections::BTreeMap;

use konvert_crypto::MemberSigner;
use konvert_exam::{
    check_room, place_file, unsorted_room, ArchiveSource, PacketKind, PacketRef, PageRecord, RoomCheck, RoomId,
    RoomRecord, SeatingPlan,
};
use konvert_replication::Outbox;

use crate::config::SiteConfig;
use crate::intake::{Intake, SealedRecord, TakenFile};
use crate::seal::{seal_sources, SealedPacket};
use crate::{Error, Result};

/// One packet of a room: its files and whether they were sealed as they are now.
#[derive(Debug, Clone)]
pub struct RoomPacket {
    /// Forms or blanks.
    pub kind: PacketKind,
    /// Its files, in the order taken.
    pub files: Vec<TakenFile>,
    /// What was last sealed.
    pub sealed: Option<SealedRecord>,
}

impl RoomPacket {
    /// The files' digests, sorted: what identifies this content.
    pub fn digests(&self) -> Vec<[u8; 32]> {
        let mut d: Vec<_> = self.files.iter().map(|f| f.sha256).collect();
        d.sort_unstable();
        d
    }

    /// Whether the last sealed version holds exactly these files.
    pub fn is_sealed_as_is(&self) -> bool {
        self.sealed.as_ref().is_some_and(|s| s.files == self.digests())
    }
}

/// One room of the day.
#[derive(Debug, Clone)]
pub struct RoomState {
    /// Completeness.
    pub check: RoomCheck,
    /// Its packets (forms first).
    pub packets: Vec<RoomPacket>,
    /// When its last file was taken (ms since the epoch), if any.
    pub last_taken_ms: Option<u64>,
}

impl RoomState {
    /// Whether every packet of the room is sealed as it is now.
    pub fn is_sealed(&self) -> bool {
        !self.packets.is_empty() && self.packets.iter().all(RoomPacket::is_sealed_as_is)
    }

    /// Whether the room holds any scans.
    pub fn has_scans(&self) -> bool {
        !self.packets.is_empty()
    }
}

/// Every room of the plan and every room files were placed in, in order.
pub fn day_rooms(plan: &SeatingPlan, intake: &Intake) -> Result<Vec<RoomState>> {
    journal_rooms(plan, intake.journal())
}

/// [`day_rooms`] from the journal alone (what a running day's control socket has).
pub fn journal_rooms(plan: &SeatingPlan, journal: &crate::intake::Journal) -> Result<Vec<RoomState>> {
    let files = journal.files()?;
    let mut placed: BTreeMap<RoomId, BTreeMap<PacketKind, Vec<TakenFile>>> = BTreeMap::new();
    for room in plan.rooms().keys() {
        placed.entry((*room).clone()).or_default();
    }
    for file in &files {
        let p = place_file(plan, &file.pages);
        placed
            .entry(p.room)
            .or_default()
            .entry(p.kind)
            .or_default()
            .push(file.clone());
    }
    let all_pages: Vec<&PageRecord> = files.iter().flat_map(|f| f.pages.iter()).collect();
    let mut rooms = Vec::new();
    for (room, kinds) in placed {
        let pages: Vec<&PageRecord> = kinds.values().flatten().flat_map(|f| f.pages.iter()).collect();
        let present = journal.attendance(&room)?;
        let check = check_room(plan, &room, &pages, &all_pages, present);
        let last_taken_ms = kinds.values().flatten().map(|f| f.taken_at_unix_ms).max();
        let mut packets = Vec::new();
        for (kind, files) in kinds {
            let id = packet_ref(plan, &room, kind).packet_id();
            packets.push(RoomPacket {
                kind,
                files,
                sealed: journal.sealed(&id)?,
            });
        }
        packets.sort_by_key(|p| p.kind.priority());
        rooms.push(RoomState {
            check,
            packets,
            last_taken_ms,
        });
    }
    Ok(rooms)
}

/// The packet of `room` and `kind` on the plan's day.
pub fn packet_ref(plan: &SeatingPlan, room: &RoomId, kind: PacketKind) -> PacketRef {
    PacketRef {
        site: plan.site.clone(),
        date: plan.date,
        exam: plan.exam,
        room: room.clone(),
        kind,
    }
}

/// What sealing a day's room needs: the site, its outbox, the member's key, the plan and
/// the intake that took the scans.
pub struct SealDesk<'a> {
    /// The site configuration.
    pub cfg: &'a SiteConfig,
    /// Where sealed envelopes go.
    pub outbox: &'a Outbox,
    /// The member's unlocked token key.
    pub signer: &'a dyn MemberSigner,
    /// The day's seating plan.
    pub plan: &'a SeatingPlan,
    /// The intake whose journal holds the room's files.
    pub intake: &'a Intake,
}

/// Seals every packet of `room` whose files changed since it was last sealed; see
/// [`seal_room_state`].
pub fn seal_day_room(
    desk: &SealDesk<'_>,
    room: &RoomId,
    override_reason: Option<&str>,
    now_unix_ms: u64,
) -> Result<Vec<SealedPacket>> {
    let rooms = day_rooms(desk.plan, desk.intake)?;
    let Some(state) = rooms.into_iter().find(|r| &r.check.room == room) else {
        return Err(Error::Push(format!(
            "room {room} is not on the seating plan and holds no scans; check the room code"
        )));
    };
    seal_room_state(desk, &state, override_reason, now_unix_ms)
}

/// Seals every packet of a room, as [`day_rooms`] just found it, whose files changed
/// since it was last sealed. A room with discrepancies is refused unless
/// `override_reason` says why it must go as it is; the reason and the discrepancies go
/// into the signed manifest.
pub fn seal_room_state(
    desk: &SealDesk<'_>,
    state: &RoomState,
    override_reason: Option<&str>,
    now_unix_ms: u64,
) -> Result<Vec<SealedPacket>> {
    let SealDesk {
        cfg,
        outbox,
        signer,
        plan,
        intake,
    } = *desk;
    let room = &state.check.room;
    if !state.has_scans() {
        return Err(Error::Push(format!("room {room} has no scans yet; scan it first")));
    }
    let override_reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
    if !state.check.is_complete() && override_reason.is_none() {
        let list: Vec<String> = state.check.discrepancies.iter().map(|d| format!("  - {d}")).collect();
        return Err(Error::Incomplete {
            room: room.clone(),
            discrepancies: list.join("\n"),
        });
    }
    if room == &unsorted_room() && override_reason.is_none() {
        return Err(Error::Push(
            "pages that belong to no room need an override with a reason to be sent".into(),
        ));
    }
    let mut sealed = Vec::new();
    for packet in state.packets.iter().filter(|p| !p.is_sealed_as_is()) {
        let pref = packet_ref(plan, room, packet.kind);
        let id = pref.packet_id();
        let version = outbox.next_version(&id)?;
        intake.journal().begin_seal(
            &id,
            &SealedRecord {
                version,
                files: packet.digests(),
                committed: false,
                override_reason: override_reason.map(str::to_owned),
            },
        )?;
        let sources = packet
            .files
            .iter()
            .map(|f| ArchiveSource {
                name: f.name.clone(),
                path: intake.spool_path(f),
                size: f.size,
                sha256: Some(f.sha256),
            })
            .collect();
        let record = RoomRecord {
            pages: packet.files.iter().flat_map(|f| f.pages.iter().cloned()).collect(),
            counts: state.check.counts.clone(),
            discrepancies: state.check.discrepancies.clone(),
            override_reason: override_reason.map(str::to_owned),
        };
        let done = seal_sources(cfg, outbox, signer, pref, sources, Some(record), now_unix_ms)?;
        if done.entry.offer.version != version {
            return Err(Error::Push(format!(
                "packet {id} was sealed as version {} while {version} was expected; another konvert-edge is using this data folder",
                done.entry.offer.version
            )));
        }
        intake.journal().commit_seal(&id)?;
        sealed.push(done);
    }
    Ok(sealed)
}
