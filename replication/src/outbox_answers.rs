//! The center's answers to this station's packets ("loaded" or remarks, R10), kept in the
//! outbox beside the packets they answer, and the link from a remark to the newer version
//! of its packet that answers it.
//!
//! The link is worked out when asked, from the outbox itself: a remark on version N is
//! answered by the newest version above N of the same packet that this station sealed.
//! Nothing to keep in step, and a version sealed before the answer arrived counts too.

use konvert_crypto::VerifyingKey;
use konvert_protocol::Error as ProtocolError;

use super::{decode, Outbox, OutboxState, Trees};
use crate::durable::{packet_key, packet_prefix, storage_err};
use crate::{Error, Notice, PacketAnswer, Result, SignedNotice};

pub(super) const TREE: &str = "packet-answers";

/// An answer kept at the station, with the newer version that answers its remarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    /// What the center answered.
    pub answer: PacketAnswer,
    /// The newest later version of the same packet sealed here (and not refused), and
    /// whether the center has receipted it; `None` while the remarks are still to be
    /// acted on.
    pub answered_by: Option<(u32, bool)>,
}

impl Outbox {
    /// Keeps the center's answer to one of this outbox's packets: it must verify against
    /// `center` and name exactly an envelope sent from here. A newer answer to the same
    /// version replaces an older one. Returns whether anything changed.
    pub fn record_answer(&self, notice: &SignedNotice, center: &VerifyingKey) -> Result<bool> {
        let Notice::PacketAnswer(a) = notice.verify(center)? else {
            return Err(ProtocolError::BadNotice("not an answer to a packet".into()).into());
        };
        let key = packet_key(&a.packet_id, a.version);
        let sent = match self.trees.read(|t| t.entries.get(&key).map_err(storage_err))? {
            Some(bytes) => decode(&bytes)?,
            None => {
                return Err(ProtocolError::BadNotice(format!(
                    "an answer to {} v{}, which this station never sent",
                    a.packet_id, a.version
                ))
                .into())
            }
        };
        if sent.offer.digest != a.digest {
            return Err(ProtocolError::BadNotice(format!(
                "the answer to {} v{} is for other content than this station sent",
                a.packet_id, a.version
            ))
            .into());
        }
        let bytes = postcard::to_allocvec(notice).map_err(storage_err)?;
        self.trees.write(|t| {
            if let Some(old) = t.answers.get(&key).map_err(storage_err)? {
                let old: SignedNotice = decode_notice(&old)?;
                if old.notice.at_unix_ms() >= a.answered_at_unix_ms {
                    return Ok(false);
                }
            }
            t.answers.insert(key, bytes).map_err(storage_err)?;
            t.db.flush_durably().map_err(storage_err)?;
            Ok(true)
        })
    }

    /// Every answer kept here, in packet order, each with the version that answers it.
    pub fn answers(&self) -> Result<Vec<KeptAnswer>> {
        self.trees.read(|t| {
            let mut all = Vec::new();
            for kv in t.answers.iter() {
                let (_, v) = kv.map_err(storage_err)?;
                let Notice::PacketAnswer(answer) = decode_notice(&v)?.notice else {
                    continue;
                };
                let answered_by = later_version(t, &answer.packet_id, answer.version)?;
                all.push(KeptAnswer { answer, answered_by });
            }
            Ok(all)
        })
    }
}

/// The newest version above `version` of `packet_id` in the outbox that the center
/// did not refuse, and whether it is delivered.
fn later_version(t: &Trees, packet_id: &str, version: u32) -> Result<Option<(u32, bool)>> {
    let mut newest = None;
    for kv in t.entries.scan_prefix(packet_prefix(packet_id)) {
        let (_, v) = kv.map_err(storage_err)?;
        let e = decode(&v)?;
        // A version the center refused answers nothing.
        let refused = matches!(e.state, OutboxState::Rejected { .. });
        if e.offer.packet_id == packet_id && e.offer.version > version && !refused {
            let delivered = matches!(e.state, OutboxState::Delivered { .. });
            if newest.is_none_or(|(n, _)| e.offer.version > n) {
                newest = Some((e.offer.version, delivered));
            }
        }
    }
    Ok(newest)
}

fn decode_notice(bytes: &[u8]) -> Result<SignedNotice> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("corrupt stored answer: {e}")))
}

#[cfg(test)]
#[path = "outbox_answers_tests.rs"]
mod tests;
