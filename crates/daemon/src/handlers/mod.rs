//! Engine API handlers, one module per resource.

pub mod build;
pub mod containers;
pub mod distribution;
pub mod events;
pub mod exec;
pub mod filesystem;
pub mod images;
pub mod limits;
pub mod networks;
pub mod system;
pub mod volumes;
