use konvert_crypto::registry::{Binding, CenterKeyState, RegistryBody};
use konvert_crypto::registry::{TokenRole, TokenStatus};
use konvert_crypto::SigningKey;

use super::*;

const NOW: u64 = 1_780_000_000_000;

fn registry(center: &RecipientSecretKey) -> RegistryBody {
    crate::test_support::registry(1, &SigningKey::generate().unwrap(), center.public_key(), NOW)
}

fn walk(body: &mut RegistryBody, t: &TokenFile, role: TokenRole, to: TokenStatus) {
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
        if step == to {
            return;
        }
    }
}

#[test]
fn only_an_issued_specialists_token_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let center = RecipientSecretKey::generate().unwrap();
    let token = |id: &str| {
        TokenFile::create(
            &dir.path().join(format!("{id}.token")),
            id,
            id,
            "314159",
            konvert_crypto::token::KdfParams::insecure_fast_for_tests(),
        )
        .unwrap()
    };
    let (sp, member, pending) = (token("SP-1"), token("M-1"), token("SP-2"));
    let mut body = registry(&center);
    walk(&mut body, &sp, TokenRole::CenterSpecialist, TokenStatus::Issued);
    walk(&mut body, &member, TokenRole::Member, TokenStatus::Issued);
    walk(
        &mut body,
        &pending,
        TokenRole::CenterSpecialist,
        TokenStatus::StatementPrinted,
    );
    let p = dir.path();
    assert!(check_specialist(&body, &member, p)
        .unwrap_err()
        .to_string()
        .contains("member's token"));
    let e = check_specialist(&body, &pending, p).unwrap_err().to_string();
    assert!(e.contains("statement-printed"), "{e}");
    let stranger = token("X-1");
    assert!(check_specialist(&body, &stranger, p)
        .unwrap_err()
        .to_string()
        .contains("not in key registry"));
    check_specialist(&body, &sp, p).unwrap();

    let loader = dir.path().join("loader");
    std::fs::create_dir_all(&loader).unwrap();
    let sp_key = sp.unlock("314159").unwrap();
    let sealed = loader_key::wrap(&center, &sp.token_id, &sp_key).unwrap();
    let file = write_wrapped(&loader, &sp.token_id, &center.public_key(), &sealed).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let keys = unwrap_for(&loader, &body, Specialist::File(&sp_key), NOW).unwrap();
    assert_eq!(keys[0].public_key(), center.public_key());
    // Another token's key finds nothing to open; a destroyed center key neither.
    assert!(unwrap_for(&loader, &body, Specialist::File(&member.unlock("314159").unwrap()), NOW).is_err());
    body.center_keys[0].state = CenterKeyState::Destroyed { at_unix_ms: NOW };
    assert!(unwrap_for(&loader, &body, Specialist::File(&sp_key), NOW).is_err());
}
