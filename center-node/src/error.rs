use std::path::PathBuf;

/// Everything that can go wrong in the center node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is wrong.
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
    /// Replication failed.
    #[error(transparent)]
    Replication(#[from] konvert_replication::Error),
    /// Cryptography failed.
    #[error(transparent)]
    Crypto(#[from] konvert_crypto::Error),
    /// A test packet cannot be found, read or judged.
    #[error("{what}; {hint}")]
    TestPacket {
        /// What is wrong.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// The loader cannot open a stored packet.
    #[error("{what}; {hint}")]
    Loader {
        /// What is wrong.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// A packet's content (archive, scans) is wrong.
    #[error(transparent)]
    Exam(#[from] konvert_exam::Error),
    /// The regional records failed.
    #[error(transparent)]
    Records(#[from] konvert_records::Error),
    /// Station certificates (index, revocation list) cannot be changed as asked.
    #[error("{0}")]
    Stations(String),
    /// Enrolling would overwrite the files of a station already written to that folder.
    #[error(
        "{} already holds a station's files ({held}); enrolling would overwrite its key, \
         certificate and config. Choose another --out folder, or give --force to replace them \
         (the old certificate stays valid until it is revoked)",
        out.display()
    )]
    StationFolderInUse {
        /// The `--out` folder.
        out: PathBuf,
        /// Whose files they are: the site or relay and the certificate serial, as far as known.
        held: String,
    },
    /// A reserve-channel import cannot go on; the message says what to do.
    #[error("{0}")]
    Reserve(String),
    /// Metrics failed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// A serving center's control socket did not answer as asked.
    #[error("{0}")]
    Control(String),
    /// A backup, a restore or an envelope drive cannot go on; the message says what to do.
    #[error("{0}")]
    Backup(String),
    /// An exam-day plan cannot be read, imported or issued from.
    #[error("exam-day plan {path}: {message}")]
    Plan {
        /// The plan file (or the plans folder).
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The loader's answers cannot be exported, imported or listed as asked.
    #[error("{what}; {hint}")]
    Answers {
        /// What is wrong.
        what: String,
        /// What to do.
        hint: &'static str,
    },
    /// Network I/O failed.
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
