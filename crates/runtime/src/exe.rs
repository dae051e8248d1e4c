//! CVE-2019-5736: a container must never be able to write the engine binary through
//! `/proc/<pid>/exe` (e.g. an image whose entrypoint is `#!/proc/self/exe`, run while the
//! init still is the shim binary). The shim re-executes itself from a detached, read-only
//! bind mount of its own binary: `/proc/self/exe` then names a file on a read-only mount, so
//! opening it for writing fails with EROFS, and nothing is copied (unlike a sealed memfd).

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStringExt;

const MARK: &str = "_BERTH_RO_EXE";

fn exe_is_readonly() -> io::Result<bool> {
    let fd = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let st = rustix::fs::fstatvfs(&fd)?;
    Ok(st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Returns Ok when the running binary is on a read-only mount; otherwise re-executes it from
/// one (same argv, environment and fds — only CLOEXEC fds close) and does not return.
pub fn ensure_readonly_self() -> io::Result<()> {
    if exe_is_readonly()? {
        return Ok(());
    }
    if std::env::var_os(MARK).is_some() {
        return Err(io::Error::other(
            "re-executing from a read-only mount did not make /proc/self/exe read-only",
        ));
    }
    // SAFETY: open_tree(2) with a valid path; returns a new fd.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    let tree = tree as libc::c_int;
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing our fd.
        unsafe { libc::close(tree) };
        return Err(e);
    }
    let to_c = |s: OsString| {
        CString::new(s.into_vec()).map_err(|_| io::Error::other("NUL in argv or environment"))
    };
    let argv: Vec<CString> = std::env::args_os().map(to_c).collect::<io::Result<_>>()?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(kv)
        })
        .collect::<io::Result<_>>()?;
    envp.push(CString::new(format!("{MARK}=1")).expect("no NUL"));
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated argv/envp of live CStrings; the fd is ours.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            tree,
            c"".as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    let e = io::Error::last_os_error();
    // SAFETY: closing our fd.
    unsafe { libc::close(tree) };
    Err(e)
}
