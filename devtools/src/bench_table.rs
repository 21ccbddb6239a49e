//! The one table `konvert bench` prints: each row a measure with its figure (a ratio or
//! amount from the same run, since this machine's speed varies run to run), the goal,
//! whether it was met, and how it was measured. A row that could not be measured says
//! why instead of showing a figure.

use std::fmt::Write as _;

/// Whether a measured figure meets its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The goal is met.
    Met,
    /// The goal is missed.
    Missed,
    /// No goal to compare with.
    NoGoal,
}

/// One row's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Measured in this run.
    Measured {
        /// The figure as printed, e.g. "3.1×" or "84 MB".
        figure: String,
        /// Against the goal.
        verdict: Verdict,
        /// The raw figures it comes from, e.g. "konvert 120 MB/s, rsync 40 MB/s".
        detail: String,
    },
    /// Not measured, and why (never a made-up figure).
    NotMeasured(String),
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is measured.
    pub measure: String,
    /// The goal in words, e.g. "≥ 2.5×"; empty when there is none.
    pub goal: String,
    /// The outcome.
    pub outcome: Outcome,
}

impl Row {
    /// A measured row; `met` is `None` when the row has no goal.
    pub fn measured(
        measure: impl Into<String>,
        goal: impl Into<String>,
        figure: impl Into<String>,
        met: Option<bool>,
        detail: impl Into<String>,
    ) -> Row {
        let verdict = match met {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Missed,
            None => Verdict::NoGoal,
        };
        Row {
            measure: measure.into(),
            goal: goal.into(),
            outcome: Outcome::Measured {
                figure: figure.into(),
                verdict,
                detail: detail.into(),
            },
        }
    }

    /// A row that could not be measured, with the reason.
    pub fn not_measured(measure: impl Into<String>, goal: impl Into<String>, reason: impl Into<String>) -> Row {
        Row {
            measure: measure.into(),
            goal: goal.into(),
            outcome: Outcome::NotMeasured(reason.into()),
        }
    }
}

/// What a row source gives: its rows, or an error that turns into "not measured" rows.
pub type RowsResult = anyhow::Result<Vec<Row>>;

/// The table being filled, row source by row source.
#[derive(Debug, Default, Clone)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// Adds the rows of one source; if the source failed, adds one "not measured" row
    /// per measure it would have given (`measures`, each with its goal), with the error as
    /// the reason, so one broken measurement never hides the others.
    pub fn add(&mut self, measures: &[(&str, &str)], result: RowsResult) {
        match result {
            Ok(rows) => self.rows.extend(rows),
            Err(e) => {
                let reason = format!("{e:#}").replace('|', "/").replace('\n', " ");
                for (measure, goal) in measures {
                    self.rows.push(Row::not_measured(*measure, *goal, reason.clone()));
                }
            }
        }
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The table as Markdown.
    pub fn render(&self) -> String {
        let mut out = String::from("| measure | figure | goal | met | how (same run) |\n|---|---|---|---|---|\n");
        for r in &self.rows {
            let (figure, met, detail) = match &r.outcome {
                Outcome::Measured {
                    figure,
                    verdict,
                    detail,
                } => {
                    let met = match verdict {
                        Verdict::Met => "yes",
                        Verdict::Missed => "**no**",
                        Verdict::NoGoal => "",
                    };
                    (figure.clone(), met, detail.as_str())
                }
                Outcome::NotMeasured(reason) => (format!("not measured: {reason}"), "", ""),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.measure, figure, r.goal, met, detail
            );
        }
        out
    }
}

#[cfg(test)]
#[path = "bench_table_tests.rs"]
mod tests;
