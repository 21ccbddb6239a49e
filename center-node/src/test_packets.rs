//! The test-packet desk: technical-readiness packets that the center keeps, that the
//! staff judge for print and scan quality, and that never enter processing.
//!
//! The desk is a folder (`data_dir/test-packets/`) rather than part of the inbox's sled
//! database, because staff judge packets while the receiver runs and sled allows one
//! process. Per test packet version, named by its envelope id: `<id>.toml` (what arrived,
//! written by the receiver) and, once judged, `<id>.verdict` (the signed verdict, written
//! once by `konvert-center test-packets confirm|reject`). The receiver reads verdicts when
//! a station asks for its notices.

use std::fs;
use std::path::{Path, PathBuf};

use konvert_crypto::keyfile;
use konvert_crypto::SigningKey;
use konvert_replication::notice::MAX_NOTICES;
use konvert_replication::{InboxRecord, Notice, SignedNotice, TestVerdict, Verdict};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest desk file read; records and verdicts are well under 4 KiB.
const MAX_DESK_FILE: u64 = 64 * 1024;

/// What the center received: one test packet version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPacketRecord {
    /// The packet id.
    pub packet_id: String,
    /// Its version.
    pub version: u32,
    /// The site whose station delivered it.
    pub site: String,
    /// The envelope id, 64 hex digits; also the stored envelope's name.
    pub envelope_id: String,
    /// Envelope size in bytes.
    pub bytes: u64,
    /// The center's clock when it became durable.
    pub received_at_unix_ms: u64,
    /// The member key that signed it.
    pub signer: String,
}

impl TestPacketRecord {
    /// The record of a stored inbox entry.
    pub fn from_inbox(record: &InboxRecord) -> Self {
        let b = &record.receipt.body;
        TestPacketRecord {
            packet_id: b.packet_id.clone(),
            version: b.version,
            site: b.site.clone(),
            envelope_id: hex::encode(b.digest),
            bytes: b.bytes,
            received_at_unix_ms: b.received_at_unix_ms,
            signer: record.signer.to_string(),
        }
    }

    /// The envelope id as bytes.
    pub fn digest(&self) -> Result<[u8; 32]> {
        let mut d = [0u8; 32];
        hex::decode_to_slice(&self.envelope_id, &mut d).map_err(|_| Error::TestPacket {
            what: format!("the desk record of {} has a damaged envelope id", self.packet_id),
            hint: "restore the test-packets folder from backup or ask the site to send a new test packet",
        })?;
        Ok(d)
    }
}

/// A test packet with its verdict, if judged.
#[derive(Debug, Clone)]
pub struct TestPacket {
    /// What arrived.
    pub record: TestPacketRecord,
    /// The signed verdict.
    pub verdict: Option<SignedNotice>,
}

impl TestPacket {
    /// The verdict's content, if judged.
    pub fn judged(&self) -> Option<&TestVerdict> {
        match &self.verdict.as_ref()?.notice {
            Notice::TestVerdict(v) => Some(v),
            Notice::PacketAnswer(_) => None,
        }
    }
}

/// The folder of test packets and verdicts.
#[derive(Debug, Clone)]
pub struct TestDesk {
    dir: PathBuf,
}

fn valid_envelope_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl TestDesk {
    /// Opens (or creates) the desk under the center's data folder.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("test-packets");
        fs::create_dir_all(&dir).map_err(Error::file(&dir))?;
        Ok(TestDesk { dir })
    }

    fn record_path(&self, envelope_id: &str) -> PathBuf {
        self.dir.join(format!("{envelope_id}.toml"))
    }

    fn verdict_path(&self, envelope_id: &str) -> PathBuf {
        self.dir.join(format!("{envelope_id}.verdict"))
    }

    /// Puts a received test packet on the desk (again, harmlessly, if it is there).
    pub fn record_received(&self, record: &TestPacketRecord) -> Result<()> {
        let path = self.record_path(&record.envelope_id);
        let text = toml::to_string(record).map_err(|e| Error::TestPacket {
            what: format!("cannot encode the desk record: {e}"),
            hint: "report this as a bug",
        })?;
        keyfile::write_atomic(&path, text.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Whether a packet with this envelope id is on the desk.
    pub fn contains(&self, envelope_id: &str) -> bool {
        self.record_path(envelope_id).exists()
    }

    /// Every test packet on the desk, oldest first.
    pub fn list(&self) -> Result<Vec<TestPacket>> {
        let mut all = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(Error::file(&self.dir))? {
            let path = entry.map_err(Error::file(&self.dir))?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            if !valid_envelope_id(id) {
                continue;
            }
            let bytes = keyfile::read_bounded(&path, MAX_DESK_FILE)?;
            let record: TestPacketRecord = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| toml::from_str(t).ok())
                .ok_or_else(|| Error::TestPacket {
                    what: format!("{} is not a test-packet record", path.display()),
                    hint:
                        "move the damaged file out of the test-packets folder; the packet itself is safe in the store",
                })?;
            let verdict = self.read_verdict(id)?;
            all.push(TestPacket { record, verdict });
        }
        all.sort_by(|a, b| {
            (a.record.received_at_unix_ms, &a.record.packet_id)
                .cmp(&(b.record.received_at_unix_ms, &b.record.packet_id))
        });
        Ok(all)
    }

    fn read_verdict(&self, envelope_id: &str) -> Result<Option<SignedNotice>> {
        let path = self.verdict_path(envelope_id);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = keyfile::read_bounded(&path, MAX_DESK_FILE)?;
        postcard::from_bytes(&bytes).map(Some).map_err(|_| Error::TestPacket {
            what: format!("{} is not a signed verdict", path.display()),
            hint: "move the damaged file away and judge the packet again",
        })
    }

    /// The test packet named `packet` — an envelope id, or a packet id (its newest version
    /// unless `version` is given).
    pub fn find(&self, packet: &str, version: Option<u32>) -> Result<TestPacket> {
        let all = self.list()?;
        let matches: Vec<TestPacket> = all
            .into_iter()
            .filter(|p| {
                p.record.envelope_id == packet
                    || (p.record.packet_id == packet && version.is_none_or(|v| v == p.record.version))
            })
            .collect();
        matches
            .into_iter()
            .max_by_key(|p| p.record.version)
            .ok_or_else(|| Error::TestPacket {
                what: format!(
                    "no test packet {packet}{} on the desk",
                    version.map(|v| format!(" v{v}")).unwrap_or_default()
                ),
                hint: "run `konvert-center test-packets list` to see the packets that arrived",
            })
    }

    /// Records the staff's verdict on a test packet, signed with the center's receipt
    /// key. A packet is judged once: a site whose test was rejected sends a new version.
    pub fn judge(
        &self,
        packet: &TestPacket,
        verdict: Verdict,
        reason: &str,
        judged_by: &str,
        key: &SigningKey,
        now_unix_ms: u64,
    ) -> Result<SignedNotice> {
        let r = &packet.record;
        if let Some(done) = packet.judged() {
            return Err(Error::TestPacket {
                what: format!(
                    "{} v{} was already {} by {}",
                    r.packet_id, r.version, done.verdict, done.judged_by
                ),
                hint: "a verdict is final; if the site must test again, it sends a new test packet",
            });
        }
        let notice = Notice::TestVerdict(TestVerdict {
            packet_id: r.packet_id.clone(),
            version: r.version,
            site: r.site.clone(),
            digest: r.digest()?,
            verdict,
            reason: reason.trim().to_owned(),
            judged_by: judged_by.trim().to_owned(),
            judged_at_unix_ms: now_unix_ms,
        });
        let signed = SignedNotice::sign(notice, key).map_err(|e| Error::TestPacket {
            what: e.to_string(),
            hint: "give --by your name, and --reason (required when rejecting)",
        })?;
        let bytes = postcard::to_allocvec(&signed).map_err(|e| Error::TestPacket {
            what: format!("cannot encode the verdict: {e}"),
            hint: "report this as a bug",
        })?;
        let path = self.verdict_path(&r.envelope_id);
        if let Err(e) = keyfile::write_new_atomic(&path, &bytes, 0o644) {
            if path.exists() {
                return Err(Error::TestPacket {
                    what: format!("{} v{} was judged by someone else just now", r.packet_id, r.version),
                    hint: "run `konvert-center test-packets list` to see the verdict",
                });
            }
            return Err(e.into());
        }
        Ok(signed)
    }

    /// The newest verdicts for `site`, at most [`MAX_NOTICES`].
    pub fn notices_for(&self, site: &str) -> Result<Vec<SignedNotice>> {
        let mut judged: Vec<(u64, SignedNotice)> = self
            .list()?
            .into_iter()
            .filter(|p| p.record.site == site)
            .filter_map(|p| {
                let at = p.judged()?.judged_at_unix_ms;
                Some((at, p.verdict?))
            })
            .collect();
        judged.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        Ok(judged.into_iter().take(MAX_NOTICES).map(|(_, n)| n).collect())
    }
}

#[cfg(test)]
#[path = "test_packets_tests.rs"]
mod tests;
