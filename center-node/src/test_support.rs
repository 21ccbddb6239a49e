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
