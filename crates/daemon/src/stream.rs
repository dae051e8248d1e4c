//! Hijacked connections (attach, exec): the `101 Switching Protocols` answer, and the proxy
//! between the client's raw stream and a shim's framed stream, with docker's stdcopy framing
//! and detach keys.

use std::io;

use berth_runtime::protocol::{
    FRAME_CLOSE_STDIN, FRAME_EXIT, FRAME_STDERR, FRAME_STDIN, FRAME_STDOUT,
};
use http::{HeaderValue, Response, StatusCode, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::containers::shim::{read_frame, write_frame};
use crate::http::{Resp, empty_body};

/// The `101` answer that hands the connection over to the stream.
pub fn upgrade_response(tty: bool) -> Resp {
    let mut r = Response::new(empty_body());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        }),
    );
    r
}

/// Parses docker's `--detach-keys` (`ctrl-p,ctrl-q`, `ctrl-a,x`).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if let Some(k) = p.strip_prefix("ctrl-") {
            let b = match k {
                "@" => 0,
                "[" => 27,
                "\\" => 28,
                "]" => 29,
                "^" => 30,
                "_" => 31,
                k if k.len() == 1 && k.as_bytes()[0].is_ascii_lowercase() => {
                    k.as_bytes()[0] - b'a' + 1
                }
                _ => return Err(format!("Invalid escape keys ({s}) provided")),
            };
            out.push(b);
        } else if p.len() == 1 {
            out.push(p.as_bytes()[0]);
        } else {
            return Err(format!("Invalid escape keys ({s}) provided"));
        }
    }
    Ok(out)
}

/// docker's stdcopy header for a frame of `len` bytes on `stream` (1 stdout, 2 stderr).
pub fn stdcopy_header(stream: u8, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = stream;
    h[4..].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

/// How a proxied stream ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// The process (or the shim) closed the stream; for exec, with its exit code.
    Closed(Option<i32>),
    /// The client typed the detach keys.
    Detached,
    /// The client went away.
    ClientGone,
}

pub struct ProxyOpts {
    pub tty: bool,
    /// Forward the client's input to the process.
    pub stdin: bool,
    /// Tell the shim to close the process's stdin when the client's input ends.
    pub close_stdin_on_eof: bool,
    pub detach_keys: Vec<u8>,
}

/// How long after the upgrade the first output may follow the response head.
const FIRST_OUTPUT_HOLD: std::time::Duration = std::time::Duration::from_millis(10);

/// Copies between a hijacked client connection and a shim stream until one side ends.
pub async fn proxy(client: Upgraded, shim: UnixStream, o: ProxyOpts) -> Ended {
    let (mut cr, mut cw) = tokio::io::split(TokioIo::new(client));
    let (mut sr, mut sw) = shim.into_split();
    let tty = o.tty;
    // Clients that read the 101 head through a buffered reader and then switch to the raw
    // socket (Python's docker SDK) lose bytes that arrive with the head; output that is
    // already waiting (a quick exec) goes out a moment after the head, as with dockerd.
    let hold_until = tokio::time::Instant::now() + FIRST_OUTPUT_HOLD;
    let output = async move {
        let mut exit = None;
        loop {
            match read_frame(&mut sr).await {
                Ok(Some((kind, data))) if kind == FRAME_STDOUT || kind == FRAME_STDERR => {
                    tokio::time::sleep_until(hold_until).await;
                    let res = if tty {
                        cw.write_all(&data).await
                    } else {
                        let h = stdcopy_header(kind, data.len());
                        match cw.write_all(&h).await {
                            Ok(()) => cw.write_all(&data).await,
                            Err(e) => Err(e),
                        }
                    };
                    if res.is_err() {
                        return Ended::ClientGone;
                    }
                }
                Ok(Some((FRAME_EXIT, data))) if data.len() == 4 => {
                    exit = Some(i32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = cw.flush().await;
        let _ = cw.shutdown().await;
        Ended::Closed(exit)
    };
    let input = async move {
        if !o.stdin {
            return std::future::pending::<Ended>().await;
        }
        match copy_input(&mut cr, &mut sw, &o.detach_keys).await {
            Ok(true) => Ended::Detached,
            Ok(false) | Err(_) => {
                if o.close_stdin_on_eof {
                    let _ = write_frame(&mut sw, FRAME_CLOSE_STDIN, &[]).await;
                }
                // Output keeps flowing until the process ends.
                std::future::pending::<Ended>().await
            }
        }
    };
    tokio::select! {
        e = output => e,
        e = input => e,
    }
}

/// Forwards input, watching for the detach sequence; Ok(true) when it was typed.
async fn copy_input(
    r: &mut (impl AsyncRead + Unpin),
    w: &mut (impl AsyncWrite + Unpin),
    keys: &[u8],
) -> io::Result<bool> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut matched = 0usize;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if !keys.is_empty() && b == keys[matched] {
                matched += 1;
                if matched == keys.len() {
                    if !out.is_empty() {
                        write_frame(w, FRAME_STDIN, &out).await?;
                    }
                    return Ok(true);
                }
                continue;
            }
            // A broken sequence: what was held back is ordinary input after all.
            out.extend_from_slice(&keys[..matched]);
            matched = 0;
            if !keys.is_empty() && b == keys[0] {
                matched = 1;
                continue;
            }
            out.push(b);
        }
        if !out.is_empty() {
            write_frame(w, FRAME_STDIN, &out).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert!(parse_detach_keys("ctrl-pp").is_err());
    }

    #[tokio::test]
    async fn input_stops_at_the_detach_sequence_and_keeps_broken_ones() {
        let input: &[u8] = &[b'a', 16, b'b', 16, 17, b'z'];
        let mut r = input;
        let mut w: Vec<u8> = Vec::new();
        assert!(copy_input(&mut r, &mut w, &[16, 17]).await.unwrap());
        // One frame: "a", then the held ctrl-p released by "b".
        assert_eq!(&w[5..], &[b'a', 16, b'b']);
    }
}
