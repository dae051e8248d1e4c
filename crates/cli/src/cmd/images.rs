//! Image commands: images/ls, import, load, save, tag, rmi, history, inspect, prune.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};

use berth_api::client::{Body, query};
use berth_api::models::{DeleteItem, HistoryItem, ImagePruneReport, ImageSummary};
use berth_api::stream::JsonMessage;
use clap::Args;
use serde_json::{Value, json};

use super::output::{created_since, print_list, write_download};
use super::{
    Cli, CmdResult, confirm, exit_with, filters_json, stdin_is_terminal, stdout_is_terminal,
};
use berth_cli::format::text::{ellipsis, truncate_id};
use berth_cli::format::time::go_time_string;
use berth_cli::format::units::human_size;

#[derive(Args)]
pub struct LsArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Show digests
    #[arg(long = "digests")]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Repository to list ([REPOSITORY[:TAG]])
    repository: Option<String>,
}

/// Splits an image's names into docker's table rows: (repository, tag, digest).
fn image_rows(img: &ImageSummary, with_digests: bool) -> Vec<(String, String, String)> {
    let none = "<none>".to_string();
    let dangling = img.repo_tags.iter().all(|t| t == "<none>:<none>")
        && img.repo_digests.iter().all(|d| d == "<none>@<none>");
    if dangling {
        return vec![(none.clone(), none.clone(), none)];
    }
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &img.repo_tags {
        // The tag follows the last ':' after the last '/' (a registry port is not a tag).
        let slash = t.rfind('/').map(|i| i + 1).unwrap_or(0);
        if let Some(i) = t[slash..].rfind(':') {
            tags.entry(t[..slash + i].to_string())
                .or_default()
                .push(t[slash + i + 1..].to_string());
        }
    }
    for d in &img.repo_digests {
        if let Some((repo, dg)) = d.split_once('@') {
            digests
                .entry(repo.to_string())
                .or_default()
                .push(dg.to_string());
        }
    }
    let mut rows = Vec::new();
    for (repo, ts) in &tags {
        let ds = digests.remove(repo).unwrap_or_default();
        for t in ts {
            if !with_digests || ds.is_empty() {
                rows.push((repo.clone(), t.clone(), none.clone()));
            } else {
                for d in &ds {
                    rows.push((repo.clone(), t.clone(), d.clone()));
                }
            }
        }
    }
    for (repo, ds) in digests {
        if with_digests {
            for d in ds {
                rows.push((repo.clone(), none.clone(), d));
            }
        } else {
            rows.push((repo, none.clone(), String::new()));
        }
    }
    rows
}

pub fn ls(cli: &Cli, a: LsArgs) -> CmdResult {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let mut q = vec![];
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(f) = filters_json(&filters)? {
        q.push(("filters", f));
    }
    let images: Vec<ImageSummary> = cli.client.get_json(&format!("/images/json{}", query(&q)))?;
    let mut rows = Vec::new();
    for img in &images {
        let id = if a.no_trunc {
            img.id.clone()
        } else {
            truncate_id(&img.id)
        };
        for (repo, tag, digest) in image_rows(
            img,
            a.digests || a.format.as_deref().is_some_and(|f| f.contains(".Digest")),
        ) {
            rows.push(json!({
                "Containers": if img.containers < 0 { "N/A".to_string() } else { img.containers.to_string() },
                "CreatedAt": go_time_string(img.created),
                "CreatedSince": created_since(img.created),
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": if img.shared_size < 0 { "N/A".to_string() } else { human_size(img.shared_size as f64) },
                "Size": human_size(img.size as f64),
                "Tag": tag,
                "UniqueSize": if img.shared_size < 0 { "N/A".to_string() } else { human_size((img.size - img.shared_size) as f64) },
                "VirtualSize": human_size(img.size as f64),
            }));
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let headers = json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    });
    print_list(a.format.as_deref(), default, &headers, &rows)
}

#[derive(Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long = "message")]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    platform: Option<String>,
    /// file|URL|- to import from
    source: String,
    /// [REPOSITORY[:TAG]]
    repository: Option<String>,
}

/// Prints a JSON message stream (load, import, pull…) the way docker renders it without a TTY.
pub fn print_stream(r: impl Read) -> CmdResult {
    print_stream_to(r, &mut io::stdout().lock())
}

/// [`print_stream`] onto any writer (`run` shows its pull on stderr).
pub fn print_stream_to(r: impl Read, out: &mut dyn Write) -> CmdResult {
    let reader = io::BufReader::new(r);
    for line in io::BufRead::lines(reader) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let m: JsonMessage = serde_json::from_str(&line)
            .map_err(|e| exit_with(1, format!("cannot read the daemon's progress stream: {e}")))?;
        if let Some(err) = m.error_detail.map(|d| d.message).or(m.error) {
            return Err(exit_with(1, err));
        }
        if let Some(s) = m.stream {
            write!(out, "{s}")?;
        } else if let Some(s) = m.status {
            match m.id {
                Some(id) => writeln!(out, "{id}: {s}")?,
                None => writeln!(out, "{s}")?,
            }
        }
    }
    Ok(())
}

pub fn import(cli: &Cli, a: ImportArgs) -> CmdResult {
    let mut q: Vec<(&str, String)> = Vec::new();
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    q.push((
        "fromSrc",
        if is_url {
            a.source.clone()
        } else {
            "-".to_string()
        },
    ));
    if let Some(r) = &a.repository {
        // The daemon validates the name; split the tag off as docker's client does.
        let slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
        match r[slash..].rfind(':') {
            Some(i) if !r.contains('@') => {
                q.push(("repo", r[..slash + i].to_string()));
                q.push(("tag", r[slash + i + 1..].to_string()));
            }
            _ => q.push(("repo", r.clone())),
        }
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    for c in &a.change {
        q.push(("changes", c.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let path = format!("/images/create{}", query(&q));
    let body = if is_url {
        Body::Empty
    } else if a.source == "-" {
        Body::Reader(Box::new(io::stdin().lock()), "application/x-tar")
    } else {
        let f =
            File::open(&a.source).map_err(|e| exit_with(1, format!("open {}: {e}", a.source)))?;
        Body::Reader(Box::new(f), "application/x-tar")
    };
    let resp = cli.client.send("POST", &path, &[], body)?.check()?;
    print_stream(resp)
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long = "input")]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Load only the given platform variant
    #[arg(long = "platform")]
    platform: Vec<String>,
}

pub fn load(cli: &Cli, a: LoadArgs) -> CmdResult {
    let body: Box<dyn Read> = match &a.input {
        Some(p) => Box::new(File::open(p).map_err(|e| exit_with(1, format!("open {p}: {e}")))?),
        None => {
            if stdin_is_terminal() {
                return Err(exit_with(
                    1,
                    "requested load from stdin, but stdin is empty",
                ));
            }
            Box::new(io::stdin().lock())
        }
    };
    let q = if a.quiet { "?quiet=1" } else { "" };
    let resp = cli
        .client
        .send(
            "POST",
            &format!("/images/load{q}"),
            &[],
            Body::Reader(body, "application/x-tar"),
        )?
        .check()?;
    print_stream(resp)
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    /// Save only the given platform variant
    #[arg(long = "platform")]
    platform: Option<String>,
    /// IMAGE...
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(cli: &Cli, a: SaveArgs) -> CmdResult {
    if a.output.is_none() && stdout_is_terminal() {
        return Err(exit_with(
            1,
            "failed to save image: cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    let q: Vec<(&str, String)> = a.images.iter().map(|i| ("names", i.clone())).collect();
    let resp = cli
        .client
        .send(
            "GET",
            &format!("/images/get{}", query(&q)),
            &[],
            Body::Empty,
        )?
        .check()?;
    write_download(resp, a.output.as_deref(), "failed to save image")
}

#[derive(Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    source: String,
    /// TARGET_IMAGE[:TAG]
    target: String,
}

pub fn tag(cli: &Cli, a: TagArgs) -> CmdResult {
    let t = &a.target;
    let slash = t.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match t[slash..].rfind(':') {
        Some(i) if !t.contains('@') => (t[..slash + i].to_string(), t[slash + i + 1..].to_string()),
        _ => (t.clone(), String::new()),
    };
    let q = query(&[("repo", repo), ("tag", tag)]);
    cli.client
        .send(
            "POST",
            &format!("/images/{}/tag{q}", a.source),
            &[],
            Body::Empty,
        )?
        .check()?;
    Ok(())
}

#[derive(Args)]
pub struct RmArgs {
    /// Force removal of the image
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    no_prune: bool,
    /// IMAGE...
    #[arg(required = true)]
    images: Vec<String>,
}

fn print_delete_items(items: &[DeleteItem]) {
    for i in items {
        if let Some(u) = &i.untagged {
            println!("Untagged: {u}");
        }
        if let Some(d) = &i.deleted {
            println!("Deleted: {d}");
        }
    }
}

pub fn rm(cli: &Cli, a: RmArgs) -> CmdResult {
    let mut q = vec![];
    if a.force {
        q.push(("force", "1".to_string()));
    }
    if a.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let q = query(&q);
    let mut failed = false;
    for img in &a.images {
        match cli
            .client
            .send("DELETE", &format!("/images/{img}{q}"), &[], Body::Empty)
            .and_then(|r| r.check())
        {
            Ok(r) => print_delete_items(&r.json::<Vec<DeleteItem>>()?),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(exit_with(1, ""))
    } else {
        Ok(())
    }
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long = "human", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// IMAGE
    image: String,
}

pub fn history(cli: &Cli, a: HistoryArgs) -> CmdResult {
    let items: Vec<HistoryItem> = cli
        .client
        .get_json(&format!("/images/{}/history", a.image))?;
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let id = if a.no_trunc || h.id == "<missing>" { h.id.clone() } else { truncate_id(&h.id) };
            let created_by = h.created_by.replace('\t', " ");
            json!({
                "ID": id,
                "CreatedSince": if a.human { created_since(h.created) } else { go_rfc3339(h.created) },
                "CreatedAt": go_rfc3339(h.created),
                "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
                "Size": if a.human { human_size(h.size as f64) } else { h.size.to_string() },
                "Comment": h.comment,
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    let headers = json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    });
    print_list(
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &headers,
        &rows,
    )
}

fn go_rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
}

pub fn prune(cli: &Cli, a: PruneArgs) -> CmdResult {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(&format!("{warning}\nAre you sure you want to continue?")) {
        return Ok(());
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("dangling=false".into());
    }
    let q = match filters_json(&filters)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let report: ImagePruneReport = cli
        .client
        .post_json::<(), _>(&format!("/images/prune{q}"), None)?;
    if let Some(items) = &report.images_deleted
        && !items.is_empty()
    {
        println!("Deleted Images:");
        for i in items {
            if let Some(u) = &i.untagged {
                println!("untagged: {u}");
            }
            if let Some(d) = &i.deleted {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(report.space_reclaimed as f64)
    );
    Ok(())
}
