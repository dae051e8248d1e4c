//! `events` / `system events`: `GET /events?since=&until=&filters=`, streamed as docker prints
//! it: `2024-05-01T10:00:00.000000000Z container start <id> (image=busybox, name=web)`, as
//! JSON, or through a template.

use std::io::Write;

use berth_api::client::{Body, query};
use clap::Args;
use serde_json::{Value, json};

use super::opts::timestamp::get_timestamp;
use super::output::render_value;
use super::{Cli, CmdResult, exit_with, filters_json, now_secs};
use berth_cli::format::template::{FormatKind, normalize_format};
use berth_cli::format::time::rfc3339_nano_fixed;

#[derive(Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long = "since")]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long = "until")]
    until: Option<String>,
}

/// The event as docker's template sees it (Go field names, every field present).
pub fn template_view(e: &Value) -> Value {
    let s = |k: &str| e.get(k).cloned().unwrap_or(json!(""));
    let n = |k: &str| e.get(k).cloned().unwrap_or(json!(0));
    let actor = e.get("Actor").cloned().unwrap_or(Value::Null);
    json!({
        "Status": s("status"),
        "ID": s("id"),
        "From": s("from"),
        "Type": s("Type"),
        "Action": s("Action"),
        "Actor": {
            "ID": actor.get("ID").cloned().unwrap_or(json!("")),
            "Attributes": actor.get("Attributes").cloned().unwrap_or(json!({})),
        },
        "Scope": s("scope"),
        "Time": n("time"),
        "TimeNano": n("timeNano"),
    })
}

/// docker's `prettyPrintEvent`.
pub fn pretty(e: &Value) -> String {
    let mut out = String::new();
    let nanos = e.get("timeNano").and_then(Value::as_i64).unwrap_or(0);
    let secs = e.get("time").and_then(Value::as_i64).unwrap_or(0);
    if nanos != 0 {
        out.push_str(&rfc3339_nano_fixed(nanos));
        out.push(' ');
    } else if secs != 0 {
        out.push_str(&rfc3339_nano_fixed(secs * 1_000_000_000));
        out.push(' ');
    }
    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
    let actor = e.get("Actor").cloned().unwrap_or(Value::Null);
    out.push_str(&format!(
        "{} {} {}",
        s("Type"),
        s("Action"),
        actor.get("ID").and_then(Value::as_str).unwrap_or("")
    ));
    if let Some(attrs) = actor.get("Attributes").and_then(Value::as_object)
        && !attrs.is_empty()
    {
        let mut kv: Vec<(&String, &Value)> = attrs.iter().collect();
        kv.sort_by(|a, b| a.0.cmp(b.0));
        let parts: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        out.push_str(&format!(" ({})", parts.join(", ")));
    }
    out
}

enum Output {
    Pretty,
    Json,
    Template(String),
}

pub fn events(cli: &Cli, a: EventsArgs) -> CmdResult {
    let output = match a.format.as_deref() {
        None | Some("") => Output::Pretty,
        Some("json") => Output::Json,
        Some(f) => match FormatKind::parse(f) {
            FormatKind::Raw(t) if t == "{{json .}}" => Output::Json,
            _ => {
                let t = normalize_format(f);
                render_value(&t, &template_view(&json!({})))
                    .map_err(|e| exit_with(64, format!("Error parsing format: {e}")))?;
                Output::Template(t)
            }
        },
    };
    let now = now_secs();
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(s) = a.since.as_deref().filter(|s| !s.is_empty()) {
        q.push(("since", get_timestamp(s, now).map_err(|e| exit_with(1, e))?));
    }
    if let Some(u) = a.until.as_deref().filter(|s| !s.is_empty()) {
        q.push(("until", get_timestamp(u, now).map_err(|e| exit_with(1, e))?));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let resp = cli
        .client
        .send("GET", &format!("/events{}", query(&q)), &[], Body::Empty)?
        .check()?;
    let mut out = std::io::stdout();
    for e in serde_json::Deserializer::from_reader(resp).into_iter::<Value>() {
        let e = match e {
            Ok(e) => e,
            Err(e) if e.is_eof() => break,
            Err(e) => return Err(exit_with(1, e.to_string())),
        };
        let line = match &output {
            Output::Pretty => pretty(&e),
            Output::Json => serde_json::to_string(&e)?,
            Output::Template(t) => render_value(t, &template_view(&e))?,
        };
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "status": "start", "id": "abc", "from": "busybox",
            "Type": "container", "Action": "start",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
            "scope": "local", "time": 1714557600, "timeNano": 1714557600123456789i64
        })
    }

    #[test]
    fn pretty_lines() {
        let line = pretty(&sample());
        assert!(
            line.ends_with(" container start abc (image=busybox, name=web)"),
            "{line}"
        );
        let (off, _) = berth_cli::format::time::local_zone(1714557600);
        if off == 0 {
            assert!(
                line.starts_with("2024-05-01T10:00:00.123456789Z "),
                "{line}"
            );
        }
        let bare =
            json!({"Type": "image", "Action": "pull", "Actor": {"ID": "x", "Attributes": {}}});
        assert_eq!(pretty(&bare), "image pull x");
    }

    #[test]
    fn template_fields() {
        let v = template_view(&sample());
        assert_eq!(
            render_value(
                "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{.From}}",
                &v
            )
            .unwrap(),
            "container start web start busybox"
        );
        let empty = template_view(&json!({}));
        assert_eq!(render_value("{{.ID}}|{{.Time}}", &empty).unwrap(), "|0");
    }
}
