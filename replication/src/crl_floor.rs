//! The newest station revocation list a server (the center, or a relay) has put in force,
//! remembered outside the list file. Putting an older list file back and restarting would
//! otherwise undo every revocation made since: at start the list file is checked against
//! this floor and refused if it is older, and every list put in force raises the floor.
//!
//! The floor is one small file in the server's data folder (`crl-in-force.toml`), written
//! atomically and fsynced before the list it names is relied on. Since deleting it would
//! lift the floor, a data folder that already holds state (the server ran before) but no
//! floor is refused ([`CrlFloor::require`]); only a fresh folder gets a new floor. The
//! center also checks each list against its station index, which no list file can undo.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pki::VerifiedCrl;
use crate::{Error, Result};

/// The floor's file in a server's data folder.
pub const FILE: &str = "crl-in-force.toml";
/// The largest floor file read.
const MAX_BYTES: u64 = 4096;

/// What the floor file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Floor {
    /// The CRL number of the newest list put in force (konvert's lists: its signing time in ms).
    number: u64,
    /// When that list was signed (RFC 3339), for people.
    signed_at: String,
}

/// The newest revocation list number put in force here.
#[derive(Debug, Clone)]
pub struct CrlFloor {
    path: PathBuf,
}

impl CrlFloor {
    /// The floor kept in data folder `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        CrlFloor {
            path: data_dir.join(FILE),
        }
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of the newest list put in force, if any was.
    pub fn number(&self) -> Result<Option<u64>> {
        Ok(self.read()?.map(|f| f.number))
    }

    fn read(&self) -> Result<Option<Floor>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let bytes = konvert_crypto::keyfile::read_bounded(&self.path, MAX_BYTES)?;
        let floor = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| toml::from_str::<Floor>(text).ok())
            .ok_or_else(|| Error::RevocationFloor {
                floor_file: self.path.clone(),
                problem: "is damaged".into(),
            })?;
        Ok(Some(floor))
    }

    /// Refuses to go on without the floor when the data folder already holds state
    /// (`has_state`: the server ran here before), since then the floor was removed and an
    /// older list could be put back unnoticed; a fresh folder gets its floor on first start.
    pub fn require(&self, has_state: bool) -> Result<()> {
        if has_state && !self.path.exists() {
            return Err(Error::RevocationFloor {
                floor_file: self.path.clone(),
                problem: "is missing, but this data folder already holds state (the server ran here before)".into(),
            });
        }
        Ok(())
    }

    /// Refuses `crl` (from `list_file`) if it is older than a list already put in force here.
    pub fn check(&self, crl: &VerifiedCrl, list_file: &Path) -> Result<()> {
        match self.read()? {
            Some(floor) if crl.number < floor.number => Err(Error::OlderRevocationList {
                list_file: list_file.to_owned(),
                signed_at: crl.this_update.to_string(),
                in_force_signed_at: floor.signed_at,
                floor_file: self.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Records `crl` as in force, unless a newer one already is.
    pub fn raise(&self, crl: &VerifiedCrl) -> Result<()> {
        if self.number()?.is_some_and(|n| n >= crl.number) {
            return Ok(());
        }
        self.write(crl)
    }

    /// [`raise`](Self::raise) for a list known to name every revocation (the center's
    /// freshly signed one, from its station index): a damaged record is replaced by it.
    pub fn raise_complete(&self, crl: &VerifiedCrl) -> Result<()> {
        if self.number().ok().flatten().is_some_and(|n| n >= crl.number) {
            return Ok(());
        }
        self.write(crl)
    }

    fn write(&self, crl: &VerifiedCrl) -> Result<()> {
        let floor = Floor {
            number: crl.number,
            signed_at: crl.this_update.to_string(),
        };
        let text = toml::to_string(&floor).map_err(|e| Error::Storage(e.to_string()))?;
        konvert_crypto::keyfile::write_atomic(&self.path, text.as_bytes(), 0o644)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "crl_floor_tests.rs"]
mod tests;
