//! Printing results: list tables and templates, and `inspect` JSON, as the docker CLI does.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::{CmdResult, exit_with, now_secs};
use berth_cli::format::template::{FormatError, render_list, render_one};
use berth_cli::format::units::human_duration;

fn format_error(e: FormatError) -> anyhow::Error {
    match e {
        FormatError::Template(m) => exit_with(1, m),
        FormatError::Io(e) => e.into(),
    }
}

/// Prints rows with the user's `--format` or the command's default table.
pub fn print_list(
    format: Option<&str>,
    default: &str,
    headers: &Value,
    rows: &[Value],
) -> CmdResult {
    let mut out = std::io::stdout().lock();
    render_list(format.unwrap_or(""), default, headers, rows, &mut out).map_err(format_error)?;
    out.flush()?;
    Ok(())
}

/// Renders one object with a template (`inspect -f`, `version -f`).
pub fn render_value(template: &str, v: &Value) -> anyhow::Result<String> {
    render_one(template, v).map_err(format_error)
}

/// Go's json.MarshalIndent with four spaces, which `docker inspect` prints.
pub fn indented_json(v: &impl Serialize) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("JSON values serialize");
    String::from_utf8(buf).expect("JSON is UTF-8")
}

/// `inspect` output: the JSON array, or the template once per object.
pub fn print_inspect(format: Option<&str>, found: &[Value]) -> CmdResult {
    let mut out = std::io::stdout().lock();
    match format {
        None | Some("") => writeln!(out, "{}", indented_json(&found))?,
        Some("json") => writeln!(out, "{}", serde_json::to_string(found)?)?,
        Some(t) => {
            for v in found {
                writeln!(out, "{}", render_value(t, v)?)?;
            }
        }
    }
    Ok(())
}

/// Writes a downloaded archive (`save`, `export`) to `output`, or to stdout when `None`.
/// A file is written beside its target and renamed, so a failed download leaves no half
/// file; failures read `<context>: <error>`.
pub fn write_download(
    mut body: impl std::io::Read,
    output: Option<&str>,
    context: &str,
) -> CmdResult {
    let fail = |e: std::io::Error| exit_with(1, format!("{context}: {e}"));
    match output {
        Some(path) => {
            let tmp = format!("{path}.berth-tmp");
            let mut f = std::fs::File::create(&tmp).map_err(fail)?;
            let copied = std::io::copy(&mut body, &mut f).and_then(|_| f.sync_all());
            if let Err(e) = copied {
                let _ = std::fs::remove_file(&tmp);
                return Err(fail(e));
            }
            std::fs::rename(&tmp, path).map_err(fail)?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut body, &mut out).map_err(fail)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// docker's "CreatedSince"/"RunningFor": `HumanDuration(now - then) + " ago"`.
pub fn created_since(secs: i64) -> String {
    let ago = (now_secs() - secs).max(0) as u64;
    format!(
        "{} ago",
        human_duration(std::time::Duration::from_secs(ago))
    )
}
