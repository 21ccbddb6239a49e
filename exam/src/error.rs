use std::path::PathBuf;

/// Everything that can go wrong with exam-domain data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identifier does not have the expected form.
    #[error("invalid {what} {value:?}: {hint}")]
    InvalidId {
        /// Which kind of identifier.
        what: &'static str,
        /// The offending value.
        value: String,
        /// What a valid one looks like.
        hint: &'static str,
    },
    /// A room folder holds nothing to send.
    #[error("room folder {0} has no scan files; scan the room first or check the path")]
    EmptyRoom(PathBuf),
    /// A packet archive is malformed.
    #[error("packet archive is malformed: {0}")]
    MalformedArchive(String),
    /// A file in the archive does not match its manifest entry.
    #[error("file {name} in the packet does not match its manifest digest; the packet is damaged")]
    DigestMismatch {
        /// The file name.
        name: String,
    },
    /// A scan file became shorter between listing the room and sealing it.
    #[error(
        "scan file {name} changed while the room was being sealed; wait until the scanner has finished and seal again"
    )]
    ChangedWhileSealing {
        /// The file name.
        name: String,
    },
    /// A scan file cannot be read.
    #[error("{what}; {hint}")]
    BadScan {
        /// What is wrong with it.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// A file of an audio packet is not a recording konvert can read.
    #[error("{what}; {hint}")]
    BadRecording {
        /// What is wrong with it.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// File I/O failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
