//! Every packet is answered (R10, seed 002:7128–7130, 8037–8039): the loader's answers
//! ("loaded", or remarks the site acts on) cross from the offline workstation to the
//! receiver and go on to the sites.
//!
//! - On the loader's workstation, [`export_answers`] signs each answer with a center
//!   specialist's token and writes one batch file ([`crate::answer_file`]) onto a drive.
//! - At the receiver, [`import_batch`] takes a batch: it must be for this center (its
//!   receipt key), each answer signed by an Issued center specialist's token in the key
//!   registry, and about an envelope this center received (site, packet, version and
//!   digest as the inbox holds them). Each answer taken is re-issued as a notice signed by
//!   the receipt key, so sites and relays check it exactly like a test packet's verdict,
//!   and every decision goes into the audit log. Taking the same batch again changes
//!   nothing.
//! - The desk is a folder (`data_dir/answers/`) for the reason the test desk is one: the
//!   serving center holds the inbox's lock. `held/<site>/<envelope id>.answer` is one
//!   answer; `incoming/` is the one-way folder the serving center takes batches from
//!   (`konvert-center answers import` leaves a batch there when a center serves, and a
//!   data diode may feed it directly, writing each file under another name and renaming
//!   it to `*.kanswers` when whole); outcomes go to `results/`, refused batches to
//!   `refused/`.
//! - A remark is open until a later version of its packet arrives at the center
//!   ([`list`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::registry::RegistryBody;
use konvert_crypto::{keyfile, KeyId, MemberSigner, SigningKey};
use konvert_replication::drive::DriveDir;
use konvert_replication::logging::printable;
use konvert_replication::{Inbox, Notice, PacketAnswer, SignedNotice};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::answer_file::{AnswerBatch, SignedAnswer, EXTENSION, MAX_FILE_BYTES};
use crate::{Error, Result};

/// The one-way folder under `data_dir/answers/` that a serving center takes batches from.
pub const INCOMING: &str = "incoming";
/// How often a serving center looks into the one-way folder.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long `answers import` waits for a serving center to take its batch.
pub const PICKUP_WAIT: Duration = Duration::from_secs(30);
/// The most batch files read from one drive or folder at once.
const MAX_BATCH_FILES: usize = 1000;
/// The largest answer kept at the desk: one answer's remarks are bounded well below it.
const MAX_HELD_BYTES: u64 = 4 << 20;
/// The note beside a batch in the one-way folder naming who imports it.
const OPERATOR: &str = ".operator";
/// The longest such note read.
const MAX_OPERATOR_NOTE: u64 = 1024;
/// What the notices of one `Notices` reply may weigh together, so the reply stays well
/// inside a frame (2 MiB) whatever the remarks say; the newest go first.
pub const NOTICE_BUDGET_BYTES: usize = 1 << 20;

/// One answer the receiver took: as the loader signed it, and as it goes to the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAnswer {
    /// As the loader's specialist signed it.
    pub signed: SignedAnswer,
    /// The token id of that specialist's token.
    pub token_id: String,
    /// Re-issued to the site, signed by the center's receipt key.
    pub notice: SignedNotice,
    /// The receiver's clock when it was taken.
    pub imported_at_unix_ms: u64,
}

/// The folder of answers taken (see the module's documentation).
#[derive(Debug, Clone)]
pub struct AnswerDesk {
    dir: PathBuf,
}

/// Site codes become folder names: only letters, digits and `-`/`_`.
fn site_folder(site: &str) -> Option<&str> {
    let ok = !site.is_empty()
        && site.len() <= 64
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(site)
}

impl AnswerDesk {
    /// Opens (or creates) the desk under the center's data folder.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("answers");
        for sub in ["held", INCOMING, "results", "refused"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(Error::file(&d))?;
        }
        Ok(AnswerDesk { dir })
    }

    /// The one-way folder a serving center takes batches from.
    pub fn incoming(&self) -> PathBuf {
        self.dir.join(INCOMING)
    }

    fn held_path(&self, site: &str, digest: &[u8; 32]) -> Option<PathBuf> {
        Some(
            self.dir
                .join("held")
                .join(site_folder(site)?)
                .join(format!("{}.answer", hex::encode(digest))),
        )
    }

    fn read_held(path: &Path) -> Result<HeldAnswer> {
        let bytes = keyfile::read_bounded(path, MAX_HELD_BYTES)?;
        postcard::from_bytes(&bytes).map_err(|_| Error::Answers {
            what: format!("{} is not a kept answer", path.display()),
            hint: "move the damaged file away and import the loader's batch again",
        })
    }

    fn find(&self, answer: &PacketAnswer) -> Result<Option<HeldAnswer>> {
        match self.held_path(&answer.site, &answer.digest) {
            Some(p) if p.exists() => Self::read_held(&p).map(Some),
            _ => Ok(None),
        }
    }

    fn keep(&self, held: &HeldAnswer) -> Result<()> {
        let a = &held.signed.answer;
        let path = self.held_path(&a.site, &a.digest).ok_or_else(|| Error::Answers {
            what: format!("site code {:?} cannot name a folder", printable(&a.site)),
            hint: "report this as a bug",
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::file(dir))?;
        }
        let bytes = postcard::to_allocvec(held).map_err(|e| Error::Answers {
            what: format!("cannot encode an answer: {e}"),
            hint: "report this as a bug",
        })?;
        keyfile::write_atomic(&path, &bytes, 0o644)?;
        Ok(())
    }

    /// The answers taken for `site`, in no particular order.
    pub fn held_for(&self, site: &str) -> Result<Vec<HeldAnswer>> {
        let Some(folder) = site_folder(site) else {
            return Ok(Vec::new());
        };
        let dir = self.dir.join("held").join(folder);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::file(&dir))? {
            let path = entry.map_err(Error::file(&dir))?.path();
            if path.extension().is_some_and(|e| e == "answer") {
                all.push(Self::read_held(&path)?);
            }
        }
        Ok(all)
    }

    /// Every answer taken, by site then packet and version.
    pub fn held(&self) -> Result<Vec<HeldAnswer>> {
        let dir = self.dir.join("held");
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::file(&dir))? {
            let entry = entry.map_err(Error::file(&dir))?;
            if let Some(site) = entry.file_name().to_str() {
                all.extend(self.held_for(site)?);
            }
        }
        all.sort_by(|a, b| {
            let (a, b) = (&a.signed.answer, &b.signed.answer);
            (&a.site, &a.packet_id, a.version).cmp(&(&b.site, &b.packet_id, b.version))
        });
        Ok(all)
    }

    /// The answers for `site` as notices, newest first.
    pub fn notices_for(&self, site: &str) -> Result<Vec<SignedNotice>> {
        let mut all: Vec<SignedNotice> = self.held_for(site)?.into_iter().map(|h| h.notice).collect();
        all.sort_by_key(|n| std::cmp::Reverse(n.notice.at_unix_ms()));
        Ok(all)
    }
}

/// Keeps the newest notices that fit [`NOTICE_BUDGET_BYTES`] together (`notices` newest
/// first): one `Notices` reply must fit a frame, and the rest follow once these are kept.
pub fn fit_budget(notices: &mut Vec<SignedNotice>) {
    let mut used = 0usize;
    let keep = notices
        .iter()
        .take_while(|n| {
            used += postcard::to_allocvec(n).map_or(NOTICE_BUDGET_BYTES + 1, |b| b.len());
            used <= NOTICE_BUDGET_BYTES
        })
        .count();
    notices.truncate(keep);
}

/// One `Notices` reply from each site's notices: every site's newest first, taken in
/// turn, so a relay carrying many sites passes each of them its newest rather than the
/// busiest site's alone; at most [`MAX_NOTICES`](konvert_replication::notice::MAX_NOTICES)
/// and [`NOTICE_BUDGET_BYTES`].
pub fn fair_share(mut per_site: Vec<Vec<SignedNotice>>) -> Vec<SignedNotice> {
    for notices in &mut per_site {
        notices.sort_by_key(|n| std::cmp::Reverse(n.notice.at_unix_ms()));
    }
    let mut queues: Vec<std::vec::IntoIter<SignedNotice>> = per_site.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    while out.len() < konvert_replication::notice::MAX_NOTICES {
        let before = out.len();
        for q in &mut queues {
            if let Some(n) = q.next() {
                out.push(n);
            }
        }
        if out.len() == before {
            break;
        }
    }
    out.truncate(konvert_replication::notice::MAX_NOTICES);
    fit_budget(&mut out);
    out
}

/// What [`export_answers`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The batch file on the drive.
    pub file: PathBuf,
    /// Answers in it.
    pub answers: usize,
    /// Of them, "loaded".
    pub loaded: usize,
    /// Remarks in all.
    pub remarks: usize,
}

/// Signs each answer with the specialist's token for the center whose receipt key has
/// id `center`, and writes them as one batch file onto `drive` (a folder: the mounted
/// drive, or the one-way folder). The caller checks that `signer` is an Issued center
/// specialist's token (see [`check_signer`]); the receiver checks it again.
pub fn export_answers(
    answers: &[PacketAnswer],
    signer: &dyn MemberSigner,
    center: KeyId,
    drive: &Path,
    now_unix_ms: u64,
) -> Result<ExportReport> {
    if answers.is_empty() {
        return Err(Error::Answers {
            what: "no answers to export".into(),
            hint: "process the packets first; nothing was written",
        });
    }
    let signed = answers
        .iter()
        .map(|a| SignedAnswer::sign(a.clone(), center, signer))
        .collect::<Result<Vec<_>>>()?;
    let bytes = AnswerBatch {
        center,
        answers: signed,
    }
    .encode()?;
    let mut stamp = [0u8; 4];
    konvert_crypto::random_bytes(&mut stamp)?;
    let name = format!("answers-{now_unix_ms}-{}{EXTENSION}", hex::encode(stamp));
    // As for envelope drives: a link in place of the drive's folder is not followed.
    if std::fs::symlink_metadata(drive).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Answers {
            what: format!("{} is a symbolic link, not the drive's folder", drive.display()),
            hint: "give the drive's folder itself; nothing was written",
        });
    }
    let dir = DriveDir::open(drive)?;
    dir.write_durably(&name, &bytes)?;
    Ok(ExportReport {
        file: drive.join(name),
        answers: answers.len(),
        loaded: answers.iter().filter(|a| a.remarks().is_empty()).count(),
        remarks: answers.iter().map(|a| a.remarks().len()).sum(),
    })
}

/// Checks, before signing, that the registry lets the token with key `key` sign answers:
/// an Issued center specialist's token. Returns its token id.
pub fn check_signer(registry: &RegistryBody, key: KeyId, who: &str) -> Result<String> {
    crate::loader::check_specialist_key(registry, key, who, Path::new("answers")).map_err(|e| match e {
        Error::Config { message, .. } => Error::Answers {
            what: message,
            hint: "answers are signed with an issued center specialist's token; nothing was written",
        },
        other => other,
    })
}

/// Reads every batch file on a drive (or in a folder): regular files only, no links,
/// each bounded. Anything named like a batch that is not a regular file is refused.
pub fn read_drive(drive: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = DriveDir::open(drive)?;
    let odd = dir.not_regular(EXTENSION, MAX_BATCH_FILES)?;
    if let Some((name, what)) = odd.first() {
        return Err(Error::Answers {
            what: format!(
                "{} is {what}, not a file of answers",
                printable(&drive.join(name).display().to_string())
            ),
            hint: "nothing was taken; export the answers again onto a clean drive",
        });
    }
    let mut batches = Vec::new();
    for name in dir.files(EXTENSION, MAX_BATCH_FILES)? {
        if let Some(file) = dir.open_file(&name, MAX_FILE_BYTES)? {
            batches.push((name, file.read_all()?));
        }
    }
    if batches.is_empty() {
        return Err(Error::Answers {
            what: format!("{} holds no *{EXTENSION} file", drive.display()),
            hint: "export the answers onto it with `konvert-center loader answers export`",
        });
    }
    Ok(batches)
}

/// What the receiver needs to take a batch.
pub struct ImportContext<'a> {
    /// The inbox: what was received.
    pub inbox: &'a Inbox,
    /// The key registry in force.
    pub registry: &'a RegistryBody,
    /// The center's receipt key: the batch must be for it, and notices are signed with it.
    pub receipt_key: &'a SigningKey,
    /// The center's audit log.
    pub audit: &'a AuditLog,
    /// Where answers are kept.
    pub desk: &'a AnswerDesk,
    /// The receiver's clock.
    pub now_unix_ms: u64,
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The batch file.
    pub file: String,
    /// Answers taken now (`site packet vN: loaded|N remark(s)`).
    pub taken: Vec<String>,
    /// Answers already held (the same, or a newer one).
    pub already: Vec<String>,
    /// Answers refused, each with why.
    pub refused: Vec<String>,
}

fn describe(a: &PacketAnswer) -> String {
    let outcome = match a.remarks().len() {
        0 => "loaded".to_owned(),
        n => format!("{n} remark(s)"),
    };
    format!(
        "{} {} v{}: {outcome}",
        printable(&a.site),
        printable(&a.packet_id),
        a.version
    )
}

/// Why the receiver will not take `signed`, if it will not.
fn refusal(ctx: &ImportContext<'_>, signed: &SignedAnswer) -> Result<std::result::Result<String, String>> {
    let a = &signed.answer;
    if signed.center != ctx.receipt_key.key_id() {
        return Ok(Err(format!("signed for center {}, not this one", signed.center)));
    }
    let token = match signed.verify(ctx.registry) {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    let Some(record) = ctx.inbox.lookup(&a.packet_id, a.version)? else {
        return Ok(Err("this center never received that packet version".into()));
    };
    let b = &record.receipt.body;
    if b.digest != a.digest || b.site != a.site {
        return Ok(Err(format!(
            "it names envelope {} of site {}, but this center received envelope {} of site {} under that packet version",
            hex::encode(a.digest),
            printable(&a.site),
            hex::encode(b.digest),
            b.site
        )));
    }
    Ok(Ok(token))
}

/// Takes one batch (see the module's documentation). A batch for another center is
/// refused whole; each other answer that does not check is refused alone and reported.
pub fn import_batch(ctx: &ImportContext<'_>, bytes: &[u8], file: &str, operator: &str) -> Result<ImportReport> {
    let file = printable(file).into_owned();
    let batch = AnswerBatch::decode(bytes, &file)?;
    let own = ctx.receipt_key.key_id();
    if batch.center != own {
        ctx.audit.append(
            operator,
            AuditAction::Other("answers.refuse".into()),
            &file,
            &format!("a batch for center {}, this center is {own}", batch.center),
        )?;
        return Err(Error::Answers {
            what: format!(
                "{file} is a remark drive from another center: its answers are for the center whose receipt key is {}, this center's is {own}",
                batch.center
            ),
            hint: "nothing was taken; bring the drive back to the loader it came from, and export this center's answers with --config pointing at this center's copy",
        });
    }
    let mut report = ImportReport {
        file: file.clone(),
        ..ImportReport::default()
    };
    for signed in batch.answers {
        let a = &signed.answer;
        let what = describe(a);
        let token = match refusal(ctx, &signed)? {
            Ok(token) => token,
            Err(why) => {
                let why = printable(&why).into_owned();
                ctx.audit.append(
                    operator,
                    AuditAction::Other("answer.refuse".into()),
                    &format!("{what} {}", hex::encode(a.digest)),
                    &format!("from {file}: {why}"),
                )?;
                report.refused.push(format!("{what} — {why}"));
                continue;
            }
        };
        if let Some(held) = ctx.desk.find(a)? {
            if held.signed == signed || held.signed.answer.answered_at_unix_ms >= a.answered_at_unix_ms {
                report.already.push(what);
                continue;
            }
        }
        let notice = SignedNotice::sign(Notice::PacketAnswer(a.clone()), ctx.receipt_key)?;
        // The audit entry first: an answer that is not in the log is not taken.
        let ids: Vec<&str> = a.remarks().iter().map(|r| r.id.as_str()).collect();
        ctx.audit.append(
            &format!("loader token {token}"),
            AuditAction::Other("answer.take".into()),
            &format!("{what} {}", hex::encode(a.digest)),
            &format!(
                "{} page(s); remarks [{}]; from {file}, imported by {operator}",
                a.pages,
                printable(&ids.join(", "))
            ),
        )?;
        ctx.desk.keep(&HeldAnswer {
            signed,
            token_id: token,
            notice,
            imported_at_unix_ms: ctx.now_unix_ms,
        })?;
        report.taken.push(what);
    }
    ctx.audit.append(
        operator,
        AuditAction::Other("answers.import".into()),
        &file,
        &format!(
            "{} taken, {} already held, {} refused",
            report.taken.len(),
            report.already.len(),
            report.refused.len()
        ),
    )?;
    if let Err(e) = ctx.audit.checkpoint() {
        warn!("cannot write the audit log's checkpoint: {e}");
    }
    Ok(report)
}

#[path = "answers_spool.rs"]
mod spool;
pub use spool::{import_drive, take_incoming, watch_incoming};

#[path = "answers_list.rs"]
mod listing;
pub use listing::{list, list_text, ListedAnswer, ListedRemark};

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
