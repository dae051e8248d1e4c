//! Mount plumbing: overlay mounts through the new mount API (one `lowerdir+` per layer, no
//! option-length limit) or legacy mount(2) with short relative lowerdirs, read-only overlay
//! views that are never attached anywhere, bind mounts, unmount, and mount-table queries.
//!
//! berthd is multi-threaded, so nothing here changes the process's working directory or mount
//! namespace: where a relative path or private namespace is needed, a short-lived helper thread
//! unshares its own (`CLONE_FS` / `CLONE_NEWNS`) and does the work.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    self as rm, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags,
    MoveMountFlags, UnmountFlags,
};

/// Options that keep an upper dir a self-contained diff: no index, no redirects followed or
/// created, no metadata-only copy-up.
const OVERLAY_OPTS: [(&str, &str); 3] = [
    ("index", "off"),
    ("redirect_dir", "nofollow"),
    ("metacopy", "off"),
];

/// fsconfig(2) copies string values of at most this many bytes.
const FSCONFIG_MAX: usize = 255;

/// One page: legacy mount(2) data is copied into a page.
const PAGE_LIMIT: usize = 4095;

pub(crate) struct Overlay<'a> {
    /// Lower layer directories, top first.
    pub lowers: &'a [PathBuf],
    /// (upperdir, workdir) for a writable mount.
    pub upper: Option<(&'a Path, &'a Path)>,
    pub readonly: bool,
    /// `volatile`: no syncs on copy-up or unmount (throwaway uppers, e.g. build steps).
    pub volatile: bool,
}

pub(crate) enum MountError {
    /// The kernel can't do this through the new API (no fsopen, no `lowerdir+`, path too long).
    Unsupported(String),
    Failed(io::Error),
}

/// Reads the kernel's messages from an fs-context fd (lines like "e overlayfs: …").
fn fs_log(fd: &OwnedFd) -> String {
    let mut msgs = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        msgs.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    msgs.join("; ")
}

fn with_log(fd: &OwnedFd, what: &str, e: Errno) -> MountError {
    let log = fs_log(fd);
    let msg = if log.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {e} ({log})")
    };
    MountError::Failed(io::Error::new(io::Error::from(e).kind(), msg))
}

fn path_str(p: &Path) -> Result<&str, MountError> {
    let s = p
        .to_str()
        .ok_or_else(|| MountError::Unsupported(format!("{} is not UTF-8", p.display())))?;
    if s.len() > FSCONFIG_MAX {
        return Err(MountError::Unsupported(format!(
            "{s} is longer than fsconfig accepts"
        )));
    }
    Ok(s)
}

/// Sets a directory parameter, by fd where the kernel takes one (6.13+: no path-length limit,
/// no lookup by name), else by path. `by_fd` remembers which works.
fn set_dir(fs: &OwnedFd, key: &str, dir: &Path, by_fd: &mut bool) -> Result<(), MountError> {
    if *by_fd {
        let fd = crate::fsutil::open_dir(dir).map_err(|e| {
            MountError::Failed(io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
        })?;
        match rm::fsconfig_set_fd(fs, key, &fd) {
            Ok(()) => return Ok(()),
            Err(Errno::INVAL) => {
                let _ = fs_log(fs);
                *by_fd = false;
            }
            Err(e) => return Err(with_log(fs, &format!("{key} {}", dir.display()), e)),
        }
    }
    match rm::fsconfig_set_string(fs, key, path_str(dir)?) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL) if key == "lowerdir+" => {
            let log = fs_log(fs);
            if log.contains("nknown parameter") || log.is_empty() {
                return Err(MountError::Unsupported(format!(
                    "lowerdir+ not supported ({log})"
                )));
            }
            Err(MountError::Failed(io::Error::other(format!(
                "{key} {}: {log}",
                dir.display()
            ))))
        }
        Err(e) => Err(with_log(fs, &format!("{key} {}", dir.display()), e)),
    }
}

/// Builds an overlay with the new mount API and returns it as a detached mount (an fd usable as
/// a directory fd, or attachable with [`attach`]). It vanishes when the fd is closed unless
/// attached.
pub(crate) fn overlay_fsmount(spec: &Overlay<'_>) -> Result<OwnedFd, MountError> {
    let fs = match rm::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(e @ (Errno::NOSYS | Errno::NODEV)) => {
            return Err(MountError::Unsupported(format!("fsopen: {e}")));
        }
        Err(e) => {
            return Err(MountError::Failed(io::Error::other(format!(
                "fsopen(overlay): {e}"
            ))));
        }
    };
    rm::fsconfig_set_string(&fs, "source", "overlay")
        .map_err(|e| with_log(&fs, "fsconfig source", e))?;
    let mut by_fd = true;
    for l in spec.lowers {
        set_dir(&fs, "lowerdir+", l, &mut by_fd)?;
    }
    if let Some((upper, work)) = spec.upper {
        set_dir(&fs, "upperdir", upper, &mut by_fd)?;
        set_dir(&fs, "workdir", work, &mut by_fd)?;
    }
    for (k, v) in OVERLAY_OPTS {
        rm::fsconfig_set_string(&fs, k, v)
            .map_err(|e| with_log(&fs, &format!("option {k}={v}"), e))?;
    }
    // Best effort: kernels before 5.10 have no `volatile` (the mount then just syncs).
    if spec.volatile && spec.upper.is_some() && rm::fsconfig_set_flag(&fs, "volatile").is_err() {
        let _ = fs_log(&fs);
    }
    rm::fsconfig_create(&fs).map_err(|e| with_log(&fs, "creating overlay", e))?;
    let attrs = if spec.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    rm::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| with_log(&fs, "fsmount", e))
}

/// Attaches a detached mount at `target` in the caller's mount namespace.
pub(crate) fn attach(mnt: &OwnedFd, target: &Path) -> io::Result<()> {
    Ok(rm::move_mount(
        mnt,
        c"",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?)
}

/// Legacy mount(2) data: lowerdirs relative to `base` (short links), absolute upper/work.
pub(crate) fn legacy_data(
    rel_lowers: &[String],
    upper: Option<(&Path, &Path)>,
    volatile: bool,
) -> io::Result<String> {
    let mut data = format!("lowerdir={}", rel_lowers.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    for (k, v) in OVERLAY_OPTS {
        data.push_str(&format!(",{k}={v}"));
    }
    if volatile && upper.is_some() {
        data.push_str(",volatile");
    }
    if data.len() > PAGE_LIMIT {
        return Err(io::Error::other(format!(
            "overlay mount options are {} bytes, over the {PAGE_LIMIT}-byte limit of mount(2) (too many layers for a kernel without lowerdir+)",
            data.len()
        )));
    }
    Ok(data)
}

/// Runs `f` on a fresh thread (for per-thread unshare) and returns its result.
fn on_helper_thread<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::thread::Builder::new()
        .name("berth-mount".into())
        .spawn(f)?
        .join()
        .map_err(|_| io::Error::other("mount helper thread panicked"))?
}

fn do_legacy_mount(target: &Path, data: &str, readonly: bool) -> io::Result<()> {
    let data = CString::new(data).map_err(|_| io::Error::other("NUL in mount options"))?;
    let flags = if readonly {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    rm::mount("overlay", target, "overlay", flags, data.as_c_str()).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("mount overlay on {}: {e}", target.display()),
        )
    })
}

/// Legacy overlay mount at `target` (caller's namespace), with lowerdirs relative to `base`.
pub(crate) fn overlay_legacy(
    base: &Path,
    data: String,
    target: &Path,
    readonly: bool,
) -> io::Result<()> {
    let base = base.to_path_buf();
    let target = std::path::absolute(target)?;
    on_helper_thread(move || {
        // SAFETY: only this thread's fs context (cwd) stops being shared; nothing else in the
        // process relies on this thread's cwd.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS)? };
        rustix::process::chdir(&base)?;
        do_legacy_mount(&target, &data, readonly)
    })
}

/// Legacy read-only overlay view returned as an fd: mounted on `scratch` inside a private mount
/// namespace of a helper thread, so nothing ever appears in the caller's namespace; the fd keeps
/// the mount alive after the thread (and its namespace) is gone.
pub(crate) fn overlay_legacy_view(
    base: &Path,
    data: String,
    scratch: &Path,
) -> io::Result<OwnedFd> {
    let base = base.to_path_buf();
    let scratch = std::path::absolute(scratch)?;
    on_helper_thread(move || {
        // SAFETY: the new mount namespace (and cwd) are this thread's only; it exits right after.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)? };
        rm::mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )?;
        rustix::process::chdir(&base)?;
        do_legacy_mount(&scratch, &data, true)?;
        Ok(rustix::fs::open(
            &scratch,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    })
}

/// Bind-mounts `src` on `target`, read-only if asked.
pub(crate) fn bind(src: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    rm::mount_bind(src, target).map_err(|e| {
        io::Error::other(format!(
            "bind mount {} on {}: {e}",
            src.display(),
            target.display()
        ))
    })?;
    if readonly
        && let Err(e) = rm::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, c"")
    {
        let _ = unmount(target);
        return Err(io::Error::other(format!(
            "making {} read-only: {e}",
            target.display()
        )));
    }
    Ok(())
}

/// Unmounts `target`; if busy, detaches it lazily. Not a mount point: nothing to do.
pub(crate) fn unmount(target: &Path) -> io::Result<()> {
    match rm::unmount(target, UnmountFlags::empty()) {
        Ok(()) | Err(Errno::INVAL | Errno::NOENT) => Ok(()),
        Err(Errno::BUSY) => {
            tracing::debug!("{} busy; detaching lazily", target.display());
            Ok(rm::unmount(target, UnmountFlags::DETACH)?)
        }
        Err(e) => Err(io::Error::other(format!(
            "unmount {}: {e}",
            target.display()
        ))),
    }
}

/// One line of /proc/self/mountinfo, the fields we use.
pub(crate) struct MountInfo {
    pub dev: (u32, u32),
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_opts: String,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(out)
        .into_string()
        .unwrap_or_default()
}

pub(crate) fn mountinfo() -> io::Result<Vec<MountInfo>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|&x| x == "-") else {
            continue;
        };
        if f.len() < sep + 4 || sep < 5 {
            continue;
        }
        let dev = f[2]
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        let Some(dev) = dev else { continue };
        out.push(MountInfo {
            dev,
            mount_point: PathBuf::from(unescape(f[4])),
            fs_type: f[sep + 1].to_string(),
            super_opts: f[sep + 3].to_string(),
        });
    }
    Ok(out)
}

/// Whether an overlay in this namespace uses `upper` as its upperdir.
pub(crate) fn upper_in_use(upper: &Path) -> io::Result<bool> {
    let want = format!("upperdir={}", upper.display());
    Ok(mountinfo()?
        .iter()
        .any(|m| m.fs_type == "overlay" && m.super_opts.split(',').any(|o| o == want)))
}

/// Whether `dir` is bind-mounted somewhere in this namespace (compared by inode).
pub(crate) fn bound_anywhere(dir: &Path) -> io::Result<bool> {
    use crate::fsutil::st;
    let want = rustix::fs::stat(dir)?;
    let (maj, min) = (
        rustix::fs::major(st::dev(&want)),
        rustix::fs::minor(st::dev(&want)),
    );
    for m in mountinfo()? {
        if m.dev != (maj, min) {
            continue;
        }
        if let Ok(s) = rustix::fs::stat(&m.mount_point)
            && st::dev(&s) == st::dev(&want)
            && st::ino(&s) == st::ino(&want)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Keeps `fd`'s mount usable as a directory for reading.
pub(crate) fn open_root(mnt: &OwnedFd) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        mnt.as_fd(),
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}
