//! The loader's answer to a packet (R10, seed 002:7128–7130, 8037–8039): every packet
//! version the center received is answered either "received and loaded" or with remarks
//! the site can act on before its 23:59 — each naming what is wrong (room, participant,
//! page) and what to do (rescan and send version 2, send the missing form, or carry it on
//! a drive).
//!
//! Answers are made on the loader's offline workstation, cross to the receiver on a drive
//! or a one-way folder, and reach the site as notices, like test-packet verdicts. This
//! module holds only what an answer says; signing and carrying it are the callers'.

use serde::{Deserialize, Serialize};

/// Longest free text a remark carries, in characters.
pub const MAX_REMARK_TEXT: usize = 500;
/// Most remarks one answer carries; a packet with more gets one remark to rescan it all.
pub const MAX_REMARKS: usize = 64;

/// What the site should do about a remark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemarkAction {
    /// Rescan the named pages (or the whole room) and send the packet again as a new
    /// version: a version replaces the earlier one as a whole set.
    RescanAndResend,
    /// Scan and send the form the center is missing (by its code, e.g. ППЭ-13-02МАШ).
    SendForm {
        /// The form's code as printed.
        form: String,
    },
    /// The network cannot carry it in time: export the packet to a drive and bring it.
    CarryOnDrive,
    /// Nothing to send; the site is told for its records (e.g. a page of another exam).
    Note,
}

impl std::fmt::Display for RemarkAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemarkAction::RescanAndResend => f.write_str("rescan and send a new version of the packet"),
            RemarkAction::SendForm { form } => write!(f, "scan and send {form}"),
            RemarkAction::CarryOnDrive => f.write_str("export the packet to a drive and bring it to the center"),
            RemarkAction::Note => f.write_str("nothing to send; keep for the site's records"),
        }
    }
}

/// One thing the center found wrong with a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remark {
    /// Stable id: the same finding gets the same id on every run.
    pub id: String,
    /// The room, if the finding is about one.
    pub room: Option<String>,
    /// The participant's code, if the finding is about one.
    pub participant: Option<String>,
    /// The page, as `file p.N`, if the finding is about one.
    pub page: Option<String>,
    /// What is wrong, in words for the site operator.
    pub what: String,
    /// What to do.
    pub action: RemarkAction,
}

/// How the center took a packet version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnswerOutcome {
    /// Received and loaded: every page registered, nothing for the site to do.
    Loaded,
    /// Loaded with remarks the site should act on.
    Remarks(Vec<Remark>),
}

/// The loader's answer to one packet version, bound to the envelope it processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketAnswer {
    /// The site that sent the packet.
    pub site: String,
    /// The packet id.
    pub packet_id: String,
    /// The version answered.
    pub version: u32,
    /// The envelope id (SHA-256 of the sealed file) answered.
    pub digest: [u8; 32],
    /// Loaded, or the remarks.
    pub outcome: AnswerOutcome,
    /// Pages the loader registered from this version.
    pub pages: u32,
    /// The loader's clock when the answer was made.
    pub answered_at_unix_ms: u64,
}

impl PacketAnswer {
    /// The remarks, empty for "loaded".
    pub fn remarks(&self) -> &[Remark] {
        match &self.outcome {
            AnswerOutcome::Loaded => &[],
            AnswerOutcome::Remarks(r) => r,
        }
    }

    /// Checks the answer's text is bounded and its remarks say something.
    pub fn check(&self) -> Result<(), String> {
        let remarks = self.remarks();
        if remarks.len() > MAX_REMARKS {
            return Err(format!("more than {MAX_REMARKS} remarks in one answer"));
        }
        if matches!(self.outcome, AnswerOutcome::Remarks(_)) && remarks.is_empty() {
            return Err("an answer with remarks must carry at least one".into());
        }
        for r in remarks {
            let texts = [
                Some(&r.id),
                r.room.as_ref(),
                r.participant.as_ref(),
                r.page.as_ref(),
                Some(&r.what),
            ];
            if texts.iter().flatten().any(|t| t.chars().count() > MAX_REMARK_TEXT) {
                return Err(format!(
                    "remark {} has a text longer than {MAX_REMARK_TEXT} characters",
                    r.id
                ));
            }
            if r.what.trim().is_empty() || r.id.trim().is_empty() {
                return Err("a remark must have an id and say what is wrong".into());
            }
            if let RemarkAction::SendForm { form } = &r.action {
                if form.chars().count() > MAX_REMARK_TEXT {
                    return Err(format!(
                        "remark {} names a form longer than {MAX_REMARK_TEXT} characters",
                        r.id
                    ));
                }
            }
        }
        Ok(())
    }
}
