use konvert_crypto::registry::TokenStatus;
use konvert_crypto::SigningKey;

use super::*;

fn token(id: &str, person: &str) -> TokenRecord {
    TokenRecord {
        token_id: id.into(),
        person: person.into(),
        role: TokenRole::Member,
        public: SigningKey::generate().unwrap().verifying_key(),
        status: TokenStatus::StatementPrinted,
        status_since_unix_ms: 0,
        sites: vec!["0101".into()],
        dates: vec!["2026-06-01".into()],
    }
}

#[test]
fn one_row_per_token_with_names_escaped_and_an_id_over_the_exact_list() {
    let a = token("TK-1", "Иванова А. П.");
    let b = token("TK-2", "<script>alert(1)</script>");
    let id = statement_id(&[&a, &b]);
    assert_eq!(id.len(), 12);
    assert_ne!(id, statement_id(&[&b, &a]), "the order is part of the statement");
    assert_ne!(id, statement_id(&[&a]));
    let facts = StatementFacts {
        draft_version: 3,
        printed_at: "2026-05-20 09:00 UTC".into(),
        statement_id: id.clone(),
    };
    let page = render(&[&a, &b], &facts);
    assert_eq!(page.matches("<tr><td>").count(), 2);
    assert!(page.contains("Иванова А. П."));
    assert!(page.contains("&lt;script&gt;"), "names are escaped");
    assert!(!page.contains("<script>"));
    assert!(page.contains(&format!("record-statement --statement-id {id}")));
}
