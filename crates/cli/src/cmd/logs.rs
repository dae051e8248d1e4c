//! `logs`: `GET /containers/{id}/json` (for `Tty`), then `GET /containers/{id}/logs`,
//! demultiplexed unless the container has a TTY.

use berth_api::client::{Body, query};
use clap::Args;
use serde_json::Value;

use super::opts::timestamp::get_timestamp;
use super::stream::copy_output;
use super::{Cli, CmdResult, exit_with, now_secs};

#[derive(Args)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long = "details")]
    details: bool,
    /// Follow log output
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long = "since")]
    since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long = "tail", default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short = 't', long = "timestamps")]
    timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long = "until")]
    until: Option<String>,
    /// CONTAINER
    container: String,
}

/// The query of `GET /containers/{id}/logs`, as docker's client builds it.
pub fn logs_query(a: &LogsArgs, now: i64) -> Result<String, String> {
    let mut q: Vec<(&str, String)> = vec![("stdout", "1".into()), ("stderr", "1".into())];
    if let Some(s) = a.since.as_deref().filter(|s| !s.is_empty()) {
        q.push((
            "since",
            get_timestamp(s, now).map_err(|e| format!("invalid value for \"since\": {e}"))?,
        ));
    }
    if let Some(u) = a.until.as_deref().filter(|s| !s.is_empty()) {
        q.push((
            "until",
            get_timestamp(u, now).map_err(|e| format!("invalid value for \"until\": {e}"))?,
        ));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    if a.follow {
        q.push(("follow", "1".into()));
    }
    q.push(("tail", a.tail.clone()));
    Ok(query(&q))
}

pub fn logs(cli: &Cli, a: LogsArgs) -> CmdResult {
    let c: Value = cli
        .client
        .get_json(&format!("/containers/{}/json", a.container))?;
    let id = c.get("Id").and_then(Value::as_str).unwrap_or(&a.container);
    let tty = c
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let q = logs_query(&a, now_secs()).map_err(|e| exit_with(1, e))?;
    let resp = cli
        .client
        .send(
            "GET",
            &format!("/containers/{id}/logs{q}"),
            &[],
            Body::Empty,
        )?
        .check()?;
    copy_output(resp, tty).map_err(|e| exit_with(1, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: LogsArgs,
    }

    fn q(args: &[&str]) -> Result<String, String> {
        let mut argv = vec!["logs"];
        argv.extend_from_slice(args);
        logs_query(&T::try_parse_from(argv).unwrap().a, 1_700_000_000)
    }

    #[test]
    fn queries() {
        assert_eq!(q(&["c"]).unwrap(), "?stdout=1&stderr=1&tail=all");
        assert_eq!(
            q(&["-f", "-t", "--details", "-n", "5", "--since", "10m", "c"]).unwrap(),
            "?stdout=1&stderr=1&since=1699999400&timestamps=1&details=1&follow=1&tail=5"
        );
        assert_eq!(
            q(&["--until", "2024-05-01T10:00:00Z", "c"]).unwrap(),
            "?stdout=1&stderr=1&until=1714557600.000000000&tail=all"
        );
        assert_eq!(
            q(&["--since", "soon", "c"]).unwrap_err(),
            "invalid value for \"since\": failed to parse value as time or duration: \"soon\""
        );
    }
}
