//! Shared pieces of the unit tests.

use konvert_crypto::registry::{Authority, CenterKeyRecord, CenterKeyState, RegistryBody};
use konvert_crypto::{RecipientPublicKey, SigningKey};

/// A registry `version` with one officer, no tokens and `center` as the active center
/// key, issued at `now` and valid for a day.
pub(crate) fn registry(version: u64, officer: &SigningKey, center: RecipientPublicKey, now: u64) -> RegistryBody {
    RegistryBody {
        version,
        issued_at_unix_ms: now,
        expires_at_unix_ms: now + 86_400_000,
        authority: Authority {
            officers: vec![officer.verifying_key()],
            threshold: 1,
        },
        tokens: vec![],
        center_keys: vec![CenterKeyRecord {
            key: center,
            state: CenterKeyState::Active,
        }],
        agreement_keys: Vec::new(),
    }
}

/// A plan with two sites in different zones; P2 refused consent.
pub(crate) const PLAN: &str = r#"
date = "2026-06-01"
exam = "ege"
region = "76"

[[sites]]
code = "0101"
kind = "exam-site"
time_zone = "Europe/Moscow"

[[sites]]
code = "0202"
kind = "exam-site"
time_zone = "Asia/Yekaterinburg"

[[rooms]]
site = "0101"
code = "0001"

[[rooms]]
site = "0101"
code = "0002"

[[rooms]]
site = "0202"
code = "0001"

[[participants]]
code = "P1"
site = "0101"
room = "0001"
seat = "1А"
kit = 11

[[participants]]
code = "REFUSED-P2"
site = "0101"
room = "0001"
seat = "1Б"
kit = 12
consent = false

[[participants]]
code = "P3"
site = "0202"
room = "0001"
seat = "1А"
kit = 13

[[members]]
token_id = "m-0101-1"
site = "0101"
"#;
