//! `konvert keys`: the security officers' commands (for now: issuing a member token).

use std::path::PathBuf;

use clap::Subcommand;
use konvert_crypto::token::{TokenFile, DEFAULT_KDF_ITERATIONS};

/// Security officers' key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a member (ГЭК) token file: a new signing key, encrypted under the member's PIN.
    IssueToken {
        /// Where to write the token file.
        #[arg(long)]
        out: PathBuf,
        /// The token's id (serial number).
        #[arg(long)]
        token_id: String,
        /// The member who holds it.
        #[arg(long)]
        holder: String,
        /// Read the PIN from this environment variable instead of asking (automation only).
        #[arg(long)]
        pin_env: Option<String>,
        /// PBKDF2 iterations protecting the PIN.
        #[arg(long, default_value_t = DEFAULT_KDF_ITERATIONS)]
        kdf_iterations: u32,
    },
}

/// Runs one keys command.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::IssueToken {
            out,
            token_id,
            holder,
            pin_env,
            kdf_iterations,
        } => {
            let pin = match pin_env {
                Some(var) => zeroize::Zeroizing::new(
                    std::env::var(&var).map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?,
                ),
                None => {
                    let a = zeroize::Zeroizing::new(rpassword::prompt_password("New PIN for the token: ")?);
                    let b = zeroize::Zeroizing::new(rpassword::prompt_password("Repeat the PIN: ")?);
                    anyhow::ensure!(*a == *b, "the two PINs differ; nothing was written");
                    a
                }
            };
            let token = TokenFile::create(&out, &token_id, &holder, &pin, kdf_iterations)?;
            println!(
                "token {} for {} written to {}",
                token.token_id,
                token.holder,
                out.display()
            );
            println!("public key (allow it at the center): {}", token.public);
        }
    }
    Ok(())
}
