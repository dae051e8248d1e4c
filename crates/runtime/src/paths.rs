//! Container paths prepared in the parent so the child can walk them without allocating.

use std::ffi::CString;

use crate::error::{Error, Result};
use crate::sys::{self, Res};

/// Cleans an absolute container path lexically (`//`, `.`, `..` at the root) and returns its
/// components.
pub fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `/a/b/../c` → `/a/c`.
pub fn clean(path: &str) -> String {
    let c = components(path);
    if c.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", c.join("/"))
    }
}

pub(crate) fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidSpec(format!("{what} contains a NUL byte: {s:?}")))
}

/// A path inside the container root, relative to it, pre-split for `mkdir -p` in the child.
#[derive(Debug)]
pub(crate) struct InRoot {
    /// `dev/pts`
    pub full: CString,
    /// `dev`, `dev/pts`
    pub prefixes: Vec<CString>,
    /// `dev`, `pts`
    pub names: Vec<CString>,
    /// `/dev/pts`, for messages.
    pub display: String,
}

impl InRoot {
    pub fn new(path: &str) -> Result<InRoot> {
        let comps = components(path);
        if comps.is_empty() {
            return Err(Error::InvalidSpec(format!(
                "path {path:?} names the container root"
            )));
        }
        let mut prefixes = Vec::with_capacity(comps.len());
        let mut names = Vec::with_capacity(comps.len());
        for (i, c) in comps.iter().enumerate() {
            prefixes.push(cstring(&comps[..=i].join("/"), "path")?);
            names.push(cstring(c, "path")?);
        }
        Ok(InRoot {
            full: cstring(&comps.join("/"), "path")?,
            prefixes,
            names,
            display: format!("/{}", comps.join("/")),
        })
    }

    /// Creates what is missing inside `root`: directories, and the last component as an
    /// empty file when `leaf_file`. Each step opens its parent with RESOLVE_IN_ROOT and
    /// creates one plain name in it, so nothing is created outside the root.
    pub fn create(&self, root: i32, leaf_file: bool) -> Res<()> {
        if let Ok(fd) = sys::open_in_root(root, &self.full, libc::O_PATH) {
            sys::close(fd);
            return Ok(());
        }
        let n = self.prefixes.len();
        for i in 0..n {
            match sys::open_in_root(root, &self.prefixes[i], libc::O_PATH) {
                Ok(fd) => {
                    sys::close(fd);
                    continue;
                }
                Err(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let parent = if i == 0 {
                root
            } else {
                sys::open_in_root(
                    root,
                    &self.prefixes[i - 1],
                    libc::O_PATH | libc::O_DIRECTORY,
                )?
            };
            let r = if i == n - 1 && leaf_file {
                sys::openat(
                    parent,
                    &self.names[i],
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o644,
                )
                .map(sys::close)
            } else {
                sys::mkdirat(parent, &self.names[i], 0o755)
            };
            if i > 0 {
                sys::close(parent);
            }
            match r {
                Ok(()) | Err(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// O_PATH fd of the path inside `root`.
    pub fn open(&self, root: i32, flags: i32) -> Res<i32> {
        sys::open_in_root(root, &self.full, libc::O_PATH | flags)
    }
}

/// `mkdir -p` for an absolute path in the current root (after pivot_root), prepared in the
/// parent: every prefix as its own string.
#[derive(Debug)]
pub(crate) struct Abs {
    pub full: CString,
    pub prefixes: Vec<CString>,
}

impl Abs {
    pub fn new(path: &str) -> Result<Abs> {
        let comps = components(path);
        let mut prefixes = Vec::with_capacity(comps.len());
        for i in 0..comps.len() {
            prefixes.push(cstring(&format!("/{}", comps[..=i].join("/")), "path")?);
        }
        Ok(Abs {
            full: cstring(path, "path")?,
            prefixes,
        })
    }

    pub fn mkdir_all(&self) {
        for p in &self.prefixes {
            // Errors surface at chdir with a better message.
            // SAFETY: p is NUL-terminated.
            unsafe {
                libc::syscall(
                    libc::SYS_mkdirat,
                    libc::AT_FDCWD as libc::c_long,
                    p.as_ptr(),
                    0o755 as libc::c_long,
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning() {
        assert_eq!(clean("/a//b/./c/../d"), "/a/b/d");
        assert_eq!(clean("/../../etc"), "/etc");
        assert_eq!(clean("relative/x"), "/relative/x");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn in_root_split() {
        let p = InRoot::new("/dev/../dev/pts/").unwrap();
        assert_eq!(p.full.to_str().unwrap(), "dev/pts");
        assert_eq!(p.prefixes.len(), 2);
        assert_eq!(p.prefixes[0].to_str().unwrap(), "dev");
        assert_eq!(p.names[1].to_str().unwrap(), "pts");
        assert_eq!(p.display, "/dev/pts");
        assert!(InRoot::new("/..").is_err());
    }
}
