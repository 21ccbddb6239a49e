#![allow(clippy::unwrap_used)]

use super::*;
use crate::PageKey;

use std::sync::{Arc, Mutex, Weak};

/// A handle on records opened once and shared while any handle lives.
struct Shared(Arc<SledRecords>);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Records for Shared {
            $(fn $name(&self, $($arg: $ty),*) -> $ret { self.0.$name($($arg),*) })*
        }
    };
}

delegate! {
    put_plan(plan: &DayPlan) -> Result<()>;
    plans() -> Result<Vec<DayPlan>>;
    is_registered(envelope: &[u8; 32]) -> Result<bool>;
    register(packet: &PacketEntry, pages: &[PageEntry]) -> Result<bool>;
    packets() -> Result<Vec<PacketEntry>>;
    pages() -> Result<Vec<PageEntry>>;
    put_outcomes(outcomes: &[PageOutcome]) -> Result<()>;
    outcomes() -> Result<Vec<PageOutcome>>;
    put_findings(found: &[Finding], now_unix_ms: u64) -> Result<Vec<String>>;
    findings() -> Result<Vec<FindingRecord>>;
    decide(by: &str, role: Role, at_unix_ms: u64, kind: DecisionKind) -> Result<Decision>;
    decisions() -> Result<Vec<Decision>>;
    put_answer(answer: &PacketAnswer) -> Result<bool>;
    answers() -> Result<Vec<PacketAnswer>>;
    hold_images(images: &[ImageRef]) -> Result<usize>;
    images() -> Result<Vec<ImageRef>>;
    images_deleted(sha256: &[[u8; 32]], removal: &Removal) -> Result<()>;
    add_hold(hold: NewHold) -> Result<Hold>;
    release_hold(id: u64, release: Release) -> Result<Hold>;
    holds() -> Result<Vec<Hold>>;
}

/// The suite's opener for sled: a folder per test. sled locks its folder, so a handle still
/// open is shared; once every handle is dropped, the next open reads the folder afresh.
fn sled(_name: &str) -> Option<Box<dyn Fn() -> Box<dyn Records>>> {
    let dir = tempfile::tempdir().unwrap();
    let open: Mutex<Weak<SledRecords>> = Mutex::new(Weak::new());
    Some(Box::new(move || {
        let mut cached = open.lock().unwrap();
        let records = match cached.upgrade() {
            Some(r) => r,
            None => {
                let r = Arc::new(SledRecords::open(dir.path()).unwrap());
                *cached = Arc::downgrade(&r);
                r
            }
        };
        Box::new(Shared(records)) as Box<dyn Records>
    }))
}

crate::records_suite!(sled);

#[test]
fn page_keys_print_and_parse_back() {
    let key = PageKey {
        envelope: [0xab; 32],
        file: 3,
        page: 4,
    };
    let full = format!("{}:3:5", hex::encode(key.envelope));
    assert_eq!(full.parse::<PageKey>().unwrap(), key);
    assert!("ab:3:5".parse::<PageKey>().is_err());
    assert!(format!("{}:3:0", hex::encode(key.envelope)).parse::<PageKey>().is_err());
}
