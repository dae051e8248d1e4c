//! Offline garbage collection: mark every blob a repository's manifests reference, sweep the
//! rest. It takes the root's lock, so it refuses to run beside a serving registry.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::manifest;
use crate::names::Digest;
use crate::server::lock_root;
use crate::storage::Storage;

#[derive(Clone, Copy, Debug, Default)]
pub struct GcOptions {
    /// Report what would go, change nothing.
    pub dry_run: bool,
    /// Also remove manifests no tag reaches (directly, through an index, or as a referrer of
    /// a manifest that stays).
    pub delete_untagged: bool,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs_total: usize,
    pub blobs_deleted: Vec<Digest>,
    pub bytes_freed: u64,
    pub manifests_deleted: usize,
    pub uploads_removed: usize,
}

pub fn run(root: &Path, opts: GcOptions, out: &mut dyn Write) -> io::Result<GcReport> {
    if !root.join("blobs").is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a registry root (no blobs/)", root.display()),
        ));
    }
    let _lock = lock_root(root)?;
    let storage = Storage::open(root)?;
    let mut report = GcReport::default();
    let mut marked: HashSet<Digest> = HashSet::new();

    for repo in storage.list_repositories()? {
        let revisions = storage.list_revisions(&repo)?;
        let keep: HashSet<Digest> = if opts.delete_untagged {
            reachable_from_tags(&storage, &repo, &revisions)?
        } else {
            revisions.iter().cloned().collect()
        };
        for d in &revisions {
            if !keep.contains(d) {
                writeln!(out, "{repo}: deleting untagged manifest {d}")?;
                report.manifests_deleted += 1;
                if !opts.dry_run {
                    storage.delete_manifest(&repo, d)?;
                }
                continue;
            }
            let Ok(bytes) = fs::read(storage.blob_path(d)) else {
                continue;
            };
            marked.insert(d.clone());
            marked.extend(manifest::references(&bytes));
        }
    }

    let blobs = storage.list_blobs()?;
    report.blobs_total = blobs.len();
    let mut gone: HashSet<Digest> = HashSet::new();
    for d in blobs {
        if marked.contains(&d) {
            continue;
        }
        let path = storage.blob_path(&d);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        writeln!(out, "blob eligible for deletion: {d}")?;
        if !opts.dry_run {
            fs::remove_file(&path)?;
        }
        report.bytes_freed += size;
        report.blobs_deleted.push(d.clone());
        gone.insert(d);
    }

    if !opts.dry_run {
        // Repository links to blobs that are no longer there.
        for repo in storage.list_repositories()? {
            for d in storage.list_layers(&repo)? {
                if gone.contains(&d) || storage.blob_size(&d).is_none() {
                    storage.unlink_layer(&repo, &d)?;
                }
            }
        }
        remove_temp_files(&root.join("repositories"))?;
        remove_temp_files(&root.join("blobs"))?;
    }
    if let Ok(rd) = fs::read_dir(root.join("uploads")) {
        for e in rd.filter_map(|e| e.ok()) {
            report.uploads_removed += 1;
            if !opts.dry_run {
                fs::remove_dir_all(e.path())?;
            }
        }
    }
    writeln!(
        out,
        "{} blobs, {} {}deleted ({} bytes), {} untagged manifests, {} unfinished uploads{}",
        report.blobs_total,
        report.blobs_deleted.len(),
        if opts.dry_run { "would be " } else { "" },
        report.bytes_freed,
        report.manifests_deleted,
        report.uploads_removed,
        if opts.dry_run {
            " (dry run)"
        } else {
            " removed"
        },
    )?;
    Ok(report)
}

/// Manifests reachable from the repository's tags: tagged ones, their index entries, and the
/// referrers of anything kept.
fn reachable_from_tags(
    storage: &Storage,
    repo: &str,
    revisions: &[Digest],
) -> io::Result<HashSet<Digest>> {
    let mut keep = HashSet::new();
    let mut todo: Vec<Digest> = Vec::new();
    for tag in storage.list_tags(repo)?.unwrap_or_default() {
        if let Some(d) = storage.resolve_tag(repo, &tag)? {
            todo.push(d);
        }
    }
    let subjects: Vec<(Digest, Option<Digest>)> = revisions
        .iter()
        .map(|d| {
            let s = fs::read(storage.blob_path(d))
                .ok()
                .and_then(|b| manifest::subject_of(&b));
            (d.clone(), s)
        })
        .collect();
    while let Some(d) = todo.pop() {
        if !keep.insert(d.clone()) {
            continue;
        }
        if let Ok(b) = fs::read(storage.blob_path(&d)) {
            todo.extend(manifest::references(&b));
        }
        for (r, s) in &subjects {
            if s.as_ref() == Some(&d) {
                todo.push(r.clone());
            }
        }
    }
    Ok(keep)
}

/// Removes `.tmp-*` files a crash left behind mid-write.
fn remove_temp_files(dir: &Path) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd.filter_map(|e| e.ok()) {
        let ft = e.file_type()?;
        if ft.is_dir() {
            remove_temp_files(&e.path())?;
        } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}
