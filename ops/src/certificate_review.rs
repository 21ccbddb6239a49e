//! `konvert keys review-certificates`: the security officers read the token certificate
//! data a region received from ФИС (`002:6860`; written by `konvert-center loader
//! token-certificates`) against their own registry draft, certificate by certificate. The
//! review only reads: the signed registry changes by the officers' own commands
//! (`issue-token`, `set-status`, `publish`) or not at all, whatever ФИС sent. The review
//! itself goes into the officers' audit log.

use std::path::Path;

use konvert_crypto::audit::AuditAction;
use konvert_crypto::keyfile;
use konvert_crypto::registry::RegistryBody;
use konvert_records::mirror_rows::{CertificateImport, TokenCertificateRow};

use crate::authority::{os_user, record, Workspace};

/// The largest certificate file read.
const MAX_IMPORT_BYTES: u64 = 16 * 1024 * 1024;

/// What one certificate says against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The registry has the token with this key.
    Matches {
        /// The token's status in the draft, in Russian.
        status: &'static str,
    },
    /// The registry has the token with another key.
    KeyDiffers,
    /// The registry has no such token.
    NotInRegistry,
    /// The certificate itself is malformed (a field that cannot be true): not compared.
    Invalid {
        /// What is wrong with it.
        why: String,
    },
}

/// What is wrong with certificate `c` of a file for `region`, if anything: a region that
/// is not a region's code, a key that is not a key, a date that does not exist or an end
/// before the start.
fn malformed(region: &str, c: &TokenCertificateRow) -> Option<String> {
    let mut wrong = Vec::new();
    let two_digits = region.len() == 2 && region.bytes().all(|b| b.is_ascii_digit()) && region != "00";
    if !two_digits {
        wrong.push("the file's region is not a region's two-digit code".to_owned());
    }
    if c.token_id.trim().is_empty() {
        wrong.push("the token id is empty".to_owned());
    }
    // The shape only: a key of the registry's kind is 32 bytes; whether it is the token's
    // is what the comparison says.
    let key = c.public_key_hex.trim();
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        wrong.push("public_key_hex is not 64 hex digits".to_owned());
    }
    let from = c.valid_from.parse::<konvert_exam::ExamDate>();
    let until = c.valid_until.parse::<konvert_exam::ExamDate>();
    if from.is_err() {
        wrong.push("valid_from is not a date".to_owned());
    }
    if until.is_err() {
        wrong.push("valid_until is not a date".to_owned());
    }
    if let (Ok(from), Ok(until)) = (from, until) {
        if until < from {
            wrong.push("valid_until is before valid_from".to_owned());
        }
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// Each certificate of `import` against `draft`.
pub fn review<'a>(draft: &RegistryBody, import: &'a CertificateImport) -> Vec<(&'a TokenCertificateRow, Finding)> {
    import
        .certificates
        .iter()
        .map(|c| {
            if let Some(why) = malformed(&import.region, c) {
                return (c, Finding::Invalid { why });
            }
            let finding = match draft.tokens.iter().find(|t| t.token_id == c.token_id) {
                None => Finding::NotInRegistry,
                Some(t) if t.public.to_string().eq_ignore_ascii_case(c.public_key_hex.trim()) => Finding::Matches {
                    status: t.status.russian(),
                },
                Some(_) => Finding::KeyDiffers,
            };
            (c, finding)
        })
        .collect()
}

/// Reads `file`, reviews it against the workspace's draft, prints the review and logs it.
pub fn review_command(authority: &Path, file: &Path) -> anyhow::Result<()> {
    let ws = Workspace::open(authority)?;
    let text = keyfile::read_text_bounded(file, MAX_IMPORT_BYTES)?;
    let import: CertificateImport = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a certificate file from `konvert-center loader token-certificates` ({})",
            file.display(),
            konvert_replication::toml_error(&e, &text)
        )
    })?;
    let draft = ws.draft()?;
    let found = review(&draft, &import);
    println!(
        "{} token certificate(s) from ФИС for region {}, against registry draft (last published v{}); nothing is changed:",
        found.len(),
        crate::audit_cli::printable(&import.region),
        draft.version
    );
    let mut counts = [0usize; 4];
    for (c, f) in &found {
        let what = match f {
            Finding::Matches { status } => {
                counts[0] += 1;
                format!("matches the registry ({status})")
            }
            Finding::KeyDiffers => {
                counts[1] += 1;
                "the key DIFFERS from the registry's: do not act on it; ask ФИС and check the token".to_owned()
            }
            Finding::NotInRegistry => {
                counts[2] += 1;
                "not in the registry: issue it (`konvert keys issue-token`) only if it is this region's".to_owned()
            }
            Finding::Invalid { why } => {
                counts[3] += 1;
                format!(
                    "INVALID: {}; do not act on it; ask ФИС",
                    crate::audit_cli::printable(why)
                )
            }
        };
        println!(
            "  {:<12} {:<30} {}..{}  {what}",
            crate::audit_cli::printable(&c.token_id),
            crate::audit_cli::printable(&c.holder),
            crate::audit_cli::printable(&c.valid_from),
            crate::audit_cli::printable(&c.valid_until)
        );
    }
    record(
        &ws.audit_log()?,
        &os_user(),
        AuditAction::Other("certificate-review".into()),
        &file.display().to_string(),
        &format!(
            "{} matching, {} with another key, {} not in the registry, {} invalid",
            counts[0], counts[1], counts[2], counts[3]
        ),
    )?;
    Ok(())
}
