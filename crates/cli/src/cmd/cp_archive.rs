//! The local side of `cp`, as docker's go-archive does it: path semantics (a trailing `/`
//! or `/.`, file vs directory, renaming the copied entry), building a tar of a local path,
//! and extracting one safely. Extraction walks the destination with `openat` and
//! `O_NOFOLLOW`, so no entry is ever written through a symlink, and links that point out of
//! the destination are refused.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{
    AtFlags, CWD, FileType, Mode, OFlags, Timespec, Timestamps, chmodat, linkat, mkdirat, mknodat,
    openat, statat, symlinkat, unlinkat, utimensat,
};

use super::opts::clean_path;

// ---- Go's path/filepath, for slash-separated paths ----------------------------------------

/// `filepath.Base`.
pub fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// `filepath.Dir`.
pub fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean_path(&p[..=i]),
        None => ".".into(),
    }
}

/// `filepath.Join` of two elements.
pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        return clean_path(b);
    }
    clean_path(&format!("{a}/{b}"))
}

pub fn has_trailing_separator(p: &str) -> bool {
    p.ends_with('/')
}

pub fn specifies_current_dir(p: &str) -> bool {
    base(p) == "."
}

/// A destination that can only be a directory (`dir/` or `dir/.`).
pub fn asserts_directory(p: &str) -> bool {
    has_trailing_separator(p) || specifies_current_dir(p)
}

/// docker's `SplitPathDirEntry`: (`/a`, `b`) for `/a/b`, (`/a/b`, `.`) for `/a/b/.`.
pub fn split_path_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = clean_path(p);
    if specifies_current_dir(p) {
        cleaned.push_str("/.");
    }
    (dir(&cleaned), base(&cleaned))
}

/// docker's `PreserveTrailingDotOrSeparator`: put back the `/.` or `/` that cleaning dropped.
pub fn preserve_trailing_dot_or_separator(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_string();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !has_trailing_separator(&out) {
            out.push('/');
        }
        out.push('.');
    }
    if !has_trailing_separator(&out) && has_trailing_separator(original) {
        out.push('/');
    }
    out
}

/// An absolute local path, keeping what the user's trailing `/` or `/.` asserts.
pub fn resolve_local_path(p: &str) -> io::Result<String> {
    let abs = if p.starts_with('/') {
        clean_path(p)
    } else {
        join(&std::env::current_dir()?.to_string_lossy(), p)
    };
    Ok(preserve_trailing_dot_or_separator(&abs, p))
}

/// docker's `GetRebaseName`: the resolved path (keeping the request's trailing `/` or `/.`)
/// and, when the last element changed, the name the user asked for.
pub fn get_rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_separator(path) && !has_trailing_separator(&resolved) {
        resolved.push('/');
    }
    let rebase = if base(path) != base(&resolved) {
        base(path)
    } else {
        String::new()
    };
    (resolved, rebase)
}

/// What a copy knows about one end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInfo {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    pub rebase_name: String,
}

fn lstat_error(p: &str, e: &io::Error) -> String {
    super::go_path_error("lstat", p, e)
}

/// docker's `CopyInfoSourcePath` (with `ResolveHostSourcePath`).
pub fn copy_info_source_path(path: &str, follow_link: bool) -> Result<CopyInfo, String> {
    let (resolved, rebase_name) = if follow_link {
        let real = std::fs::canonicalize(path).map_err(|e| lstat_error(path, &e))?;
        get_rebase_name(path, &real.to_string_lossy())
    } else {
        let split = path.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (dir_part, base_part) = (&path[..split], &path[split..]);
        let dir_part = if dir_part.is_empty() { "." } else { dir_part };
        let real_dir = std::fs::canonicalize(dir_part).map_err(|e| lstat_error(dir_part, &e))?;
        let real_dir = real_dir.to_string_lossy();
        let resolved = if real_dir == "/" {
            format!("/{base_part}")
        } else {
            format!("{real_dir}/{base_part}")
        };
        let mut rebase = String::new();
        if has_trailing_separator(path) && base(path) != base(&resolved) {
            rebase = base(path);
        }
        (resolved, rebase)
    };
    let meta = std::fs::symlink_metadata(&resolved).map_err(|e| lstat_error(&resolved, &e))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase_name,
    })
}

/// docker's `CopyInfoDestinationPath`: follows a symlink at the destination (up to 10
/// times); a missing destination needs an existing parent directory.
pub fn copy_info_destination_path(path: &str) -> Result<CopyInfo, String> {
    let mut path = path.to_string();
    let original = path.clone();
    let mut n = 0;
    loop {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                if n > 10 {
                    return Err(format!("too many symlinks in {original}"));
                }
                n += 1;
                let target = std::fs::read_link(&path)
                    .map_err(|e| super::go_path_error("readlink", &path, &e))?;
                let target = target.to_string_lossy().into_owned();
                path = if target.starts_with('/') {
                    target
                } else {
                    join(&split_path_dir_entry(&path).0, &target)
                };
            }
            Ok(m) => {
                return Ok(CopyInfo {
                    path,
                    exists: true,
                    is_dir: m.is_dir(),
                    rebase_name: String::new(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = split_path_dir_entry(&path).0;
                let meta = std::fs::metadata(&parent)
                    .map_err(|e| super::go_path_error("stat", &parent, &e))?;
                if !meta.is_dir() {
                    return Err("not a directory".into());
                }
                return Ok(CopyInfo {
                    path,
                    ..Default::default()
                });
            }
            Err(e) => return Err(lstat_error(&path, &e)),
        }
    }
}

/// docker's `PrepareArchiveCopy`: the directory to extract into, and the rename
/// (`old` → `new` on entry names) that makes the copy land under the requested name.
pub fn prepare_archive_copy(
    src: &CopyInfo,
    dst: &CopyInfo,
) -> Result<(String, Option<(String, String)>), String> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, mut src_base) = split_path_dir_entry(&src.path);
    if !src.rebase_name.is_empty() {
        src_base = src.rebase_name.clone();
    }
    let rebase = Some((src_base, dst_base));
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err("cannot copy directory".into());
    }
    if dst.exists || src.is_dir {
        return Ok((dst_dir, rebase));
    }
    if asserts_directory(&dst.path) {
        return Err("no such directory".into());
    }
    Ok((dst_dir, rebase))
}

/// docker's `strings.Replace(name, old, new, 1)` rename, with `/` as the old base meaning "".
pub fn rebase_name(name: &str, rename: &(String, String)) -> String {
    let old = if rename.0 == "/" {
        ""
    } else {
        rename.0.as_str()
    };
    name.replacen(old, &rename.1, 1)
}

// ---- building a tar ---------------------------------------------------------------------------

/// docker's `TarResource` followed by the renames `PrepareArchiveCopy` asks for: a tar
/// stream of `src`, produced by a background thread.
pub fn tar_resource(
    src: &CopyInfo,
    rename: Option<(String, String)>,
) -> io::Result<io::PipeReader> {
    let (src_dir, include) = split_path_dir_entry(&src.path);
    let first = (!src.rebase_name.is_empty()).then(|| (include.clone(), src.rebase_name.clone()));
    let (reader, writer) = io::pipe()?;
    std::thread::spawn(move || {
        let mut t = TarWriter::new(writer);
        let root = if include == "." {
            src_dir.clone()
        } else {
            format!("{}/{include}", src_dir.trim_end_matches('/'))
        };
        let result = t.walk(&src_dir, &root, &include, &|rel: &str| {
            let mut name = rel.to_string();
            if let Some((inc, to)) = &first {
                let to = if to == "/" { "" } else { to.as_str() };
                name = name.replacen(inc.as_str(), to, 1);
            }
            if let Some(r) = &rename {
                name = rebase_name(&name, r);
            }
            name
        });
        let result = result.and_then(|_| t.builder.finish());
        if let Err(e) = result {
            eprintln!("Error: cannot archive {root}: {e}");
        }
    });
    Ok(reader)
}

struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// First name of each multiply-linked inode, for hard links.
    inodes: HashMap<(u64, u64), String>,
}

impl<W: Write> TarWriter<W> {
    fn new(w: W) -> Self {
        TarWriter {
            builder: tar::Builder::new(w),
            inodes: HashMap::new(),
        }
    }

    /// Adds `path` and (for directories) everything under it, in name order as Go's
    /// `filepath.WalkDir` visits them. `rename` maps the name relative to `src_dir`.
    fn walk(
        &mut self,
        src_dir: &str,
        path: &str,
        include: &str,
        rename: &dyn Fn(&str) -> String,
    ) -> io::Result<()> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("Error: cannot stat {path}: {e}");
                return Ok(());
            }
        };
        let rel = relative(src_dir, path);
        let rel = if include == "." && rel != "." {
            format!("./{rel}")
        } else {
            rel
        };
        if let Err(e) = self.add(path, &rename(&rel), &meta) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Err(e);
            }
            eprintln!("Error: cannot add {path} to the archive: {e}");
        }
        if meta.is_dir() {
            let mut names: Vec<_> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
                Err(e) => {
                    eprintln!("Error: cannot read {path}: {e}");
                    return Ok(());
                }
            };
            names.sort();
            for n in names {
                let child = format!("{}/{}", path.trim_end_matches('/'), n.to_string_lossy());
                self.walk(src_dir, &child, include, rename)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, path: &str, name: &str, meta: &std::fs::Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            let name = if name.ends_with('/') {
                name.to_string()
            } else {
                format!("{name}/")
            };
            return self.builder.append_data(&mut h, name, io::empty());
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(path)?;
            h.set_entry_type(tar::EntryType::Symlink);
            return self.builder.append_link(&mut h, name, target);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.inodes.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    let first = first.clone();
                    return self.builder.append_link(&mut h, name, first);
                }
                self.inodes.insert(key, name.to_string());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            let f = std::fs::File::open(path)?;
            return self.builder.append_data(&mut h, name, f.take(meta.len()));
        }
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_fifo() {
            tar::EntryType::Fifo
        } else if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            // Sockets are skipped, as docker does.
            return Ok(());
        };
        h.set_entry_type(kind);
        let rdev = meta.rdev();
        h.set_device_major(libc::major(rdev))?;
        h.set_device_minor(libc::minor(rdev))?;
        self.builder.append_data(&mut h, name, io::empty())
    }
}

/// `filepath.Rel(base, path)` for a path under base.
fn relative(base_dir: &str, path: &str) -> String {
    let b = clean_path(base_dir);
    let p = clean_path(path);
    if p == b {
        return ".".into();
    }
    let prefix = if b == "/" {
        "/".to_string()
    } else {
        format!("{b}/")
    };
    p.strip_prefix(&prefix).unwrap_or(&p).to_string()
}

// ---- extracting a tar ---------------------------------------------------------------------

fn err(msg: impl Into<String>) -> String {
    msg.into()
}

fn os(e: impl Into<io::Error>) -> String {
    e.into().to_string()
}

/// Opens the directory `components` under `root` without following symlinks, creating
/// missing directories (mode 0755) when `create` is set.
fn open_dir_nofollow(
    root: &OwnedFd,
    components: &[&str],
    create: bool,
    shown: &str,
) -> Result<OwnedFd, String> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    let mut fd = openat(root, ".", flags, Mode::empty()).map_err(os)?;
    for c in components {
        let next = match openat(&fd, *c, flags, Mode::empty()) {
            Ok(f) => f,
            Err(rustix::io::Errno::NOENT) if create => {
                mkdirat(&fd, *c, Mode::from_raw_mode(0o755)).map_err(os)?;
                openat(&fd, *c, flags, Mode::empty()).map_err(os)?
            }
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOTDIR) => {
                return Err(err(format!(
                    "refusing to extract {shown:?}: {c:?} is a symlink or not a directory"
                )));
            }
            Err(e) => return Err(os(e)),
        };
        fd = next;
    }
    Ok(fd)
}

/// Normalizes an entry name (docker joins it onto the destination, so `/etc/x` lands in
/// `dest/etc/x`); `None` if it climbs out of the destination.
fn entry_components(name: &str) -> Option<Vec<String>> {
    let cleaned = clean_path(name);
    if cleaned == ".." || cleaned.starts_with("../") {
        return None;
    }
    Some(
        cleaned
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect(),
    )
}

/// True if `target` (relative to the destination root, as components after resolving `..`
/// against the link's directory) stays inside the destination.
fn stays_inside(link_dir: &[String], target: &str) -> bool {
    if target.starts_with('/') {
        // Joined onto the link's directory, as docker does: always inside.
        return true;
    }
    let mut depth = link_dir.len() as i64;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// docker's `Untar` with `NoLchown` and `NoOverwriteDirNonDir`: extracts `reader` into
/// `dest`, renaming entries with `renames` first.
pub fn untar(reader: impl Read, dest: &str, renames: &[(String, String)]) -> Result<(), String> {
    let root = openat(
        CWD,
        dest,
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
    .map_err(|e| super::go_path_error("open", dest, &e.into()))?;
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(Vec<String>, u64)> = Vec::new();
    for entry in archive.entries().map_err(os)? {
        let mut entry = entry.map_err(os)?;
        let mut name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        for r in renames {
            name = rebase_name(&name, r);
        }
        let header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let components =
            entry_components(&name).ok_or_else(|| format!("{:?} is outside of {dest:?}", name))?;
        let path = format!("{}/{}", dest.trim_end_matches('/'), components.join("/"));
        let is_dir = kind.is_dir();
        let Some((leaf, parents)) = components.split_last() else {
            // The destination itself.
            if !is_dir {
                return Err(format!(
                    "cannot overwrite directory {dest:?} with non-directory {dest:?}"
                ));
            }
            continue;
        };
        let parent = open_dir_nofollow(
            &root,
            &parents.iter().map(String::as_str).collect::<Vec<_>>(),
            true,
            &name,
        )?;
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let mut exists_as_dir = false;
        if let Ok(st) = statat(&parent, leaf.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if existing_dir && !is_dir {
                return Err(format!(
                    "cannot overwrite directory {path:?} with non-directory {dest:?}"
                ));
            }
            if !existing_dir && is_dir {
                return Err(format!(
                    "cannot overwrite non-directory {path:?} with directory {dest:?}"
                ));
            }
            if existing_dir {
                exists_as_dir = true;
            } else {
                unlinkat(&parent, leaf.as_str(), AtFlags::empty()).map_err(os)?;
            }
        }
        let mtime = header.mtime().unwrap_or(0);
        match kind {
            tar::EntryType::Directory => {
                if !exists_as_dir {
                    mkdirat(&parent, leaf.as_str(), mode).map_err(os)?;
                }
                chmodat(&parent, leaf.as_str(), mode, AtFlags::empty()).map_err(os)?;
                dir_times.push((components.clone(), mtime));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = openat(
                    &parent,
                    leaf.as_str(),
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(os)?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut entry, &mut f).map_err(os)?;
                chmodat(&parent, leaf.as_str(), mode, AtFlags::empty()).map_err(os)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if !stays_inside(parents, &target) {
                    return Err(format!("invalid symlink {path:?} -> {target:?}"));
                }
                symlinkat(target.as_str(), &parent, leaf.as_str()).map_err(os)?;
            }
            tar::EntryType::Link => {
                let mut target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                for r in renames {
                    target = rebase_name(&target, r);
                }
                let tc = entry_components(&target)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| format!("invalid hardlink {path:?} -> {target:?}"))?;
                let (tleaf, tparents) = tc.split_last().expect("non-empty");
                let tdir = open_dir_nofollow(
                    &root,
                    &tparents.iter().map(String::as_str).collect::<Vec<_>>(),
                    false,
                    &target,
                )?;
                linkat(
                    &tdir,
                    tleaf.as_str(),
                    &parent,
                    leaf.as_str(),
                    AtFlags::empty(),
                )
                .map_err(os)?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = libc::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                mknodat(&parent, leaf.as_str(), ft, mode, dev).map_err(os)?;
                chmodat(&parent, leaf.as_str(), mode, AtFlags::empty()).map_err(os)?;
            }
            other => {
                return Err(format!("unhandled tar header type {}", other.as_byte()));
            }
        }
        let _ = utimensat(
            &parent,
            leaf.as_str(),
            &timestamps(mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        );
    }
    // Directory times last, as their contents changed them.
    for (components, mtime) in dir_times.iter().rev() {
        if let Some((leaf, parents)) = components.split_last()
            && let Ok(parent) = open_dir_nofollow(
                &root,
                &parents.iter().map(String::as_str).collect::<Vec<_>>(),
                false,
                leaf,
            )
        {
            let _ = utimensat(
                &parent,
                leaf.as_str(),
                &timestamps(*mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_helpers() {
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base("/"), "/");
        assert_eq!(base(""), ".");
        assert_eq!(dir("/a/b"), "/a");
        assert_eq!(dir("a"), ".");
        assert_eq!(split_path_dir_entry("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_path_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(preserve_trailing_dot_or_separator("/x/y", "y/."), "/x/y/.");
        assert_eq!(preserve_trailing_dot_or_separator("/x/y", "y/"), "/x/y/");
        assert_eq!(preserve_trailing_dot_or_separator("/x/y", "y"), "/x/y");
        assert!(asserts_directory("/x/"));
        assert!(asserts_directory("/x/."));
        assert!(!asserts_directory("/x"));
        assert_eq!(
            get_rebase_name("/a/link", "/a/real"),
            ("/a/real".into(), "link".into())
        );
        assert_eq!(
            get_rebase_name("/a/link/.", "/a/real"),
            ("/a/real/.".into(), String::new())
        );
        assert_eq!(relative("/a", "/a/b/c"), "b/c");
        assert_eq!(relative("/", "/etc"), "etc");
        assert_eq!(relative("/a", "/a"), ".");
    }

    fn info(path: &str, exists: bool, is_dir: bool) -> CopyInfo {
        CopyInfo {
            path: path.into(),
            exists,
            is_dir,
            rebase_name: String::new(),
        }
    }

    #[test]
    fn copy_destinations() {
        let file = info("/src/f", true, false);
        let dirsrc = info("/src/d", true, true);
        assert_eq!(
            prepare_archive_copy(&file, &info("/dst", true, true)).unwrap(),
            ("/dst".into(), None)
        );
        assert_eq!(
            prepare_archive_copy(&file, &info("/dst/g", true, false)).unwrap(),
            ("/dst".into(), Some(("f".into(), "g".into())))
        );
        assert_eq!(
            prepare_archive_copy(&dirsrc, &info("/dst/g", true, false)).unwrap_err(),
            "cannot copy directory"
        );
        assert_eq!(
            prepare_archive_copy(&dirsrc, &info("/dst/new", false, false)).unwrap(),
            ("/dst".into(), Some(("d".into(), "new".into())))
        );
        assert_eq!(
            prepare_archive_copy(&file, &info("/dst/new/", false, false)).unwrap_err(),
            "no such directory"
        );
        assert_eq!(
            prepare_archive_copy(
                &info("/src/d/.", true, true),
                &info("/dst/new", false, false)
            )
            .unwrap(),
            ("/dst".into(), Some((".".into(), "new".into())))
        );
        assert_eq!(rebase_name("d/x", &("d".into(), "new".into())), "new/x");
        assert_eq!(rebase_name("./x", &(".".into(), "new".into())), "new/x");
        assert_eq!(rebase_name("x", &("/".into(), "n".into())), "nx");
    }

    #[test]
    fn entry_names() {
        assert_eq!(
            entry_components("a/b/../c"),
            Some(vec!["a".into(), "c".into()])
        );
        assert_eq!(
            entry_components("/etc/x"),
            Some(vec!["etc".into(), "x".into()])
        );
        assert_eq!(entry_components("./"), Some(vec![]));
        assert_eq!(entry_components("../x"), None);
        assert_eq!(entry_components(".."), None);
        assert!(stays_inside(&["a".into()], "../b"));
        assert!(!stays_inside(&["a".into()], "../../b"));
        assert!(!stays_inside(&[], "../etc/passwd"));
        assert!(stays_inside(&[], "/etc/passwd"));
    }

    /// A scratch directory removed when the test ends, pass or fail.
    struct Scratch(std::path::PathBuf);
    impl std::ops::Deref for Scratch {
        type Target = std::path::PathBuf;
        fn deref(&self) -> &std::path::PathBuf {
            &self.0
        }
    }
    impl AsRef<std::path::Path> for Scratch {
        fn as_ref(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmpdir(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("berth-cp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    /// A tar with names written raw (the tar crate refuses `..` in names it sets).
    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_mtime(1_000_000);
            let body: &[u8] = match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
                    &[]
                }
                _ => data.as_bytes(),
            };
            h.set_size(body.len() as u64);
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn round_trip_directory() {
        let src = tmpdir("src");
        std::fs::create_dir_all(src.join("d/sub")).unwrap();
        std::fs::write(src.join("d/a.txt"), "alpha").unwrap();
        std::fs::write(src.join("d/sub/b.txt"), "beta").unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("d/link")).unwrap();
        std::fs::hard_link(src.join("d/a.txt"), src.join("d/hard")).unwrap();
        let info = copy_info_source_path(&format!("{}/d", src.display()), false).unwrap();
        assert!(info.is_dir);
        let dst = tmpdir("dst");
        let r = tar_resource(&info, Some(("d".into(), "copy".into()))).unwrap();
        untar(r, dst.to_str().unwrap(), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.join("copy/a.txt")).unwrap(),
            "alpha"
        );
        assert_eq!(
            std::fs::read_to_string(dst.join("copy/sub/b.txt")).unwrap(),
            "beta"
        );
        assert_eq!(
            std::fs::read_link(dst.join("copy/link")).unwrap().to_str(),
            Some("a.txt")
        );
        assert_eq!(
            std::fs::read_to_string(dst.join("copy/hard")).unwrap(),
            "alpha"
        );
        // Contents only, with "/.".
        let dst2 = tmpdir("dst2");
        let info = copy_info_source_path(&format!("{}/d/.", src.display()), false).unwrap();
        untar(
            tar_resource(&info, None).unwrap(),
            dst2.to_str().unwrap(),
            &[],
        )
        .unwrap();
        assert!(dst2.join("a.txt").exists() && dst2.join("sub/b.txt").exists());
        let _ = std::fs::remove_dir_all(&src);
        let _ = std::fs::remove_dir_all(&dst);
        let _ = std::fs::remove_dir_all(&dst2);
    }

    #[test]
    fn extraction_never_leaves_the_destination() {
        let outside = tmpdir("outside");
        let dst = tmpdir("guarded");
        std::os::unix::fs::symlink(&outside, dst.join("escape")).unwrap();
        // Writing through an existing symlink is refused.
        let t = tar_of(&[("escape/pwned", tar::EntryType::Regular, "x")]);
        let e = untar(&t[..], dst.to_str().unwrap(), &[]).unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(!outside.join("pwned").exists());
        // A symlink planted by the archive is not followed either.
        let t = tar_of(&[
            ("evil", tar::EntryType::Symlink, "/"),
            ("evil/tmp/pwned2", tar::EntryType::Regular, "x"),
        ]);
        assert!(untar(&t[..], dst.to_str().unwrap(), &[]).is_err());
        // Relative links out, hard links out and ../ names are refused.
        let t = tar_of(&[("up", tar::EntryType::Symlink, "../../etc")]);
        assert!(
            untar(&t[..], dst.to_str().unwrap(), &[])
                .unwrap_err()
                .starts_with("invalid symlink")
        );
        let t = tar_of(&[("../x", tar::EntryType::Regular, "x")]);
        assert!(
            untar(&t[..], dst.to_str().unwrap(), &[])
                .unwrap_err()
                .contains("is outside of")
        );
        let t = tar_of(&[("h", tar::EntryType::Link, "../../etc/passwd")]);
        assert!(
            untar(&t[..], dst.to_str().unwrap(), &[])
                .unwrap_err()
                .starts_with("invalid hardlink")
        );
        // Directories and files do not replace each other.
        std::fs::create_dir(dst.join("adir")).unwrap();
        let t = tar_of(&[("adir", tar::EntryType::Regular, "x")]);
        assert!(
            untar(&t[..], dst.to_str().unwrap(), &[])
                .unwrap_err()
                .starts_with("cannot overwrite directory")
        );
        // An existing file is replaced.
        std::fs::write(dst.join("f"), "old").unwrap();
        let t = tar_of(&[("f", tar::EntryType::Regular, "new")]);
        untar(&t[..], dst.to_str().unwrap(), &[]).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "new");
        let _ = std::fs::remove_dir_all(&outside);
        let _ = std::fs::remove_dir_all(&dst);
    }
}
