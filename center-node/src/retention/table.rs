//! The retention table: how long each kind of thing konvert holds is kept, by the
//! regulations. Dates are civil dates of the region; "deletable from" is the first day on
//! which retention may delete.

use konvert_exam::{ExamDate, ExamKind};

/// The Republic of Crimea's region code: its ГВЭ-9 materials are kept until 31 December of
/// the exam year (003:209).
pub const CRIMEA: &str = "91";

/// What a scan file or a record is, for retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetentionKind {
    /// The regional records and the page images an appeal needs with them: ten years
    /// (002:6659, 7509–7511).
    Records,
    /// The final essay's blanks: four years following the year of the essay (001:660).
    EssayBlanks,
    /// ГВЭ-9 in Crimea: until 31 December of the exam year (003:209).
    Gve9Crimea,
}

impl RetentionKind {
    /// The kind of the images of an exam of `exam` in region `region` (from the day's
    /// plan; unknown: the records' ten years). The exam model has no grade: every ГВЭ in
    /// Crimea is taken as ГВЭ-9.
    pub fn of(exam: ExamKind, region: Option<&str>) -> RetentionKind {
        match exam {
            ExamKind::Essay => RetentionKind::EssayBlanks,
            ExamKind::Gve if region == Some(CRIMEA) => RetentionKind::Gve9Crimea,
            _ => RetentionKind::Records,
        }
    }

    /// The kind's name in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionKind::Records => "records-10-years",
            RetentionKind::EssayBlanks => "essay-blanks-4-years",
            RetentionKind::Gve9Crimea => "gve9-crimea-31-december",
        }
    }
}

fn date(year: u16, month: u8, day: u8) -> ExamDate {
    ExamDate { year, month, day }
}

/// The first day on which retention may delete what is of `kind`, for an exam on
/// `exam_date` whose records were entered on `entered` (the later counts for the ten years).
pub fn deletable_from(kind: RetentionKind, exam_date: ExamDate, entered: ExamDate) -> ExamDate {
    match kind {
        RetentionKind::Records => {
            let from = exam_date.max(entered);
            let year = from.year.saturating_add(10);
            // 29 February ten years on is a common year's 1 March: never a day short.
            if from.month == 2 && from.day == 29 && format!("{year:04}-02-29").parse::<ExamDate>().is_err() {
                date(year, 3, 1)
            } else {
                date(year, from.month, from.day)
            }
        }
        // Kept through the four years following the essay's year.
        RetentionKind::EssayBlanks => date(exam_date.year.saturating_add(5), 1, 1),
        // Kept through 31 December of the exam year.
        RetentionKind::Gve9Crimea => date(exam_date.year.saturating_add(1), 1, 1),
    }
}

/// One line of the retention table, as `konvert-center retention table` prints it.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// What.
    pub what: &'static str,
    /// For how long.
    pub kept: &'static str,
    /// Where the regulations say so.
    pub source: &'static str,
}

/// The table.
pub const TABLE: &[Row] = &[
    Row {
        what: "regional records (РИС), and the page images and recognition an appeal needs",
        kept: "10 years from the exam (or from entry, if later)",
        source: "002:6659, 002:7509–7511",
    },
    Row {
        what: "final essay (ИС(И)) blanks' images",
        kept: "the 4 years following the essay's year (deletable from 1 January of year + 5)",
        source: "001:660",
    },
    Row {
        what: "ГВЭ-9 materials in Crimea (region 91)",
        kept: "until 31 December of the exam year",
        source: "003:209",
    },
    Row {
        what: "transport envelopes (sealed packets in the store)",
        kept: "until every page image is held in the image store and its exam is closed; with the records otherwise",
        source: "issue 16 §5",
    },
    Row {
        what: "receipts and the inbox's records of each envelope",
        kept: "with the records: retention never deletes them (they prove delivery)",
        source: "002:6659",
    },
    Row {
        what: "paper exam materials",
        kept: "until 1 March of the following year — konvert holds none",
        source: "002:6577",
    },
    Row {
        what: "anything an appeal, a removal, an annulment or an investigation touches",
        kept: "while the hold stands",
        source: "002:7479, 7543, 6838",
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> ExamDate {
        s.parse().unwrap()
    }

    #[test]
    fn essay_blanks_go_after_the_four_years_following_the_essay_year() {
        let from = deletable_from(RetentionKind::EssayBlanks, d("2026-12-02"), d("2026-12-09"));
        assert_eq!(from, d("2031-01-01"));
        // Still kept on the last day of the fourth following year.
        assert!(d("2030-12-31") < from);
        // An essay in February (the additional dates) is kept just as long.
        assert_eq!(
            deletable_from(RetentionKind::EssayBlanks, d("2027-02-03"), d("2027-02-03")),
            d("2032-01-01")
        );
    }

    #[test]
    fn crimea_gve9_goes_after_31_december_of_the_exam_year() {
        let from = deletable_from(RetentionKind::Gve9Crimea, d("2026-06-01"), d("2026-06-02"));
        assert_eq!(from, d("2027-01-01"));
        assert!(d("2026-12-31") < from);
        assert_eq!(
            RetentionKind::of(ExamKind::Gve, Some(CRIMEA)),
            RetentionKind::Gve9Crimea
        );
        assert_eq!(RetentionKind::of(ExamKind::Gve, Some("76")), RetentionKind::Records);
        assert_eq!(RetentionKind::of(ExamKind::Gve, None), RetentionKind::Records);
        assert_eq!(RetentionKind::of(ExamKind::Ege, Some(CRIMEA)), RetentionKind::Records);
        assert_eq!(
            RetentionKind::of(ExamKind::Essay, Some(CRIMEA)),
            RetentionKind::EssayBlanks
        );
    }

    #[test]
    fn records_go_ten_years_after_the_exam_or_their_entry() {
        let from = deletable_from(RetentionKind::Records, d("2026-06-01"), d("2026-06-01"));
        assert_eq!(from, d("2036-06-01"));
        assert!(d("2036-05-31") < from);
        // Entered later than the exam: ten years from the entry.
        assert_eq!(
            deletable_from(RetentionKind::Records, d("2026-06-01"), d("2026-06-04")),
            d("2036-06-04")
        );
        // 29 February: a full ten years, never a day short.
        assert_eq!(
            deletable_from(RetentionKind::Records, d("2028-02-29"), d("2028-02-29")),
            d("2038-03-01")
        );
        assert_eq!(
            deletable_from(RetentionKind::Records, d("2024-02-29"), d("2024-02-29")),
            d("2034-03-01")
        );
        assert_eq!(
            deletable_from(RetentionKind::Records, d("2030-02-28"), d("2030-02-28")),
            d("2040-02-28")
        );
    }
}
