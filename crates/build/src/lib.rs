//! berth's Dockerfile builder, the parts that need no daemon: the Dockerfile parser (docker's
//! full grammar), shell-word expansion, typed instructions and stages, `.dockerignore`, the
//! build context (indexed and hashed once, never extracted), compressed archives for ADD, and
//! the build cache's keys. The daemon's `build` module executes builds with these.

pub mod archive;
pub mod args;
pub mod cache;
pub mod context;
pub mod dockerignore;
pub mod instructions;
pub mod parser;
pub mod shell;
pub mod stages;
