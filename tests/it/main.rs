//! Integration tests: each starts its own berthd (temp data root, exec root and socket) and
//! drives it through real clients — the berth CLI, the docker CLI, curl, skopeo, podman.

mod api;
mod archive;
mod build;
mod containers;
mod crash;
mod files;
mod images;
mod interactive;
mod interop;
mod limits;
mod networking;
mod registry;
mod sdk;
mod security;
mod userns;
mod util;
mod volumes;
