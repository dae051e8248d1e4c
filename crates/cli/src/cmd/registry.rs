//! Registry commands: `pull`, `push`, `login`, `logout`, `search` (and `image pull/push`).
//! Progress streams render as docker's `jsonmessage` does: per-layer lines updated in place on
//! a terminal, plain status lines otherwise.

use std::collections::HashMap;
use std::io::{self, BufRead, IsTerminal, Read, Write};

use berth_api::client::{Body, query};
use berth_api::stream::JsonMessage;
use clap::Args;
use serde_json::{Value, json};

use super::auth::{AuthEntry, ConfigFile, INDEX_SERVER, registry_auth, to_hostname};
use super::output::print_list;
use super::reference::Reference;
use super::{Cli, CmdResult, exit_with, filters_json, stdout_is_terminal};
use berth_cli::format::text::ellipsis;
use berth_cli::format::units::human_size_4;

/// The full reference string (`docker.io/library/busybox:latest`).
fn full(r: &Reference) -> String {
    let mut s = r.name();
    if let Some(t) = &r.tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &r.digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

fn parse_ref(s: &str) -> anyhow::Result<Reference> {
    Reference::parse(s).map_err(|e| exit_with(1, e))
}

// ---- progress rendering ----

/// jsonmessage's `JSONProgress.String()` for a terminal `width` columns wide.
fn progress_string(current: i64, total: i64, width: u16) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{:>8}", human_size_4(current as f64));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let mut s = String::new();
    if width > 110 {
        s.push_str(&format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct)));
    }
    if current > total {
        s.push_str(&format!("{:>8}", human_size_4(current as f64)));
    } else {
        s.push_str(&format!(
            "{:>8}/{}",
            human_size_4(current as f64),
            human_size_4(total as f64)
        ));
    }
    s
}

/// docker's `DisplayJSONMessagesStream`: returns the stream's error as the command's error.
pub fn display_stream(r: impl Read, out: &mut dyn Write, terminal: bool) -> CmdResult {
    let width = if terminal {
        super::term::tty_size().1
    } else {
        0
    };
    let mut ids: HashMap<String, usize> = HashMap::new();
    let reader = io::BufReader::new(r);
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let m: JsonMessage = serde_json::from_str(&line)
            .map_err(|e| exit_with(1, format!("cannot read the daemon's progress stream: {e}")))?;
        if let Some(err) = m
            .error_detail
            .as_ref()
            .map(|d| d.message.clone())
            .or(m.error.clone())
        {
            out.flush()?;
            return Err(exit_with(1, err));
        }
        if m.aux.is_some() && m.status.is_none() && m.stream.is_none() {
            continue;
        }
        let detail = m.progress_detail.as_ref();
        let has_progress = detail.is_some();
        let bar = detail
            .map(|d| progress_string(d.current.unwrap_or(0), d.total.unwrap_or(0), width))
            .unwrap_or_default();
        let id = m.id.clone().unwrap_or_default();
        let mut diff = 0;
        if !id.is_empty() && has_progress {
            let n = ids.len();
            let line = *ids.entry(id.clone()).or_insert_with(|| {
                if terminal {
                    let _ = writeln!(out);
                }
                n
            });
            diff = ids.len() - line;
            if terminal && diff > 0 {
                write!(out, "\x1b[{diff}A")?;
            }
        } else {
            ids.clear();
        }
        // Display.
        let status = m.status.clone().unwrap_or_default();
        if terminal && m.stream.is_none() && has_progress {
            write!(out, "\x1b[2K\r")?;
            if !id.is_empty() {
                write!(out, "{id}: ")?;
            }
            write!(out, "{status} {bar}\r")?;
        } else if !terminal && !bar.is_empty() {
            // Progress bars are left out without a terminal.
        } else {
            if !id.is_empty() {
                write!(out, "{id}: ")?;
            }
            match &m.stream {
                Some(s) => write!(out, "{s}")?,
                None => writeln!(out, "{status}")?,
            }
        }
        if !id.is_empty() && terminal && diff > 0 {
            write!(out, "\x1b[{diff}B")?;
        }
        out.flush()?;
    }
    Ok(())
}

// ---- pull / push ----

#[derive(Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform", env = "DOCKER_DEFAULT_PLATFORM")]
    platform: Option<String>,
    /// Skip image verification (deprecated)
    #[arg(long = "disable-content-trust", hide = true, num_args = 0..=1, default_missing_value = "true")]
    _disable_content_trust: Option<String>,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

pub fn pull(cli: &Cli, a: PullArgs) -> CmdResult {
    let mut r = parse_ref(&a.name)?;
    let named_only = r.tag.is_none() && r.digest.is_none();
    if a.all_tags && !named_only {
        return Err(exit_with(1, "tag can't be used with --all-tags/-a"));
    }
    if !a.all_tags && named_only {
        r = r.with_default_tag();
        if !a.quiet {
            println!("Using default tag: latest");
        }
    }
    let mut q = vec![("fromImage", r.name())];
    if !a.all_tags {
        q.push((
            "tag",
            r.digest.clone().or(r.tag.clone()).unwrap_or_default(),
        ));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_lowercase()));
    }
    let resp = cli
        .client
        .send(
            "POST",
            &format!("/images/create{}", query(&q)),
            &[("X-Registry-Auth", registry_auth(&r.domain))],
            Body::Empty,
        )?
        .check()?;
    if a.quiet {
        display_stream(resp, &mut io::sink(), false)?;
    } else {
        display_stream(resp, &mut io::stdout().lock(), stdout_is_terminal())?;
    }
    println!("{}", full(&r));
    Ok(())
}

#[derive(Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Push a platform-specific manifest as a single-platform image to the registry
    #[arg(long = "platform")]
    platform: Option<String>,
    /// Skip image signing (deprecated)
    #[arg(long = "disable-content-trust", hide = true, num_args = 0..=1, default_missing_value = "true")]
    _disable_content_trust: Option<String>,
    /// NAME[:TAG]
    name: String,
}

pub fn push(cli: &Cli, a: PushArgs) -> CmdResult {
    let mut r = parse_ref(&a.name)?;
    let named_only = r.tag.is_none() && r.digest.is_none();
    if a.all_tags && !named_only {
        return Err(exit_with(1, "tag can't be used with --all-tags/-a"));
    }
    if !a.all_tags && named_only {
        r = r.with_default_tag();
        if !a.quiet {
            println!("Using default tag: latest");
        }
    }
    let mut q = Vec::new();
    if let Some(t) = &r.tag {
        q.push(("tag", t.clone()));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_lowercase()));
    }
    // The daemon's route takes the familiar name without the tag.
    let mut bare = r.clone();
    bare.tag = None;
    bare.digest = None;
    let path = format!("/images/{}/push{}", bare.familiar_name(), query(&q));
    let resp = cli
        .client
        .send(
            "POST",
            &path,
            &[("X-Registry-Auth", registry_auth(&r.domain))],
            Body::Empty,
        )?
        .check()?;
    if a.quiet {
        display_stream(resp, &mut io::sink(), false)?;
        println!("{}", full(&r));
        return Ok(());
    }
    display_stream(resp, &mut io::stdout().lock(), stdout_is_terminal())
}

// ---- login / logout ----

#[derive(Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long = "username")]
    username: Option<String>,
    /// Password or Personal Access Token (PAT), or "-" to read from stdin
    #[arg(short = 'p', long = "password")]
    password: Option<String>,
    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// Registry server (default Docker Hub)
    server: Option<String>,
}

fn read_line_prompt(prompt: &str) -> io::Result<String> {
    print!("{prompt}");
    io::stdout().flush()?;
    let mut s = String::new();
    io::stdin().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a password from the terminal without echo.
fn read_password(prompt: &str) -> io::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    print!("{prompt}");
    io::stdout().flush()?;
    let stdin = io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    let mut s = String::new();
    let r = stdin.read_line(&mut s);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, OptionalActions::Now, t);
    }
    println!();
    r?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

fn login_request(cli: &Cli, e: &AuthEntry) -> anyhow::Result<Value> {
    let body = json!({
        "username": e.username, "password": e.password,
        "serveraddress": e.serveraddress, "identitytoken": e.identitytoken,
    });
    Ok(cli.client.post_json("/auth", Some(&body))?)
}

pub fn login(cli: &Cli, a: LoginArgs) -> CmdResult {
    let mut password = a.password.clone();
    let mut stdin_pw = a.password_stdin;
    if stdin_pw || password.as_deref() == Some("-") {
        if password.is_some() && password.as_deref() != Some("-") {
            return Err(exit_with(
                1,
                "conflicting options: cannot specify both --password and --password-stdin",
            ));
        }
        if a.username.is_none() {
            return Err(exit_with(
                1,
                "the --password-stdin option requires --username to be set",
            ));
        }
        stdin_pw = true;
        password = None;
    }
    if a.username.as_deref() == Some("") {
        return Err(exit_with(1, "username is empty"));
    }
    if password.as_deref() == Some("") {
        return Err(exit_with(1, "password is empty"));
    }
    if password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if stdin_pw {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s)?;
        let s = s
            .strip_suffix("\r\n")
            .or_else(|| s.strip_suffix('\n'))
            .or_else(|| s.strip_suffix('\r'))
            .unwrap_or(&s)
            .to_string();
        if s.trim().is_empty() {
            return Err(exit_with(1, "password is empty"));
        }
        password = Some(s);
    }
    let server = match a.server.as_deref() {
        Some(s) if !s.is_empty() && s != "docker.io" => to_hostname(s),
        _ => INDEX_SERVER.to_string(),
    };
    let mut config = ConfigFile::load_default().map_err(|e| exit_with(1, e))?;
    // Stored credentials first when none were given, as docker does.
    if a.username.is_none() && password.is_none() {
        let stored = config.get(&server).unwrap_or_default();
        if !stored.username.is_empty() && !stored.password.is_empty() {
            eprintln!(
                "Authenticating with existing credentials... [Username: {}]",
                stored.username
            );
            let mut e = stored.clone();
            e.serveraddress = server.clone();
            match login_request(cli, &e) {
                Ok(v) => {
                    store_credentials(&mut config, e, &v)?;
                    println!("{}", v["Status"].as_str().unwrap_or("Login Succeeded"));
                    return Ok(());
                }
                Err(err) => {
                    if err
                        .downcast_ref::<berth_api::client::ClientError>()
                        .and_then(|c| c.status())
                        == Some(401)
                    {
                        eprintln!("Stored credentials invalid or expired");
                    } else {
                        eprintln!("Login did not succeed, error: {err}");
                    }
                }
            }
        }
    }
    let (user, pass) = match (a.username.clone(), password) {
        (Some(u), Some(p)) => (u, p),
        (u, p) => {
            if !io::stdin().is_terminal() {
                return Err(exit_with(
                    1,
                    "Error: Cannot perform an interactive login from a non TTY device",
                ));
            }
            let user = match u {
                Some(u) => u,
                None => {
                    let u = read_line_prompt("Username: ")?;
                    if u.trim().is_empty() {
                        return Err(exit_with(1, "Error: Non-null Username Required"));
                    }
                    u.trim().to_string()
                }
            };
            let pass = match p {
                Some(p) => p,
                None => {
                    let p = read_password("Password: ")?;
                    if p.is_empty() {
                        return Err(exit_with(1, "Error: Password Required"));
                    }
                    p
                }
            };
            (user, pass)
        }
    };
    let e = AuthEntry {
        username: user,
        password: pass,
        serveraddress: server,
        ..Default::default()
    };
    let v = login_request(cli, &e)?;
    store_credentials(&mut config, e, &v)?;
    println!("{}", v["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(())
}

fn store_credentials(config: &mut ConfigFile, mut e: AuthEntry, resp: &Value) -> CmdResult {
    if let Some(t) = resp["IdentityToken"].as_str().filter(|t| !t.is_empty()) {
        e.password.clear();
        e.identitytoken = t.to_string();
    }
    let plain = config
        .store(e)
        .map_err(|m| exit_with(1, format!("error saving credentials: {m}")))?;
    if plain {
        eprintln!(
            "\nWARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            config.path.display()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry server (default Docker Hub)
    server: Option<String>,
}

pub fn logout(_cli: &Cli, a: LogoutArgs) -> CmdResult {
    let (server, default) = match a.server.as_deref() {
        Some(s) if !s.is_empty() => (s.to_string(), false),
        _ => (INDEX_SERVER.to_string(), true),
    };
    let mut keys = vec![server.clone()];
    let shown = if default {
        server.clone()
    } else {
        let h = to_hostname(&server);
        keys.extend([h.clone(), format!("http://{h}"), format!("https://{h}")]);
        h
    };
    println!("Removing login credentials for {shown}");
    let mut config = ConfigFile::load_default().map_err(|e| exit_with(1, e))?;
    let mut errs = Vec::new();
    keys.dedup();
    for k in &keys {
        if let Err(e) = config.erase(k) {
            errs.push(format!("{k}: {e}"));
        }
    }
    if errs.len() == keys.len() {
        eprintln!("WARNING: could not erase credentials:");
        for e in errs {
            eprintln!("{e}");
        }
    }
    Ok(())
}

// ---- search ----

#[derive(Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long = "format")]
    format: Option<String>,
    /// Max number of search results
    #[arg(long = "limit")]
    limit: Option<i64>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// TERM
    term: String,
}

/// The registry a search term addresses (docker's `splitReposSearchTerm`).
fn search_domain(term: &str) -> String {
    match term.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".into(),
    }
}

pub fn search(cli: &Cli, a: SearchArgs) -> CmdResult {
    if a.filter.iter().any(|f| f.starts_with("is-automated")) {
        eprintln!(
            "WARNING: the \"is-automated\" filter is deprecated, and searching for \"is-automated=true\" will not yield any results in future."
        );
    }
    let mut q = vec![("term", a.term.clone())];
    if let Some(l) = a.limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let resp = cli
        .client
        .send(
            "GET",
            &format!("/images/search{}", query(&q)),
            &[("X-Registry-Auth", registry_auth(&search_domain(&a.term)))],
            Body::Empty,
        )?
        .check()?;
    let results: Vec<Value> = resp.json()?;
    let json_mode = a.format.as_deref() == Some("json");
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let desc = r["description"]
                .as_str()
                .unwrap_or("")
                .replace(['\n', '\r'], " ");
            let desc = if a.no_trunc || json_mode {
                desc
            } else {
                ellipsis(&desc, 45)
            };
            let official = r["is_official"].as_bool().unwrap_or(false);
            let automated = r["is_automated"].as_bool().unwrap_or(false);
            let flag = |b: bool| match (b, json_mode) {
                (true, true) => "true",
                (true, false) => "[OK]",
                (false, true) => "false",
                (false, false) => "",
            };
            json!({
                "Name": r["name"].as_str().unwrap_or(""),
                "Description": desc,
                "StarCount": r["star_count"].as_i64().unwrap_or(0).to_string(),
                "IsOfficial": flag(official),
                "IsAutomated": flag(automated),
            })
        })
        .collect();
    let headers = json!({
        "Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
        "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED",
    });
    print_list(
        a.format.as_deref(),
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
        &headers,
        &rows,
    )
}

/// Credentials for an image reference, as `run`/`create` send them when pulling.
pub fn auth_for_image(image: &str) -> String {
    match Reference::parse(image) {
        Ok(r) => registry_auth(&r.domain),
        Err(_) => AuthEntry::default().encode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(lines: &[&str], terminal: bool) -> (String, Option<String>) {
        let input = lines.join("\n");
        let mut out = Vec::new();
        let r = display_stream(input.as_bytes(), &mut out, terminal);
        (
            String::from_utf8(out).unwrap(),
            r.err().map(|e| e.to_string()),
        )
    }

    #[test]
    fn plain_rendering_skips_progress_bars() {
        let (out, err) = render(
            &[
                r#"{"status":"Pulling from x","id":"1"}"#,
                r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#,
                r#"{"status":"Downloading","progressDetail":{"current":10,"total":20},"progress":"[==>]","id":"abc"}"#,
                r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#,
                r#"{"progressDetail":{},"aux":{"Tag":"1"}}"#,
                r#"{"status":"Digest: sha256:x"}"#,
            ],
            false,
        );
        assert_eq!(
            out,
            "1: Pulling from x\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n"
        );
        assert!(err.is_none());
        let (_, err) = render(
            &[r#"{"errorDetail":{"message":"boom"},"error":"boom"}"#],
            false,
        );
        assert_eq!(err.as_deref(), Some("boom"));
    }

    #[test]
    fn terminal_rendering_updates_lines_in_place() {
        let (out, _) = render(
            &[
                r#"{"status":"Pulling fs layer","progressDetail":{},"id":"a"}"#,
                r#"{"status":"Pulling fs layer","progressDetail":{},"id":"b"}"#,
                r#"{"status":"Downloading","progressDetail":{"current":5,"total":10},"id":"a"}"#,
            ],
            true,
        );
        assert!(out.contains("\x1b[2A"), "{out:?}");
        assert!(out.contains("a: Downloading       5B/10B"), "{out:?}");
        assert_eq!(progress_string(0, 0, 200), "");
        assert!(progress_string(5, 10, 200).starts_with("[=========================>"));
        assert_eq!(progress_string(5, 10, 80), "      5B/10B");
    }
}
