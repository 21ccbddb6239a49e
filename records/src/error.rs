/// Everything that can go wrong with the regional records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened, read or written.
    #[error("the records at {path} cannot be used: {source}; check the folder and that no other process holds it")]
    Store {
        /// The records' folder.
        path: String,
        /// What sled said.
        source: sled::Error,
    },
    /// A stored record does not decode: the records were altered or written by a newer konvert.
    #[error("a stored {what} record does not decode ({message}); restore the records from the last backup")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode a {what} record: {message}; report this as a bug")]
    Encode {
        /// Which kind of record.
        what: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A packet version was registered before with other contents.
    #[error("packet {packet} v{version} was registered before with other contents; the records or the store were altered — restore from backup")]
    Conflict {
        /// The packet id.
        packet: String,
        /// The version.
        version: u32,
    },
    /// The PostgreSQL records could not be reached, read or written. Each call is one
    /// transaction: a change was applied whole or not at all (if the connection broke during
    /// the commit itself, the server may have committed it).
    #[error("the records in PostgreSQL at {target} cannot be used: {detail}; check that PostgreSQL runs there and the connection URL (each change is one transaction: applied whole or not at all)")]
    Database {
        /// Where: host, port and database (never the password).
        target: String,
        /// What went wrong, with the server's or the system's own words.
        detail: String,
        /// What the client said.
        source: postgres::Error,
    },
    /// The PostgreSQL connection URL or its TLS settings are wrong.
    #[error("the records' PostgreSQL connection {target} is misconfigured: {message}")]
    Connection {
        /// Where: host, port and database (never the password).
        target: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The records database was made by a newer konvert than this one.
    #[error("the records database at {target} has schema version {found}, but this konvert knows versions up to {known}; run the konvert that wrote it (or a newer one), or restore a backup made by this version — it was not changed")]
    NewerSchema {
        /// Where: host, port and database.
        target: String,
        /// The database's schema version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

impl Error {
    /// A PostgreSQL failure at `target`, with the whole chain of causes in words (the
    /// client's own message is only "db error" or "error connecting to server").
    pub(crate) fn database(target: &str, source: postgres::Error) -> Error {
        let mut detail = source.to_string();
        if let Some(db) = source.as_db_error() {
            detail = format!("{detail}: {} {}", db.severity(), db.message());
            if let Some(more) = db.detail() {
                detail.push_str(&format!(" ({more})"));
            }
        } else {
            let mut cause = std::error::Error::source(&source);
            while let Some(c) = cause {
                detail.push_str(&format!(": {c}"));
                cause = c.source();
            }
        }
        Error::Database {
            target: target.to_owned(),
            detail,
            source,
        }
    }
}
