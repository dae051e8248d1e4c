//! Commands, one module per resource, plus what they share: the client, errors and exit codes.

pub mod auth;
pub mod build;
pub mod containers;
pub mod cp;
pub mod cp_archive;
pub mod events;
pub mod exec;
pub mod images;
pub mod inspect;
pub mod logs;
pub mod network;
pub mod opts;
pub mod output;
pub mod ps;
pub mod reference;
pub mod registry;
pub mod run;
pub mod run_opts;
pub mod signals;
pub mod stats;
pub mod stream;
pub mod system;
pub mod term;
pub mod volumes;

use std::io::IsTerminal;

use berth_api::client::{Client, ClientError, Host};

/// The context every command runs with.
pub struct Cli {
    pub client: Client,
}

impl Cli {
    pub fn new(host: Option<&str>) -> Result<Cli, ClientError> {
        Ok(Cli {
            client: Client::new(Host::resolve(host)?),
        })
    }
}

/// An error that ends the command with a given exit status (docker uses 1 for daemon errors,
/// 125 for bad usage).
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Ends with `code`, printing `message` (if any) to stderr.
pub fn exit_with(code: i32, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: message.into(),
    }
    .into()
}

pub type CmdResult = anyhow::Result<()>;

/// Prints the error as docker does and exits.
pub fn fail(e: anyhow::Error) -> ! {
    let code = match e.downcast_ref::<Exit>() {
        Some(x) => {
            if !x.message.is_empty() {
                eprintln!("{}", x.message);
            }
            x.code
        }
        None => {
            eprintln!("{e}");
            1
        }
    };
    std::process::exit(code)
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Go's `*fs.PathError` text: `open /x: no such file or directory`.
pub fn go_path_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let msg = match e.raw_os_error() {
        // SAFETY: strerror returns a pointer to a NUL-terminated message.
        Some(code) => unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }
            .to_string_lossy()
            .into_owned(),
        None => e.to_string(),
    };
    let mut chars = msg.chars();
    let msg = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => msg,
    };
    format!("{op} {path}: {msg}")
}

/// docker's `withHelp`: `docker: <err>` plus the pointer to `--help`, with `code`.
pub fn with_help(cmd: &str, msg: impl std::fmt::Display, code: i32) -> anyhow::Error {
    exit_with(
        code,
        format!("docker: {msg}\n\nRun 'docker {cmd} --help' for more information"),
    )
}

/// A rejected flag, reported as docker reports it for `cmd` (exit status 125).
pub fn opt_error(cmd: &str, e: opts::OptError) -> anyhow::Error {
    match e {
        opts::OptError::Flag { .. } => exit_with(125, format!("{e}\nSee 'docker {cmd} --help'.")),
        opts::OptError::Invalid(m) => with_help(cmd, m, 125),
    }
}

/// For commands whose first positional starts the command line of the container (`run IMAGE
/// CMD…`, `exec CONTAINER CMD…`, `top CONTAINER PS-ARGS…`): everything after it is passed on
/// untouched, as docker's `SetInterspersed(false)` does. A leading value that looks like a
/// flag is an unknown flag, reported as pflag does.
pub fn leading_positional<'a>(
    cmd: &str,
    args: &'a [String],
) -> anyhow::Result<(&'a str, &'a [String])> {
    let (first, rest) = args.split_first().ok_or_else(|| {
        exit_with(
            125,
            format!("\"docker {cmd}\" requires at least 1 argument."),
        )
    })?;
    if first.len() > 1 && first.starts_with('-') {
        let what = match first.strip_prefix("--") {
            Some(_) => format!("unknown flag: {}", first.split('=').next().unwrap_or(first)),
            None => format!(
                "unknown shorthand flag: '{}' in {first}",
                first.chars().nth(1).unwrap_or('-')
            ),
        };
        return Err(exit_with(
            125,
            format!("{what}\nSee 'docker {cmd} --help'."),
        ));
    }
    Ok((first, rest))
}

/// Ends a multi-object command: the errors (one per line) on stderr and status 1, as
/// docker's `errors.Join`.
pub fn finish(errors: Vec<String>) -> CmdResult {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(exit_with(1, errors.join("\n")))
    }
}

/// Runs `op` on every item concurrently (docker's `parallelOperation`, up to 50 at once) and
/// returns the results in the items' order.
pub fn parallel<T: Send, I: Sync>(items: &[I], op: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(50) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|i| s.spawn(|| op(i))).collect();
            for h in handles {
                results.push(h.join().expect("worker threads do not panic"));
            }
        });
    }
    results
}

/// Builds the `filters=` JSON from repeated `--filter key=value` flags.
pub fn filters_json(filters: &[String]) -> anyhow::Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            exit_with(
                125,
                format!("bad format of filter (expected name=value): {f}"),
            )
        })?;
        m.entry(k.trim().to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    Ok(Some(serde_json::to_string(&m)?))
}

/// Reads a y/N answer the way docker's prompts do; no terminal input means no.
pub fn confirm(question: &str) -> bool {
    use std::io::Write;
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn leading_positionals() {
        let args = strings(&["busybox", "ls", "-la"]);
        let (first, rest) = leading_positional("run", &args).unwrap();
        assert_eq!((first, rest), ("busybox", &args[1..]));
        let e = leading_positional("run", &strings(&["--bogus=1", "busybox"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown flag: --bogus\nSee 'docker run --help'."
        );
        let e = leading_positional("exec", &strings(&["-z", "c", "sh"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown shorthand flag: 'z' in -z\nSee 'docker exec --help'."
        );
        assert_eq!(e.downcast_ref::<Exit>().unwrap().code, 125);
    }

    #[test]
    fn go_errors_and_filters() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            go_path_error("open", "/x", &e),
            "open /x: no such file or directory"
        );
        assert_eq!(
            filters_json(&["status=exited".into(), "name=web".into()]).unwrap(),
            Some(r#"{"name":["web"],"status":["exited"]}"#.to_string())
        );
        assert!(finish(vec![]).is_ok());
        assert_eq!(
            finish(vec!["a".into(), "b".into()])
                .unwrap_err()
                .to_string(),
            "a\nb"
        );
        assert_eq!(parallel(&[1, 2, 3], |x| x * 2), vec![2, 4, 6]);
    }
}
