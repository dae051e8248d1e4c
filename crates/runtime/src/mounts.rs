//! The container's mounts: parsed from the spec in the parent, performed in the child. Every
//! destination is resolved inside the rootfs (openat2 RESOLVE_IN_ROOT) and mounted onto
//! `/proc/self/fd/N` of that O_PATH fd, so a symlink in the image cannot point a mount at the
//! host.

use std::ffi::CString;

use libc::{c_int, c_ulong};

use crate::cgroup::{Cgroup, Layout};
use crate::error::{Error, Result};
use crate::paths::{InRoot, cstring};
use crate::process::step;
use crate::spec::Mount;
use crate::sys::{self, Errno};

pub(crate) type StepErr = (u32, Errno);

#[derive(Debug)]
pub(crate) enum Kind {
    Bind { source: CString, recursive: bool },
    Fs { fstype: CString, source: CString },
    Cgroup(CgroupMount),
}

/// `/sys/fs/cgroup` inside the container: on v1 a tmpfs with one mount per hierarchy.
#[derive(Debug)]
pub(crate) struct CgroupMount {
    v2: bool,
    /// Mount cgroupfs itself (own cgroup namespace) rather than binding the host directories.
    own_ns: bool,
    subs: Vec<CgroupSub>,
    /// v2 without a cgroup namespace: the container's host directory.
    host_dir: Option<CString>,
}

#[derive(Debug)]
struct CgroupSub {
    dir: InRoot,
    data: CString,
    host_dir: CString,
}

#[derive(Debug)]
pub(crate) struct MountOp {
    pub dest: InRoot,
    pub kind: Kind,
    /// MS_* flags for a new filesystem.
    flags: c_ulong,
    data: Option<CString>,
    /// Flags a bind mount gets after it is made.
    attr: libc::mount_attr,
    /// MS_PRIVATE|MS_REC…, applied last.
    propagation: c_ulong,
    leaf_file: bool,
    /// Made inside a user namespace: what it may not mount (sysfs of a network namespace it
    /// does not own, mqueue of a foreign IPC namespace, cgroupfs) is bound from the host,
    /// as runc does.
    pub in_userns: bool,
}

impl MountOp {
    pub fn is_bind(&self) -> bool {
        matches!(self.kind, Kind::Bind { .. })
    }

    pub fn fstype(&self) -> Option<&str> {
        match &self.kind {
            Kind::Fs { fstype, .. } => fstype.to_str().ok(),
            _ => None,
        }
    }
}

fn attr_empty(a: &libc::mount_attr) -> bool {
    a.attr_set == 0 && a.attr_clr == 0 && a.propagation == 0
}

/// Options → (MS flags, mount_setattr attrs, propagation, bind, recursive, data).
struct Parsed {
    flags: c_ulong,
    attr: libc::mount_attr,
    propagation: c_ulong,
    bind: bool,
    recursive: bool,
    data: Vec<String>,
}

fn parse_options(opts: &[String]) -> Parsed {
    use libc::*;
    let mut p = Parsed {
        flags: 0,
        attr: mount_attr {
            attr_set: 0,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        },
        propagation: 0,
        bind: false,
        recursive: false,
        data: Vec::new(),
    };
    let set = |p: &mut Parsed, ms: c_ulong, attr: u64| {
        p.flags |= ms;
        p.attr.attr_set |= attr;
        p.attr.attr_clr &= !attr;
    };
    let clr = |p: &mut Parsed, ms: c_ulong, attr: u64| {
        p.flags &= !ms;
        p.attr.attr_clr |= attr;
        p.attr.attr_set &= !attr;
    };
    let atime = |p: &mut Parsed, ms: c_ulong, attr: u64| {
        p.flags &= !(MS_NOATIME | MS_RELATIME | MS_STRICTATIME);
        p.flags |= ms;
        p.attr.attr_clr |= MOUNT_ATTR__ATIME;
        p.attr.attr_set = (p.attr.attr_set & !MOUNT_ATTR__ATIME) | attr;
    };
    for o in opts {
        match o.as_str() {
            "ro" => set(&mut p, MS_RDONLY, MOUNT_ATTR_RDONLY),
            "rw" => clr(&mut p, MS_RDONLY, MOUNT_ATTR_RDONLY),
            "nosuid" => set(&mut p, MS_NOSUID, MOUNT_ATTR_NOSUID),
            "suid" => clr(&mut p, MS_NOSUID, MOUNT_ATTR_NOSUID),
            "nodev" => set(&mut p, MS_NODEV, MOUNT_ATTR_NODEV),
            "dev" => clr(&mut p, MS_NODEV, MOUNT_ATTR_NODEV),
            "noexec" => set(&mut p, MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            "exec" => clr(&mut p, MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            "noatime" => atime(&mut p, MS_NOATIME, MOUNT_ATTR_NOATIME),
            "relatime" => atime(&mut p, MS_RELATIME, MOUNT_ATTR_RELATIME),
            "strictatime" => atime(&mut p, MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
            "nodiratime" => set(&mut p, MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
            "diratime" => clr(&mut p, MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
            "sync" => p.flags |= MS_SYNCHRONOUS,
            "async" => p.flags &= !MS_SYNCHRONOUS,
            "dirsync" => p.flags |= MS_DIRSYNC,
            "bind" => p.bind = true,
            "rbind" => {
                p.bind = true;
                p.recursive = true;
            }
            "private" => p.propagation = MS_PRIVATE,
            "rprivate" => p.propagation = MS_PRIVATE | MS_REC,
            "slave" => p.propagation = MS_SLAVE,
            "rslave" => p.propagation = MS_SLAVE | MS_REC,
            "shared" => p.propagation = MS_SHARED,
            "rshared" => p.propagation = MS_SHARED | MS_REC,
            "unbindable" => p.propagation = MS_UNBINDABLE,
            "runbindable" => p.propagation = MS_UNBINDABLE | MS_REC,
            // runc extensions and userspace-only options: nothing for the kernel.
            "defaults" | "tmpcopyup" | "copyup" | "nocopyup" | "remount" => {}
            o if o.starts_with("X-") || o.starts_with("x-") => {}
            o => p.data.push(o.to_string()),
        }
    }
    p
}

/// Mount propagation type name → MS flags (for `rootfsPropagation`).
pub(crate) fn propagation_flags(name: &str) -> Result<c_ulong> {
    use libc::*;
    Ok(match name {
        "" | "private" | "rprivate" => MS_PRIVATE | MS_REC,
        "slave" | "rslave" => MS_SLAVE | MS_REC,
        "shared" | "rshared" => MS_SHARED | MS_REC,
        "unbindable" | "runbindable" => MS_UNBINDABLE | MS_REC,
        o => {
            return Err(Error::InvalidSpec(format!(
                "unknown rootfs propagation {o:?}"
            )));
        }
    })
}

/// Context the cgroup mount needs.
pub(crate) struct CgroupCtx<'a> {
    pub own_ns: bool,
    pub cgroup: Option<&'a Cgroup>,
}

impl MountOp {
    pub fn new(m: &Mount, cg: &CgroupCtx) -> Result<MountOp> {
        if !m.destination.starts_with('/') {
            return Err(Error::InvalidSpec(format!(
                "mount destination {:?} is not absolute",
                m.destination
            )));
        }
        let dest = InRoot::new(&m.destination)?;
        let p = parse_options(&m.options);
        let data = if p.data.is_empty() {
            None
        } else {
            Some(cstring(&p.data.join(","), "mount option")?)
        };
        let mut leaf_file = false;
        let kind = if p.bind || m.kind == "bind" {
            if !m.source.starts_with('/') {
                return Err(Error::InvalidSpec(format!(
                    "bind mount source {:?} is not absolute",
                    m.source
                )));
            }
            let md = std::fs::metadata(&m.source).map_err(|e| {
                Error::io(format!("invalid mount config for type \"bind\": bind source path does not exist: {}", m.source), e)
            })?;
            leaf_file = !md.is_dir();
            Kind::Bind {
                source: cstring(&m.source, "mount source")?,
                recursive: p.recursive,
            }
        } else if m.kind == "cgroup" || m.kind == "cgroup2" {
            Kind::Cgroup(CgroupMount::new(cg, &crate::paths::clean(&m.destination))?)
        } else {
            if m.kind.is_empty() {
                return Err(Error::InvalidSpec(format!(
                    "mount {:?} has no type",
                    m.destination
                )));
            }
            let source = if m.source.is_empty() {
                m.kind.as_str()
            } else {
                m.source.as_str()
            };
            Kind::Fs {
                fstype: cstring(&m.kind, "mount type")?,
                source: cstring(source, "mount source")?,
            }
        };
        Ok(MountOp {
            dest,
            kind,
            flags: p.flags,
            data,
            attr: p.attr,
            propagation: p.propagation,
            leaf_file,
            in_userns: false,
        })
    }

    /// Child side.
    pub fn apply(&self, root: c_int) -> Result<(), StepErr> {
        self.dest
            .create(root, self.leaf_file)
            .map_err(|e| (step::MOUNT_POINT, e))?;
        let fd = self
            .dest
            .open(root, 0)
            .map_err(|e| (step::MOUNT_POINT, e))?;
        let mut b = [0u8; 32];
        let target = sys::proc_fd_path(fd, &mut b);
        let r = match &self.kind {
            Kind::Bind { source, recursive } => {
                let rec = if *recursive { libc::MS_REC } else { 0 };
                sys::mount(Some(source), target, None, libc::MS_BIND | rec, None)
                    .map_err(|e| (step::MOUNT, e))
            }
            Kind::Fs { fstype, source } => match sys::mount(
                Some(source),
                target,
                Some(fstype),
                self.flags,
                self.data.as_deref(),
            ) {
                Err(libc::EPERM) if self.in_userns && host_fallback(fstype).is_some() => {
                    let host = host_fallback(fstype).unwrap_or(c"/sys");
                    self.bind_host(root, host, target)
                }
                r => r.map_err(|e| (step::MOUNT, e)),
            },
            Kind::Cgroup(c) => c.apply(root, target, self.flags, self.in_userns),
        };
        sys::close(fd);
        r?;
        let bind_attr = self.is_bind() && !attr_empty(&self.attr);
        let cgroup_ro =
            matches!(self.kind, Kind::Cgroup(ref c) if !c.v2) && self.flags & libc::MS_RDONLY != 0;
        if bind_attr || cgroup_ro || self.propagation != 0 {
            // Reopen: the fd now names the new mount's root, not what lies under it.
            let fd = self.dest.open(root, 0).map_err(|e| (step::MOUNT_ATTR, e))?;
            let mut r = Ok(());
            if bind_attr {
                let rec = if matches!(
                    self.kind,
                    Kind::Bind {
                        recursive: true,
                        ..
                    }
                ) {
                    libc::AT_RECURSIVE
                } else {
                    0
                };
                r = sys::mount_setattr(fd, rec, &self.attr);
            }
            if r.is_ok() && cgroup_ro {
                r = sys::mount_setattr(fd, 0, &ro_attr());
            }
            if r.is_ok() && self.propagation != 0 {
                let mut b = [0u8; 32];
                r = sys::mount(
                    None,
                    sys::proc_fd_path(fd, &mut b),
                    None,
                    self.propagation,
                    None,
                );
            }
            sys::close(fd);
            r.map_err(|e| (step::MOUNT_ATTR, e))?;
        }
        Ok(())
    }
}

/// What a user namespace binds from the host when it may not mount a filesystem itself.
fn host_fallback(fstype: &std::ffi::CStr) -> Option<&'static std::ffi::CStr> {
    match fstype.to_bytes() {
        b"sysfs" => Some(c"/sys"),
        b"mqueue" => Some(c"/dev/mqueue"),
        _ => None,
    }
}

impl MountOp {
    /// Recursive bind of the host's `host` at `target`, with the flags the mount asked for
    /// (only ever added: a user namespace may not clear flags of mounts it inherited).
    fn bind_host(
        &self,
        root: c_int,
        host: &std::ffi::CStr,
        target: &std::ffi::CStr,
    ) -> Result<(), StepErr> {
        sys::mount(Some(host), target, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| (step::MOUNT, e))?;
        let attr = libc::mount_attr {
            attr_set: self.attr.attr_set
                & (libc::MOUNT_ATTR_RDONLY
                    | libc::MOUNT_ATTR_NOSUID
                    | libc::MOUNT_ATTR_NODEV
                    | libc::MOUNT_ATTR_NOEXEC),
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        if attr.attr_set != 0 {
            let fd = self.dest.open(root, 0).map_err(|e| (step::MOUNT_ATTR, e))?;
            let r = sys::mount_setattr(fd, libc::AT_RECURSIVE, &attr);
            sys::close(fd);
            r.map_err(|e| (step::MOUNT_ATTR, e))?;
        }
        Ok(())
    }
}

pub(crate) fn ro_attr() -> libc::mount_attr {
    libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    }
}

impl CgroupMount {
    fn new(cg: &CgroupCtx, dest: &str) -> Result<CgroupMount> {
        let layout = Layout::host()?;
        let rel = cg
            .cgroup
            .map(|c| c.path().trim_start_matches('/').to_string())
            .unwrap_or_default();
        match layout {
            Layout::V2(root) => Ok(CgroupMount {
                v2: true,
                own_ns: cg.own_ns,
                subs: Vec::new(),
                host_dir: Some(cstring(&root.join(&rel).to_string_lossy(), "cgroup path")?),
            }),
            Layout::V1(hs) => {
                let mut subs = Vec::new();
                for h in hs {
                    let name = h
                        .mount
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if name.is_empty() {
                        continue;
                    }
                    subs.push(CgroupSub {
                        dir: InRoot::new(&format!("{dest}/{name}"))?,
                        data: cstring(&h.mount_data(), "cgroup options")?,
                        host_dir: cstring(&h.mount.join(&rel).to_string_lossy(), "cgroup path")?,
                    });
                }
                Ok(CgroupMount {
                    v2: false,
                    own_ns: cg.own_ns,
                    subs,
                    host_dir: None,
                })
            }
        }
    }

    fn apply(
        &self,
        root: c_int,
        target: &std::ffi::CStr,
        flags: c_ulong,
        in_userns: bool,
    ) -> Result<(), StepErr> {
        let m = |e| (step::MOUNT, e);
        let base = flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        if self.v2 {
            if self.own_ns {
                match sys::mount(Some(c"cgroup2"), target, Some(c"cgroup2"), flags, None) {
                    Err(libc::EPERM) if in_userns => {}
                    r => return r.map_err(m),
                }
            }
            let src = self.host_dir.as_deref().unwrap_or(c"/sys/fs/cgroup");
            return sys::mount(Some(src), target, None, libc::MS_BIND | libc::MS_REC, None)
                .map_err(m);
        }
        // The tmpfs stays writable until every hierarchy is mounted in it; `apply` makes it
        // read-only afterwards when asked.
        sys::mount(
            Some(c"tmpfs"),
            target,
            Some(c"tmpfs"),
            base,
            Some(c"mode=755"),
        )
        .map_err(m)?;
        for s in &self.subs {
            s.dir
                .create(root, false)
                .map_err(|e| (step::MOUNT_POINT, e))?;
            let fd = s.dir.open(root, 0).map_err(|e| (step::MOUNT_POINT, e))?;
            let mut b = [0u8; 32];
            let t = sys::proc_fd_path(fd, &mut b);
            let bind = |t| {
                sys::mount(
                    Some(&s.host_dir),
                    t,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
            };
            let mut bound = !self.own_ns;
            let r = if self.own_ns {
                match sys::mount(Some(c"cgroup"), t, Some(c"cgroup"), flags, Some(&s.data)) {
                    Err(libc::EPERM) if in_userns => {
                        bound = true;
                        bind(t)
                    }
                    r => r,
                }
            } else {
                bind(t)
            };
            sys::close(fd);
            r.map_err(m)?;
            if bound && flags & libc::MS_RDONLY != 0 {
                let fd = s.dir.open(root, 0).map_err(|e| (step::MOUNT_ATTR, e))?;
                let r = sys::mount_setattr(fd, libc::AT_RECURSIVE, &ro_attr());
                sys::close(fd);
                r.map_err(|e| (step::MOUNT_ATTR, e))?;
            }
        }
        Ok(())
    }
}

/// A device node in the container's /dev.
#[derive(Debug)]
pub(crate) struct DevOp {
    pub display: String,
    dir: Option<InRoot>,
    name: CString,
    kind: u32,
    perm: u32,
    rdev: u64,
    uid: u32,
    gid: u32,
    host: CString,
}

impl DevOp {
    pub fn new(
        path: &str,
        kind: &str,
        major: i64,
        minor: i64,
        mode: Option<u32>,
        uid: u32,
        gid: u32,
    ) -> Result<DevOp> {
        let comps = crate::paths::components(path);
        let Some((name, dir)) = comps.split_last() else {
            return Err(Error::InvalidSpec(format!("invalid device path {path:?}")));
        };
        let kind = match kind {
            "c" | "u" => libc::S_IFCHR,
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            k => {
                return Err(Error::InvalidSpec(format!(
                    "invalid device type {k:?} for {path}"
                )));
            }
        };
        Ok(DevOp {
            display: format!("/{}", comps.join("/")),
            dir: if dir.is_empty() {
                None
            } else {
                Some(InRoot::new(&dir.join("/"))?)
            },
            name: cstring(name, "device path")?,
            kind,
            perm: mode.unwrap_or(0o666) & 0o7777,
            rdev: libc::makedev(major as u32, minor as u32),
            uid,
            gid,
            host: cstring(&format!("/{}", comps.join("/")), "device path")?,
        })
    }

    /// Child side: mknod, or bind the host's node onto an empty file we made. An existing
    /// entry is used only if it is already the right device or a plain file to cover;
    /// a symlink or anything else is refused (CVE-2025-31133 family).
    pub fn apply(&self, root: c_int) -> Result<(), StepErr> {
        let d = |e| (step::DEVICE, e);
        let dirfd = match &self.dir {
            Some(dir) => {
                dir.create(root, false).map_err(d)?;
                dir.open(root, libc::O_DIRECTORY).map_err(d)?
            }
            None => root,
        };
        let r = self.make(dirfd);
        if dirfd != root {
            sys::close(dirfd);
        }
        r
    }

    fn make(&self, dirfd: c_int) -> Result<(), StepErr> {
        let d = |e| (step::DEVICE, e);
        match sys::mknodat(dirfd, &self.name, self.kind | self.perm, self.rdev) {
            Ok(()) => sys::fchownat(
                dirfd,
                &self.name,
                self.uid,
                self.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(d),
            Err(libc::EEXIST) => {
                let st = sys::fstatat(dirfd, &self.name, libc::AT_SYMLINK_NOFOLLOW).map_err(d)?;
                let fmt = st.st_mode & libc::S_IFMT;
                if fmt == self.kind && st.st_rdev == self.rdev {
                    Ok(())
                } else if fmt == libc::S_IFREG {
                    self.bind_host(dirfd)
                } else {
                    Err((step::DEVICE_REFUSED, libc::EEXIST))
                }
            }
            Err(libc::EPERM) => {
                let fd = sys::openat(
                    dirfd,
                    &self.name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o644,
                )
                .map_err(d)?;
                sys::close(fd);
                self.bind_host(dirfd)
            }
            Err(e) => Err(d(e)),
        }
    }

    fn bind_host(&self, dirfd: c_int) -> Result<(), StepErr> {
        let fd = sys::openat(dirfd, &self.name, libc::O_PATH | libc::O_NOFOLLOW, 0)
            .map_err(|e| (step::DEVICE, e))?;
        let r = match sys::fstat(fd) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
                let mut b = [0u8; 32];
                sys::mount(
                    Some(&self.host),
                    sys::proc_fd_path(fd, &mut b),
                    None,
                    libc::MS_BIND,
                    None,
                )
                .map_err(|e| (step::DEVICE, e))
            }
            Ok(_) => Err((step::DEVICE_REFUSED, libc::EEXIST)),
            Err(e) => Err((step::DEVICE, e)),
        };
        sys::close(fd);
        r
    }
}

/// docker's (runc's) default device nodes.
pub(crate) fn default_devices() -> Result<Vec<DevOp>> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .iter()
    .map(|(p, ma, mi)| DevOp::new(p, "c", *ma, *mi, Some(0o666), 0, 0))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Parsed {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        let p = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(p.data, vec!["mode=755", "size=65536k"]);
        let p = opts(&["rbind", "rprivate", "ro"]);
        assert!(p.bind && p.recursive);
        assert_eq!(p.propagation, libc::MS_PRIVATE | libc::MS_REC);
        assert_eq!(p.attr.attr_set, libc::MOUNT_ATTR_RDONLY);
        let p = opts(&["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
        assert_eq!(
            p.data.join(","),
            "newinstance,ptmxmode=0666,mode=0620,gid=5"
        );
    }

    #[test]
    fn propagation() {
        assert_eq!(
            propagation_flags("").unwrap(),
            libc::MS_PRIVATE | libc::MS_REC
        );
        assert_eq!(
            propagation_flags("rslave").unwrap(),
            libc::MS_SLAVE | libc::MS_REC
        );
        assert!(propagation_flags("weird").is_err());
    }
}
