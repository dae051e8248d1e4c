//! `berth build` / `berth image build` / `berth builder prune`: sends the context (honouring
//! `.dockerignore` on this side, as docker does) to `POST /build` and shows the classic
//! builder's stream — as plain lines, or as a compact live view on a terminal.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use berth_api::client::{Body, query};
use berth_build::dockerignore::Matcher;
use clap::Args;
use serde_json::Value;

use super::{Cli, CmdResult, exit_with};

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin)
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set the target build stage to build
    #[arg(long = "target")]
    target: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Write the image ID to the file
    #[arg(long = "iidfile")]
    iidfile: Option<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long = "network")]
    network: Option<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long = "pull")]
    pull: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    platform: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long = "rm", default_value = "true", action = clap::ArgAction::Set)]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Progress output: auto, plain or tty
    #[arg(long = "progress", default_value = "auto")]
    progress: String,
    /// PATH
    context: String,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Provide filter values
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// Adds one file or directory of the context to the tar (owner 0:0, as docker's CLI sends it).
fn append(b: &mut tar::Builder<impl Write>, path: &Path, name: &str) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    let ft = meta.file_type();
    if ft.is_dir() {
        h.set_size(0);
        b.append_data(&mut h, format!("{name}/"), io::empty())
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        h.set_size(0);
        b.append_link(&mut h, name, target)
    } else if ft.is_file() {
        let f = std::fs::File::open(path)?;
        b.append_data(&mut h, name, f)
    } else {
        Ok(())
    }
}

fn walk(
    b: &mut tar::Builder<impl Write>,
    root: &Path,
    rel: &str,
    m: &Matcher,
    keep: &[String],
) -> io::Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        let p = root.join(&r);
        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        let excluded = m.excluded(&r) && !keep.contains(&r);
        if excluded {
            if is_dir && m.may_include_below(&r) {
                walk(b, root, &r, m, keep)?;
            }
            continue;
        }
        append(b, &p, &r)?;
        if is_dir {
            walk(b, root, &r, m, keep)?;
        }
    }
    Ok(())
}

fn random_suffix() -> String {
    let mut b = [0u8; 10];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn build(cli: &Cli, a: BuildArgs) -> CmdResult {
    let ctx_dir = PathBuf::from(&a.context);
    if a.context != "-" && !ctx_dir.is_dir() {
        return Err(exit_with(
            1,
            format!("unable to prepare context: path {:?} not found", a.context),
        ));
    }
    // Which Dockerfile, and whether it travels inside the context.
    let mut extra: Option<(String, Vec<u8>)> = None;
    let dockerfile_name = match a.file.as_deref() {
        Some("-") => {
            let mut s = Vec::new();
            io::stdin().read_to_end(&mut s)?;
            let name = format!(".dockerfile.{}", random_suffix());
            extra = Some((name.clone(), s));
            name
        }
        Some(f) => {
            let p = PathBuf::from(f);
            let abs = std::fs::canonicalize(&p)
                .map_err(|e| exit_with(1, format!("unable to prepare context: {f}: {e}")))?;
            let root = std::fs::canonicalize(&ctx_dir)?;
            match abs.strip_prefix(&root) {
                Ok(rel) => rel.to_string_lossy().into_owned(),
                Err(_) => {
                    let name = format!(".dockerfile.{}", random_suffix());
                    extra = Some((name.clone(), std::fs::read(&abs)?));
                    name
                }
            }
        }
        None => "Dockerfile".to_string(),
    };
    if extra.is_none() && !ctx_dir.join(&dockerfile_name).is_file() {
        return Err(exit_with(
            1,
            format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                ctx_dir.join(&dockerfile_name).display()
            ),
        ));
    }
    let ignore = std::fs::read_to_string(ctx_dir.join(".dockerignore")).unwrap_or_default();
    let matcher = Matcher::from_text(&ignore).map_err(|e| exit_with(1, e))?;
    let keep = vec![dockerfile_name.clone(), ".dockerignore".to_string()];

    let mut params: Vec<(&str, String)> = Vec::new();
    for t in &a.tags {
        params.push(("t", t.clone()));
    }
    params.push(("dockerfile", dockerfile_name));
    if !a.build_args.is_empty() {
        let mut m: BTreeMap<String, Option<String>> = BTreeMap::new();
        for b in &a.build_args {
            match b.split_once('=') {
                Some((k, v)) => m.insert(k.to_string(), Some(v.to_string())),
                None => m.insert(b.clone(), std::env::var(b).ok()),
            };
        }
        params.push(("buildargs", serde_json::to_string(&m)?));
    }
    if !a.labels.is_empty() {
        let m: BTreeMap<String, String> = a
            .labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect();
        params.push(("labels", serde_json::to_string(&m)?));
    }
    if a.no_cache {
        params.push(("nocache", "1".into()));
    }
    if !a.rm {
        params.push(("rm", "0".into()));
    }
    if a.force_rm {
        params.push(("forcerm", "1".into()));
    }
    if a.pull {
        params.push(("pull", "1".into()));
    }
    if a.quiet {
        params.push(("q", "1".into()));
    }
    if let Some(t) = &a.target {
        params.push(("target", t.clone()));
    }
    if let Some(n) = &a.network {
        params.push(("networkmode", n.clone()));
    }
    if let Some(p) = &a.platform {
        params.push(("platform", p.clone()));
    }
    if !a.cache_from.is_empty() {
        params.push(("cachefrom", serde_json::to_string(&a.cache_from)?));
    }
    // The context tar is written by a thread into a pipe while it is sent.
    let (reader, mut writer) = io::pipe()?;
    let dir = ctx_dir.clone();
    let is_stdin_ctx = a.context == "-";
    let producer = std::thread::spawn(move || -> io::Result<()> {
        let mut b = tar::Builder::new(io::BufWriter::with_capacity(256 << 10, &mut writer));
        if is_stdin_ctx {
            // `berth build -`: stdin is the Dockerfile.
            let mut s = Vec::new();
            io::stdin().read_to_end(&mut s)?;
            let mut h = tar::Header::new_gnu();
            h.set_size(s.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, "Dockerfile", &s[..])?;
        } else {
            walk(&mut b, &dir, "", &matcher, &keep)?;
        }
        if let Some((name, data)) = extra {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            b.append_data(&mut h, name, &data[..])?;
        }
        b.into_inner()?.flush()
    });
    let resp = cli.client.send(
        "POST",
        &format!("/build{}", query(&params)),
        &[],
        Body::Reader(Box::new(reader), "application/x-tar"),
    );
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("panicked")));
    let resp = resp?.check()?;
    if let Err(e) = produced {
        return Err(exit_with(
            1,
            format!("error sending the build context: {e}"),
        ));
    }
    let tty = match a.progress.as_str() {
        "plain" => false,
        "tty" => true,
        _ => io::stdout().is_terminal(),
    } && !a.quiet;
    let mut view = View::new(tty);
    let mut image_id: Option<String> = None;
    for line in BufReader::new(resp).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            view.finish();
            let code = v
                .pointer("/errorDetail/code")
                .and_then(Value::as_i64)
                .filter(|c| *c > 0)
                .unwrap_or(1);
            return Err(exit_with(code as i32, err.to_string()));
        }
        if let Some(id) = v.pointer("/aux/ID").and_then(Value::as_str) {
            image_id = Some(id.to_string());
        }
        if let Some(s) = v.get("stream").and_then(Value::as_str) {
            if a.quiet {
                print!("{s}");
            } else {
                view.text(s);
            }
        }
    }
    view.finish();
    io::stdout().flush()?;
    if let (Some(f), Some(id)) = (&a.iidfile, &image_id) {
        std::fs::write(f, id).map_err(|e| exit_with(1, format!("writing {f}: {e}")))?;
    }
    Ok(())
}

/// The output: docker's lines as they come, or on a terminal a compact view: one line per
/// step with its state, RUN output indented.
struct View {
    tty: bool,
    pending: String,
    step: Option<String>,
    /// When the current step started.
    started: std::time::Instant,
}

impl View {
    fn new(tty: bool) -> View {
        View {
            tty,
            pending: String::new(),
            step: None,
            started: std::time::Instant::now(),
        }
    }

    fn text(&mut self, s: &str) {
        if !self.tty {
            print!("{s}");
            let _ = io::stdout().flush();
            return;
        }
        self.pending.push_str(s);
        while let Some(i) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=i).collect();
            self.line(line.trim_end_matches('\n'));
        }
    }

    fn line(&mut self, l: &str) {
        let mut o = io::stdout();
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(rest) = l.strip_prefix("Step ") {
            self.end_step("");
            self.started = std::time::Instant::now();
            let (num, what) = rest.split_once(" : ").unwrap_or((rest, ""));
            let s = format!("\x1b[1m[{num}]\x1b[0m {what}");
            let _ = write!(o, "{s}");
            self.step = Some(s);
        } else if l == " ---> Using cache" {
            self.end_step(" \x1b[34mCACHED\x1b[0m");
        } else if l.starts_with(" ---> Running in ") {
            let _ = writeln!(o);
        } else if l.starts_with(" ---> ") || l.starts_with("Removing intermediate") {
            self.end_step(&format!(" \x1b[32m{secs:.1}s\x1b[0m"));
        } else if l.starts_with("Successfully") {
            self.end_step("");
            let _ = writeln!(o, "{l}");
        } else {
            let _ = writeln!(o, "\x1b[2m  | {l}\x1b[0m");
        }
        let _ = o.flush();
    }

    fn end_step(&mut self, tail: &str) {
        if let Some(s) = self.step.take() {
            let _ = writeln!(io::stdout(), "\r\x1b[K{s}{tail}");
        }
    }

    fn finish(&mut self) {
        if self.tty {
            if !self.pending.is_empty() {
                let p = std::mem::take(&mut self.pending);
                self.line(&p);
            }
            self.end_step("");
        }
    }
}

pub fn prune(cli: &Cli, a: PruneArgs) -> CmdResult {
    if !a.force && io::stdin().is_terminal() {
        let what = if a.all {
            "all build cache"
        } else {
            "all dangling build cache"
        };
        print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        io::stdout().flush()?;
        let mut ans = String::new();
        io::stdin().read_line(&mut ans)?;
        if !matches!(ans.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let mut params = Vec::new();
    if a.all {
        params.push(("all", "1".to_string()));
    }
    let r: Value = cli
        .client
        .post_json::<Value, Value>(&format!("/build/prune{}", query(&params)), None)?;
    let ids = r["CachesDeleted"].as_array().cloned().unwrap_or_default();
    if !ids.is_empty() {
        println!("Deleted build cache objects:");
        for i in &ids {
            println!("{}", i.as_str().unwrap_or(""));
        }
        println!();
    }
    let n = r["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!(
        "Total reclaimed space: {}",
        berth_cli::format::units::human_size(n as f64)
    );
    Ok(())
}
