//! A one-officer authority held in memory, for the demo, the benches and the tests: it
//! writes the center's `authority.toml`, takes member tokens through every regulation
//! step up to Issued, and publishes each registry version where the center takes it.
//! Real officers use `konvert keys` and a workspace of PIN-protected officer tokens.

use std::path::{Path, PathBuf};

use anyhow::Context;
use konvert_center::config::CenterConfig;
use konvert_crypto::keyfile;
use konvert_crypto::registry::{
    Authority, AuthorityFile, Binding, OfficerEntry, RegistryBody, SignedRegistry, TokenRole, TokenStatus,
};
use konvert_crypto::token::TokenFile;
use konvert_crypto::{RecipientPublicKey, SigningKey};

/// How long each published registry stays valid.
const VALID_MS: u64 = 7 * 86_400_000;

/// A one-officer authority and its registry draft.
pub struct QuickAuthority {
    officer: SigningKey,
    draft: RegistryBody,
    registry_path: PathBuf,
}

impl QuickAuthority {
    /// A new authority for the center `cfg`, sealing to `center_key`; writes the
    /// center's `authority.toml`.
    pub fn new(cfg: &CenterConfig, center_key: RecipientPublicKey, now_unix_ms: u64) -> anyhow::Result<Self> {
        let mut authority = Self::before_center_key(cfg, now_unix_ms)?;
        authority.draft.rotate_center_key(center_key, now_unix_ms)?;
        Ok(authority)
    }

    /// A new authority for the center `cfg` whose key is not born yet: it is born on the
    /// loader's side for specialists' tokens this authority issues first, then added with
    /// `draft_mut().rotate_center_key`. Writes the center's `authority.toml`.
    pub fn before_center_key(cfg: &CenterConfig, now_unix_ms: u64) -> anyhow::Result<Self> {
        let officer = SigningKey::generate()?;
        let authority = Authority {
            officers: vec![officer.verifying_key()],
            threshold: 1,
        };
        let file = AuthorityFile {
            officers: vec![OfficerEntry {
                name: "officer".into(),
                public: officer.verifying_key().to_string(),
            }],
            threshold: 1,
            valid_days: 7,
        };
        write_file(&cfg.authority, toml::to_string_pretty(&file)?.as_bytes())?;
        Ok(QuickAuthority {
            officer,
            draft: RegistryBody {
                version: 0,
                issued_at_unix_ms: now_unix_ms,
                expires_at_unix_ms: now_unix_ms + VALID_MS,
                authority,
                tokens: Vec::new(),
                center_keys: Vec::new(),
                agreement_keys: Vec::new(),
            },
            registry_path: cfg.registry.clone(),
        })
    }

    /// The officers' authority (what stations anchor in).
    pub fn authority(&self) -> Authority {
        self.draft.authority.clone()
    }

    /// Takes a member token through Loaded → Received by center → Bound (to its holder,
    /// `site` and `dates`) → Statement printed → Issued.
    pub fn issue(&mut self, token: &TokenFile, site: &str, dates: &[&str], now_unix_ms: u64) -> anyhow::Result<()> {
        self.issue_as(token, TokenRole::Member, &[site], dates, now_unix_ms)
    }

    /// Like [`QuickAuthority::issue`], for a token of `role` bound to `sites`.
    pub fn issue_as(
        &mut self,
        token: &TokenFile,
        role: TokenRole,
        sites: &[&str],
        dates: &[&str],
        now_unix_ms: u64,
    ) -> anyhow::Result<()> {
        self.issue_key_as(
            &token.token_id,
            &token.holder,
            token.public,
            role,
            sites,
            dates,
            now_unix_ms,
        )
    }

    /// Like [`QuickAuthority::issue_as`], for a token known by its id, holder and public
    /// key (a hardware token has no token file).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_key_as(
        &mut self,
        id: &str,
        holder: &str,
        public: konvert_crypto::VerifyingKey,
        role: TokenRole,
        sites: &[&str],
        dates: &[&str],
        now_unix_ms: u64,
    ) -> anyhow::Result<()> {
        self.draft.add_token(id, role, public, now_unix_ms)?;
        self.draft
            .set_status(id, TokenStatus::ReceivedByCenter, None, now_unix_ms)?;
        let binding = Binding {
            person: holder.to_owned(),
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            dates: dates.iter().map(|d| (*d).to_owned()).collect(),
        };
        self.draft
            .set_status(id, TokenStatus::Bound, Some(binding), now_unix_ms)?;
        self.draft
            .set_status(id, TokenStatus::StatementPrinted, None, now_unix_ms)?;
        self.draft.set_status(id, TokenStatus::Issued, None, now_unix_ms)?;
        Ok(())
    }

    /// The draft, to change before the next [`QuickAuthority::publish`].
    pub fn draft_mut(&mut self) -> &mut RegistryBody {
        &mut self.draft
    }

    /// Signs the draft as the next version and writes it where the center takes it.
    pub fn publish(&mut self, now_unix_ms: u64) -> anyhow::Result<SignedRegistry> {
        self.publish_valid_for(now_unix_ms, VALID_MS)
    }

    /// Like [`QuickAuthority::publish`], valid for `valid_ms` only.
    pub fn publish_valid_for(&mut self, now_unix_ms: u64, valid_ms: u64) -> anyhow::Result<SignedRegistry> {
        self.draft.version += 1;
        self.draft.issued_at_unix_ms = now_unix_ms;
        self.draft.expires_at_unix_ms = now_unix_ms + valid_ms;
        let signed = SignedRegistry::sign(&self.draft, &[&self.officer])?;
        write_file(&self.registry_path, &signed.to_bytes()?)?;
        Ok(signed)
    }

    /// The officer's key (tests sign forged or altered registries with it).
    pub fn officer(&self) -> &SigningKey {
        &self.officer
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    keyfile::write_atomic(path, bytes, 0o644)?;
    Ok(())
}
