//! Whether a page whose barcode was read belongs to the exam being processed: a blank of
//! a template the exam does not use (an essay writing blank in an ЕГЭ packet), or a form
//! of another day, site or room, is "not a page of this exam" — a final state of its own,
//! not a registration, a duplicate or a quarantine.
//!
//! Blanks carry no date, site or room: a blank of another room is a participant seated
//! elsewhere, which the seating plan decides (results withheld), not this check.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{BlankKind, ExamDate, ExamKind, Form, PageIdentity, RoomId, SiteId};

/// The exam a packet was sent for: what its pages are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExamContext {
    /// The exam.
    pub exam: ExamKind,
    /// The exam day.
    pub date: ExamDate,
    /// The site that sent the packet.
    pub site: SiteId,
    /// The room the packet is for.
    pub room: RoomId,
}

/// Why a page is not a page of this exam.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ForeignReason {
    /// The blank's template is not one this exam uses.
    BlankOfAnotherExam {
        /// The blank's kind.
        kind: BlankKind,
        /// The exam being processed.
        exam: ExamKind,
    },
    /// The form is not one this exam uses (ППЭ-13-03-У МАШ outside ЕГЭ).
    FormOfAnotherExam {
        /// The form.
        form: Form,
        /// The exam being processed.
        exam: ExamKind,
    },
    /// The form was printed for another day.
    FormOfAnotherDate {
        /// The form.
        form: Form,
        /// The day on the form.
        date: ExamDate,
    },
    /// The form was printed for another site.
    FormOfAnotherSite {
        /// The form.
        form: Form,
        /// The site on the form.
        site: SiteId,
    },
    /// The form was printed for another room of this site.
    FormOfAnotherRoom {
        /// The form.
        form: Form,
        /// The room on the form.
        room: RoomId,
    },
}

impl fmt::Display for ForeignReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForeignReason::BlankOfAnotherExam { kind, exam } => write!(
                f,
                "«{}» is not a blank of the {} exam; it was put into this packet by mistake",
                kind.title(),
                exam.code()
            ),
            ForeignReason::FormOfAnotherExam { form, exam } => {
                write!(f, "{} is not a form of the {} exam", form.code(), exam.code())
            }
            ForeignReason::FormOfAnotherDate { form, date } => {
                write!(f, "{} was printed for another day, {date}", form.code())
            }
            ForeignReason::FormOfAnotherSite { form, site } => {
                write!(f, "{} was printed for another site, {site}", form.code())
            }
            ForeignReason::FormOfAnotherRoom { form, room } => {
                write!(f, "{} was printed for another room, {room}", form.code())
            }
        }
    }
}

/// What [`belongs_to`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Belonging {
    /// A page of this exam.
    ThisExam,
    /// Not a page of this exam, and why.
    Foreign(ForeignReason),
}

/// The blank kinds an exam's participants write on: the full set's kinds plus the
/// additional answer blank (ЕГЭ, ОГЭ, ГВЭ) — answer blank 2 sheet 2 counts for ОГЭ and
/// ГВЭ too, since sites print it when a participant asks; the essay's additional writing
/// blanks are writing blanks with higher sheet numbers.
pub fn exam_uses(exam: ExamKind, kind: BlankKind) -> bool {
    match exam {
        ExamKind::Essay => matches!(kind, BlankKind::Registration | BlankKind::EssayWriting),
        ExamKind::Ege | ExamKind::Oge | ExamKind::Gve => kind != BlankKind::EssayWriting,
    }
}

/// Whether the page `identity` belongs to the exam `context`; the first reason found
/// when it does not (exam, then day, site, room).
pub fn belongs_to(identity: &PageIdentity, context: &ExamContext) -> Belonging {
    let reason = match identity {
        PageIdentity::Blank(id) => (!exam_uses(context.exam, id.kind)).then_some(ForeignReason::BlankOfAnotherExam {
            kind: id.kind,
            exam: context.exam,
        }),
        PageIdentity::Form(id) => {
            if id.form == Form::Ppe13_03UMash && context.exam != ExamKind::Ege {
                Some(ForeignReason::FormOfAnotherExam {
                    form: id.form,
                    exam: context.exam,
                })
            } else if id.date != context.date {
                Some(ForeignReason::FormOfAnotherDate {
                    form: id.form,
                    date: id.date,
                })
            } else if id.site != context.site {
                Some(ForeignReason::FormOfAnotherSite {
                    form: id.form,
                    site: id.site.clone(),
                })
            } else if id.room != context.room {
                Some(ForeignReason::FormOfAnotherRoom {
                    form: id.form,
                    room: id.room.clone(),
                })
            } else {
                None
            }
        }
    };
    reason.map_or(Belonging::ThisExam, Belonging::Foreign)
}

#[cfg(test)]
#[path = "belonging_tests.rs"]
mod tests;
