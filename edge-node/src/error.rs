use std::path::PathBuf;

/// Everything that can go wrong at the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The site configuration is wrong.
    #[error("configuration {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Exam-domain data is wrong.
    #[error(transparent)]
    Exam(#[from] konvert_exam::Error),
    /// Cryptography failed (wrong PIN, damaged token …).
    #[error(transparent)]
    Crypto(#[from] konvert_crypto::Error),
    /// Replication failed.
    #[error(transparent)]
    Replication(#[from] konvert_replication::Error),
    /// A room has discrepancies and no override was given.
    #[error(
        "room {room} is not complete:\n{discrepancies}\nscan what is missing, or seal with --override \"<reason>\" if it must go as it is"
    )]
    Incomplete {
        /// The room.
        room: konvert_exam::RoomId,
        /// One line per discrepancy.
        discrepancies: String,
    },
    /// A file in a room folder cannot be sealed as the packet kind asked for.
    #[error("{}: {what}; {hint}", path.display())]
    NotSealable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// A PIN is needed, but there is no terminal to ask for it on and no `--pin-env`.
    #[error(
        "a PIN is needed to unlock {token}, but there is no terminal to ask for it ({cause}); \
         run the command in a terminal, or give --pin-env VAR with the PIN in the environment \
         variable VAR (automation only)"
    )]
    PinNeeded {
        /// The token, as the operator knows it.
        token: String,
        /// Why asking failed.
        cause: std::io::Error,
    },
    /// Pushing did not finish in time.
    #[error("{0}")]
    Push(String),
    /// I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::File { path, source }
    }
}

impl From<konvert_protocol::Error> for Error {
    /// A protocol error is a replication error here: one variant, one message.
    fn from(e: konvert_protocol::Error) -> Self {
        Error::Replication(e.into())
    }
}
