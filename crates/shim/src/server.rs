//! The shim's single-threaded `poll` loop: the listener, clients, the container's output,
//! exec processes and a signalfd for SIGCHLD.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use berth_runtime::cgroup::Cgroup;
use berth_runtime::protocol::{
    ExitStatus, FRAME_CLOSE_STDIN, FRAME_EXIT, FRAME_STDERR, FRAME_STDIN, FRAME_STDOUT, Reply,
    Request, ShimConfig,
};
use berth_runtime::spec::{Process, Spec};
use berth_runtime::{Created, Stdio};

use crate::log::{JsonLog, Stream, rfc3339_nano};

/// Output queued for an attached client beyond this is dropped for that client: a slow
/// reader must never stall the container (the log still gets everything).
const ATTACH_CAP: usize = 256 * 1024;
/// An exec's client is its only reader: past this the shim stops reading the exec's output
/// (backpressure, as `docker exec` has).
const EXEC_CAP: usize = 256 * 1024;
/// Stdin waiting for the process; past this the shim stops reading stdin frames.
const STDIN_CAP: usize = 256 * 1024;
const MAX_REQUEST: usize = 1 << 20;
const MAX_FRAME: usize = 1 << 20;
const READ_BUF: usize = 32 * 1024;
/// After the init exits, how long output may take to reach EOF (a process outside the
/// container's PID namespace could hold a pipe open).
const DRAIN: Duration = Duration::from_secs(2);
/// How long the shim must be quiet after a client leaves before it trims its memory.
const TRIM_AFTER: Duration = Duration::from_millis(300);

struct Pipe {
    fd: Option<OwnedFd>,
    kind: u8,
}

struct Input {
    fd: OwnedFd,
    pending: Vec<u8>,
    close_when_drained: bool,
    dead: bool,
}

impl Input {
    fn new(fd: OwnedFd) -> Input {
        Input {
            fd,
            pending: Vec::new(),
            close_when_drained: false,
            dead: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if self.close_when_drained || self.dead {
            return;
        }
        self.pending.extend_from_slice(data);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.pending.is_empty() {
            match write_fd(self.fd.as_raw_fd(), &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The process closed its stdin: nothing more can go there.
                    self.pending = Vec::new();
                    self.dead = true;
                }
            }
        }
        if self.pending.is_empty() && self.pending.capacity() > 64 * 1024 {
            self.pending = Vec::new();
        }
    }

    fn finished(&self) -> bool {
        self.dead || (self.close_when_drained && self.pending.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Request,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Wait,
    Exec(String),
    Done,
}

struct Client {
    sock: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    mode: Mode,
    closing: bool,
    dead: bool,
}

impl Client {
    fn queue_frame(&mut self, kind: u8, data: &[u8]) {
        self.out.push(kind);
        self.out
            .extend_from_slice(&(data.len() as u32).to_be_bytes());
        self.out.extend_from_slice(data);
    }

    fn reply(&mut self, r: &Reply) {
        if let Ok(mut v) = serde_json::to_vec(r) {
            v.push(b'\n');
            self.out.extend_from_slice(&v);
        }
    }

    fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        if self.out.is_empty() {
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
            if self.closing {
                self.dead = true;
            }
        }
    }
}

struct ExecProc {
    id: String,
    pid: i32,
    client: Option<usize>,
    outputs: Vec<Pipe>,
    stdin: Option<Input>,
    console: Option<OwnedFd>,
    status: Option<i32>,
}

#[derive(Clone, Copy)]
enum Tag {
    Listener,
    Signal,
    Out(usize),
    In,
    Client(usize),
    ExecOut(usize, usize),
    ExecIn(usize),
}

pub struct Shim {
    spec: Spec,
    cfg: ShimConfig,
    state_dir: PathBuf,
    listener: UnixListener,
    sigfd: OwnedFd,
    init_pid: i32,
    created: Option<Created>,
    cgroup: Option<Cgroup>,
    started: bool,
    exit: Option<ExitStatus>,
    drain_deadline: Option<Instant>,
    outputs: Vec<Pipe>,
    stdin: Option<Input>,
    console: Option<OwnedFd>,
    log: JsonLog,
    clients: Vec<Option<Client>>,
    execs: Vec<ExecProc>,
    stdin_owner: Option<usize>,
    buf: Vec<u8>,
    /// When to give back start-up memory (see trim.rs); pushed back by every client leaving.
    trim_at: Option<Instant>,
}

pub type StartError = (String, Option<i32>);

fn err(msg: impl Into<String>) -> StartError {
    (msg.into(), None)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writing from our buffer.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// temp + fsync + rename, so a reader never sees half a file.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Pipes (or nothing, for a terminal) for a process: (stdio for the runtime, our ends).
fn process_stdio(
    terminal: bool,
    with_stdin: bool,
) -> io::Result<(Stdio, Vec<Pipe>, Option<Input>)> {
    if terminal {
        return Ok((Stdio::default(), Vec::new(), None));
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin, input) = if with_stdin {
        let (in_r, in_w) = pipe()?;
        set_nonblocking(in_w.as_raw_fd());
        (Some(in_r), Some(Input::new(in_w)))
    } else {
        (None, None)
    };
    set_nonblocking(out_r.as_raw_fd());
    set_nonblocking(err_r.as_raw_fd());
    let pipes = vec![
        Pipe {
            fd: Some(out_r),
            kind: FRAME_STDOUT,
        },
        Pipe {
            fd: Some(err_r),
            kind: FRAME_STDERR,
        },
    ];
    Ok((
        Stdio {
            stdin,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
        pipes,
        input,
    ))
}

/// For a terminal: the master is the output, and (with stdin) the input too.
fn console_ends(master: &OwnedFd, with_stdin: bool) -> io::Result<(Vec<Pipe>, Option<Input>)> {
    set_nonblocking(master.as_raw_fd());
    let out = vec![Pipe {
        fd: Some(dup(master)?),
        kind: FRAME_STDOUT,
    }];
    let input = if with_stdin {
        Some(Input::new(dup(master)?))
    } else {
        None
    };
    Ok((out, input))
}

fn signalfd_for_sigchld() -> io::Result<OwnedFd> {
    // SAFETY: building and installing a signal mask; signalfd returns a new fd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

impl Shim {
    /// Everything up to the `Ready` line: state files, socket, log, the created container.
    pub fn new(spec: Spec, cfg: ShimConfig) -> Result<Shim, StartError> {
        let state_dir = PathBuf::from(&cfg.state_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state_dir)
            .map_err(|e| err(format!("creating {}: {e}", state_dir.display())))?;
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        atomic_write(&state_dir.join("shim.pid"), me.to_string().as_bytes())
            .map_err(|e| err(format!("writing shim.pid: {e}")))?;
        let sigfd = signalfd_for_sigchld().map_err(|e| err(format!("signalfd: {e}")))?;
        let sock_path = state_dir.join("shim.sock");
        let _ = std::fs::remove_file(&sock_path);
        // SAFETY: umask only changes our file-creation mask; 0600 for the socket.
        let old = unsafe { libc::umask(0o177) };
        let listener = UnixListener::bind(&sock_path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener =
            listener.map_err(|e| err(format!("listening on {}: {e}", sock_path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err(e.to_string()))?;
        let cleanup_sock = |e: StartError| {
            let _ = std::fs::remove_file(&sock_path);
            e
        };
        let log = JsonLog::open(
            PathBuf::from(&cfg.log_path),
            cfg.log_max_size,
            cfg.log_max_files,
        )
        .map_err(|e| cleanup_sock(err(format!("opening log {}: {e}", cfg.log_path))))?;
        let terminal = spec.process.terminal;
        let (stdio, mut outputs, mut stdin) = process_stdio(terminal, cfg.open_stdin)
            .map_err(|e| cleanup_sock(err(format!("pipes: {e}"))))?;
        let mut created = berth_runtime::create(&spec, stdio)
            .map_err(|e| cleanup_sock((e.to_string(), e.exit_code())))?;
        let mut console = None;
        if terminal {
            let master = created
                .take_console()
                .ok_or_else(|| cleanup_sock(err("no console from the container")))?;
            let (o, i) = console_ends(&master, cfg.open_stdin)
                .map_err(|e| cleanup_sock(err(format!("console: {e}"))))?;
            outputs = o;
            stdin = i;
            console = Some(master);
        }
        let init_pid = created.pid();
        atomic_write(&state_dir.join("init.pid"), init_pid.to_string().as_bytes())
            .map_err(|e| cleanup_sock(err(format!("writing init.pid: {e}"))))?;
        Ok(Shim {
            spec,
            cfg,
            state_dir,
            listener,
            sigfd,
            init_pid,
            created: Some(created),
            cgroup: None,
            started: false,
            exit: None,
            drain_deadline: None,
            outputs,
            stdin,
            console,
            log,
            clients: Vec::new(),
            execs: Vec::new(),
            stdin_owner: None,
            buf: vec![0; READ_BUF],
            trim_at: None,
        })
    }

    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    pub fn run(mut self) -> ! {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut tags: Vec<Tag> = Vec::new();
        loop {
            if self.exit.is_some()
                && (self.outputs.is_empty()
                    || self.drain_deadline.is_some_and(|d| Instant::now() >= d))
            {
                self.finish();
            }
            fds.clear();
            tags.clear();
            let mut add = |fd: RawFd, events: i16, tag: Tag| {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                tags.push(tag);
            };
            add(self.listener.as_raw_fd(), libc::POLLIN, Tag::Listener);
            add(self.sigfd.as_raw_fd(), libc::POLLIN, Tag::Signal);
            for (i, p) in self.outputs.iter().enumerate() {
                if let Some(fd) = &p.fd {
                    add(fd.as_raw_fd(), libc::POLLIN, Tag::Out(i));
                }
            }
            let stdin_full = self
                .stdin
                .as_ref()
                .is_some_and(|s| s.pending.len() > STDIN_CAP);
            if let Some(s) = &self.stdin
                && !s.pending.is_empty()
            {
                add(s.fd.as_raw_fd(), libc::POLLOUT, Tag::In);
            }
            for (i, c) in self.clients.iter().enumerate() {
                let Some(c) = c else { continue };
                let mut ev = 0;
                let blocked = match &c.mode {
                    Mode::Attach { .. } => stdin_full,
                    Mode::Exec(id) => self
                        .execs
                        .iter()
                        .find(|x| &x.id == id)
                        .and_then(|x| x.stdin.as_ref())
                        .is_some_and(|s| s.pending.len() > STDIN_CAP),
                    _ => false,
                };
                if !blocked {
                    ev |= libc::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= libc::POLLOUT;
                }
                add(c.sock.as_raw_fd(), ev, Tag::Client(i));
            }
            for (e, x) in self.execs.iter().enumerate() {
                let backlog = x
                    .client
                    .and_then(|c| self.clients[c].as_ref())
                    .map_or(0, |c| c.out.len());
                if backlog <= EXEC_CAP {
                    for (j, p) in x.outputs.iter().enumerate() {
                        if let Some(fd) = &p.fd {
                            add(fd.as_raw_fd(), libc::POLLIN, Tag::ExecOut(e, j));
                        }
                    }
                }
                if let Some(s) = &x.stdin
                    && !s.pending.is_empty()
                {
                    add(s.fd.as_raw_fd(), libc::POLLOUT, Tag::ExecIn(e));
                }
            }
            if self.trim_at.is_some_and(|t| Instant::now() >= t) {
                self.trim_at = None;
                crate::trim::trim();
            }
            let wake = match (self.drain_deadline, self.trim_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = wake.map_or(-1, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as i32
            });
            // SAFETY: fds is a valid array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue;
            }
            for k in 0..fds.len() {
                let rev = fds[k].revents;
                if rev == 0 {
                    continue;
                }
                match tags[k] {
                    Tag::Listener => self.accept(),
                    Tag::Signal => self.on_sigchld(),
                    Tag::Out(i) => self.read_output(i),
                    Tag::In => {
                        if let Some(s) = &mut self.stdin {
                            s.flush();
                        }
                    }
                    Tag::Client(i) => self.client_event(i, rev),
                    Tag::ExecOut(e, j) => self.read_exec_output(e, j),
                    Tag::ExecIn(e) => {
                        if let Some(s) = &mut self.execs[e].stdin {
                            s.flush();
                        }
                    }
                }
            }
            self.tidy();
        }
    }

    /// After each round: drop closed pipes, finished inputs, dead clients, finished execs.
    fn tidy(&mut self) {
        self.outputs.retain(|p| p.fd.is_some());
        if self.stdin.as_ref().is_some_and(Input::finished) {
            self.stdin = None;
        }
        for x in &mut self.execs {
            x.outputs.retain(|p| p.fd.is_some());
            if x.stdin.as_ref().is_some_and(Input::finished) {
                x.stdin = None;
            }
        }
        let mut k = 0;
        while k < self.execs.len() {
            let x = &self.execs[k];
            if let Some(code) = x.status
                && x.outputs.is_empty()
            {
                if let Some(c) = x.client.and_then(|c| self.clients[c].as_mut()) {
                    c.queue_frame(FRAME_EXIT, &code.to_be_bytes());
                    c.closing = true;
                    c.flush();
                }
                self.execs.remove(k);
            } else {
                k += 1;
            }
        }
        for i in 0..self.clients.len() {
            if self.clients[i].as_ref().is_some_and(|c| c.dead) {
                self.drop_client(i);
            }
        }
    }

    fn drop_client(&mut self, i: usize) {
        let Some(c) = self.clients[i].take() else {
            return;
        };
        self.trim_at = Some(Instant::now() + TRIM_AFTER);
        if self.stdin_owner == Some(i) {
            self.stdin_owner = None;
            // docker's StdinOnce: the first attacher going away closes the container's stdin.
            if self.cfg.stdin_once
                && let Some(s) = &mut self.stdin
            {
                s.close_when_drained = true;
            }
        }
        for x in &mut self.execs {
            if x.client == Some(i) {
                // Detached: the exec keeps running, its output goes nowhere.
                x.client = None;
            }
        }
        drop(c);
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    let _ = sock.set_nonblocking(true);
                    let c = Client {
                        sock,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        mode: Mode::Request,
                        closing: false,
                        dead: false,
                    };
                    match self.clients.iter().position(Option::is_none) {
                        Some(i) => self.clients[i] = Some(c),
                        None => self.clients.push(Some(c)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn on_sigchld(&mut self) {
        let mut info = [0u8; 128];
        while read_fd(self.sigfd.as_raw_fd(), &mut info).is_ok_and(|n| n > 0) {}
        self.reap(false);
    }

    /// Reaps every exited child: the init (its status becomes the container's) and execs.
    fn reap(&mut self, block: bool) -> bool {
        let mut any = false;
        loop {
            let mut st = 0;
            let flags = libc::__WALL | if block { 0 } else { libc::WNOHANG };
            // SAFETY: waitpid on any of our children.
            let pid = unsafe { libc::waitpid(-1, &mut st, flags) };
            if pid <= 0 {
                return any;
            }
            any = true;
            if pid == self.init_pid && self.exit.is_none() {
                self.on_init_exit(st);
            } else if let Some(x) = self.execs.iter_mut().find(|x| x.pid == pid) {
                x.status = Some(berth_runtime::exit_status(st).0);
            }
            if block {
                return true;
            }
        }
    }

    fn on_init_exit(&mut self, wait_status: i32) {
        let (exit_code, signal) = berth_runtime::exit_status(wait_status);
        self.set_exit(exit_code, signal);
    }

    fn set_exit(&mut self, exit_code: i32, signal: Option<i32>) {
        let oom_killed = self.cgroup.as_ref().is_some_and(Cgroup::oom_killed);
        self.exit = Some(ExitStatus {
            exit_code,
            signal,
            oom_killed,
            finished_at: rfc3339_nano(SystemTime::now()),
        });
        self.drain_deadline = Some(Instant::now() + DRAIN);
    }

    fn read_output(&mut self, i: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        // A few reads per round keep one chatty stream from starving the rest.
        for _ in 0..4 {
            let Some(fd) = self.outputs[i].fd.as_ref() else {
                break;
            };
            match read_fd(fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    self.outputs[i].fd = None;
                    break;
                }
                Ok(n) => {
                    let kind = self.outputs[i].kind;
                    self.on_output(kind, &buf[..n]);
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EIO: the pty's last slave is gone.
                Err(_) => {
                    self.outputs[i].fd = None;
                    break;
                }
            }
        }
        self.buf = buf;
    }

    fn on_output(&mut self, kind: u8, data: &[u8]) {
        self.log.write(
            if kind == FRAME_STDERR {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            data,
        );
        for c in self.clients.iter_mut().flatten() {
            let wants = match c.mode {
                Mode::Attach { stdout, stderr, .. } => {
                    if kind == FRAME_STDERR {
                        stderr
                    } else {
                        stdout
                    }
                }
                _ => false,
            };
            if !wants || c.closing || c.dead {
                continue;
            }
            if c.out.len() + data.len() + 5 > ATTACH_CAP {
                continue;
            }
            c.queue_frame(kind, data);
            c.flush();
        }
    }

    fn read_exec_output(&mut self, e: usize, j: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            let x = &mut self.execs[e];
            let Some(fd) = x.outputs[j].fd.as_ref() else {
                break;
            };
            match read_fd(fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    x.outputs[j].fd = None;
                    break;
                }
                Ok(n) => {
                    let kind = x.outputs[j].kind;
                    if let Some(c) = x.client.and_then(|c| self.clients[c].as_mut()) {
                        c.queue_frame(kind, &buf[..n]);
                        c.flush();
                    }
                    break;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    x.outputs[j].fd = None;
                    break;
                }
            }
        }
        self.buf = buf;
    }

    fn client_event(&mut self, i: usize, rev: i16) {
        let Some(c) = self.clients[i].as_mut() else {
            return;
        };
        if rev & libc::POLLOUT != 0 {
            c.flush();
        }
        if rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let mut buf = std::mem::take(&mut self.buf);
            let mut eof = false;
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        if c.mode != Mode::Done && c.mode != Mode::Wait {
                            c.inbuf.extend_from_slice(&buf[..n]);
                        }
                        if c.inbuf.len() > MAX_REQUEST + MAX_FRAME {
                            c.dead = true;
                            break;
                        }
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            self.buf = buf;
            self.process_input(i);
            if eof && let Some(c) = self.clients[i].as_mut() {
                // A peer that went away is done; a half-closed one still gets its answer.
                if c.out.is_empty() || rev & libc::POLLERR != 0 {
                    c.dead = true;
                } else {
                    c.closing = true;
                }
                if let Mode::Attach { stdin: true, .. } = c.mode
                    && self.stdin_owner == Some(i)
                    && self.cfg.stdin_once
                    && let Some(s) = &mut self.stdin
                {
                    s.close_when_drained = true;
                }
            }
        }
    }

    fn process_input(&mut self, i: usize) {
        loop {
            let Some(c) = self.clients[i].as_mut() else {
                return;
            };
            match c.mode.clone() {
                Mode::Request => {
                    let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
                        if c.inbuf.len() > MAX_REQUEST {
                            c.dead = true;
                        }
                        return;
                    };
                    let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
                    match serde_json::from_slice::<Request>(&line) {
                        Ok(req) => self.dispatch(i, req),
                        Err(e) => {
                            c.reply(&Reply {
                                error: Some(format!("bad request: {e}")),
                                ..Default::default()
                            });
                            c.mode = Mode::Done;
                            c.closing = true;
                            c.flush();
                            return;
                        }
                    }
                }
                Mode::Attach { stdin, .. } => {
                    while let Some((kind, data)) = take_frame(&mut c.inbuf) {
                        if !stdin {
                            continue;
                        }
                        let Some(s) = self.stdin.as_mut() else {
                            continue;
                        };
                        match kind {
                            FRAME_STDIN => s.push(&data),
                            FRAME_CLOSE_STDIN => s.close_when_drained = true,
                            _ => {}
                        }
                    }
                    if c.inbuf.len() > MAX_FRAME + 5 {
                        c.dead = true;
                    }
                    return;
                }
                Mode::Exec(id) => {
                    let x = self.execs.iter_mut().find(|x| x.id == id);
                    let mut stdin = x.and_then(|x| x.stdin.as_mut());
                    while let Some((kind, data)) = take_frame(&mut c.inbuf) {
                        let Some(s) = stdin.as_mut() else { continue };
                        match kind {
                            FRAME_STDIN => s.push(&data),
                            FRAME_CLOSE_STDIN => s.close_when_drained = true,
                            _ => {}
                        }
                    }
                    if c.inbuf.len() > MAX_FRAME + 5 {
                        c.dead = true;
                    }
                    return;
                }
                Mode::Wait | Mode::Done => {
                    c.inbuf.clear();
                    return;
                }
            }
        }
    }

    fn respond(&mut self, i: usize, r: Reply, mode: Mode) {
        if let Some(c) = self.clients[i].as_mut() {
            c.reply(&r);
            if mode == Mode::Done {
                c.closing = true;
            }
            c.mode = mode;
            c.flush();
        }
    }

    fn error(&mut self, i: usize, msg: impl Into<String>, exit_code: Option<i32>) {
        self.respond(
            i,
            Reply {
                error: Some(msg.into()),
                exit_code,
                ..Default::default()
            },
            Mode::Done,
        );
    }

    fn dispatch(&mut self, i: usize, req: Request) {
        match req {
            Request::Start => self.start_container(i),
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if self.exit.is_some() {
                    // Nothing more will come: an attach now just sees EOF.
                    self.respond(i, Reply::default(), Mode::Done);
                    return;
                }
                if stdin && self.stdin.is_some() && self.stdin_owner.is_none() {
                    self.stdin_owner = Some(i);
                }
                self.respond(
                    i,
                    Reply::default(),
                    Mode::Attach {
                        stdin,
                        stdout,
                        stderr,
                    },
                );
            }
            Request::Resize { exec, size } => {
                let fd = match &exec {
                    None => self.console.as_ref(),
                    Some(id) => self
                        .execs
                        .iter()
                        .find(|x| &x.id == id)
                        .and_then(|x| x.console.as_ref()),
                };
                let r = match fd {
                    Some(fd) => {
                        berth_runtime::resize_terminal(fd.as_fd(), size).map_err(|e| e.to_string())
                    }
                    None if exec.is_some()
                        && !self.execs.iter().any(|x| Some(&x.id) == exec.as_ref()) =>
                    {
                        Err(format!("no such exec: {}", exec.unwrap_or_default()))
                    }
                    None => Err("the process has no terminal".to_string()),
                };
                match r {
                    Ok(()) => self.respond(i, Reply::default(), Mode::Done),
                    Err(e) => self.error(i, e, None),
                }
            }
            Request::Signal { signal, all } => {
                if self.exit.is_some() {
                    return self.error(i, "container is not running", None);
                }
                let r = match (&self.cgroup, all) {
                    (Some(cg), true) => cg.kill_all(signal).map_err(|e| e.to_string()),
                    _ => {
                        // SAFETY: kill(2) on our own child, which cannot be reaped unseen.
                        if unsafe { libc::kill(self.init_pid, signal) } < 0 {
                            Err(io::Error::last_os_error().to_string())
                        } else {
                            Ok(())
                        }
                    }
                };
                match r {
                    Ok(()) => self.respond(i, Reply::default(), Mode::Done),
                    Err(e) => self.error(i, e, None),
                }
            }
            Request::Wait => match &self.exit {
                Some(x) => {
                    let r = Reply {
                        exit: Some(x.clone()),
                        ..Default::default()
                    };
                    self.respond(i, r, Mode::Done);
                }
                None => {
                    if let Some(c) = self.clients[i].as_mut() {
                        c.mode = Mode::Wait;
                    }
                }
            },
            Request::State => {
                let r = Reply {
                    pid: Some(self.init_pid),
                    running: Some(self.started && self.exit.is_none()),
                    exit: self.exit.clone(),
                    ..Default::default()
                };
                self.respond(i, r, Mode::Done);
            }
            Request::Exec { id, process, stdin } => self.exec(i, id, &process, stdin),
        }
    }

    fn start_container(&mut self, i: usize) {
        if self.exit.is_some() {
            // e.g. killed by a signal before it was started.
            return self.error(i, "container has exited", None);
        }
        let Some(created) = self.created.take() else {
            return self.error(i, "container already started", None);
        };
        match created.start() {
            Ok(running) => {
                self.started = true;
                self.cgroup = running.cgroup;
                let r = Reply {
                    pid: Some(self.init_pid),
                    ..Default::default()
                };
                self.respond(i, r, Mode::Done);
            }
            Err(e) => {
                // The init is gone (reaped and its cgroup removed by the runtime).
                let code = e.exit_code().unwrap_or(128);
                self.error(i, e.to_string(), e.exit_code());
                self.set_exit(code, None);
            }
        }
    }

    fn exec(&mut self, i: usize, id: String, process: &Process, with_stdin: bool) {
        if !self.started || self.exit.is_some() {
            return self.error(i, "container is not running", None);
        }
        if self.execs.iter().any(|x| x.id == id) {
            return self.error(i, format!("exec {id} already exists"), None);
        }
        let (stdio, mut outputs, mut stdin) = match process_stdio(process.terminal, with_stdin) {
            Ok(x) => x,
            Err(e) => return self.error(i, format!("pipes: {e}"), None),
        };
        match berth_runtime::exec(&self.spec, self.init_pid, process, stdio) {
            Ok(ep) => {
                let mut console = None;
                if let Some(master) = ep.console {
                    match console_ends(&master, with_stdin) {
                        Ok((o, inp)) => {
                            outputs = o;
                            stdin = inp;
                        }
                        Err(e) => return self.error(i, format!("console: {e}"), None),
                    }
                    console = Some(master);
                }
                self.execs.push(ExecProc {
                    id: id.clone(),
                    pid: ep.pid,
                    client: Some(i),
                    outputs,
                    stdin,
                    console,
                    status: None,
                });
                self.respond(
                    i,
                    Reply {
                        pid: Some(ep.pid),
                        ..Default::default()
                    },
                    Mode::Exec(id),
                );
            }
            Err(e) => self.error(i, e.to_string(), e.exit_code()),
        }
    }

    /// The init has exited and its output is drained (or the grace period passed).
    fn finish(&mut self) -> ! {
        for i in 0..self.outputs.len() {
            self.read_output(i);
        }
        self.log.finish();
        let status = self.exit.clone().unwrap_or_default();
        if let Ok(v) = serde_json::to_vec(&status) {
            let _ = atomic_write(&self.state_dir.join("exit.json"), &v);
        }
        for c in self.clients.iter_mut().flatten() {
            match c.mode {
                Mode::Wait => {
                    c.reply(&Reply {
                        exit: Some(status.clone()),
                        ..Default::default()
                    });
                    c.closing = true;
                }
                Mode::Attach { .. } | Mode::Request => c.closing = true,
                _ => {}
            }
            c.flush();
        }
        // Leftovers: anything still in the cgroup, and exec processes outside it.
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
        }
        for x in &self.execs {
            if x.status.is_none() {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(x.pid, libc::SIGKILL) };
            }
        }
        let deadline = Instant::now() + DRAIN;
        while self.execs.iter().any(|x| x.status.is_none()) && Instant::now() < deadline {
            if !self.reap(false) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        for e in 0..self.execs.len() {
            for j in 0..self.execs[e].outputs.len() {
                self.read_exec_output(e, j);
            }
            let x = &self.execs[e];
            if let Some(c) = x.client.and_then(|c| self.clients[c].as_mut()) {
                c.queue_frame(FRAME_EXIT, &x.status.unwrap_or(137).to_be_bytes());
                c.closing = true;
                c.flush();
            }
        }
        // Give readers a moment to take what is queued, then go.
        let deadline = Instant::now() + DRAIN;
        loop {
            let mut fds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .flatten()
                .filter(|c| !c.out.is_empty() && !c.dead)
                .map(|c| libc::pollfd {
                    fd: c.sock.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if fds.is_empty() || left.is_zero() {
                break;
            }
            // SAFETY: valid pollfd array.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    left.as_millis() as i32,
                )
            };
            for c in self.clients.iter_mut().flatten() {
                c.flush();
            }
        }
        let _ = std::fs::remove_file(self.state_dir.join("shim.sock"));
        std::process::exit(0)
    }
}

/// One complete `[kind][len u32 BE][payload]` frame from the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME || buf.len() < 5 + len {
        return None;
    }
    let kind = buf[0];
    let data = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Some((kind, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut b = vec![FRAME_STDIN, 0, 0, 0, 2, b'h', b'i', FRAME_CLOSE_STDIN, 0, 0];
        assert_eq!(take_frame(&mut b), Some((FRAME_STDIN, b"hi".to_vec())));
        assert_eq!(take_frame(&mut b), None);
        b.extend_from_slice(&[0, 0]);
        assert_eq!(take_frame(&mut b), Some((FRAME_CLOSE_STDIN, vec![])));
        assert!(b.is_empty());
    }
}
