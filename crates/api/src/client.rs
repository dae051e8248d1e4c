//! A small synchronous HTTP/1.1 client for the Engine API over a unix socket (or TCP).
//!
//! The CLI makes one or two requests per command, so a blocking client with no async runtime
//! keeps `berth` quick to start. It streams request and response bodies (load, save, logs) and
//! hands back the raw connection after `101 Switching Protocols` (attach, exec).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::{Serialize, de::DeserializeOwned};

use crate::{API_VERSION, DEFAULT_SOCKET};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "Cannot connect to the berth daemon at {host}. Is the berth daemon running? ({source})"
    )]
    Connect { host: String, source: io::Error },
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    #[error("error during connect: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error talking to the daemon: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
}

impl Host {
    /// Parses docker's host forms: `unix:///path`, `tcp://host:port`, `/path`.
    pub fn parse(s: &str) -> Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Ok(Host::Unix(DEFAULT_SOCKET.into()));
            }
            return Ok(Host::Unix(p.into()));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            if a.is_empty() {
                return Err(ClientError::Invalid(format!(
                    "invalid bind address format: {s}"
                )));
            }
            return Ok(Host::Tcp(a.to_string()));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(s.into()));
        }
        Err(ClientError::Invalid(format!(
            "unable to parse docker host `{s}`: use unix:///path or tcp://host:port"
        )))
    }

    /// docker's lookup: the -H flag, else DOCKER_HOST, else the default socket.
    pub fn resolve(flag: Option<&str>) -> Result<Host> {
        if let Some(h) = flag {
            return Host::parse(h);
        }
        match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => Host::parse(&h),
            _ => Ok(Host::Unix(DEFAULT_SOCKET.into())),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A connection to the daemon: either socket kind.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    /// Closes our sending half (stdin EOF on attach) while still reading.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(Vec<u8>, &'static str),
    /// Streamed with chunked encoding (e.g. an image archive from stdin).
    Reader(Box<dyn Read + 'a>, &'static str),
}

#[derive(Clone)]
pub struct Client {
    host: Host,
    prefix: String,
}

/// Percent-encodes a query component.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `?k=v&…` from pairs, skipping none.
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

impl Client {
    pub fn new(host: Host) -> Client {
        Client {
            host,
            prefix: format!("/v{API_VERSION}"),
        }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    fn connect(&self) -> Result<Conn> {
        let res = match &self.host {
            Host::Unix(p) => UnixStream::connect(p).map(Conn::Unix),
            Host::Tcp(a) => TcpStream::connect(a).map(|s| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        };
        res.map_err(|source| ClientError::Connect {
            host: self.host.to_string(),
            source,
        })
    }

    /// Sends a request; `path` is unversioned (`/images/json?all=1`). Any status is returned;
    /// use [`Response::check`] to turn daemon errors into [`ClientError::Daemon`].
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response> {
        let mut conn = self.connect()?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: berth/{}\r\n",
            self.prefix,
            crate::VERSION
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match &body {
            Body::Empty => {
                if method != "GET" && method != "HEAD" {
                    head.push_str("Content-Length: 0\r\n");
                }
            }
            Body::Bytes(b, ct) => head.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            )),
            Body::Reader(_, ct) => head.push_str(&format!(
                "Content-Type: {ct}\r\nTransfer-Encoding: chunked\r\n"
            )),
        }
        head.push_str("\r\n");
        match body {
            Body::Empty => conn.write_all(head.as_bytes())?,
            Body::Bytes(b, _) => {
                let mut all = head.into_bytes();
                all.extend_from_slice(&b);
                conn.write_all(&all)?;
            }
            Body::Reader(mut r, _) => {
                conn.write_all(head.as_bytes())?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    };
                    // The daemon may answer (an error) before reading everything: stop sending then.
                    if conn.write_all(format!("{n:x}\r\n").as_bytes()).is_err()
                        || conn.write_all(&buf[..n]).is_err()
                        || conn.write_all(b"\r\n").is_err()
                    {
                        break;
                    }
                }
                let _ = conn.write_all(b"0\r\n\r\n");
            }
        }
        Response::read(conn, method == "HEAD")
    }

    /// GET and decode JSON, failing on a daemon error.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send("GET", path, &[], Body::Empty)?.check()?.json()
    }

    /// POST a JSON body (or none) and decode the JSON answer.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let body = match body {
            Some(b) => Body::Bytes(
                serde_json::to_vec(b).expect("request serializes"),
                "application/json",
            ),
            None => Body::Empty,
        };
        self.send("POST", path, &[], body)?.check()?.json()
    }

    /// A request whose answer is only a status.
    pub fn call(&self, method: &str, path: &str) -> Result<Response> {
        self.send(method, path, &[], Body::Empty)?.check()
    }

    /// Docker's hijacked requests (`attach`, `exec start`): asks for `Upgrade: tcp` and, on
    /// `101 Switching Protocols`, hands back the raw bidirectional stream. Any other success
    /// status is refused as the docker CLI refuses it; errors carry the daemon's message.
    pub fn hijack(&self, path: &str, body: Body) -> Result<Hijacked> {
        let mut headers = vec![
            ("Connection", "Upgrade".to_string()),
            ("Upgrade", "tcp".to_string()),
        ];
        if matches!(body, Body::Empty) {
            headers.push(("Content-Type", "text/plain".to_string()));
        }
        let resp = self.send("POST", path, &headers, body)?;
        if resp.status != 101 {
            let status = resp.status;
            resp.check()?;
            return Err(ClientError::Invalid(format!(
                "unable to upgrade to tcp, received {status}"
            )));
        }
        let content_type = resp.header("content-type").map(str::to_string);
        let (buffered, conn) = resp.into_upgraded();
        Ok(Hijacked {
            buffered,
            conn,
            content_type,
        })
    }
}

/// The raw stream of a hijacked request: bytes the daemon sent right after its headers, then
/// the connection itself.
pub struct Hijacked {
    pub buffered: Vec<u8>,
    pub conn: Conn,
    /// `application/vnd.docker.raw-stream` or `…multiplexed-stream`, when the daemon says.
    pub content_type: Option<String>,
}

impl Hijacked {
    /// The daemon's side of the stream as one reader (buffered bytes first).
    pub fn reader(&self) -> io::Result<impl Read + Send + use<>> {
        Ok(io::Cursor::new(self.buffered.clone()).chain(self.conn.try_clone()?))
    }
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    UntilClose,
}

/// A response: status, headers, and the body as a reader.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<Conn>,
    framing: Framing,
}

fn read_line(r: &mut BufReader<Conn>) -> Result<String> {
    let mut line = String::new();
    let n = r.read_line(&mut line)?;
    if n == 0 {
        return Err(ClientError::Protocol(
            "connection closed by the daemon".into(),
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

impl Response {
    fn read(conn: Conn, head_only: bool) -> Result<Response> {
        let mut reader = BufReader::with_capacity(64 * 1024, conn);
        let status_line = read_line(&mut reader)?;
        let mut parts = status_line.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut reader)?;
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let framing = if head_only || status == 204 || status == 304 || status == 101 {
            Framing::Length(0)
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked {
                left: 0,
                done: false,
            }
        } else if let Some(len) = get("content-length").and_then(|v| v.parse().ok()) {
            Framing::Length(len)
        } else {
            Framing::UntilClose
        };
        Ok(Response {
            status,
            headers,
            reader,
            framing,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Turns a 4xx/5xx answer into the daemon's error message.
    pub fn check(mut self) -> Result<Response> {
        if self.status < 400 {
            return Ok(self);
        }
        let mut body = Vec::new();
        let _ = self.read_to_end(&mut body);
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(ClientError::Daemon {
            status: self.status,
            message,
        })
    }

    pub fn json<T: DeserializeOwned>(mut self) -> Result<T> {
        let mut body = Vec::new();
        self.read_to_end(&mut body)?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("cannot decode the daemon's answer: {e}")))
    }

    pub fn text(mut self) -> Result<String> {
        let mut body = String::new();
        self.read_to_string(&mut body)?;
        Ok(body)
    }

    /// The raw connection after `101 Switching Protocols`, with anything already buffered.
    pub fn into_upgraded(self) -> (Vec<u8>, Conn) {
        let buffered = self.reader.buffer().to_vec();
        (buffered, self.reader.into_inner())
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Length(left) => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let cap = buf.len().min(*left as usize);
                let n = self.reader.read(&mut buf[..cap])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "daemon closed the connection early",
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::UntilClose => self.reader.read(buf),
            Framing::Chunked { left, done } => {
                if *done || buf.is_empty() {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // CRLF after the previous chunk's data.
                        line.clear();
                        self.reader.read_line(&mut line)?;
                    }
                    let size_str = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size_str, 16).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size {line:?}"),
                        )
                    })?;
                    if size == 0 {
                        *done = true;
                        // Trailers end with an empty line.
                        loop {
                            let mut t = String::new();
                            if self.reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                                break;
                            }
                        }
                        return Ok(0);
                    }
                    *left = size;
                }
                let cap = buf.len().min(*left as usize);
                let n = self.reader.read(&mut buf[..cap])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "daemon closed the connection mid-chunk",
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}

/// Downloads `url` (plain `http://` only) and returns the response body as a reader; used by
/// `import` from a URL. Redirects are followed a few times.
pub fn fetch_url(url: &str) -> Result<Response> {
    let mut url = url.to_string();
    for _ in 0..5 {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            ClientError::Invalid(format!(
                "unsupported URL {url}: only http:// sources can be fetched"
            ))
        })?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let mut conn = TcpStream::connect(&addr).map_err(ClientError::Io)?;
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let resp = Response::read(Conn::Tcp(conn), false)?;
        if (300..400).contains(&resp.status)
            && let Some(loc) = resp.header("location")
        {
            url = if loc.starts_with("http") {
                loc.to_string()
            } else {
                format!("http://{hostport}{loc}")
            };
            continue;
        }
        if resp.status >= 400 {
            return Err(ClientError::Protocol(format!(
                "{url} answered {}",
                resp.status
            )));
        }
        return Ok(resp);
    }
    Err(ClientError::Protocol(format!(
        "too many redirects fetching {url}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        assert_eq!(
            Host::parse("unix:///tmp/x.sock").unwrap(),
            Host::Unix("/tmp/x.sock".into())
        );
        assert_eq!(Host::parse("/tmp/y").unwrap(), Host::Unix("/tmp/y".into()));
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375").unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert!(Host::parse("ftp://x").is_err());
        assert_eq!(Host::Unix("/a".into()).to_string(), "unix:///a");
    }

    #[test]
    fn query_encoding() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("filters", r#"{"a":["b c"]}"#.into()), ("all", "1".into())]),
            "?filters=%7B%22a%22%3A%5B%22b%20c%22%5D%7D&all=1"
        );
    }

    /// Serves one connection on a fresh socket with `answer`, returning the request head.
    fn one_shot_server(answer: &'static [u8]) -> (Client, std::thread::JoinHandle<String>) {
        let dir = std::env::temp_dir().join(format!(
            "berth-api-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join(format!("{}.sock", answer.len()));
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let sock_path = sock.clone();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Connected: the path is no longer needed, so leave nothing behind in /tmp.
            let _ = std::fs::remove_file(&sock_path);
            let _ = std::fs::remove_dir(&dir);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).unwrap() == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            s.write_all(answer).unwrap();
            String::from_utf8(head).unwrap()
        });
        (Client::new(Host::Unix(sock)), handle)
    }

    #[test]
    fn hijack_upgrades_and_keeps_buffered_bytes() {
        let (client, server) = one_shot_server(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello",
        );
        let h = client
            .hijack("/containers/x/attach?stream=1", Body::Empty)
            .unwrap();
        let head = server.join().unwrap();
        assert!(head.starts_with("POST /v1.47/containers/x/attach?stream=1 HTTP/1.1\r\n"));
        assert!(head.contains("Connection: Upgrade\r\n"));
        assert!(head.contains("Upgrade: tcp\r\n"));
        assert_eq!(
            h.content_type.as_deref(),
            Some("application/vnd.docker.raw-stream")
        );
        let mut got = String::new();
        h.reader().unwrap().read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
    }

    #[test]
    fn hijack_refuses_plain_success_and_reports_errors() {
        let (client, _s) = one_shot_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let err = client.hijack("/exec/x/start", Body::Empty).err().unwrap();
        assert_eq!(err.to_string(), "unable to upgrade to tcp, received 200");

        let (client, _s) = one_shot_server(
            b"HTTP/1.1 409 Conflict\r\nContent-Length: 38\r\n\r\n{\"message\":\"container is not running\"}",
        );
        let err = client.hijack("/exec/y/start", Body::Empty).err().unwrap();
        assert_eq!(err.status(), Some(409));
        assert_eq!(
            err.to_string(),
            "Error response from daemon: container is not running"
        );
    }

    #[test]
    fn chunked_and_length_bodies() {
        let (a, mut b) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            b.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").unwrap();
        });
        let r = Response::read(Conn::Unix(a), false).unwrap();
        assert_eq!(r.text().unwrap(), "hello world");

        let (a, mut b) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            b.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 31\r\n\r\n{\"message\":\"No such image: x\"}\n").unwrap();
        });
        let err = Response::read(Conn::Unix(a), false)
            .unwrap()
            .check()
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "Error response from daemon: No such image: x"
        );
        assert_eq!(err.status(), Some(404));
    }
}
