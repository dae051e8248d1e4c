//! Thin syscall wrappers that are safe in a child made by a raw `clone` of a multi-threaded
//! parent: no heap, no locks, and no glibc wrappers with process-wide state (the setxid
//! broadcast of `setresuid`/`setgroups`, cached TIDs). Errors are plain errno values.

use std::ffi::CStr;
use std::ptr;

use libc::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

pub type Errno = i32;
pub type Res<T> = Result<T, Errno>;

pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;

#[inline]
pub fn errno() -> Errno {
    // SAFETY: reading the thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[inline]
fn cvt(r: c_long) -> Res<c_long> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

#[inline]
fn cvt_i(r: c_int) -> Res<c_int> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// Retries on EINTR.
macro_rules! retry {
    ($e:expr) => {{
        loop {
            match $e {
                Err(libc::EINTR) => continue,
                other => break other,
            }
        }
    }};
}

pub fn close(fd: c_int) {
    if fd >= 0 {
        // SAFETY: closing a descriptor this process owns.
        unsafe { libc::syscall(libc::SYS_close, fd as c_long) };
    }
}

/// `dup2` that also clears CLOEXEC when `src == dst`.
pub fn dup_to(src: c_int, dst: c_int) -> Res<()> {
    if src == dst {
        // SAFETY: plain fcntl on an open fd.
        cvt_i(unsafe { libc::fcntl(src, libc::F_SETFD, 0) })?;
        return Ok(());
    }
    // SAFETY: dup3 with valid fds.
    retry!(cvt(unsafe {
        libc::syscall(libc::SYS_dup3, src as c_long, dst as c_long, 0 as c_long)
    }))?;
    Ok(())
}

/// Closes every fd ≥ 3 except those in `keep` (sorted ascending).
pub fn close_fds_except(keep: &[c_int]) -> Res<()> {
    let mut next: c_uint = 3;
    for &k in keep {
        if k < 3 {
            continue;
        }
        let k = k as c_uint;
        if k > next {
            close_range(next, k - 1)?;
        }
        next = k.saturating_add(1);
    }
    close_range(next, c_uint::MAX)
}

fn close_range(first: c_uint, last: c_uint) -> Res<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range only closes descriptors.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as c_long,
            last as c_long,
            0 as c_long,
        )
    })?;
    Ok(())
}

pub fn openat(dirfd: c_int, path: &CStr, flags: c_int, mode: u32) -> Res<c_int> {
    // SAFETY: path is NUL-terminated.
    retry!(cvt(unsafe {
        libc::syscall(
            libc::SYS_openat,
            dirfd as c_long,
            path.as_ptr(),
            (flags | libc::O_CLOEXEC) as c_long,
            mode as c_long,
        )
    }))
    .map(|fd| fd as c_int)
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub fn openat2(dirfd: c_int, path: &CStr, flags: c_int, mode: u32, resolve: u64) -> Res<c_int> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    // SAFETY: `how` lives across the call; its size is passed.
    retry!(cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd as c_long,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    }))
    .map(|fd| fd as c_int)
}

/// Opens `path` (relative) inside the tree rooted at `root`: symlinks and `..` cannot leave it
/// and magic links (`/proc/self/fd/N`) are refused.
pub fn open_in_root(root: c_int, path: &CStr, flags: c_int) -> Res<c_int> {
    openat2(
        root,
        path,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

pub fn mkdirat(dirfd: c_int, name: &CStr, mode: u32) -> Res<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mkdirat,
            dirfd as c_long,
            name.as_ptr(),
            mode as c_long,
        )
    })?;
    Ok(())
}

pub fn mknodat(dirfd: c_int, name: &CStr, mode: u32, dev: u64) -> Res<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mknodat,
            dirfd as c_long,
            name.as_ptr(),
            mode as c_long,
            dev as c_long,
        )
    })?;
    Ok(())
}

pub fn symlinkat(target: &CStr, dirfd: c_int, name: &CStr) -> Res<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_symlinkat,
            target.as_ptr(),
            dirfd as c_long,
            name.as_ptr(),
        )
    })?;
    Ok(())
}

pub fn unlinkat(dirfd: c_int, name: &CStr, flags: c_int) -> Res<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_unlinkat,
            dirfd as c_long,
            name.as_ptr(),
            flags as c_long,
        )
    })?;
    Ok(())
}

pub fn fchownat(dirfd: c_int, name: &CStr, uid: u32, gid: u32, flags: c_int) -> Res<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_fchownat,
            dirfd as c_long,
            name.as_ptr(),
            uid as c_long,
            gid as c_long,
            flags as c_long,
        )
    })?;
    Ok(())
}

pub fn fstatat(dirfd: c_int, name: &CStr, flags: c_int) -> Res<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: glibc's fstatat is a direct syscall wrapper.
    cvt_i(unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

pub fn fstat(fd: c_int) -> Res<libc::stat> {
    fstatat(fd, c"", libc::AT_EMPTY_PATH)
}

pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> Res<()> {
    let p = |s: Option<&CStr>| s.map_or(ptr::null(), |s| s.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings or null.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount,
            p(source),
            target.as_ptr(),
            p(fstype),
            flags as c_long,
            p(data) as *const c_void,
        )
    })?;
    Ok(())
}

pub fn mount_setattr(fd: c_int, flags: c_int, attr: &libc::mount_attr) -> Res<()> {
    // SAFETY: attr lives across the call; its size is passed.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd as c_long,
            c"".as_ptr(),
            (flags | libc::AT_EMPTY_PATH) as c_long,
            attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })?;
    Ok(())
}

pub fn umount2(target: &CStr, flags: c_int) -> Res<()> {
    // SAFETY: target is NUL-terminated.
    cvt(unsafe { libc::syscall(libc::SYS_umount2, target.as_ptr(), flags as c_long) })?;
    Ok(())
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> Res<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

pub fn chdir(path: &CStr) -> Res<()> {
    // SAFETY: path is NUL-terminated.
    cvt(unsafe { libc::syscall(libc::SYS_chdir, path.as_ptr()) })?;
    Ok(())
}

pub fn fchdir(fd: c_int) -> Res<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_fchdir, fd as c_long) })?;
    Ok(())
}

pub fn setns(fd: c_int, nstype: c_int) -> Res<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_setns, fd as c_long, nstype as c_long) })?;
    Ok(())
}

pub fn unshare(flags: c_int) -> Res<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_unshare, flags as c_long) })?;
    Ok(())
}

pub fn sethostname(name: &[u8]) -> Res<()> {
    // SAFETY: pointer and length describe `name`.
    cvt(unsafe { libc::syscall(libc::SYS_sethostname, name.as_ptr(), name.len()) })?;
    Ok(())
}

pub fn setdomainname(name: &[u8]) -> Res<()> {
    // SAFETY: pointer and length describe `name`.
    cvt(unsafe { libc::syscall(libc::SYS_setdomainname, name.as_ptr(), name.len()) })?;
    Ok(())
}

pub fn write_all(fd: c_int, mut buf: &[u8]) -> Res<()> {
    while !buf.is_empty() {
        // SAFETY: pointer and length describe `buf`.
        let n = retry!(cvt(unsafe {
            libc::syscall(libc::SYS_write, fd as c_long, buf.as_ptr(), buf.len())
        }))?;
        buf = &buf[n as usize..];
    }
    Ok(())
}

pub fn read(fd: c_int, buf: &mut [u8]) -> Res<usize> {
    // SAFETY: pointer and length describe `buf`.
    retry!(cvt(unsafe {
        libc::syscall(libc::SYS_read, fd as c_long, buf.as_mut_ptr(), buf.len())
    }))
    .map(|n| n as usize)
}

pub fn prctl(op: c_int, a2: c_ulong, a3: c_ulong, a4: c_ulong, a5: c_ulong) -> Res<c_int> {
    // SAFETY: plain syscall with integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_prctl, op as c_long, a2, a3, a4, a5) }).map(|r| r as c_int)
}

pub fn setresuid(uid: u32) -> Res<()> {
    // SAFETY: raw syscall: affects only this (single-threaded) process.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_setresuid,
            uid as c_long,
            uid as c_long,
            uid as c_long,
        )
    })?;
    Ok(())
}

pub fn setresgid(gid: u32) -> Res<()> {
    // SAFETY: raw syscall: affects only this process.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_setresgid,
            gid as c_long,
            gid as c_long,
            gid as c_long,
        )
    })?;
    Ok(())
}

pub fn setgroups(groups: &[libc::gid_t]) -> Res<()> {
    // SAFETY: pointer and length describe `groups`.
    cvt(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Res<()> {
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let d = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data words as capset(2) v3 expects.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, d.as_ptr()) })?;
    Ok(())
}

pub fn setrlimit(resource: c_int, lim: &libc::rlimit) -> Res<()> {
    // SAFETY: prlimit64 on ourselves with a valid new-limit pointer.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0 as c_long,
            resource as c_long,
            lim as *const libc::rlimit,
            ptr::null_mut::<libc::rlimit>(),
        )
    })?;
    Ok(())
}

pub fn umask(mask: u32) {
    // SAFETY: plain syscall.
    unsafe { libc::syscall(libc::SYS_umask, mask as c_long) };
}

pub fn setsid() -> Res<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_setsid) })?;
    Ok(())
}

pub fn ioctl(fd: c_int, req: c_ulong, arg: usize) -> Res<c_int> {
    // SAFETY: callers pass arguments matching the request.
    cvt(unsafe { libc::syscall(libc::SYS_ioctl, fd as c_long, req, arg) }).map(|r| r as c_int)
}

pub fn faccess_exec(path: &CStr) -> Res<()> {
    // SAFETY: path is NUL-terminated.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            libc::AT_FDCWD as c_long,
            path.as_ptr(),
            libc::X_OK as c_long,
            libc::AT_EACCESS as c_long,
        )
    })?;
    Ok(())
}

/// Raw `getcwd`: unlike glibc's it reports an unreachable cwd as `(unreachable)/…`.
pub fn getcwd(buf: &mut [u8]) -> Res<usize> {
    // SAFETY: pointer and length describe `buf`.
    cvt(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) }).map(|n| n as usize)
}

pub fn execve(path: &CStr, argv: *const *const c_char, envp: *const *const c_char) -> Errno {
    // SAFETY: argv/envp are NULL-terminated arrays of NUL-terminated strings owned by the plan.
    unsafe { libc::syscall(libc::SYS_execve, path.as_ptr(), argv, envp) };
    errno()
}

/// fork-like clone (no CLONE_VM): returns 0 in the child. `flags` must not ask for a pidfd.
pub fn clone(flags: c_int) -> Res<i32> {
    let f = (flags | libc::SIGCHLD) as c_ulong;
    // SAFETY: without CLONE_VM and with a null stack the child runs on a copy of our stack,
    // exactly like fork(). The other arguments are all null, so their per-architecture order
    // (x86_64: ptid, ctid, tls; aarch64: ptid, tls, ctid) does not matter.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_clone,
            f,
            ptr::null_mut::<c_void>(),
            ptr::null_mut::<c_int>(),
            ptr::null_mut::<c_int>(),
            0 as c_ulong,
        )
    })
    .map(|p| p as i32)
}

pub fn kill(pid: i32, sig: c_int) -> Res<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_kill, pid as c_long, sig as c_long) })?;
    Ok(())
}

/// Every signal back to its default action and unblocked (the shim blocks SIGCHLD and
/// ignores SIGPIPE; neither must reach the container).
pub fn reset_signals() {
    for sig in 1..65 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // The kernel's sigaction is {handler, flags, restorer, mask}; all zero = SIG_DFL.
        let ksa = [0u64; 4];
        // SAFETY: a valid kernel sigaction and the kernel's 8-byte mask size.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as c_long,
                ksa.as_ptr(),
                0usize,
                8usize,
            );
        }
    }
}

pub fn unblock_signals() {
    let set: u64 = 0;
    // SAFETY: kernel sigset of 8 bytes.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as c_long,
            &set as *const u64,
            ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

pub fn exit(code: i32) -> ! {
    // SAFETY: ends the process without running atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

/// `/proc/self/fd/<fd>` formatted into `buf` without allocating.
pub fn proc_fd_path(fd: c_int, buf: &mut [u8; 32]) -> &CStr {
    const PRE: &[u8] = b"/proc/self/fd/";
    buf[..PRE.len()].copy_from_slice(PRE);
    let mut n = PRE.len();
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = fd.max(0) as u32;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = 0;
    // SAFETY: buf[..=n] holds no interior NUL and ends with one.
    unsafe { CStr::from_bytes_with_nul_unchecked(&buf[..=n]) }
}

/// A fixed-size message between a container child and its parent over a SEQPACKET pair.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub kind: u32,
    pub step: u32,
    pub index: u32,
    pub errno: i32,
}

pub const REC_READY: u32 = 1;
pub const REC_ERROR: u32 = 2;
pub const REC_CONSOLE: u32 = 3;
pub const REC_PID: u32 = 4;

/// Sends `rec`, with `fd` attached as SCM_RIGHTS when given.
pub fn send_record(sock: c_int, rec: Record, fd: Option<c_int>) -> Res<()> {
    let mut iov = libc::iovec {
        iov_base: &rec as *const Record as *mut c_void,
        iov_len: std::mem::size_of::<Record>(),
    };
    // u64 alignment suits cmsghdr; 64 bytes hold one fd's control message.
    let mut cbuf = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; pointers refer to locals alive across sendmsg.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = fd {
            msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
            ptr::write_unaligned(libc::CMSG_DATA(c) as *mut c_int, fd);
        }
        retry!(cvt(libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) as c_long))?;
    }
    Ok(())
}

/// Receives one record (None at EOF) and the fd attached to it, if any.
pub fn recv_record(sock: c_int) -> Res<Option<(Record, Option<c_int>)>> {
    let mut rec = Record::default();
    let mut iov = libc::iovec {
        iov_base: &mut rec as *mut Record as *mut c_void,
        iov_len: std::mem::size_of::<Record>(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in send_record; the control buffer is large enough for one fd.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = retry!(cvt(
            libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) as c_long
        ))?;
        let mut fd = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                fd = Some(ptr::read_unaligned(libc::CMSG_DATA(c) as *const c_int));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if n == 0 {
            if let Some(fd) = fd {
                close(fd);
            }
            return Ok(None);
        }
        if n as usize != std::mem::size_of::<Record>() {
            if let Some(fd) = fd {
                close(fd);
            }
            return Err(libc::EPROTO);
        }
        Ok(Some((rec, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fd_paths() {
        let mut b = [0u8; 32];
        assert_eq!(proc_fd_path(0, &mut b).to_bytes(), b"/proc/self/fd/0");
        assert_eq!(
            proc_fd_path(1234567, &mut b).to_bytes(),
            b"/proc/self/fd/1234567"
        );
    }
}
