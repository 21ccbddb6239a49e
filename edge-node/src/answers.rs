//! The center's answers to this site's packets (R10), as the operator sees them: each
//! packet "received and loaded", or remarks naming what is wrong (room, participant,
//! page) and what to do before 23:59. They come with the test verdicts on the notice
//! stream (directly or through relays); `day` asks for them every [`NOTICE_POLL`] and
//! prints what is new, `status` and `answers` list them. A remark is shown answered once
//! a later version of its packet is sealed here, and delivered once the center receipted
//! that version.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use konvert_crypto::VerifyingKey;
use konvert_replication::logging::printable;
use konvert_replication::outbox::KeptAnswer;
use konvert_replication::{driver, Notice, Outbox, PacketAnswer, SignedNotice};
use serde_json::json;
use tokio::sync::Notify;
use tracing::warn;

use crate::config::SiteConfig;
use crate::intake::Journal;
use crate::push::{connect, station_endpoint};
use crate::Result;

/// How often `day` asks the center for its notices.
pub const NOTICE_POLL: Duration = Duration::from_secs(30);

/// What the notices brought that this station did not keep before.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// New test-packet verdicts.
    pub verdicts: usize,
    /// New or newer answers to packets.
    pub answers: Vec<PacketAnswer>,
}

/// Keeps each notice that verifies against the center's key and names a packet sent from
/// here; one that does not is logged and not shown.
pub fn keep_notices(outbox: &Outbox, notices: &[SignedNotice], center_key: &VerifyingKey) -> Kept {
    let mut kept = Kept::default();
    for notice in notices {
        match &notice.notice {
            Notice::TestVerdict(_) => match outbox.record_verdict(notice, center_key) {
                Ok(true) => kept.verdicts += 1,
                Ok(false) => {}
                // A verdict on a packet this station no longer holds (a reinstalled
                // station) is not shown: it cannot be tied to what was sent from here.
                Err(e) => warn!("verdict not kept: {e}"),
            },
            Notice::PacketAnswer(a) => match outbox.record_answer(notice, center_key) {
                Ok(true) => kept.answers.push(a.clone()),
                Ok(false) => {}
                Err(e) => warn!("answer not kept: {e}"),
            },
        }
    }
    kept
}

/// Asks the center (through the relay, if the site goes through one) for this site's
/// notices and keeps them.
pub async fn fetch_notices(cfg: &SiteConfig, outbox: &Outbox) -> Result<Kept> {
    let center_key = cfg.receipt_key()?;
    let endpoint = station_endpoint(cfg)?;
    let conn = connect(cfg, &endpoint).await?;
    let asked = driver::ask_notices(&conn, &center_key, cfg.site.as_str()).await;
    conn.close(0u32.into(), b"notices fetched");
    endpoint.close(0u32.into(), b"bye");
    Ok(keep_notices(outbox, &asked?, &center_key))
}

/// The scan files this site took, to tell the operator which of their files a remark's
/// page is: the center names a page by its place in the packet and the first 4 bytes of
/// its SHA-256 ("file 3 (a1b2c3d4) p.2"), never by the name it had here (a file name can
/// say who wrote it, R18).
#[derive(Debug, Clone, Default)]
pub struct LocalNames {
    /// (first 4 bytes of the digest, the file's name in packets, its hot-folder name).
    files: Vec<([u8; 4], String, String)>,
}

impl LocalNames {
    /// The files of the intake journal; none when it cannot be read (the remarks are
    /// shown as the center wrote them).
    pub fn of(journal: Option<&Journal>) -> LocalNames {
        let files = journal.and_then(|j| j.files().ok()).unwrap_or_default();
        LocalNames {
            files: files
                .into_iter()
                .map(|f| {
                    let mut prefix = [0u8; 4];
                    prefix.copy_from_slice(&f.sha256[..4]);
                    (prefix, f.name, f.original)
                })
                .collect(),
        }
    }

    /// This site's file a page label names, when exactly one taken file has its digest
    /// prefix: `scan-003.tif` (and `, scanned as IMG_0042.tif` when renamed on intake).
    pub fn local(&self, page: &str) -> Option<String> {
        let open = page.find('(')?;
        let hex_part = page.get(open + 1..open + 9)?;
        if page.get(open + 9..open + 10) != Some(")") {
            return None;
        }
        let mut prefix = [0u8; 4];
        hex::decode_to_slice(hex_part, &mut prefix).ok()?;
        let mut found = self.files.iter().filter(|(p, _, _)| *p == prefix);
        let (_, name, original) = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some(if name == original {
            printable(name).into_owned()
        } else {
            format!("{}, scanned as {}", printable(name), printable(original))
        })
    }

    /// `page`, with this site's file name after it when known.
    fn show(&self, page: &str) -> String {
        match self.local(page) {
            Some(local) => format!("{} = {local}", printable(page)),
            None => printable(page).into_owned(),
        }
    }
}

/// The lines the operator reads for one answer: a headline, then each remark with what
/// to do (or which version answered it).
pub fn answer_lines(a: &PacketAnswer, answered_by: Option<(u32, bool)>, names: &LocalNames) -> Vec<String> {
    let packet = format!("{} v{}", printable(&a.packet_id), a.version);
    let remarks = a.remarks();
    if remarks.is_empty() {
        return vec![format!("{packet}: received and loaded ({} page(s))", a.pages)];
    }
    let mut lines = vec![format!(
        "{packet}: {} REMARK(S) from the center — act before 23:59",
        remarks.len()
    )];
    for r in remarks {
        let whereabouts: Vec<String> = [("room", &r.room), ("participant", &r.participant)]
            .into_iter()
            .filter_map(|(w, v)| v.as_ref().map(|v| format!("{w} {}", printable(v))))
            .chain(r.page.as_ref().map(|p| format!("page {}", names.show(p))))
            .collect();
        let state = match answered_by {
            Some((v, true)) => format!("answered by v{v} (delivered)"),
            Some((v, false)) => format!("answered by v{v} (sealed, not yet delivered)"),
            None => format!("to do: {}", r.action),
        };
        lines.push(format!(
            "  [{}] {}{}{} — {state}",
            printable(&r.id),
            whereabouts.join(", "),
            if whereabouts.is_empty() { "" } else { ": " },
            printable(&r.what)
        ));
    }
    lines
}

/// The answers kept here, as `status` prints them (empty when there are none).
pub fn status_text(kept: &[KeptAnswer], names: &LocalNames) -> String {
    if kept.is_empty() {
        return String::new();
    }
    let open = kept
        .iter()
        .filter(|k| k.answered_by.is_none())
        .map(|k| k.answer.remarks().len())
        .sum::<usize>();
    let mut text = format!(
        "answers from the center: {} packet version(s), {open} open remark(s)\n",
        kept.len()
    );
    for k in kept {
        for line in answer_lines(&k.answer, k.answered_by, names) {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

/// The answers kept here, as `status --json` lists them.
pub fn status_json(kept: &[KeptAnswer], names: &LocalNames) -> Vec<serde_json::Value> {
    kept.iter()
        .map(|k| {
            let a = &k.answer;
            let remarks: Vec<serde_json::Value> = a
                .remarks()
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "room": r.room,
                        "participant": r.participant,
                        "page": r.page,
                        "local_file": r.page.as_deref().and_then(|p| names.local(p)),
                        "what": r.what,
                        "action": r.action.to_string(),
                        "answered_by": k.answered_by.map(|(v, _)| v),
                        "answer_delivered": k.answered_by.map(|(_, d)| d),
                    })
                })
                .collect();
            json!({
                "packet_id": a.packet_id,
                "version": a.version,
                "loaded": remarks.is_empty(),
                "pages": a.pages,
                "remarks": remarks,
            })
        })
        .collect()
}

/// Asks for notices every [`NOTICE_POLL`] while `day` runs, putting a line for each new
/// answer into `log` (the day prints it); stops when dropped.
pub struct NoticeWatch(tokio::task::JoinHandle<()>);

impl NoticeWatch {
    /// Starts asking.
    pub fn start(
        cfg: SiteConfig,
        outbox: Arc<Outbox>,
        journal: Journal,
        log: Arc<Mutex<Vec<String>>>,
        wake: Arc<Notify>,
    ) -> Self {
        NoticeWatch(tokio::spawn(async move {
            let mut tick = tokio::time::interval(NOTICE_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let kept = match fetch_notices(&cfg, &outbox).await {
                    Ok(kept) => kept,
                    // The push says what is wrong with the link; this only waits.
                    Err(e) => {
                        tracing::debug!("notices not fetched: {e}");
                        continue;
                    }
                };
                let names = LocalNames::of(Some(&journal));
                let lines: Vec<String> = kept
                    .answers
                    .iter()
                    .flat_map(|a| answer_lines(a, None, &names))
                    .map(|l| format!("answer: {l}"))
                    .collect();
                if let (false, Ok(mut log)) = (lines.is_empty(), log.lock()) {
                    log.extend(lines);
                    wake.notify_one();
                }
            }
        }))
    }
}

impl Drop for NoticeWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
