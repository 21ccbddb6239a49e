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
}

/// Each certificate of `import` against `draft`.
pub fn review<'a>(draft: &RegistryBody, import: &'a CertificateImport) -> Vec<(&'a TokenCertificateRow, Finding)> {
    import
        .certificates
        .iter()
        .map(|c| {
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
    let mut counts = [0usize; 3];
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
            "{} matching, {} with another key, {} not in the registry",
            counts[0], counts[1], counts[2]
        ),
    )?;
    Ok(())
}
