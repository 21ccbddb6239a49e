//! A reader's copy of the key registry and the trust it rests on, on disk: the station's
//! and the center's. The trust (officers, highest version, digest) is written durably
//! *before* the new registry replaces the old one, so a crash between the two leaves a
//! reader that refuses the older registry — never one that accepts a rollback.

use std::path::{Path, PathBuf};

use super::{Authority, RegistryBody, RegistryTrust, SignedRegistry, MAX_REGISTRY_LEN};
use crate::{keyfile, Error, Result};

/// The registry folder under a station's or the center's data folder.
#[derive(Debug, Clone)]
pub struct RegistryStore {
    dir: PathBuf,
}

const MAX_TRUST_FILE: u64 = 1024 * 1024;

impl RegistryStore {
    /// Opens (or creates) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("registry");
        std::fs::create_dir_all(&dir).map_err(|e| Error::BadFile {
            path: dir.clone(),
            message: format!("cannot create the registry folder: {e}"),
        })?;
        Ok(RegistryStore { dir })
    }

    fn trust_path(&self) -> PathBuf {
        self.dir.join("trust.bin")
    }

    fn registry_path(&self) -> PathBuf {
        self.dir.join("registry.bin")
    }

    /// What the station trusts, if it was anchored.
    pub fn trust(&self) -> Result<Option<RegistryTrust>> {
        let path = self.trust_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = keyfile::read_bounded(&path, MAX_TRUST_FILE)?;
        postcard::from_bytes(&bytes).map(Some).map_err(|_| Error::BadFile {
            path,
            message: "the registry trust file is damaged; anchor again from the officers' authority.toml".into(),
        })
    }

    fn save_trust(&self, trust: &RegistryTrust) -> Result<()> {
        let bytes = postcard::to_allocvec(trust).map_err(|_| Error::BadKey("cannot encode the registry trust"))?;
        keyfile::write_atomic(&self.trust_path(), &bytes, 0o644)?;
        Ok(())
    }

    /// Anchors the trust in the officers' authority (done once, at enrolment).
    pub fn anchor(&self, authority: Authority) -> Result<()> {
        if self.trust()?.is_some() {
            return Err(Error::BadFile {
                path: self.trust_path(),
                message: "an authority is already trusted here; a new one arrives only in a registry signed by the old officers"
                    .into(),
            });
        }
        self.save_trust(&RegistryTrust::anchored(authority)?)
    }

    /// Takes a registry (from the center or a drive): accepted only as the trust allows;
    /// the new trust is persisted before the registry is stored. Returns its content.
    pub fn offer(&self, signed: &SignedRegistry, now_unix_ms: u64) -> Result<RegistryBody> {
        let trust = self.trust()?.ok_or_else(|| Error::BadFile {
            path: self.trust_path(),
            message: "no trusted authority yet; anchor it with the officers' authority.toml".into(),
        })?;
        let (body, next) = trust.accept(signed, now_unix_ms)?;
        if next != trust {
            self.save_trust(&next)?;
        }
        keyfile::write_atomic(&self.registry_path(), &signed.to_bytes()?, 0o644)?;
        Ok(body)
    }

    /// The registry in force, checked again against the trust at `now` (so an expired
    /// one is refused here too: the reader freezes rather than trust stale statuses).
    pub fn current(&self, now_unix_ms: u64) -> Result<Option<RegistryBody>> {
        Ok(self.current_signed(now_unix_ms)?.map(|(body, _)| body))
    }

    /// Like [`RegistryStore::current`], with the registry as signed (to pass on).
    pub fn current_signed(&self, now_unix_ms: u64) -> Result<Option<(RegistryBody, SignedRegistry)>> {
        let Some((trust, signed)) = self.stored()? else {
            return Ok(None);
        };
        let (body, _) = trust.accept(&signed, now_unix_ms)?;
        Ok(Some((body, signed)))
    }

    /// The stored registry whatever its expiry, if it is exactly the one the trust names:
    /// what an expired reader still knows (the center key to seal to, say) while it waits
    /// for a fresh registry.
    pub fn last_known(&self) -> Result<Option<RegistryBody>> {
        let Some((trust, signed)) = self.stored()? else {
            return Ok(None);
        };
        if signed.digest() != trust.digest {
            return Err(Error::BadFile {
                path: self.registry_path(),
                message: "the stored registry is not the trusted one; take the registry again".into(),
            });
        }
        Ok(Some(signed.decode_body()?))
    }

    fn stored(&self) -> Result<Option<(RegistryTrust, SignedRegistry)>> {
        let path = self.registry_path();
        let (Some(trust), true) = (self.trust()?, path.exists()) else {
            return Ok(None);
        };
        let bytes = keyfile::read_bounded(&path, MAX_REGISTRY_LEN as u64 + 64 * 1024)?;
        Ok(Some((trust, SignedRegistry::from_bytes(&bytes)?)))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
