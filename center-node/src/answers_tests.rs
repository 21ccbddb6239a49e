use konvert_crypto::SigningKey;
use konvert_replication::{AnswerOutcome, Notice, PacketAnswer, Remark, RemarkAction, SignedNotice};

use super::*;

fn notice(key: &SigningKey, at: u64, what_len: usize) -> SignedNotice {
    let remarks = (0..60)
        .map(|i| Remark {
            id: format!("r{i}"),
            room: Some("0007".into()),
            participant: Some("Ж".repeat(what_len)),
            page: Some("ж".repeat(what_len)),
            what: "ш".repeat(what_len),
            action: RemarkAction::RescanAndResend,
        })
        .collect();
    let a = PacketAnswer {
        site: "0101".into(),
        packet_id: format!("0101-2026-06-01-ege-{at:04}-blanks"),
        version: 1,
        digest: [1; 32],
        outcome: AnswerOutcome::Remarks(remarks),
        pages: 1,
        answered_at_unix_ms: at,
    };
    SignedNotice::sign(Notice::PacketAnswer(a), key).unwrap()
}

#[test]
fn a_notices_reply_keeps_the_newest_that_fit_a_frame_whatever_the_remarks_say() {
    let key = SigningKey::generate().unwrap();
    // Answers near their bounds: twelve would overflow a 2 MiB frame.
    let mut big: Vec<SignedNotice> = (0..12).rev().map(|at| notice(&key, at, 500)).collect();
    let one = postcard::to_allocvec(&big[0]).unwrap().len();
    assert!(one * 12 > konvert_replication::frame::MAX_FRAME_LEN);
    fit_budget(&mut big);
    assert_eq!(big.len(), NOTICE_BUDGET_BYTES / one);
    assert_eq!(big[0].notice.at_unix_ms(), 11, "the newest first");
    let total: usize = big.iter().map(|n| postcard::to_allocvec(n).unwrap().len()).sum();
    assert!(total <= NOTICE_BUDGET_BYTES);

    let mut small: Vec<SignedNotice> = (0..5).map(|at| notice(&key, at, 5)).collect();
    fit_budget(&mut small);
    assert_eq!(small.len(), 5, "small answers all go");
}

#[test]
fn site_codes_that_cannot_name_a_folder_find_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let desk = AnswerDesk::open(dir.path()).unwrap();
    assert!(desk.held_for("../etc").unwrap().is_empty());
    assert!(desk.held_for("0101").unwrap().is_empty());
    assert_eq!(site_folder("../x"), None);
    assert_eq!(site_folder("0101"), Some("0101"));
}

#[test]
fn a_relays_reply_gives_every_site_its_newest_in_turn() {
    let key = SigningKey::generate().unwrap();
    let for_site = |site: &str, count: u64| -> Vec<SignedNotice> {
        (0..count)
            .map(|at| {
                let mut n = notice(&key, at, 1);
                let Notice::PacketAnswer(a) = &mut n.notice else {
                    unreachable!("signed an answer")
                };
                a.site = site.into();
                SignedNotice::sign(n.notice, &key).unwrap()
            })
            .collect()
    };
    // A busy site with 300 answers does not crowd out a quiet one.
    let reply = fair_share(vec![for_site("0101", 300), for_site("0102", 2)]);
    assert_eq!(reply.len(), konvert_replication::notice::MAX_NOTICES);
    let quiet: Vec<u64> = reply
        .iter()
        .filter(|n| n.notice.site() == "0102")
        .map(|n| n.notice.at_unix_ms())
        .collect();
    assert_eq!(quiet, [1, 0]);
    assert_eq!(reply[0].notice.at_unix_ms(), 299, "the busy site's newest first");
}
