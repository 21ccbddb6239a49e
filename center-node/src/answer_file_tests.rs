use konvert_crypto::registry::{Binding, RegistryBody, TokenRole, TokenStatus};
use konvert_crypto::token::TokenFile;
use konvert_crypto::{RecipientSecretKey, SigningKey};
use konvert_replication::{AnswerOutcome, Remark, RemarkAction};

use super::*;

const NOW: u64 = 1_780_000_000_000;

fn issue(body: &mut RegistryBody, t: &TokenFile, role: TokenRole) {
    body.add_token(&t.token_id, role, t.public, NOW).unwrap();
    for step in [
        TokenStatus::ReceivedByCenter,
        TokenStatus::Bound,
        TokenStatus::StatementPrinted,
        TokenStatus::Issued,
    ] {
        let binding = (step == TokenStatus::Bound).then(|| Binding {
            person: t.holder.clone(),
            sites: vec!["0101".into()],
            dates: vec!["2026-06-01".into()],
        });
        body.set_status(&t.token_id, step, binding, NOW).unwrap();
    }
}

fn token(dir: &std::path::Path, id: &str) -> (TokenFile, SigningKey) {
    let t = TokenFile::create(
        &dir.join(format!("{id}.token")),
        id,
        id,
        "314159",
        konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    let key = t.unlock("314159").unwrap();
    (t, key)
}

fn answer() -> PacketAnswer {
    PacketAnswer {
        site: "0101".into(),
        packet_id: "0101-2026-06-01-ege-0007-blanks".into(),
        version: 1,
        digest: [7; 32],
        outcome: AnswerOutcome::Remarks(vec![Remark {
            id: "missing-13-02".into(),
            room: Some("0007".into()),
            participant: None,
            page: None,
            what: "ППЭ-13-02МАШ of room 0007 is missing".into(),
            action: RemarkAction::SendForm {
                form: "ППЭ-13-02МАШ".into(),
            },
        }]),
        pages: 40,
        answered_at_unix_ms: NOW,
    }
}

#[test]
fn only_an_issued_specialists_signature_on_the_very_answer_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let center = SigningKey::generate().unwrap().key_id();
    let (sp, sp_key) = token(dir.path(), "SP-1");
    let (member, member_key) = token(dir.path(), "M-1");
    let (_, stranger_key) = token(dir.path(), "X-1");
    let recipient = RecipientSecretKey::generate().unwrap();
    let mut body = crate::test_support::registry(1, &SigningKey::generate().unwrap(), recipient.public_key(), NOW);
    issue(&mut body, &sp, TokenRole::CenterSpecialist);
    issue(&mut body, &member, TokenRole::Member);

    let signed = SignedAnswer::sign(answer(), center, &sp_key).unwrap();
    assert_eq!(signed.verify(&body).unwrap(), "SP-1");

    let by_member = SignedAnswer::sign(answer(), center, &member_key).unwrap();
    let why = by_member.verify(&body).unwrap_err();
    assert!(why.contains("member's token, not a center specialist's"), "{why}");
    let by_stranger = SignedAnswer::sign(answer(), center, &stranger_key).unwrap();
    let why = by_stranger.verify(&body).unwrap_err();
    assert!(why.contains("is not in key registry"), "{why}");

    // A remark changed after signing, or the answer moved to another center: forged.
    let mut altered = signed.clone();
    altered.answer.outcome = AnswerOutcome::Loaded;
    assert!(altered.verify(&body).unwrap_err().contains("forged or altered"));
    let mut moved = signed.clone();
    moved.center = SigningKey::generate().unwrap().key_id();
    assert!(moved.verify(&body).unwrap_err().contains("forged or altered"));

    // A remark that says nothing is not signed at all.
    let mut empty = answer();
    empty.outcome = AnswerOutcome::Remarks(Vec::new());
    let err = SignedAnswer::sign(empty, center, &sp_key).unwrap_err().to_string();
    assert!(err.contains("at least one"), "{err}");
}

#[test]
fn a_batch_file_round_trips_and_anything_else_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let center = SigningKey::generate().unwrap().key_id();
    let (_, key) = token(dir.path(), "SP-1");
    let batch = AnswerBatch {
        center,
        answers: vec![SignedAnswer::sign(answer(), center, &key).unwrap()],
    };
    let bytes = batch.encode().unwrap();
    assert_eq!(bytes[7], FORMAT);
    assert_eq!(AnswerBatch::decode(&bytes, "a.kanswers").unwrap(), batch);

    let err = AnswerBatch::decode(b"PK\x03\x04 a zip", "b.kanswers")
        .unwrap_err()
        .to_string();
    assert!(err.contains("b.kanswers: not a file of loader answers"), "{err}");
    let mut newer = bytes.clone();
    newer[7] = 9;
    let err = AnswerBatch::decode(&newer, "c.kanswers").unwrap_err().to_string();
    assert!(
        err.contains("format 9") && err.contains("same konvert release"),
        "{err}"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    let err = AnswerBatch::decode(&longer, "d.kanswers").unwrap_err().to_string();
    assert!(err.contains("stray bytes"), "{err}");
    let err = AnswerBatch::decode(&bytes[..bytes.len() - 10], "e.kanswers")
        .unwrap_err()
        .to_string();
    assert!(err.contains("e.kanswers: damaged"), "{err}");
}
