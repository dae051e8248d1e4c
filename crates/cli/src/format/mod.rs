//! Output formatting shared by all commands: `--format` templates, tables, human units.

pub mod gofmt;
pub mod rewrite;
pub mod table;
pub mod template;
pub mod text;
pub mod time;
pub mod units;
