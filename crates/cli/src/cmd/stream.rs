//! Hijacked attach/exec sessions: docker's stdcopy framing, the client-side detach-key
//! proxy, and the two pumps (daemon → stdout/stderr, stdin → daemon) with docker's rules for
//! when a session is over.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use berth_api::client::Hijacked;

use super::term::RawTerminal;

/// Stream numbers of docker's multiplexed framing.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const SYSTEMERR: u8 = 3;

/// docker's `stdcopy.StdCopy`: splits `[stream, 0, 0, 0, size(u32 BE)] payload` frames onto
/// `out` (stdin and stdout frames) and `err`. A `systemerr` frame ends the copy with its
/// text as the error. A short final frame is dropped, as docker does.
pub fn demux(mut src: impl Read, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u64> {
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    let mut written = 0u64;
    loop {
        if !read_full(&mut src, &mut header)? {
            return Ok(written);
        }
        let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let stream = header[0];
        if !matches!(stream, STDIN | STDOUT | STDERR | SYSTEMERR) {
            return Err(io::Error::other(format!(
                "Unrecognized input header: {stream}"
            )));
        }
        if buf.len() < size {
            buf.resize(size, 0);
        }
        if !read_full(&mut src, &mut buf[..size])? {
            return Ok(written);
        }
        let payload = &buf[..size];
        match stream {
            SYSTEMERR => {
                return Err(io::Error::other(format!(
                    "error from daemon in stream: {}",
                    String::from_utf8_lossy(payload)
                )));
            }
            STDERR => {
                err.write_all(payload)?;
                err.flush()?;
            }
            _ => {
                out.write_all(payload)?;
                out.flush()?;
            }
        }
        written += size as u64;
    }
}

/// Fills `buf`; false if the stream ended first (a partial read is dropped).
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => return Ok(false),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The error an [`EscapeProxy`] reports when the detach sequence is typed (moby/term's
/// `EscapeError`).
pub const ESCAPE_MESSAGE: &str = "read escape sequence";

pub fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string() == ESCAPE_MESSAGE
}

/// moby/term's `EscapeProxy`: passes input through, holding back a partial detach sequence;
/// the full sequence ends the stream with [`ESCAPE_MESSAGE`] and never reaches the daemon.
pub struct EscapeProxy<R> {
    inner: R,
    keys: Vec<u8>,
    /// How many bytes of `keys` were matched (and held back) so far.
    pos: usize,
    pending: std::collections::VecDeque<u8>,
    escaped: bool,
}

impl<R: Read> EscapeProxy<R> {
    pub fn new(inner: R, keys: Vec<u8>) -> Self {
        EscapeProxy {
            inner,
            keys,
            pos: 0,
            pending: Default::default(),
            escaped: false,
        }
    }

    fn drain(&mut self, buf: &mut [u8]) -> usize {
        let n = self.pending.len().min(buf.len());
        for (slot, b) in buf.iter_mut().zip(self.pending.drain(..n)) {
            *slot = b;
        }
        n
    }
}

impl<R: Read> Read for EscapeProxy<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.keys.is_empty() {
            return self.inner.read(buf);
        }
        loop {
            if !self.pending.is_empty() {
                return Ok(self.drain(buf));
            }
            if self.escaped {
                return Err(io::Error::other(ESCAPE_MESSAGE));
            }
            let mut chunk = [0u8; 4096];
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                // Input ended mid-sequence: hand over what was held back.
                let held = self.keys[..self.pos].to_vec();
                self.pos = 0;
                self.pending.extend(held);
                if self.pending.is_empty() {
                    return Ok(0);
                }
                continue;
            }
            for &b in &chunk[..n] {
                if b == self.keys[self.pos] {
                    self.pos += 1;
                    if self.pos == self.keys.len() {
                        self.escaped = true;
                        break;
                    }
                    continue;
                }
                if self.pos > 0 {
                    let held = self.keys[..self.pos].to_vec();
                    self.pending.extend(held);
                    self.pos = 0;
                    if b == self.keys[0] {
                        self.pos = 1;
                        continue;
                    }
                }
                self.pending.push_back(b);
            }
        }
    }
}

/// What a session attaches.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// Client-side detach sequence (TTY sessions only, as in docker).
    pub detach_keys: Option<String>,
}

/// How a session ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// The daemon closed the output (or, with no output attached, stdin ended).
    Done,
    /// The user typed the detach sequence.
    Detached,
    Failed(io::Error),
}

enum Pump {
    Output(io::Result<()>),
    InputDone,
    Detached,
}

/// Runs a hijacked session on background threads and calls `on_end` once when it is over,
/// following docker's `hijackedIOStreamer`: the output ending ends the session; stdin ending
/// half-closes the connection and waits for the output; the detach keys end it at once.
/// In TTY mode stdin is switched to raw mode for the session and restored after.
pub fn spawn_session(
    h: Hijacked,
    opts: StreamOptions,
    on_end: impl FnOnce(StreamEnd) + Send + 'static,
) -> io::Result<RawTerminal> {
    let raw = if opts.stdin && opts.tty {
        RawTerminal::enable().map_err(|e| {
            io::Error::other(format!(
                "unable to setup input stream: unable to set IO streams as raw terminal: {e}"
            ))
        })?
    } else {
        RawTerminal::disabled()
    };
    let (tx, rx) = mpsc::channel::<Pump>();
    let has_output = opts.stdout || opts.stderr;
    if has_output {
        let reader = h.reader()?;
        let tx = tx.clone();
        let raw = raw.clone();
        let tty = opts.tty;
        std::thread::spawn(move || {
            let res = if tty {
                let r = copy_raw(reader);
                raw.restore();
                r
            } else {
                let mut out = io::stdout();
                let mut err = io::stderr();
                demux(reader, &mut out, &mut err).map(|_| ())
            };
            let _ = tx.send(Pump::Output(res));
        });
    }
    {
        let conn = h.conn.try_clone()?;
        let tx = tx.clone();
        let raw = raw.clone();
        let stdin = opts.stdin;
        let keys = opts
            .tty
            .then(|| super::term::detach_keys_or_default(opts.detach_keys.as_deref()));
        std::thread::spawn(move || {
            if stdin {
                let input = io::stdin();
                let res = match keys {
                    Some(k) => copy_input(EscapeProxy::new(input, k), &conn),
                    None => copy_input(input, &conn),
                };
                raw.restore();
                if res.as_ref().is_err_and(is_escape) {
                    let _ = tx.send(Pump::Detached);
                    return;
                }
            }
            let _ = conn.shutdown_write();
            let _ = tx.send(Pump::InputDone);
        });
    }
    drop(tx);
    std::thread::spawn(move || {
        let end = loop {
            match rx.recv() {
                Ok(Pump::Output(Ok(()))) => break StreamEnd::Done,
                Ok(Pump::Output(Err(e))) => break StreamEnd::Failed(e),
                Ok(Pump::Detached) => break StreamEnd::Detached,
                Ok(Pump::InputDone) if !has_output => break StreamEnd::Done,
                Ok(Pump::InputDone) => continue,
                Err(_) => break StreamEnd::Done,
            }
        };
        on_end(end);
    });
    // The pumps hold their own handles on the connection.
    drop(h);
    Ok(raw)
}

/// Copies a TTY session's raw output to stdout, flushing as it goes.
fn copy_raw(mut reader: impl Read) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

fn copy_input(mut input: impl Read, conn: &berth_api::client::Conn) -> io::Result<()> {
    let mut conn = conn.try_clone()?;
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?;
    }
}

/// Copies a container's output stream (logs): raw for TTY containers, else demultiplexed.
pub fn copy_output(reader: impl Read, tty: bool) -> io::Result<()> {
    if tty {
        copy_raw(reader)
    } else {
        demux(reader, &mut io::stdout(), &mut io::stderr()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn demux_splits_streams() {
        let mut data = frame(1, b"out1\n");
        data.extend(frame(2, b"err\n"));
        data.extend(frame(0, b"in\n"));
        data.extend(frame(1, b""));
        data.extend(frame(1, &vec![b'x'; 100_000]));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let n = demux(&data[..], &mut out, &mut err).unwrap();
        assert_eq!(n, 5 + 4 + 3 + 100_000);
        assert!(out.starts_with(b"out1\nin\nxxx"));
        assert_eq!(out.len(), 5 + 3 + 100_000);
        assert_eq!(err, b"err\n");
    }

    #[test]
    fn demux_edge_cases() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut data = frame(1, b"ok");
        data.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 9, b'p']);
        assert_eq!(demux(&data[..], &mut out, &mut err).unwrap(), 2);
        assert_eq!(out, b"ok");

        let e = demux(&frame(3, b"boom")[..], &mut out, &mut err).unwrap_err();
        assert_eq!(e.to_string(), "error from daemon in stream: boom");
        let e = demux(&frame(7, b"?")[..], &mut out, &mut err).unwrap_err();
        assert_eq!(e.to_string(), "Unrecognized input header: 7");
        assert_eq!(demux(&[][..], &mut out, &mut err).unwrap(), 0);
    }

    /// Feeds the proxy one read at a time.
    struct Chunks(Vec<Vec<u8>>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    fn run_proxy(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut p = EscapeProxy::new(
            Chunks(chunks.iter().map(|c| c.to_vec()).collect()),
            vec![16, 17],
        );
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match p.read(&mut buf) {
                Ok(0) => return (out, false),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if is_escape(&e) => return (out, true),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn escape_proxy_detects_detach_keys() {
        assert_eq!(run_proxy(&[b"hello"]), (b"hello".to_vec(), false));
        assert_eq!(run_proxy(&[b"ab\x10\x11cd"]), (b"ab".to_vec(), true));
        assert_eq!(run_proxy(&[b"ab\x10", b"\x11"]), (b"ab".to_vec(), true));
        assert_eq!(run_proxy(&[b"\x10", b"x"]), (b"\x10x".to_vec(), false));
        assert_eq!(run_proxy(&[b"\x10\x10\x11"]), (b"\x10".to_vec(), true));
        assert_eq!(run_proxy(&[b"a\x10"]), (b"a\x10".to_vec(), false));
        let mut plain = EscapeProxy::new(&b"\x10\x11"[..], vec![]);
        let mut s = Vec::new();
        plain.read_to_end(&mut s).unwrap();
        assert_eq!(s, b"\x10\x11");
    }
}
