//! berth's OCI distribution registry server (`berth-registry serve`).
//!
//! The whole distribution spec (v1.1: blobs, chunked and monolithic uploads, cross-repository
//! mounts, manifests and indexes of both the OCI and Docker schema 2 kinds, tags and catalog
//! with pagination, referrers), htpasswd basic auth and Docker's token scheme, docker's v1
//! search endpoint, crash-safe storage in one copyable directory, and offline garbage
//! collection. See `storage` for the on-disk layout.

pub mod auth;
pub mod body;
pub mod error;
pub mod gc;
pub mod manifest;
pub mod names;
pub mod server;
pub mod storage;

pub use server::{Background, Config, Registry, Server, TokenConfig};
