//! `konvert keys statement` and `record-statement`: printing the issue statement moves its
//! tokens to Statement printed and keeps its token list under `statements/<id>.toml`;
//! recording the signed paper by that id moves exactly those tokens to Issued.

use std::path::{Path, PathBuf};

use anyhow::Context;
use konvert_crypto::audit::AuditAction;
use konvert_crypto::keyfile;
use konvert_crypto::registry::TokenStatus;
use konvert_edge::cli::now_unix_ms as now_ms;

use crate::authority::{os_user, record, Workspace};
use crate::statement::{render, statement_id, StatementFacts};

/// The tokens of one printed statement.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintedStatement {
    statement_id: String,
    printed_at_unix_ms: u64,
    tokens: Vec<String>,
}

fn statement_path(ws: &Workspace, id: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?} is not a statement id; it is the hex number printed at the top of the statement"
    );
    Ok(ws.dir().join("statements").join(format!("{id}.toml")))
}

/// Prints the statement for `only` (default: every Bound token) to `out`.
pub fn print_statement(authority: &Path, out: &Path, only: &[String], json: bool) -> anyhow::Result<()> {
    let ws = Workspace::open(authority)?;
    let audit = ws.audit_log()?;
    let mut draft = ws.draft()?;
    let chosen: Vec<String> = if only.is_empty() {
        draft
            .tokens
            .iter()
            .filter(|t| t.status == TokenStatus::Bound)
            .map(|t| t.token_id.clone())
            .collect()
    } else {
        only.to_vec()
    };
    anyhow::ensure!(
        !chosen.is_empty(),
        "no token is Bound to a holder; bind tokens first (konvert keys set-status --status bound ...)"
    );
    let now = now_ms();
    for id in &chosen {
        draft.set_status(id, TokenStatus::StatementPrinted, None, now)?;
    }
    let records: Vec<_> = chosen
        .iter()
        .filter_map(|id| draft.tokens.iter().find(|t| &t.token_id == id))
        .collect();
    let facts = StatementFacts {
        draft_version: draft.version,
        printed_at: crate::audit_cli::when(now),
        statement_id: statement_id(&records),
    };
    let page = render(&records, &facts);
    let kept = PrintedStatement {
        statement_id: facts.statement_id.clone(),
        printed_at_unix_ms: now,
        tokens: chosen.clone(),
    };
    let kept_path = statement_path(&ws, &facts.statement_id)?;
    if let Some(dir) = kept_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    keyfile::write_atomic(&kept_path, toml::to_string(&kept)?.as_bytes(), 0o644)?;
    keyfile::write_atomic(out, page.as_bytes(), 0o644)?;
    ws.save_draft(&draft)?;
    record(
        &audit,
        &os_user(),
        AuditAction::TokenStatus,
        &chosen.join(","),
        &format!("statement {} printed: bound -> statement-printed", facts.statement_id),
    )?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "statement_id": facts.statement_id, "tokens": chosen, "out": out })
        );
    } else {
        println!(
            "statement {id} with {} token(s) written to {}; print it, have each holder sign, then \
             `konvert keys record-statement --statement-id {id}`",
            chosen.len(),
            out.display(),
            id = facts.statement_id,
        );
    }
    Ok(())
}

/// Records the signed statement `id`: its tokens become Issued in the draft.
pub fn record_statement(authority: &Path, id: &str, json: bool) -> anyhow::Result<()> {
    let ws = Workspace::open(authority)?;
    let audit = ws.audit_log()?;
    let path = statement_path(&ws, id)?;
    let text = keyfile::read_text_bounded(&path, keyfile::MAX_CONFIG_BYTES)
        .with_context(|| format!("no printed statement {id} in this workspace ({})", path.display()))?;
    let kept: PrintedStatement = toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    let mut draft = ws.draft()?;
    let now = now_ms();
    for t in &kept.tokens {
        draft.set_status(t, TokenStatus::Issued, None, now)?;
    }
    ws.save_draft(&draft)?;
    record(
        &audit,
        &os_user(),
        AuditAction::TokenStatus,
        &kept.tokens.join(","),
        &format!("statement {id} signed: statement-printed -> issued"),
    )?;
    if json {
        println!("{}", serde_json::json!({ "statement_id": id, "issued": kept.tokens }));
    } else {
        println!(
            "statement {id} recorded: {} token(s) Issued (Выдан); publish to take effect",
            kept.tokens.len()
        );
    }
    Ok(())
}
