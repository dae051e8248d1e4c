//! berthd's side of the shim protocol (`berth_runtime::protocol`): launching a shim and
//! talking to it over its socket.

use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_runtime::protocol::{Ready, Reply, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// An attach request waiting for its container to start: the shim connection is handed over
/// once the shim exists.
pub struct PendingAttach {
    pub request: Request,
    pub tx: tokio::sync::oneshot::Sender<io::Result<UnixStream>>,
}

/// Runs `berth-shim <bundle>` and waits for its ready line. Blocking: call from spawn_blocking.
pub fn launch(shim_bin: &Path, bundle: &Path) -> io::Result<Ready> {
    let (rd, wr): (OwnedFd, OwnedFd) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let wr_fd = wr.as_raw_fd();
    let mut cmd = Command::new(shim_bin);
    cmd.arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec (dup2).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wr_fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(wr);
    let mut line = String::new();
    let read = BufReader::new(std::fs::File::from(rd)).read_line(&mut line);
    // The shim detaches with a double fork: the process we started exits at once.
    let _ = child.wait();
    read?;
    if line.trim().is_empty() {
        return Err(io::Error::other(
            "berth-shim exited without reporting (see the daemon log)",
        ));
    }
    serde_json::from_str(line.trim())
        .map_err(|e| io::Error::other(format!("bad ready line from berth-shim: {e}")))
}

/// Reads one `\n`-terminated line byte by byte, so nothing after it (stream frames) is consumed.
async fn read_line(s: &mut UnixStream) -> io::Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut b = [0u8; 1];
    loop {
        let n = s.read(&mut b).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "shim closed the connection",
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        out.push(b[0]);
        if out.len() > 1 << 20 {
            return Err(io::Error::other("shim reply too long"));
        }
    }
    String::from_utf8(out).map_err(|_| io::Error::other("shim reply is not UTF-8"))
}

/// Opens a connection and sends `req`; the reply is read later with [`reply`].
pub async fn send(sock: &Path, req: &Request) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(sock).await?;
    let mut line = serde_json::to_vec(req).expect("requests serialize");
    line.push(b'\n');
    s.write_all(&line).await?;
    Ok(s)
}

/// Reads the reply line of a request sent with [`send`].
pub async fn reply(s: &mut UnixStream) -> io::Result<Reply> {
    let line = read_line(s).await?;
    serde_json::from_str(&line).map_err(|e| io::Error::other(format!("bad shim reply: {e}")))
}

/// Opens a connection, sends `req` and reads the reply; the connection stays usable for
/// the frames of `attach`/`exec`.
pub async fn call(sock: &Path, req: &Request) -> io::Result<(Reply, UnixStream)> {
    let mut s = send(sock, req).await?;
    let r = reply(&mut s).await?;
    Ok((r, s))
}

/// A request whose reply is all that matters; a shim error becomes an `io::Error`.
pub async fn request(sock: &Path, req: &Request) -> io::Result<Reply> {
    let (reply, _) = call(sock, req).await?;
    if let Some(e) = &reply.error {
        return Err(io::Error::other(e.clone()));
    }
    Ok(reply)
}

/// Reads one frame `[kind][len u32 BE][payload]`; None at a clean end of stream.
pub async fn read_frame(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(Some((head[0], buf)))
}

pub async fn write_frame(
    s: &mut (impl tokio::io::AsyncWrite + Unpin),
    kind: u8,
    payload: &[u8],
) -> io::Result<()> {
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    s.write_all(&head).await?;
    s.write_all(payload).await
}
