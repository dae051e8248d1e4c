//! The berth CLI's reusable parts: docker's output formatting (`--format` templates, tables,
//! human units).

pub mod format;
