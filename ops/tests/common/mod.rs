//! Pieces shared by the `konvert` command tests.

use std::path::Path;
use std::process::Command;

/// The user PIN of every SoftHSM2 token these tests make.
pub(crate) const TOKEN_PIN: &str = "246813";

/// Initializes a SoftHSM2 token `label` (user PIN [`TOKEN_PIN`]) under the configuration
/// `conf`, as an officer prepares a drill token.
pub(crate) fn init_softhsm_token(conf: &Path, label: &str) {
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            "12345678",
            "--pin",
            TOKEN_PIN,
        ])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
}
