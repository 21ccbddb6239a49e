//! `konvert-center federal publish …`: the federal node writes the down kinds addressed to
//! one region — centralized checking results, recomputed scores, token certificate data,
//! requests for documents — each row with its outbox row in one transaction
//! ([`konvert_records::mirror_outbox::publish`]). A row about a participant the region
//! never sent as planning is refused: ФИС holds nobody a region did not plan (R18).
//!
//! The rows come from a TOML file, `[[rows]]` with the kind's fields (`day = { date, exam }`
//! where the kind has a day).

use std::path::{Path, PathBuf};

use konvert_records::mirror_outbox;
use konvert_records::mirror_rows::{
    CentralizedCheckingRow, DocumentRequestRow, MirrorRow, RecomputedScoreRow, TokenCertificateRow,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::CenterConfig;
use crate::{Error, Result};

/// The largest rows file read.
const MAX_ROWS_FILE: u64 = 64 * 1024 * 1024;

/// A down kind, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DownKind {
    /// Centralized checking results and works sent for a federal re-check.
    CentralizedChecking,
    /// Scores recomputed after appeals.
    RecomputedScores,
    /// Token certificate data.
    TokenCertificates,
    /// Requests for documents.
    DocumentRequests,
}

/// `konvert-center federal publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The federal node's center.toml (its `records_url`).
    #[arg(long)]
    pub config: PathBuf,
    /// The region the rows are for (1–99).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
    pub region: u8,
    /// What the rows are.
    #[arg(long, value_enum)]
    pub kind: DownKind,
    /// The TOML file with `[[rows]]`.
    pub file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowsFile<T> {
    rows: Vec<T>,
}

/// Reads a `[[rows]]` file of one kind, bounded before it is parsed.
pub fn read_rows<T: DeserializeOwned>(file: &Path) -> Result<Vec<T>> {
    let text = konvert_crypto::keyfile::read_text_bounded(file, MAX_ROWS_FILE)?;
    let rows: RowsFile<T> = toml::from_str(&text).map_err(|e| Error::Loader {
        what: format!("{}: {}", file.display(), e.message()),
        hint: "the file is TOML: [[rows]] with the kind's fields (day = { date = \"YYYY-MM-DD\", exam = \"ege\" })",
    })?;
    Ok(rows.rows)
}

/// Publishes the rows of `args.file` for `args.region`; returns how many.
pub fn publish_command(args: &PublishArgs) -> Result<usize> {
    let cfg = CenterConfig::load(&args.config)?;
    let Some(url) = &cfg.records_url else {
        return Err(Error::Loader {
            what: format!(
                "{} keeps its records on sled, which has no mirror",
                args.config.display()
            ),
            hint: "the federal node's records are on PostgreSQL: set `records_url` in its center.toml",
        });
    };
    let rows: Vec<MirrorRow> = match args.kind {
        DownKind::CentralizedChecking => read_rows::<CentralizedCheckingRow>(&args.file)?
            .into_iter()
            .map(MirrorRow::CentralizedChecking)
            .collect(),
        DownKind::RecomputedScores => read_rows::<RecomputedScoreRow>(&args.file)?
            .into_iter()
            .map(MirrorRow::RecomputedScore)
            .collect(),
        DownKind::TokenCertificates => read_rows::<TokenCertificateRow>(&args.file)?
            .into_iter()
            .map(MirrorRow::TokenCertificate)
            .collect(),
        DownKind::DocumentRequests => read_rows::<DocumentRequestRow>(&args.file)?
            .into_iter()
            .map(MirrorRow::DocumentRequest)
            .collect(),
    };
    let records = konvert_records::PgRecords::connect(url)?;
    for row in &rows {
        mirror_outbox::publish(&records, args.region, row.clone())?;
    }
    println!("{} row(s) queued for region {:02}", rows.len(), args.region);
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rows_files_read_per_kind_and_a_wrong_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rows.toml");
        std::fs::write(
            &file,
            r#"
[[rows]]
day = { date = "2026-06-01", exam = "ege" }
participant = "P-0001"
primary_score = 31
sent_for_recheck = false
"#,
        )
        .unwrap();
        let rows = read_rows::<CentralizedCheckingRow>(&file).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].primary_score, 31);
        assert!(read_rows::<RecomputedScoreRow>(&file).is_err(), "another kind's fields");
        std::fs::write(
            &file,
            "[[rows]]\ntoken_id = \"T1\"\nholder = \"Член ГЭК\"\npublic_key_hex = \"ab\"\nvalid_from = \"2026-01-01\"\nvalid_until = \"2027-01-01\"\nextra = 1\n",
        )
        .unwrap();
        let err = read_rows::<TokenCertificateRow>(&file).unwrap_err().to_string();
        assert!(err.contains("extra"), "{err}");
    }
}
