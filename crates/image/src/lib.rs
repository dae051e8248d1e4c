//! Images: references, digests, the content store, image records, and the archive formats
//! (`docker save`/`load`, OCI layouts, `import`).

pub mod archive;
pub mod config;
pub mod content;
pub mod digest;
pub mod import;
pub mod layers;
pub mod push;
pub mod reference;
pub mod store;

pub use digest::Digest;
pub use reference::Reference;
pub use store::ImageStore;

/// Errors of the image subsystem; the API layer maps the variants to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400: bad input from the user (reference, archive, config).
    #[error("{0}")]
    Invalid(String),
    /// 400: an ID prefix matching several images.
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Meta(#[from] berth_meta::Error),
    #[error(transparent)]
    Content(#[from] content::ContentError),
    #[error(transparent)]
    Storage(#[from] berth_storage::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl From<reference::ReferenceError> for Error {
    fn from(e: reference::ReferenceError) -> Self {
        Error::Invalid(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
