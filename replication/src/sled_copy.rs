//! Copying a sled database that a process holds open: tree by tree, key by key, through
//! the holder's own handle (sled's files cannot be copied one by one while it writes them),
//! into a new database that is flushed and closed before the copy returns.

use std::path::Path;

use crate::durable::{open_sled, storage_err};
use crate::{Error, Result};

/// Copies every tree of `src` into a new database at `dest` (which must not exist) and
/// returns how many entries were copied. Each tree is read in key order while writers may
/// go on: an entry is copied whole or not at all.
pub fn copy_db(src: &sled::Db, dest: &Path) -> Result<u64> {
    if dest.exists() {
        return Err(Error::Storage(format!(
            "{} already exists; a database is copied only into a new folder",
            dest.display()
        )));
    }
    let copy = open_sled(dest).map_err(|e| Error::Storage(format!("cannot create {}: {e}", dest.display())))?;
    let mut entries = 0;
    for name in src.tree_names() {
        let from = src.open_tree(&name).map_err(storage_err)?;
        let to = copy.open_tree(&name).map_err(storage_err)?;
        for kv in from.iter() {
            let (k, v) = kv.map_err(storage_err)?;
            to.insert(k, v).map_err(storage_err)?;
            entries += 1;
        }
    }
    copy.flush_durably().map_err(storage_err)?;
    drop(copy);
    Ok(entries)
}

/// Copies the sled database at `src`, which no process may hold (its lock is taken), into
/// a new one at `dest`.
pub fn copy_closed(src: &Path, dest: &Path) -> Result<u64> {
    let db = open_sled(src).map_err(|e| {
        Error::Storage(format!(
            "cannot open the database {}: {e}; is a process using it? Stop it and try again",
            src.display()
        ))
    })?;
    copy_db(&db, dest)
}

#[cfg(test)]
#[path = "sled_copy_tests.rs"]
mod tests;
