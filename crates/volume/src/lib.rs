//! Volumes: docker's `-v`/`--mount`/`--tmpfs` forms parsed into [`spec::MountSpec`]s, and the
//! `local` volume driver ([`store::VolumeStore`]): volumes under `<data-root>/volumes/<name>/_data`,
//! recorded in the metadata database, optionally backed by a filesystem mounted from
//! driver options (`-o type=tmpfs`, `-o o=bind -o device=/path`).

pub mod spec;
pub mod store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: a bad mount or volume specification (docker's wording).
    #[error("{0}")]
    Invalid(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: in use.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Meta(#[from] berth_meta::Error),
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

pub type Result<T> = std::result::Result<T, Error>;
