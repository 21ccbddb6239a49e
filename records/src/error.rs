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
}
