//! A remark's page, named by the center as "file N (digest prefix)", is shown with this
//! site's own file name when the intake journal has exactly one file with that digest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use konvert_replication::{AnswerOutcome, Remark, RemarkAction};

use super::*;
use crate::intake::{SeenName, TakenFile};

fn taken(journal: &Journal, name: &str, original: &str, sha256: [u8; 32]) {
    let file = TakenFile {
        name: name.into(),
        original: original.into(),
        spool_name: format!("spool-{name}"),
        size: 1,
        sha256,
        taken_at_unix_ms: 1,
        pages: Vec::new(),
        problem: None,
    };
    let seen = SeenName {
        size: 1,
        mtime_ns: 1,
        sha256,
    };
    journal.take(&file, seen).unwrap();
}

fn answer(page: &str) -> PacketAnswer {
    PacketAnswer {
        site: "0101".into(),
        packet_id: "0101-0007".into(),
        version: 1,
        digest: [0; 32],
        outcome: AnswerOutcome::Remarks(vec![Remark {
            id: "barcode-zone".into(),
            room: Some("0007".into()),
            participant: None,
            page: Some(page.into()),
            what: "the barcode zone is unreadable".into(),
            action: RemarkAction::RescanAndResend,
        }]),
        pages: 3,
        answered_at_unix_ms: 1,
    }
}

#[test]
fn a_remarks_page_shows_the_sites_own_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut one = [7u8; 32];
    one[..4].copy_from_slice(&[0xa1, 0xb2, 0xc3, 0xd4]);
    taken(&journal, "scan-003.tif", "IMG_0042.tif", one);
    // Two files sharing a prefix: neither is named, rather than the wrong one.
    let mut twin_a = [1u8; 32];
    twin_a[..4].copy_from_slice(&[0, 0, 0, 1]);
    let mut twin_b = [2u8; 32];
    twin_b[..4].copy_from_slice(&[0, 0, 0, 1]);
    taken(&journal, "scan-004.tif", "scan-004.tif", twin_a);
    taken(&journal, "scan-005.tif", "scan-005.tif", twin_b);
    let names = LocalNames::of(Some(&journal));

    assert_eq!(
        names.local("file 3 (a1b2c3d4) p.2").as_deref(),
        Some("scan-003.tif, scanned as IMG_0042.tif")
    );
    let lines = answer_lines(&answer("file 3 (a1b2c3d4) p.2"), None, &names).join("\n");
    assert!(
        lines.contains("page file 3 (a1b2c3d4) p.2 = scan-003.tif, scanned as IMG_0042.tif: the barcode zone"),
        "{lines}"
    );
    for unknown in [
        "file 4 (00000001) p.1",
        "file 9 (ffffffff) p.1",
        "file 1 (a1b2c3) p.1",
        "file 1 (zzzzzzzz) p.1",
        "page-0001.tif p.1",
        "(",
    ] {
        assert_eq!(names.local(unknown), None, "{unknown}");
        let lines = answer_lines(&answer(unknown), None, &names).join("\n");
        assert!(lines.contains(&format!("page {unknown}: ")), "{lines}");
    }
    // Without a journal the page is shown as the center wrote it.
    let lines = answer_lines(&answer("file 3 (a1b2c3d4) p.2"), None, &LocalNames::default()).join("\n");
    assert!(lines.contains("page file 3 (a1b2c3d4) p.2: "), "{lines}");
    let json = status_json(
        &[KeptAnswer {
            answer: answer("file 3 (a1b2c3d4) p.2"),
            answered_by: None,
        }],
        &names,
    );
    assert_eq!(
        json[0]["remarks"][0]["local_file"],
        "scan-003.tif, scanned as IMG_0042.tif"
    );
}
