//! Helpers shared by the integration tests.

use std::process::Command;

use berth_testkit::{Daemon, Out};

/// Which client drives a flow: the same assertions run through both.
#[derive(Clone, Copy, Debug)]
pub enum Client {
    Berth,
    Docker,
}

impl Client {
    pub fn run(self, d: &Daemon, args: &[&str]) -> Out {
        match self {
            Client::Berth => d.berth(args),
            Client::Docker => d.docker(args),
        }
    }
    pub fn run_stdin(self, d: &Daemon, args: &[&str], stdin: &[u8]) -> Out {
        match self {
            Client::Berth => d.berth_stdin(args, stdin),
            Client::Docker => d.docker_stdin(args, stdin),
        }
    }
}

/// A raw HTTP request over the daemon's socket with curl: (status, headers, body).
pub fn curl(d: &Daemon, method: &str, path: &str) -> (u16, String, String) {
    let mut args = vec!["-s", "-i", "--unix-socket", d.sock.to_str().unwrap()];
    if method == "HEAD" {
        args.push("-I");
    } else {
        args.extend(["-X", method]);
    }
    let url = format!("http://d{path}");
    args.push(&url);
    let o = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Parses the JSON array `inspect` prints.
pub fn inspect(d: &Daemon, c: Client, name: &str) -> serde_json::Value {
    let out = c.run(d, &["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(out.ok()).expect("inspect prints JSON");
    v[0].clone()
}
