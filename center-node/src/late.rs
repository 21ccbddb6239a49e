//! Late packets: received after their site's delivery deadline — 23:59 local time of the
//! exam day (the final essay: of the seventh day after it), judged by the center's clock
//! when the last byte arrived, or for a drive by the time it is imported, never by the
//! sealing time the envelope claims.
//!
//! A late packet is not lost: it is stored and receipted like any other, so the site
//! stops resending it. But it never wins silently: its record says `late`, and the loader
//! holds it back — the newest on-time version of the packet stays the one unpacked —
//! until an operator decides with `konvert-center late decide`, either to take the late
//! version or to keep the on-time one. The decision is a file in `data_dir/late/` (one
//! `<envelope id>.toml` per late packet, read by the loader) and an entry in the audit log.

use std::fs;
use std::path::{Path, PathBuf};

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::keyfile;
use konvert_exam::{PacketKind, PacketRef, SiteZone};
use konvert_replication::{Inbox, InboxRecord};
use serde::{Deserialize, Serialize};

use crate::config::CenterConfig;
use crate::{Error, Result};

/// The largest decision file read; a decision is well under 4 KiB.
const MAX_DECISION_FILE: u64 = 64 * 1024;

/// The audit log's word for an operator's decision on a late packet.
pub const LATE_DECISION: &str = "packet.late_decision";

/// When the exam packet `packet`, received at `received_at_unix_ms`, is late: the deadline
/// it missed (Unix ms) and the zone it was judged in; `None` when on time.
pub fn lateness(cfg: &CenterConfig, packet: &PacketRef, received_at_unix_ms: u64) -> Option<(i64, String)> {
    lateness_in(cfg.site_zone(packet.site.as_str()), packet, received_at_unix_ms)
}

/// [`lateness`] judged in `zone` (the plan's zone for the site, else the config's: see
/// `plans::zone_for`).
pub fn lateness_in(zone: &SiteZone, packet: &PacketRef, received_at_unix_ms: u64) -> Option<(i64, String)> {
    // A readiness test packet is judged by the staff and never processed: it cannot win.
    if packet.kind == PacketKind::Test {
        return None;
    }
    // A date outside the time-zone database cannot be judged: it is not late by the clock.
    let deadline = zone.delivery_deadline_unix_ms(packet.date, packet.exam).ok()?;
    (i64::try_from(received_at_unix_ms).unwrap_or(i64::MAX) > deadline).then(|| (deadline, zone.name().to_owned()))
}

/// What the operator chose for a late packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LateChoice {
    /// Process the late version: it becomes the packet's newest version for the loader.
    Take,
    /// Keep processing the on-time version; the late one stays sealed in the store.
    KeepOnTime,
}

impl LateChoice {
    /// The choice in words, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LateChoice::Take => "take",
            LateChoice::KeepOnTime => "keep-on-time",
        }
    }
}

/// An operator's decision on one late packet version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LateDecision {
    /// The packet id.
    pub packet_id: String,
    /// Its version.
    pub version: u32,
    /// The site.
    pub site: String,
    /// The envelope id, 64 hex digits.
    pub envelope_id: String,
    /// What was decided.
    pub choice: LateChoice,
    /// Who decided.
    pub operator: String,
    /// Why, in the operator's words.
    pub reason: String,
    /// The center's clock when it was decided.
    pub decided_at_unix_ms: u64,
}

/// The folder of decisions on late packets.
#[derive(Debug, Clone)]
pub struct LateDesk {
    dir: PathBuf,
}

fn valid_envelope_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl LateDesk {
    /// The folder `data_dir/late/`, made when the first decision is written (reading
    /// writes nothing, so the loader may read a data folder it cannot write).
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(LateDesk {
            dir: data_dir.join("late"),
        })
    }

    /// The decision on the late packet with this envelope id, if one was made.
    pub fn decision(&self, envelope_id: &str) -> Result<Option<LateDecision>> {
        if !valid_envelope_id(envelope_id) {
            return Ok(None);
        }
        let path = self.dir.join(format!("{envelope_id}.toml"));
        if !path.exists() {
            return Ok(None);
        }
        let bytes = keyfile::read_bounded(&path, MAX_DECISION_FILE)?;
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| toml::from_str::<LateDecision>(t).ok())
            .filter(|d| d.envelope_id == envelope_id)
            .map(Some)
            .ok_or_else(|| Error::Config {
                path,
                message: "not a decision on a late packet; move the file away and decide again".into(),
            })
    }

    fn write(&self, decision: &LateDecision) -> Result<()> {
        let text = toml::to_string(decision).map_err(|e| Error::Config {
            path: self.dir.clone(),
            message: format!("cannot encode the decision: {e}"),
        })?;
        fs::create_dir_all(&self.dir).map_err(Error::file(&self.dir))?;
        let path = self.dir.join(format!("{}.toml", decision.envelope_id));
        keyfile::write_atomic(&path, text.as_bytes(), 0o644)?;
        Ok(())
    }
}

/// Every late packet the inbox holds, oldest first, with the decision on it if any.
pub fn list(data_dir: &Path, inbox: &Inbox) -> Result<Vec<(InboxRecord, Option<LateDecision>)>> {
    let desk = LateDesk::open(data_dir)?;
    let mut late = Vec::new();
    for r in inbox.records()?.into_iter().filter(|r| r.late) {
        let decision = desk.decision(&hex::encode(r.receipt.body.digest))?;
        late.push((r, decision));
    }
    late.sort_by_key(|(r, _)| r.receipt.body.received_at_unix_ms);
    Ok(late)
}

/// Records `operator`'s `choice` on the late packet `packet_id` v`version`: the decision
/// file the loader reads, and an entry in the audit log. A decision once made stands; a
/// packet that is not late cannot be decided on.
#[allow(clippy::too_many_arguments)] // Each is one thing the operator states.
pub fn decide(
    cfg: &CenterConfig,
    inbox: &Inbox,
    packet_id: &str,
    version: u32,
    choice: LateChoice,
    operator: &str,
    reason: &str,
    now_unix_ms: u64,
) -> Result<LateDecision> {
    let refuse = |what: String, hint: &'static str| Error::Loader { what, hint };
    if operator.trim().is_empty() || reason.trim().is_empty() {
        return Err(refuse(
            "a decision on a late packet needs the operator's name and reason".into(),
            "give --operator and --reason",
        ));
    }
    let record = inbox.lookup(packet_id, version)?.ok_or_else(|| {
        refuse(
            format!("the center holds no {packet_id} v{version}"),
            "see `konvert-center late list` for the late packets",
        )
    })?;
    if !record.late {
        return Err(refuse(
            format!("{packet_id} v{version} arrived on time; there is nothing to decide"),
            "see `konvert-center late list` for the late packets",
        ));
    }
    let b = &record.receipt.body;
    let envelope_id = hex::encode(b.digest);
    let desk = LateDesk::open(&cfg.data_dir)?;
    if let Some(made) = desk.decision(&envelope_id)? {
        return Err(refuse(
            format!(
                "{packet_id} v{version} was already decided: {} by {} ({})",
                made.choice.as_str(),
                made.operator,
                made.reason
            ),
            "a decision stands once made; it is in the audit log",
        ));
    }
    let decision = LateDecision {
        packet_id: b.packet_id.clone(),
        version: b.version,
        site: b.site.clone(),
        envelope_id,
        choice,
        operator: operator.to_owned(),
        reason: reason.to_owned(),
        decided_at_unix_ms: now_unix_ms,
    };
    // The audit entry first: a decision that is not in the log is not made.
    let checkpoint_key = keyfile::read_signing_key(&cfg.receipt_key).ok();
    let audit = AuditLog::open(
        &cfg.data_dir.join(crate::service::AUDIT_LOG),
        checkpoint_key,
        crate::service::AUDIT_CHECKPOINT_EVERY,
    )?;
    audit.append(
        &format!("operator {operator}"),
        AuditAction::Other(LATE_DECISION.to_owned()),
        &format!("{} v{} {}", decision.packet_id, decision.version, decision.envelope_id),
        &format!("{}: {}", choice.as_str(), reason),
    )?;
    if let Err(e) = audit.checkpoint() {
        tracing::warn!("cannot write the audit log's checkpoint: {e}");
    }
    desk.write(&decision)?;
    Ok(decision)
}

#[cfg(test)]
#[path = "late_tests.rs"]
mod tests;
