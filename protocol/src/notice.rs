//! Notices: what the center tells a site after the fact, signed with the center's receipt
//! key under their own signature domain. Today that is the staff's verdict on a
//! technical-readiness test packet; loader remarks and registry updates will join it.
//!
//! The edge asks for its notices on a stream of their own (`AskNotices` → `Notices`),
//! so a verdict reaches the site over the same mutually authenticated connection as its
//! packets, whenever it next connects.

use konvert_crypto::{Domain, KeyId, Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most notices one `Notices` message carries; the newest are sent.
pub const MAX_NOTICES: usize = 256;
/// Longest reason or staff name a verdict may carry, in characters.
pub const MAX_VERDICT_TEXT: usize = 500;

/// The staff's judgement of a test packet's print and scan quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Print and scan quality are good; the site is ready.
    Confirmed,
    /// Not good enough; the site must fix what the reason says and send a new test packet.
    Rejected,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Rejected => "rejected",
        })
    }
}

/// The verdict on one test packet version, bound to the exact envelope judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestVerdict {
    /// The test packet's id.
    pub packet_id: String,
    /// Its version.
    pub version: u32,
    /// The site that sent it.
    pub site: String,
    /// The envelope id of the judged envelope.
    pub digest: [u8; 32],
    /// Confirmed or rejected.
    pub verdict: Verdict,
    /// What the staff saw (required when rejecting).
    pub reason: String,
    /// Who judged, as the center's staff signed it off.
    pub judged_by: String,
    /// The center's clock when it was judged.
    pub judged_at_unix_ms: u64,
}

impl TestVerdict {
    /// Whether this verdict is about exactly the envelope `offer` describes.
    pub fn is_for(&self, offer: &crate::Offer) -> bool {
        self.packet_id == offer.packet_id && self.version == offer.version && self.digest == offer.digest
    }
}

/// What a notice says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// A test packet was judged.
    TestVerdict(TestVerdict),
    /// The loader answered a packet version: loaded, or remarks to act on.
    PacketAnswer(crate::PacketAnswer),
}

impl Notice {
    /// The site the notice is for.
    pub fn site(&self) -> &str {
        match self {
            Notice::TestVerdict(v) => &v.site,
            Notice::PacketAnswer(a) => &a.site,
        }
    }

    /// When it was decided (judged, answered), for newest-first order.
    pub fn at_unix_ms(&self) -> u64 {
        match self {
            Notice::TestVerdict(v) => v.judged_at_unix_ms,
            Notice::PacketAnswer(a) => a.answered_at_unix_ms,
        }
    }
}

/// A notice signed by the center's receipt key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedNotice {
    /// What it says.
    pub notice: Notice,
    /// The key id of the center key that signed.
    pub center_key: KeyId,
    /// Ed25519 over the postcard encoding of (`notice`, `center_key`), domain `Notice`.
    pub signature: Signature,
}

fn signed_bytes(notice: &Notice, center_key: &KeyId) -> Result<Vec<u8>> {
    postcard::to_allocvec(&(notice, center_key)).map_err(|e| Error::BadNotice(format!("cannot encode: {e}")))
}

impl SignedNotice {
    /// Signs `notice` with the center's receipt key, after checking its text is bounded.
    pub fn sign(notice: Notice, key: &SigningKey) -> Result<Self> {
        check_text(&notice)?;
        let center_key = key.key_id();
        let signature = key.sign(Domain::Notice, &signed_bytes(&notice, &center_key)?);
        Ok(SignedNotice {
            notice,
            center_key,
            signature,
        })
    }

    /// Checks the signature against the center's receipt key and the text bounds.
    pub fn verify(&self, center: &VerifyingKey) -> Result<&Notice> {
        if self.center_key != center.key_id() {
            return Err(Error::BadNotice(format!(
                "signed by key {}, expected the center's key {}",
                self.center_key,
                center.key_id()
            )));
        }
        center
            .verify(
                Domain::Notice,
                &signed_bytes(&self.notice, &self.center_key)?,
                &self.signature,
            )
            .map_err(|_| Error::BadNotice("signature does not verify against the center's key".into()))?;
        check_text(&self.notice)?;
        Ok(&self.notice)
    }
}

fn check_text(notice: &Notice) -> Result<()> {
    match notice {
        Notice::TestVerdict(v) => {
            for (what, text) in [("reason", &v.reason), ("staff name", &v.judged_by)] {
                if text.chars().count() > MAX_VERDICT_TEXT {
                    return Err(Error::BadNotice(format!(
                        "the verdict's {what} is longer than {MAX_VERDICT_TEXT} characters; shorten it"
                    )));
                }
            }
            if v.judged_by.trim().is_empty() {
                return Err(Error::BadNotice("a verdict must name who judged it".into()));
            }
            if v.verdict == Verdict::Rejected && v.reason.trim().is_empty() {
                return Err(Error::BadNotice(
                    "a rejection must say what is wrong, so the site can fix it".into(),
                ));
            }
            Ok(())
        }
        Notice::PacketAnswer(a) => a.check().map_err(Error::BadNotice),
    }
}

#[cfg(test)]
#[path = "notice_tests.rs"]
mod tests;
