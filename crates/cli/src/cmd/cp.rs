//! `cp` between a container and the local filesystem (or tar streams on stdin/stdout), with
//! docker's requests: `HEAD /containers/{id}/archive?path=` to stat, `GET` to download and
//! `PUT …?path=&noOverwriteDirNonDir=true[&copyUIDGID=true]` to upload.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use berth_api::client::{Body, ClientError, Response, query};
use berth_api::models::PathStat;
use clap::Args;

use super::cp_archive::{
    CopyInfo, copy_info_destination_path, copy_info_source_path, get_rebase_name, join,
    prepare_archive_copy, resolve_local_path, split_path_dir_entry, tar_resource, untar,
};
use super::{Cli, CmdResult, exit_with, stdout_is_terminal};
use berth_cli::format::units::human_size;

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::run_opts::go_bool, action = clap::ArgAction::Set)]
    quiet: Option<bool>,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    destination: String,
}

/// docker's `splitCpArg`: `container:path`, unless the argument is an absolute or `.`-led
/// local path.
pub fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

fn fail(e: impl std::fmt::Display) -> anyhow::Error {
    exit_with(1, e.to_string())
}

/// Decodes `X-Docker-Container-Path-Stat`.
pub fn decode_path_stat(header: Option<&str>) -> Result<PathStat, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.unwrap_or("").trim())
        .map_err(|e| format!("unable to decode container path stat header: {e}"))?;
    serde_json::from_slice(&raw)
        .map_err(|e| format!("unable to decode container path stat header: {e}"))
}

fn stat_path(cli: &Cli, container: &str, path: &str) -> Result<PathStat, ClientError> {
    let resp = cli
        .client
        .send(
            "HEAD",
            &format!(
                "/containers/{container}/archive{}",
                query(&[("path", path.to_string())])
            ),
            &[],
            Body::Empty,
        )?
        .check()?;
    decode_path_stat(resp.header("x-docker-container-path-stat")).map_err(ClientError::Invalid)
}

/// Counts bytes read, for docker's "Successfully copied" line.
struct Counting<R> {
    inner: R,
    total: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub fn cp(cli: &Cli, a: CpArgs) -> CmdResult {
    if a.source.is_empty() {
        return Err(fail("source can not be empty"));
    }
    if a.destination.is_empty() {
        return Err(fail("destination can not be empty"));
    }
    let quiet = a.quiet.unwrap_or(!stdout_is_terminal());
    let (src_container, src_path) = split_cp_arg(&a.source);
    let (dst_container, dst_path) = split_cp_arg(&a.destination);
    match (src_container, dst_container) {
        (Some(c), None) => copy_from_container(cli, c, src_path, dst_path, a.follow_link, quiet),
        (None, Some(c)) => copy_to_container(cli, c, src_path, dst_path, &a, quiet),
        (Some(_), Some(_)) => Err(fail("copying between containers is not supported")),
        (None, None) => Err(fail("must specify at least one container source")),
    }
}

/// docker's `ValidateOutputPath`.
fn validate_output_path(path: &str) -> Result<(), String> {
    let d = super::cp_archive::dir(&super::opts::clean_path(path));
    if !d.is_empty() && d != "." && !std::path::Path::new(&d).exists() {
        return Err(format!(
            "invalid output path: directory {d:?} does not exist"
        ));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let ft = m.file_type();
            let why = if ft.is_block_device() || ft.is_char_device() {
                "got a device"
            } else {
                "got an irregular file"
            };
            Err(format!(
                "invalid output path: {path:?} must be a directory or a regular file: {why}"
            ))
        }
        Err(_) => Ok(()),
    }
}

fn copy_from_container(
    cli: &Cli,
    container: &str,
    src: &str,
    dst: &str,
    follow_link: bool,
    quiet: bool,
) -> CmdResult {
    let dst = if dst == "-" {
        dst.to_string()
    } else {
        resolve_local_path(dst).map_err(fail)?
    };
    validate_output_path(&dst).map_err(fail)?;
    let mut src = src.to_string();
    let mut rebase = String::new();
    if follow_link
        && let Ok(st) = stat_path(cli, container, &src)
        && st.is_symlink()
    {
        let mut target = st.link_target.clone();
        if !target.starts_with('/') {
            target = join(&split_path_dir_entry(&src).0, &target);
        }
        (src, rebase) = get_rebase_name(&src, &target);
    }
    let resp: Response = cli
        .client
        .send(
            "GET",
            &format!(
                "/containers/{container}/archive{}",
                query(&[("path", src.clone())])
            ),
            &[],
            Body::Empty,
        )?
        .check()?;
    let stat = decode_path_stat(resp.header("x-docker-container-path-stat"))
        .map_err(|e| fail(format!("unable to get resource stat from response: {e}")))?;
    if dst == "-" {
        let mut out = io::stdout().lock();
        let mut resp = resp;
        io::copy(&mut resp, &mut out).map_err(fail)?;
        return Ok(());
    }
    let src_info = CopyInfo {
        path: src.clone(),
        exists: true,
        is_dir: stat.is_dir(),
        rebase_name: rebase.clone(),
    };
    let mut renames = Vec::new();
    if !rebase.is_empty() {
        renames.push((split_path_dir_entry(&src_info.path).1, rebase));
    }
    let dst_info = copy_info_destination_path(&dst).map_err(fail)?;
    let (dst_dir, rename) = prepare_archive_copy(&src_info, &dst_info).map_err(fail)?;
    renames.extend(rename);
    let total = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: resp,
        total: total.clone(),
    };
    untar(reader, &dst_dir, &renames).map_err(fail)?;
    if !quiet {
        eprintln!(
            "Successfully copied {} to {dst}",
            human_size(total.load(Ordering::Relaxed) as f64)
        );
    }
    Ok(())
}

fn copy_to_container(
    cli: &Cli,
    container: &str,
    src: &str,
    dst: &str,
    a: &CpArgs,
    quiet: bool,
) -> CmdResult {
    let src = if src == "-" {
        src.to_string()
    } else {
        resolve_local_path(src).map_err(fail)?
    };
    let mut dst_info = CopyInfo {
        path: dst.to_string(),
        ..Default::default()
    };
    let mut stat = stat_path(cli, container, dst);
    if let Ok(st) = &stat
        && st.is_symlink()
    {
        let mut target = st.link_target.clone();
        if !target.starts_with('/') {
            target = join(&split_path_dir_entry(dst).0, &target);
        }
        dst_info.path = target.clone();
        stat = stat_path(cli, container, &target);
    }
    if let Ok(st) = &stat {
        let why = if st.mode & PathStat::MODE_DEVICE != 0 {
            Some("got a device")
        } else if st.mode & PathStat::MODE_IRREGULAR != 0 {
            Some("got an irregular file")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(fail(format!(
                "destination \"{container}:{dst}\" must be a directory or a regular file: {why}"
            )));
        }
        dst_info.exists = true;
        dst_info.is_dir = st.is_dir();
    }
    let total = Arc::new(AtomicU64::new(0));
    let (content, resolved_dst): (Box<dyn Read>, String) = if src == "-" {
        if !dst_info.is_dir {
            return Err(fail(format!(
                "destination \"{container}:{dst}\" must be a directory"
            )));
        }
        (Box::new(io::stdin()), dst_info.path.clone())
    } else {
        let src_info = copy_info_source_path(&src, a.follow_link).map_err(fail)?;
        let (dst_dir, rename) = prepare_archive_copy(&src_info, &dst_info).map_err(fail)?;
        let tar = tar_resource(&src_info, rename).map_err(fail)?;
        (
            Box::new(Counting {
                inner: tar,
                total: total.clone(),
            }),
            dst_dir,
        )
    };
    let mut q = vec![
        ("path", resolved_dst),
        ("noOverwriteDirNonDir", "true".to_string()),
    ];
    if a.archive {
        q.push(("copyUIDGID", "true".to_string()));
    }
    cli.client
        .send(
            "PUT",
            &format!("/containers/{container}/archive{}", query(&q)),
            &[],
            Body::Reader(content, "application/x-tar"),
        )?
        .check()?;
    if !quiet && src != "-" {
        eprintln!(
            "Successfully copied {} to {container}:{}",
            human_size(total.load(Ordering::Relaxed) as f64),
            dst_info.path
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments() {
        assert_eq!(split_cp_arg("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split_cp_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
        assert_eq!(split_cp_arg("c:"), (Some("c"), ""));
    }

    #[test]
    fn path_stat_header() {
        let json = r#"{"name":"hosts","size":174,"mode":420,"mtime":"2024-05-01T10:00:00Z","linkTarget":""}"#;
        let enc = base64::engine::general_purpose::STANDARD.encode(json);
        let st = decode_path_stat(Some(&enc)).unwrap();
        assert_eq!(st.name, "hosts");
        assert_eq!(st.size, 174);
        assert!(!st.is_dir());
        let dir = r#"{"name":"etc","size":4096,"mode":2147484141,"mtime":"","linkTarget":""}"#;
        let st =
            decode_path_stat(Some(&base64::engine::general_purpose::STANDARD.encode(dir))).unwrap();
        assert!(st.is_dir());
        assert!(decode_path_stat(None).is_err());
    }

    #[test]
    fn output_paths() {
        assert!(validate_output_path("/tmp").is_ok());
        assert!(validate_output_path("/tmp/new-file-berth").is_ok());
        assert_eq!(
            validate_output_path("/nonexistent-berth/x").unwrap_err(),
            "invalid output path: directory \"/nonexistent-berth\" does not exist"
        );
        assert!(
            validate_output_path("/dev/null")
                .unwrap_err()
                .ends_with("got a device")
        );
    }
}
