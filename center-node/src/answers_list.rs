//! Which of the loader's remarks are open and which are answered: a remark on version N
//! is answered once the center received a later version of the same packet.

use std::collections::HashMap;
use std::path::Path;

use konvert_replication::logging::printable;
use konvert_replication::Inbox;
use serde::Serialize;

use super::AnswerDesk;
use crate::{Error, Result};

/// One remark as the center lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedRemark {
    /// The remark's id.
    pub id: String,
    /// The room, if any.
    pub room: Option<String>,
    /// The participant, if any.
    pub participant: Option<String>,
    /// The page, if any.
    pub page: Option<String>,
    /// What is wrong.
    pub what: String,
    /// What the site should do.
    pub action: String,
    /// The later version of the packet received since, which answers it; `None`: open.
    pub answered_by: Option<u32>,
}

/// One answer as the center lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedAnswer {
    /// The site.
    pub site: String,
    /// The packet.
    pub packet_id: String,
    /// The version answered.
    pub version: u32,
    /// The envelope id answered.
    pub envelope_id: String,
    /// Pages registered.
    pub pages: u32,
    /// The specialist's token that signed.
    pub signed_by: String,
    /// The remarks; empty for "loaded".
    pub remarks: Vec<ListedRemark>,
}

/// Every answer taken, each remark open or answered by a later version of its packet that
/// the inbox holds; with `open_only`, only answers with open remarks, and only those.
pub fn list(desk: &AnswerDesk, inbox: &Inbox, open_only: bool) -> Result<Vec<ListedAnswer>> {
    let mut newest: HashMap<(String, String), u32> = HashMap::new();
    for r in inbox.records()? {
        let b = &r.receipt.body;
        let v = newest.entry((b.site.clone(), b.packet_id.clone())).or_default();
        *v = (*v).max(b.version);
    }
    let mut out = Vec::new();
    for held in desk.held()? {
        let a = &held.signed.answer;
        let later = newest
            .get(&(a.site.clone(), a.packet_id.clone()))
            .copied()
            .filter(|v| *v > a.version);
        let remarks: Vec<ListedRemark> = a
            .remarks()
            .iter()
            .map(|r| ListedRemark {
                id: r.id.clone(),
                room: r.room.clone(),
                participant: r.participant.clone(),
                page: r.page.clone(),
                what: r.what.clone(),
                action: r.action.to_string(),
                answered_by: later,
            })
            .filter(|r| !open_only || r.answered_by.is_none())
            .collect();
        if open_only && remarks.is_empty() {
            continue;
        }
        out.push(ListedAnswer {
            site: a.site.clone(),
            packet_id: a.packet_id.clone(),
            version: a.version,
            envelope_id: hex::encode(a.digest),
            pages: a.pages,
            signed_by: held.token_id.clone(),
            remarks,
        });
    }
    Ok(out)
}

/// [`list`] as `answers list` prints it (also the serving center's control answer).
pub fn list_text(data_dir: &Path, inbox: &Inbox, open_only: bool, as_json: bool) -> Result<String> {
    let listed = list(&AnswerDesk::open(data_dir)?, inbox, open_only)?;
    if as_json {
        return serde_json::to_string_pretty(&listed)
            .map(|t| format!("{t}\n"))
            .map_err(|e| Error::Control(format!("cannot write the answers as JSON: {e}")));
    }
    let open: usize = listed
        .iter()
        .flat_map(|a| &a.remarks)
        .filter(|r| r.answered_by.is_none())
        .count();
    let mut out = format!(
        "{} answer(s){}, {open} open remark(s)\n",
        listed.len(),
        if open_only { " with open remarks" } else { "" }
    );
    for a in &listed {
        let p = |s: &str| printable(s).into_owned();
        if a.remarks.is_empty() {
            out.push_str(&format!(
                "  {} v{} site {}: loaded ({} page(s))\n",
                p(&a.packet_id),
                a.version,
                p(&a.site),
                a.pages
            ));
            continue;
        }
        out.push_str(&format!(
            "  {} v{} site {}: {} remark(s)\n",
            p(&a.packet_id),
            a.version,
            p(&a.site),
            a.remarks.len()
        ));
        for r in &a.remarks {
            let state = match r.answered_by {
                Some(v) => format!("answered by v{v}"),
                None => "OPEN".to_owned(),
            };
            let whereabouts: Vec<String> = [("room", &r.room), ("participant", &r.participant), ("page", &r.page)]
                .into_iter()
                .filter_map(|(w, v)| v.as_ref().map(|v| format!("{w} {}", p(v))))
                .collect();
            out.push_str(&format!(
                "    [{state}] {} {}: {} — {}\n",
                p(&r.id),
                whereabouts.join(", "),
                p(&r.what),
                r.action
            ));
        }
    }
    Ok(out)
}
