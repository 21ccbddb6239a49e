//! The recognizer the intake uses: the exam crate's page reader and barcode recognition.

use std::sync::Arc;
use std::time::Duration;

use konvert_exam::scan::{read_scan_pages, recognize, Recognition};
use konvert_exam::PageStatus;

use super::{FileReading, Recognizer};

/// Reads every page of a scan file and recognizes it, `budget` per page.
pub fn scan_recognizer(budget: Duration) -> Recognizer {
    Arc::new(move |bytes: &[u8]| read_file(bytes, budget))
}

fn read_file(bytes: &[u8], budget: Duration) -> FileReading {
    let mut pages = Vec::new();
    let iter = match read_scan_pages(bytes) {
        Ok(iter) => iter,
        Err(e) => {
            return FileReading {
                pages,
                problem: Some(e.to_string()),
            }
        }
    };
    for page in iter {
        match page {
            Ok(page) => pages.push(match recognize(&page, budget) {
                Recognition::Read { identity, .. } => PageStatus::Read(identity),
                Recognition::Unreadable { reason } => PageStatus::Unreadable { reason },
            }),
            Err(e) => {
                return FileReading {
                    pages,
                    problem: Some(e.to_string()),
                }
            }
        }
    }
    FileReading { pages, problem: None }
}
