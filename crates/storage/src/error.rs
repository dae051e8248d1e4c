//! The crate's one error type.

use std::io;

/// Everything that can go wrong in the storage layer. Messages name the tar entry, path or
/// snapshot concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `context` says what was being done to what.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A layer tar entry that is malformed or refused (bad whiteout, bad link, unknown type…).
    #[error("layer tar entry {entry:?}: {reason}")]
    InvalidEntry { entry: String, reason: String },
    /// The tar stream ended inside an entry or before its end-of-archive marker.
    #[error("layer tar is truncated at entry {entry:?}: {detail}")]
    Truncated { entry: String, detail: String },
    /// The layer's regular-file content exceeds the caller's limit (decompression bomb guard).
    #[error("layer content exceeds the size limit of {limit} bytes (at entry {entry:?})")]
    SizeLimit { limit: u64, entry: String },
    #[error("snapshot {0} does not exist")]
    NotFound(String),
    #[error("snapshot {0} already exists")]
    AlreadyExists(String),
    #[error(
        "invalid snapshot id {0:?}: use 1-128 characters [A-Za-z0-9_.-], starting with a letter or digit"
    )]
    InvalidId(String),
    /// The snapshot exists but is in the wrong state for the operation (active vs committed,
    /// mounted, wrong driver…).
    #[error("snapshot {id}: {reason}")]
    InvalidState { id: String, reason: String },
    /// Something about the driver or its root directory.
    #[error("storage driver: {0}")]
    Driver(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Adapter for `map_err`: wraps an I/O error (or rustix errno) with context.
    pub(crate) fn io<E: Into<io::Error>>(
        context: impl std::fmt::Display,
    ) -> impl FnOnce(E) -> Error {
        let context = context.to_string();
        move |e| Error::Io {
            context,
            source: e.into(),
        }
    }

    pub(crate) fn entry(entry: &[u8], reason: impl Into<String>) -> Error {
        Error::InvalidEntry {
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    /// The underlying errno, if this is an I/O error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
