//! Findings in words, for the staff's listings and the commission's lists.

use konvert_records::{Finding, FindingKind};

/// What a finding says, with where it is.
pub fn describe(f: &Finding) -> String {
    let mut at = format!("{} site {}", f.day, f.site);
    if let Some(room) = &f.room {
        at.push_str(&format!(" room {room}"));
    }
    if let Some(p) = &f.participant {
        at.push_str(&format!(" participant {p}"));
    }
    if let Some(page) = &f.page {
        at.push_str(&format!(" page {page}"));
    }
    let what = match &f.kind {
        FindingKind::DuplicateBlank { blank, of } => format!("duplicate: {blank} was registered before (page {of})"),
        FindingKind::MissingBlank { blank } => format!("missing blank: {blank}"),
        FindingKind::SeatedElsewhere { planned } => {
            format!("seated elsewhere: the plan seats the participant in {planned}; results withheld")
        }
        FindingKind::NotInPlan { kit } => format!("not in the plan: kit {kit}; results withheld"),
        FindingKind::KimGroup { kim, recordings } => {
            format!(
                "{} recordings share KIM number {kim}; blocked until decided",
                recordings.len()
            )
        }
        FindingKind::VersionLacksBlank { blank, had_in, version } => {
            format!("version {version} lacks {blank}, which version {had_in} had")
        }
        FindingKind::UnreadableBarcode { reason } => format!("barcode unreadable: {reason}"),
        FindingKind::NotAnImage { reason } => format!("not an image: {reason}"),
        FindingKind::PacketRefused { reason } => format!("packet not loaded: {reason}"),
        FindingKind::BlanksBeforeForms { form } => format!("blanks arrived before {form}; they waited for it"),
        FindingKind::MissingForm { form } => format!("{form} not received"),
        FindingKind::NotThisExam { reason } => format!("not a page of this exam: {reason}"),
        FindingKind::MarksDisagree { mark, detail, .. } => format!("mark «{mark}»: {detail}"),
        FindingKind::CountsDisagree { detail } => format!("counts differ from the summary form: {detail}"),
    };
    format!("{what} ({at})")
}
