//! `inspect` for any object (container first, then image, as docker tries them), and the
//! typed `container inspect` / `image inspect`.

use clap::Args;
use serde_json::Value;

use super::output::print_inspect;
use super::{Cli, CmdResult, exit_with};
use berth_api::client::ClientError;

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long = "size")]
    size: bool,
    /// Return JSON for specified type
    #[arg(long = "type")]
    kind: Option<String>,
    /// NAME|ID...
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct ContainerInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long = "size")]
    size: bool,
    /// CONTAINER...
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct ImageInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
    /// Inspect a specific platform of the multi-platform image
    #[arg(long = "platform")]
    platform: Option<String>,
    /// IMAGE...
    #[arg(required = true)]
    names: Vec<String>,
}

/// The object kinds `docker inspect --type` accepts.
const TYPES: &[&str] = &[
    "config",
    "container",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "task",
    "volume",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Container,
    Image,
}

fn fetch(cli: &Cli, kind: Kind, name: &str, size: bool) -> Result<Value, ClientError> {
    match kind {
        Kind::Container => {
            let q = if size { "?size=1" } else { "" };
            cli.client.get_json(&format!("/containers/{name}/json{q}"))
        }
        Kind::Image => cli.client.get_json(&format!("/images/{name}/json")),
    }
}

/// docker's `isErrSkippable`: try the next kind.
fn skippable(e: &ClientError) -> bool {
    let text = e.to_string();
    e.status() == Some(404)
        || text.contains("not supported")
        || text.contains("invalid reference format")
}

/// Prints what was found, then fails with one error line per missing object (docker's
/// `inspect.Inspect`).
fn print_all(format: Option<&str>, found: Vec<Value>, errors: Vec<String>) -> CmdResult {
    print_inspect(format, &found)?;
    super::finish(errors)
}

pub fn inspect(cli: &Cli, a: InspectArgs) -> CmdResult {
    let kinds: Vec<Kind> = match a.kind.as_deref() {
        None | Some("") => vec![Kind::Container, Kind::Image],
        Some("container") => vec![Kind::Container],
        Some("image") => vec![Kind::Image],
        Some(t) if TYPES.contains(&t) => vec![],
        Some(t) => {
            return Err(exit_with(
                1,
                format!(
                    "unknown type: {t:?}: must be one of \"{}\"",
                    TYPES.join("\", \"")
                ),
            ));
        }
    };
    let typed = a.kind.as_deref().is_some_and(|k| !k.is_empty());
    let (mut found, mut errors) = (Vec::new(), Vec::new());
    'names: for n in &a.names {
        for &kind in &kinds {
            match fetch(cli, kind, n, a.size) {
                Ok(v) => {
                    if a.size && kind != Kind::Container {
                        eprintln!("WARNING: --size ignored for image");
                    }
                    found.push(v);
                    continue 'names;
                }
                Err(e) if !typed && skippable(&e) => continue,
                Err(e) => {
                    errors.push(e.to_string());
                    continue 'names;
                }
            }
        }
        errors.push(format!("Error: No such object: {n}"));
    }
    print_all(a.format.as_deref(), found, errors)
}

pub fn container_inspect(cli: &Cli, a: ContainerInspectArgs) -> CmdResult {
    let (mut found, mut errors) = (Vec::new(), Vec::new());
    for n in &a.names {
        match fetch(cli, Kind::Container, n, a.size) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    print_all(a.format.as_deref(), found, errors)
}

pub fn image_inspect(cli: &Cli, a: ImageInspectArgs) -> CmdResult {
    // `?platform=` needs API 1.49; berth speaks 1.47.
    let _ = &a.platform;
    let (mut found, mut errors) = (Vec::new(), Vec::new());
    for n in &a.names {
        match fetch(cli, Kind::Image, n, false) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    print_all(a.format.as_deref(), found, errors)
}
