//! The security officers' workspace: the authority (officers and threshold), the officers'
//! PIN-protected signing tokens, the registry draft they edit, and every published
//! registry. The registry logic itself is `konvert_crypto::registry`; this module only
//! keeps its files.
//!
//! ```text
//! authority/
//!   authority.toml           officers (name, public key), threshold, validity
//!   officers/<name>.token    each officer's key under their PIN
//!   draft.registry           the body being edited (postcard), written atomically
//!   published/registry-v<N>.bin, registry.bin (newest)
//!   audit.log                every successful command, hash-chained (konvert_crypto::audit)
//!   audit.log.head           its newest signed checkpoint
//!   audit.key, audit.pub     the key that signs the log's checkpoints (0600), its public half
//! ```
//!
//! The audit log's checkpoints are signed by a key of the workspace's own, made by
//! `init-authority`, not by the officers' keys: those sit behind PINs, and most commands
//! (issuing a token, changing a status) unlock none of them, so asking for a PIN at every
//! status change only to sign a checkpoint would be a burden nobody keeps up. The audit
//! key can do nothing but sign checkpoints; whoever can read it could rewrite the log and
//! re-sign it, so the auditor verifies against a copy of `audit.pub` (printed by
//! `init-authority`) and of `audit.log.head` kept away from this machine. Each command
//! checkpoints when it ends, so the whole log is always covered.

use std::path::{Path, PathBuf};

use anyhow::Context;
use konvert_crypto::audit::{AuditAction, AuditLog};
use konvert_crypto::keyfile;
use konvert_crypto::registry::{AuthorityFile, RegistryBody, RegistryTrust, SignedRegistry};
use konvert_crypto::token::TokenFile;
use konvert_crypto::{SigningKey, VerifyingKey};

/// The workspace folder.
#[derive(Debug, Clone)]
pub struct Workspace {
    dir: PathBuf,
}

const MAX_FILE: u64 = 16 * 1024 * 1024;
/// A checkpoint after this many entries (each command also checkpoints when it ends).
const AUDIT_CHECKPOINT_EVERY: u64 = 16;

/// Records a successful command in the audit log and checkpoints it (the command ends).
pub fn record(log: &AuditLog, actor: &str, action: AuditAction, subject: &str, detail: &str) -> anyhow::Result<u64> {
    let recorded = log.append(actor, action, subject, detail).and_then(|seq| {
        if let Some(cp) = log.checkpoint()? {
            // To the officers: the anchor that later catches a log rolled back with its
            // head file (`konvert keys audit verify --anchor`), kept away from this machine.
            eprintln!(
                "audit log: entry {seq} recorded; anchor: {}",
                konvert_crypto::audit::AuditAnchor::of(&cp).to_line()
            );
        }
        Ok(seq)
    });
    recorded.context("the change was made, but recording it in the audit log failed")
}

/// Who runs a command, as the audit log records it: the operating system's user.
pub fn os_user() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("os-user {user}")
}

impl Workspace {
    /// The workspace folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens an existing workspace.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            dir.join("authority.toml").exists(),
            "{} is not an officers' workspace (no authority.toml); create one with `konvert keys init-authority`",
            dir.display()
        );
        Ok(Workspace { dir: dir.to_owned() })
    }

    /// Creates the folders of a new workspace; refuses an existing one.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !dir.join("authority.toml").exists(),
            "{} already holds an authority; refusing to overwrite it",
            dir.display()
        );
        std::fs::create_dir_all(dir.join("officers"))?;
        std::fs::create_dir_all(dir.join("published"))?;
        let ws = Workspace { dir: dir.to_owned() };
        let key = SigningKey::generate()?;
        keyfile::write_signing_key(&ws.audit_key_path(), &key)?;
        keyfile::write_atomic(
            &ws.dir.join("audit.pub"),
            format!("{}\n", key.verifying_key()).as_bytes(),
            0o644,
        )?;
        Ok(ws)
    }

    /// The audit log of this workspace's commands.
    pub fn audit_log_path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    fn audit_key_path(&self) -> PathBuf {
        self.dir.join("audit.key")
    }

    /// The public key that verifies the audit log's checkpoints.
    pub fn audit_public_key(&self) -> anyhow::Result<VerifyingKey> {
        let path = self.dir.join("audit.pub");
        let text = keyfile::read_bounded(&path, 4096)?;
        let text = std::str::from_utf8(&text).with_context(|| format!("{} is not text", path.display()))?;
        VerifyingKey::from_hex(text).with_context(|| format!("{}", path.display()))
    }

    /// Opens the audit log, before a command changes anything: a log that does not verify
    /// stops the command here. A workspace made before the audit key existed still logs,
    /// without checkpoints.
    pub fn audit_log(&self) -> anyhow::Result<AuditLog> {
        let key_path = self.audit_key_path();
        let key = if key_path.exists() {
            Some(keyfile::read_signing_key(&key_path)?)
        } else {
            tracing::warn!(
                "{} has no audit.key; the audit log gets no signed checkpoints",
                self.dir.display()
            );
            None
        };
        AuditLog::open(&self.audit_log_path(), key, AUDIT_CHECKPOINT_EVERY)
            .context("the audit log does not accept entries, so nothing was changed")
    }

    /// Where an officer's token lives.
    pub fn officer_token(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join("officers").join(format!("{safe}.token"))
    }

    /// Reads `authority.toml`.
    pub fn authority_file(&self) -> anyhow::Result<AuthorityFile> {
        let path = self.dir.join("authority.toml");
        let text = keyfile::read_text_bounded(&path, keyfile::MAX_CONFIG_BYTES)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid authority file", path.display()))
    }

    /// Writes `authority.toml`.
    pub fn write_authority_file(&self, file: &AuthorityFile) -> anyhow::Result<()> {
        keyfile::write_atomic(
            &self.dir.join("authority.toml"),
            toml::to_string(file)?.as_bytes(),
            0o644,
        )?;
        Ok(())
    }

    /// The draft being edited.
    pub fn draft(&self) -> anyhow::Result<RegistryBody> {
        let path = self.dir.join("draft.registry");
        let bytes = keyfile::read_bounded(&path, MAX_FILE)?;
        RegistryBody::decode(&bytes).with_context(|| format!("{} is damaged", path.display()))
    }

    /// Saves the draft after checking its consistency.
    pub fn save_draft(&self, body: &RegistryBody) -> anyhow::Result<()> {
        body.check()?;
        keyfile::write_atomic(&self.dir.join("draft.registry"), &postcard::to_allocvec(body)?, 0o600)?;
        Ok(())
    }

    /// The newest published registry, if any.
    pub fn published(&self) -> anyhow::Result<Option<SignedRegistry>> {
        let path = self.dir.join("published").join("registry.bin");
        if !path.exists() {
            return Ok(None);
        }
        let bytes = keyfile::read_bounded(&path, MAX_FILE)?;
        Ok(Some(SignedRegistry::from_bytes(&bytes)?))
    }

    /// Signs the draft as the next version with `officers`, checks it as an edge would,
    /// and writes it. Returns the path and the published body.
    pub fn publish(&self, officers: &[&SigningKey], now_unix_ms: u64) -> anyhow::Result<(PathBuf, RegistryBody)> {
        let file = self.authority_file()?;
        let mut body = self.draft()?;
        let previous = self.published()?;
        // The trust an edge holds now: anchored in the authority that signed the last
        // registry, or in the current one for the first.
        let trust = match &previous {
            Some(p) => {
                let b = p.decode_body()?;
                RegistryTrust {
                    authority: b.authority.clone(),
                    version: b.version,
                    digest: p.digest(),
                }
            }
            None => RegistryTrust::anchored(file.authority()?)?,
        };
        body.version = trust.version + 1;
        body.issued_at_unix_ms = now_unix_ms;
        body.expires_at_unix_ms = now_unix_ms + u64::from(file.valid_days) * 86_400_000;
        body.authority = file.authority()?;
        let signed = SignedRegistry::sign(&body, officers)?;
        let (accepted, _) = trust
            .accept(&signed, now_unix_ms)
            .context("the signed registry would not be accepted by the edges")?;
        let bytes = signed.to_bytes()?;
        let path = self
            .dir
            .join("published")
            .join(format!("registry-v{}.bin", accepted.version));
        keyfile::write_new_atomic(&path, &bytes, 0o644)?;
        keyfile::write_atomic(&self.dir.join("published").join("registry.bin"), &bytes, 0o644)?;
        self.save_draft(&accepted)?;
        Ok((path, accepted))
    }

    /// Unlocks the named officers' tokens with the PIN `pin_of` gives for each.
    pub fn unlock_officers(
        &self,
        names: &[String],
        pin_of: &dyn Fn(&TokenFile) -> anyhow::Result<zeroize::Zeroizing<String>>,
    ) -> anyhow::Result<Vec<SigningKey>> {
        names
            .iter()
            .map(|n| {
                let token = TokenFile::read(&self.officer_token(n))
                    .with_context(|| format!("officer {n} has no token in this workspace"))?;
                let pin = pin_of(&token)?;
                Ok(token.unlock(&pin)?)
            })
            .collect()
    }
}
