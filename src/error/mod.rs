//! The one error type of NexusLite, [`Error`], and its mapping to the `NEXUS_*` status codes
//! of the C ABI ([`Error::code`]). Every layer returns `Result<T, Error>`; the FFI layer turns
//! the error into a code plus the thread-local message read by `nexus_errmsg`.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in NexusLite.
///
/// Each variant maps to exactly one `NEXUS_*` code ([`Error::code`]); the `Display` text is
/// the message a C caller reads from `nexus_errmsg`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A document, collection or other named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A caller-supplied argument is invalid: NULL, bad UTF-8, an unknown option key, a value
    /// of the wrong type, a reserved name, a document over the size limit.
    #[error("{0}")]
    InvalidArgument(String),
    /// Malformed JSON or BSON, or a filter / update / projection that does not parse.
    #[error("{0}")]
    Parse(String),
    /// A unique key (the `_id`, later unique indexes) already holds this value.
    #[error("{0}")]
    DuplicateKey(String),
    /// The named collection does not exist.
    #[error("collection '{0}' does not exist")]
    NoCollection(String),
    /// The operating system reported an I/O failure.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying OS error.
        source: std::io::Error,
    },
    /// An earlier write or sync failed; the engine refuses writes until the database is
    /// reopened, because what reached the disk is no longer known.
    #[error("an earlier I/O failure made this database read-only until it is reopened: {0}")]
    PreviousIo(String),
    /// A file failed a checksum or format check, or is not a NexusLite database.
    #[error("{0}")]
    Corrupt(String),
    /// The database is locked by another process, or the writer lock was held longer than
    /// `busy_timeout_ms` by another connection.
    #[error("{0}")]
    Busy(String),
    /// A write was attempted on a read-only connection.
    #[error("{0}")]
    ReadOnly(String),
    /// A transaction misuse: commit without begin, begin inside a transaction.
    #[error("{0}")]
    Txn(String),
    /// The feature exists in the API but is not implemented by this build yet, or the file
    /// was written by a newer format version.
    #[error("{0}")]
    Unsupported(String),
    /// A signature does not match its data and key, a signature file is missing, or (later)
    /// a key cannot open an encrypted database.
    #[error("{0}")]
    Crypto(String),
    /// The handle (connection or cursor) was closed.
    #[error("{0}")]
    Closed(String),
    /// A bug: an invariant did not hold or a panic was caught.
    #[error("internal error: {0}")]
    Internal(String),
}

pub(crate) mod code;

impl Error {
    /// The `NEXUS_*` status code for this error. This is the only place errors become codes.
    pub fn code(&self) -> i32 {
        match self {
            Error::NotFound(_) => code::NEXUS_NOT_FOUND,
            Error::InvalidArgument(_) => code::NEXUS_INVALID_ARGUMENT,
            Error::Parse(_) => code::NEXUS_PARSE,
            Error::DuplicateKey(_) => code::NEXUS_DUPLICATE_KEY,
            Error::NoCollection(_) => code::NEXUS_NO_COLLECTION,
            Error::Io { .. } | Error::PreviousIo(_) => code::NEXUS_IO,
            Error::Corrupt(_) => code::NEXUS_CORRUPT,
            Error::Busy(_) => code::NEXUS_BUSY,
            Error::ReadOnly(_) => code::NEXUS_READONLY,
            Error::Txn(_) => code::NEXUS_TXN,
            Error::Unsupported(_) => code::NEXUS_UNSUPPORTED,
            Error::Crypto(_) => code::NEXUS_CRYPTO,
            Error::Closed(_) => code::NEXUS_ERROR,
            Error::Internal(_) => code::NEXUS_INTERNAL,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub(crate) fn parse(msg: impl Into<String>) -> Self {
        Error::Parse(msg.into())
    }

    pub(crate) fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
}
