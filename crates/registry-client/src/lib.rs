//! berth's registry client: the OCI distribution protocol (Docker Registry HTTP API v2) spoken
//! to any registry, pulling into and pushing from berth's image store.
//!
//! - [`config`]: daemon.json's registry settings (insecure registries, mirrors, concurrency);
//! - [`auth`]: `X-Registry-Auth`, `WWW-Authenticate` challenges, bearer tokens, basic auth;
//! - [`client`]: one repository on one registry endpoint: requests, auth retries, errors;
//! - [`pull`], [`push`], [`search`], [`login`](login::login): what the Engine API endpoints do;
//! - [`progress`]: the events docker's progress stream is made of.
//!
//! Everything here is blocking: berthd calls it from `spawn_blocking`.

pub mod auth;
pub mod client;
pub mod config;
pub mod inspect;
pub mod login;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod search;
mod sources;
mod stored_gzip;
mod transport;
mod unpack;

pub use auth::AuthConfig;
pub use config::RegistryConfig;
pub use progress::Progress;

/// What went wrong, grouped by how the Engine API answers it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: the repository, tag or manifest does not exist (or access was denied).
    #[error("{0}")]
    NotFound(String),
    /// 401: the registry refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 400: bad input (reference, platform, filter, limit).
    #[error("{0}")]
    Invalid(String),
    /// The network or the registry failed, or sent something berth refuses.
    #[error("{0}")]
    Registry(String),
    /// Could not reach the endpoint at all (connection, TLS): another endpoint may work.
    #[error("{0}")]
    Transport(String),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
}

impl Error {
    pub fn registry(m: impl Into<String>) -> Error {
        Error::Registry(m.into())
    }
}

impl From<berth_image::content::ContentError> for Error {
    fn from(e: berth_image::content::ContentError) -> Self {
        Error::Image(e.into())
    }
}

impl From<berth_meta::Error> for Error {
    fn from(e: berth_meta::Error) -> Self {
        Error::Image(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
