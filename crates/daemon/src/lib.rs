#![recursion_limit = "256"]
//! berthd's logic: configuration, the Engine API server and its handlers, and the daemon state.
//! The `berthd` binary only parses flags, starts the runtime and waits for a signal.

pub mod build;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod events;
pub mod glob;
pub mod handlers;
pub mod http;
pub mod network;
pub mod server;
pub mod stream;
pub mod userns;
