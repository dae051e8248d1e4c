//! Running a client inside a pseudo-terminal, as a user at a terminal would: for `run -it`,
//! `exec -it` and `attach` with detach keys.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a pty session produced.
#[derive(Debug)]
pub struct PtyOut {
    pub code: i32,
    /// Everything the terminal showed (with `\r\n` line ends).
    pub output: String,
}

/// Runs `cmd` with a new pty as its controlling terminal (24x80), typing each `(delay, bytes)`
/// of `input` after its delay, and collects what it prints until it exits or `timeout` passes.
// The child is reaped on every path: by try_wait in the loop, or by wait after the loop or
// after a timeout kill; the lint does not follow the loop.
#[allow(clippy::zombie_processes)]
pub fn run(mut cmd: Command, input: &[(Duration, &[u8])], timeout: Duration) -> PtyOut {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master: OwnedFd =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = File::options()
        .read(true)
        .write(true)
        .open(name.to_str().expect("pts path"))
        .expect("opening the pty slave");
    let ws = rustix::termios::Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&slave, ws).expect("window size");
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut writer = File::from(master.try_clone().expect("dup of the pty master"));
    let mut child = cmd.spawn().expect("starting the client in a pty");
    drop(cmd);
    let script: Vec<(Duration, Vec<u8>)> = input.iter().map(|(d, b)| (*d, b.to_vec())).collect();
    std::thread::spawn(move || {
        for (delay, bytes) in script {
            std::thread::sleep(delay);
            if writer.write_all(&bytes).is_err() {
                return;
            }
        }
    });
    let fd = master.as_raw_fd();
    let mut reader = File::from(master);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut exited = None;
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n > 0 {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => {
                    if exited.is_some() {
                        break;
                    }
                }
                Ok(k) => out.extend_from_slice(&buf[..k]),
            }
        }
        if exited.is_none() {
            exited = child.try_wait().ok().flatten();
        }
        // After the client exits, give the terminal a moment to drain.
        if let Some(_st) = exited
            && n <= 0
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let st = child.wait().ok();
            out.extend_from_slice(b"\n[testkit: pty session timed out]");
            return PtyOut {
                code: st.and_then(|s| s.code()).unwrap_or(-1),
                output: String::from_utf8_lossy(&out).into_owned(),
            };
        }
    }
    let code = exited.and_then(|s| s.code()).unwrap_or(-1);
    PtyOut {
        code,
        output: String::from_utf8_lossy(&out).into_owned(),
    }
}
