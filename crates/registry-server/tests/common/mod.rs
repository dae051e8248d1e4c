//! Shared test kit: an in-process registry on 127.0.0.1:0 and a tiny blocking HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use berth_registry_server::{Background, Config};
use sha2::Digest as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A registry serving a temp root; both go away on drop.
pub struct Reg {
    pub bg: Option<Background>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Reg {
    pub fn start() -> Reg {
        Reg::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut Config)) -> Reg {
        Reg::start_with_addr(|c, _| f(c))
    }

    /// Like `start_with`, with the bound address known to the configuration.
    pub fn start_with_addr(f: impl FnOnce(&mut Config, SocketAddr)) -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = Config::new(dir.path().join("root"));
        f(&mut cfg, addr);
        let bg = Background::start(cfg, listener).unwrap();
        Reg {
            bg: Some(bg),
            dir,
            addr,
        }
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    pub fn c(&self) -> Client {
        Client {
            addr: self.addr,
            auth: None,
        }
    }

    pub fn stop(&mut self) {
        self.bg.take();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The first error code of an error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    /// A full `Authorization` header value.
    pub auth: Option<String>,
}

pub enum BodyMode<'a> {
    Sized(&'a [u8]),
    Chunked(&'a [u8]),
}

impl Client {
    pub fn with_auth(&self, auth: impl Into<String>) -> Client {
        Client {
            addr: self.addr,
            auth: Some(auth.into()),
        }
    }

    pub fn basic(&self, user: &str, pass: &str) -> Client {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        self.with_auth(format!("Basic {b}"))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }

    pub fn head(&self, path: &str) -> Resp {
        self.req("HEAD", path, &[], b"")
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path, &[], b"")
    }

    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.send(method, path, headers, BodyMode::Sized(body))
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: BodyMode) -> Resp {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(a) = &self.auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match &body {
            BodyMode::Sized(b) => {
                if !b.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
                    head.push_str(&format!("Content-Length: {}\r\n", b.len()));
                }
            }
            BodyMode::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (and close) before reading a refused body: ignore write errors.
        match body {
            BodyMode::Sized(b) => {
                let _ = s.write_all(b);
            }
            BodyMode::Chunked(b) => {
                for c in b.chunks(64 * 1024) {
                    if s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                        .is_err()
                        || s.write_all(c).is_err()
                        || s.write_all(b"\r\n").is_err()
                    {
                        break;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n");
            }
        }
        read_response(s, method == "HEAD")
    }
}

fn read_response(s: TcpStream, head: bool) -> Resp {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut body = Vec::new();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if !head && status != 204 && status != 304 {
        if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                let n = usize::from_str_radix(l.trim(), 16).unwrap();
                if n == 0 {
                    break;
                }
                let mut c = vec![0; n];
                r.read_exact(&mut c).unwrap();
                body.extend(c);
                let mut crlf = [0; 2];
                r.read_exact(&mut crlf).unwrap();
            }
        } else if let Some(n) = get("content-length") {
            let n: usize = n.parse().unwrap();
            body.resize(n, 0);
            r.read_exact(&mut body).unwrap();
        } else {
            r.read_to_end(&mut body).unwrap();
        }
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Pushes a blob monolithically (POST ?digest=) and returns its digest.
pub fn push_blob(c: &Client, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = c.req(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        data,
    );
    assert_eq!(r.status, 201, "push blob: {}", r.text());
    d
}

pub fn put_manifest(
    c: &Client,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Resp {
    c.req(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        body,
    )
}

pub struct Image {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: String,
    pub layers: Vec<String>,
}

/// Pushes a small OCI image (config + one layer, both derived from `seed`) under `tag`.
pub fn push_image(c: &Client, repo: &str, tag: &str, seed: &str) -> Image {
    let layer = format!("layer bytes of {seed}").into_bytes();
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes();
    let l = push_blob(c, repo, &layer);
    let cd = push_blob(c, repo, &config);
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": layer.len()}],
    });
    let body = serde_json::to_vec(&m).unwrap();
    let r = put_manifest(c, repo, tag, OCI_MANIFEST, &body);
    assert_eq!(r.status, 201, "push manifest: {}", r.text());
    Image {
        digest: sha256(&body),
        manifest: body,
        config: cd,
        layers: vec![l],
    }
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
