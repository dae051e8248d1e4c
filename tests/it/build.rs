//! The Dockerfile builder through both clients: `DOCKER_BUILDKIT=0 docker build` (the classic
//! builder's API) and `berth build`. Results are checked by `inspect` and by running images.
//! RUN steps use `--network none` so these tests do not depend on the network subsystem.

use std::fs;
use std::path::Path;

use berth_testkit::{Daemon, Out};

use crate::util::{Client, inspect};

const BOTH: [Client; 2] = [Client::Berth, Client::Docker];

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let p = dir.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, c).unwrap();
    }
}

fn build(d: &Daemon, c: Client, dir: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["build", "--network", "none"];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    c.run(d, &args)
}

fn run(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm", "--network", "none"];
    a.extend_from_slice(args);
    d.berth(&a).ok().to_string()
}

fn setup(name: &str) -> (Daemon, berth_testkit::TempDir) {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let ctx = berth_testkit::tempdir(name).unwrap();
    (d, ctx)
}

fn no_leftovers(d: &Daemon) {
    assert_eq!(
        d.berth(&["ps", "-aq"]).ok().trim(),
        "",
        "a build container was left"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for root in [&d.exec_root, &d.data_root] {
        let root = format!("{}/", root.display());
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&root)).collect();
        assert!(left.is_empty(), "build mounts were left: {left:#?}");
    }
    // The builder's scratch mount points and staging directories are gone too.
    let scratch = d.exec_root.join("build");
    let n = fs::read_dir(&scratch).map(|r| r.count()).unwrap_or(0);
    assert_eq!(n, 0, "{} is not empty", scratch.display());
}

/// A tiny HTTP/1.1 server on loopback for ADD <url>: serves `files` by path, counts requests,
/// and stops (unblocking its accept) when dropped, even when the test fails.
struct HttpServer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    fn start(files: Vec<(String, Vec<u8>)>) -> HttpServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, hits2) = (stop.clone(), hits.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
                        break;
                    }
                }
                hits2.fetch_add(1, Ordering::SeqCst);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = conn.write_all(body);
                    }
                    None => {
                        let _ = conn.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            }
        });
        HttpServer {
            addr,
            stop,
            hits,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tar with `entries` (path, content), compressed by `compressor` (`gzip`, `bzip2`, `xz`, or
/// "" for none).
fn tar_of(entries: &[(&str, &str)], compressor: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, c) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_000_000_000);
        b.append_data(&mut h, p, c.as_bytes()).unwrap();
    }
    let raw = b.into_inner().unwrap();
    if compressor.is_empty() {
        return raw;
    }
    use std::io::Write;
    let mut child = std::process::Command::new(compressor)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&raw).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{compressor} failed");
    out.stdout
}

#[test]
fn every_instruction_through_both_clients() {
    let (d, ctx) = setup("bi");
    let dir = ctx.path();
    // A tar.gz for ADD to unpack.
    fs::write(
        dir.join("arch.tar.gz"),
        tar_of(&[("inner/x.txt", "inside")], "gzip"),
    )
    .unwrap();
    write(
        dir,
        &[
            ("a.txt", "file a\n"),
            ("src/one.txt", "one\n"),
            ("src/sub/two.txt", "two\n"),
            (
                "Dockerfile",
                r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS final
LABEL org.example.a="x y" b=2
MAINTAINER someone <s@example.com>
EXPOSE 80 53/udp
ENV OLD value with spaces
ENV NEW=1 QUOTED="a b"
ARG VERSION=1.0
WORKDIR /work/dir
COPY a.txt .
COPY --chown=1000:1000 --chmod=750 src /srcdir/
ADD arch.tar.gz /unpacked/
RUN <<EOF
echo "heredoc $VERSION" > /heredoc.txt
EOF
COPY <<EOT /inline.txt
inline $NEW
EOT
RUN mkdir -p /home/user && chown 1000 /home/user
USER 1000
RUN id -u > /home/user/uid.txt
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-e", "-c"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $NEW; pwd"]
"#,
            ),
        ],
    );
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("all:{i}");
        let o = build(&d, *c, dir, &["-t", &tag, "--no-cache"]);
        let stdout = o.ok();
        assert!(stdout.contains("Step 1/"), "{stdout}");
        assert!(stdout.contains("Successfully built"), "{stdout}");
        assert!(
            stdout.contains(&format!("Successfully tagged {tag}")),
            "{stdout}"
        );
        let v = inspect(&d, *c, &tag);
        let cfg = &v["Config"];
        assert_eq!(cfg["Labels"]["org.example.a"], "x y");
        assert_eq!(cfg["Labels"]["b"], "2");
        assert_eq!(v["Author"], "someone <s@example.com>");
        assert!(cfg["ExposedPorts"]["80/tcp"].is_object());
        assert!(cfg["ExposedPorts"]["53/udp"].is_object());
        let env: Vec<String> = serde_json::from_value(cfg["Env"].clone()).unwrap();
        assert!(
            env.contains(&"OLD=value with spaces".to_string()),
            "{env:?}"
        );
        assert!(env.contains(&"QUOTED=a b".to_string()), "{env:?}");
        assert!(
            !env.iter().any(|e| e.starts_with("VERSION=")),
            "ARG is not ENV"
        );
        assert_eq!(cfg["WorkingDir"], "/work/dir");
        assert_eq!(cfg["User"], "1000");
        assert!(cfg["Volumes"]["/data"].is_object());
        assert_eq!(cfg["StopSignal"], "SIGUSR1");
        assert_eq!(cfg["Healthcheck"]["Test"][1], "true");
        assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000i64);
        assert_eq!(cfg["Healthcheck"]["Retries"], 2);
        assert_eq!(cfg["Shell"][1], "-e");
        assert_eq!(cfg["OnBuild"][0], "RUN echo child");
        assert_eq!(cfg["Entrypoint"][0], "/bin/sh");
        // Running it: files, owners, modes, WORKDIR, USER, ENTRYPOINT + CMD.
        assert_eq!(run(&d, &[&tag]), "1\n/work/dir\n");
        let check = run(
            &d,
            &[
                "--entrypoint",
                "sh",
                &tag,
                "-c",
                "cat /work/dir/a.txt /srcdir/one.txt /srcdir/sub/two.txt /unpacked/inner/x.txt; echo; \
                 cat /heredoc.txt /inline.txt /home/user/uid.txt; stat -c '%u:%g %a' /srcdir/one.txt; \
                 ls /unpacked; id -u",
            ],
        );
        assert_eq!(
            check,
            "file a\none\ntwo\ninside\nheredoc 1.0\ninline 1\n1000\n1000:1000 750\ninner\n1000\n",
        );
    }
    // Both clients made the same kind of image; history has one entry per step.
    let hist = d.berth(&["history", "-q", "all:0"]);
    assert!(hist.ok().lines().count() >= 20);
    no_leftovers(&d);
}

/// Docker's ENTRYPOINT/CMD interaction table
/// (<https://docs.docker.com/reference/dockerfile/#understand-how-cmd-and-entrypoint-interact>),
/// the stored config, and run arguments / `--entrypoint` replacing them.
#[test]
fn entrypoint_cmd_table() {
    let (d, ctx) = setup("ec");
    let dir = ctx.path();
    // A parent whose CMD a child's ENTRYPOINT resets.
    write(
        dir,
        &[("Dockerfile", "FROM busybox\nCMD [\"inherited\"]\n")],
    );
    build(&d, Client::Berth, dir, &["-q", "-t", "ecparent"]).ok();
    // (base, body, stored Entrypoint, stored Cmd, run args, output)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        // No ENTRYPOINT: CMD exec / shell form; run arguments replace it.
        (
            "busybox",
            "CMD [\"echo\", \"exec\"]",
            "null",
            r#"["echo","exec"]"#,
            &[],
            "exec\n",
        ),
        (
            "busybox",
            "CMD [\"echo\", \"exec\"]",
            "null",
            r#"["echo","exec"]"#,
            &["echo", "replaced"],
            "replaced\n",
        ),
        (
            "busybox",
            "CMD echo shell $HOME",
            "null",
            r#"["/bin/sh","-c","echo shell $HOME"]"#,
            &[],
            "shell /root\n",
        ),
        // exec ENTRYPOINT: no CMD, exec CMD (default arguments), shell CMD (passed as arguments).
        (
            "busybox",
            "ENTRYPOINT [\"echo\", \"e\"]",
            r#"["echo","e"]"#,
            "null",
            &[],
            "e\n",
        ),
        (
            "busybox",
            "ENTRYPOINT [\"echo\", \"e\"]",
            r#"["echo","e"]"#,
            "null",
            &["x", "y"],
            "e x y\n",
        ),
        (
            "busybox",
            "ENTRYPOINT [\"echo\", \"e\"]\nCMD [\"c\"]",
            r#"["echo","e"]"#,
            r#"["c"]"#,
            &[],
            "e c\n",
        ),
        (
            "busybox",
            "ENTRYPOINT [\"echo\", \"e\"]\nCMD [\"c\"]",
            r#"["echo","e"]"#,
            r#"["c"]"#,
            &["x"],
            "e x\n",
        ),
        (
            "busybox",
            "ENTRYPOINT [\"echo\", \"e\"]\nCMD echo c",
            r#"["echo","e"]"#,
            r#"["/bin/sh","-c","echo c"]"#,
            &[],
            "e /bin/sh -c echo c\n",
        ),
        // shell ENTRYPOINT: CMD and run arguments are ignored.
        (
            "busybox",
            "ENTRYPOINT echo e",
            r#"["/bin/sh","-c","echo e"]"#,
            "null",
            &[],
            "e\n",
        ),
        (
            "busybox",
            "ENTRYPOINT echo e\nCMD [\"c\"]",
            r#"["/bin/sh","-c","echo e"]"#,
            r#"["c"]"#,
            &["x"],
            "e\n",
        ),
        // A CMD set before ENTRYPOINT in the same Dockerfile stays; an inherited one is reset.
        (
            "busybox",
            "CMD [\"c\"]\nENTRYPOINT [\"echo\", \"e\"]",
            r#"["echo","e"]"#,
            r#"["c"]"#,
            &[],
            "e c\n",
        ),
        (
            "ecparent",
            "ENTRYPOINT [\"echo\", \"e\"]",
            r#"["echo","e"]"#,
            "null",
            &[],
            "e\n",
        ),
        (
            "ecparent",
            "ENTRYPOINT [\"echo\"]\nCMD [\"c2\"]",
            r#"["echo"]"#,
            r#"["c2"]"#,
            &[],
            "c2\n",
        ),
    ];
    for (i, (base, body, ep, cmd, args, want)) in cases.iter().enumerate() {
        write(dir, &[("Dockerfile", &format!("FROM {base}\n{body}\n"))]);
        let c = BOTH[i % 2];
        let tag = format!("ec:{i}");
        build(&d, c, dir, &["-q", "-t", &tag]).ok();
        let v = inspect(&d, BOTH[(i + 1) % 2], &tag);
        assert_eq!(
            v["Config"]["Entrypoint"].to_string(),
            *ep,
            "case {i}: {body}"
        );
        assert_eq!(v["Config"]["Cmd"].to_string(), *cmd, "case {i}: {body}");
        let mut a = vec![tag.as_str()];
        a.extend_from_slice(args);
        assert_eq!(run(&d, &a), *want, "case {i}: {body} run {args:?}");
    }
    // `run --entrypoint` replaces the ENTRYPOINT and drops the image's CMD.
    assert_eq!(run(&d, &["--entrypoint", "echo", "ec:5"]), "\n");
    assert_eq!(run(&d, &["--entrypoint", "echo", "ec:5", "z"]), "z\n");
    no_leftovers(&d);
}

#[test]
fn multistage_target_copy_from_and_arg_scoping() {
    let (d, ctx) = setup("ms");
    let dir = ctx.path();
    write(
        dir,
        &[(
            "Dockerfile",
            r#"ARG WHO=meta
FROM busybox AS gen
ARG WHO
ARG LOCAL=l1
RUN mkdir /out && echo "gen $WHO $LOCAL" > /out/gen.txt && echo ok > /out/other.txt
FROM busybox AS unused
RUN echo SHOULD-NOT-RUN
FROM busybox AS second
RUN echo "second [$LOCAL][$WHO]" > /s.txt
FROM busybox
COPY --from=gen /out/gen.txt /final/
COPY --from=2 /s.txt /final/s.txt
COPY --from=gen /out /final/all
COPY --from=busybox /etc/passwd /final/from-image
"#,
        )],
    );
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("ms:{i}");
        let o = build(
            &d,
            *c,
            dir,
            &["-t", &tag, "--build-arg", "WHO=cli", "--no-cache"],
        );
        let out = o.ok();
        assert!(
            !out.contains("SHOULD-NOT-RUN"),
            "unneeded stage ran:\n{out}"
        );
        let got = run(
            &d,
            &[
                &tag,
                "sh",
                "-c",
                "cat /final/gen.txt /final/s.txt; ls /final/all; head -1 /final/from-image",
            ],
        );
        assert_eq!(
            got,
            "gen cli l1\nsecond [][]\ngen.txt\nother.txt\nroot:x:0:0:root:/root:/bin/sh\n"
        );
    }
    // --target stops at a stage.
    let o = build(&d, Client::Berth, dir, &["-t", "ms:gen", "--target", "gen"]);
    assert!(!o.ok().contains("second"), "{}", o.stdout);
    assert_eq!(run(&d, &["ms:gen", "cat", "/out/gen.txt"]), "gen meta l1\n");
    let o = build(&d, Client::Docker, dir, &["--target", "nope"]);
    assert!(o.err().contains("nope"), "{}", o.stderr);
}

#[test]
fn onbuild_triggers_in_a_child() {
    let (d, ctx) = setup("ob");
    let dir = ctx.path();
    write(
        dir,
        &[
            (
                "Dockerfile",
                "FROM busybox\nONBUILD COPY a.txt /from-trigger.txt\nONBUILD RUN echo triggered > /t\n",
            ),
            ("a.txt", "trigger content\n"),
        ],
    );
    build(&d, Client::Berth, dir, &["-t", "parent"]).ok();
    write(dir, &[("Dockerfile", "FROM parent\nRUN cat /t\n")]);
    let o = build(&d, Client::Docker, dir, &["-t", "child"]);
    assert!(
        o.ok().contains("Executing 2 build triggers"),
        "{}",
        o.stdout
    );
    assert_eq!(
        run(&d, &["child", "cat", "/from-trigger.txt", "/t"]),
        "trigger content\ntriggered\n"
    );
    // Triggers are not inherited further.
    let v = inspect(&d, Client::Berth, "child");
    assert!(v["Config"]["OnBuild"].is_null() || v["Config"]["OnBuild"] == serde_json::json!([]));
}

#[test]
fn dockerignore_exclusions_and_exceptions() {
    let (d, ctx) = setup("di");
    let dir = ctx.path();
    write(
        dir,
        &[
            (
                ".dockerignore",
                "# comment\n*.log\nsecret\ndocs\n!docs/keep.md\n**/*.tmp\n",
            ),
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            ("app.log", "x"),
            ("sub/app.log", "kept: * does not cross /"),
            ("secret/key", "x"),
            ("docs/a.md", "x"),
            ("docs/keep.md", "keep"),
            ("deep/er/x.tmp", "x"),
            ("main.txt", "main"),
        ],
    );
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("di:{i}");
        build(&d, *c, dir, &["-t", &tag]).ok();
        let got = run(&d, &[&tag, "sh", "-c", "cd /ctx && find . -type f | sort"]);
        assert_eq!(
            got, "./.dockerignore\n./Dockerfile\n./docs/keep.md\n./main.txt\n./sub/app.log\n",
            "{c:?}"
        );
        // An excluded file can't be copied by name.
        write(dir, &[("Dockerfile", "FROM busybox\nCOPY secret/key /k\n")]);
        let o = build(&d, *c, dir, &["-t", "di:bad"]);
        assert!(
            o.err().contains("excluded by .dockerignore"),
            "{}",
            o.stderr
        );
        write(dir, &[("Dockerfile", "FROM busybox\nCOPY . /ctx/\n")]);
    }
    no_leftovers(&d);
}

#[test]
fn cache_reuse_content_change_touch_and_no_cache() {
    let (d, ctx) = setup("ca");
    let dir = ctx.path();
    write(
        dir,
        &[
            (
                "Dockerfile",
                "FROM busybox\nENV A=1\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g.txt\nCMD [\"cat\", \"/g.txt\"]\n",
            ),
            ("f.txt", "v1\n"),
        ],
    );
    for c in BOTH {
        let first = build(&d, c, dir, &["-t", "ca"]);
        first.ok();
        let again = build(&d, c, dir, &["-t", "ca"]);
        let out = again.ok();
        assert_eq!(out.matches("Using cache").count(), 4, "all cached:\n{out}");
        assert!(!out.contains("Running in"), "{out}");
        // touch: the mtime alone does not invalidate.
        std::process::Command::new("touch")
            .args(["-d", "2001-01-01", dir.join("f.txt").to_str().unwrap()])
            .status()
            .unwrap();
        let out = build(&d, c, dir, &["-t", "ca"]).ok().to_string();
        assert_eq!(
            out.matches("Using cache").count(),
            4,
            "touch invalidated:\n{out}"
        );
    }
    // New content: ENV still cached, COPY and everything after rebuilt.
    write(dir, &[("f.txt", "v2\n")]);
    let out = build(&d, Client::Berth, dir, &["-t", "ca"])
        .ok()
        .to_string();
    assert_eq!(out.matches("Using cache").count(), 1, "{out}");
    assert!(
        out.contains("Running in"),
        "the RUN after the COPY ran again:\n{out}"
    );
    assert_eq!(run(&d, &["ca"]), "v2\n");
    let out = build(&d, Client::Docker, dir, &["-t", "ca", "--no-cache"])
        .ok()
        .to_string();
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    // The build cache shows in system df and goes with builder prune.
    let df = d.berth(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.ok().contains("Build Cache"), "{}", df.stdout);
    d.berth(&["builder", "prune", "-af"]).ok();
    let out = build(&d, Client::Berth, dir, &["-t", "ca"])
        .ok()
        .to_string();
    assert_eq!(
        out.matches("Using cache").count(),
        0,
        "pruned cache was used:\n{out}"
    );
    no_leftovers(&d);
}

#[test]
fn bad_input_fails_cleanly() {
    let (d, ctx) = setup("bad");
    let dir = ctx.path();
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN true\nFOO bar\n",
            "line 3: unknown instruction: FOO",
        ),
        ("RUN true\n", "line 1"),
        ("FROM busybox\nCMD [\"a\", 1]\n", "line 2"),
        (
            "FROM busybox\nCOPY missing.txt /x\n",
            "line 2: COPY failed: file not found",
        ),
        (
            "FROM busybox\nRUN echo before\nRUN exit 7\n",
            "returned a non-zero code: 7",
        ),
        (
            "FROM busybox\nCOPY --from=nosuch /a /b\n",
            "line 2: invalid from flag value nosuch",
        ),
    ];
    for (i, (df, want)) in cases.iter().enumerate() {
        write(dir, &[("Dockerfile", df)]);
        for c in BOTH {
            let o = build(&d, c, dir, &["-t", "bad:x"]);
            let err = o.err();
            assert!(err.contains(want), "case {i} {c:?}: {err}");
            if i == 4 {
                assert_eq!(o.code, 7, "the failing RUN's exit code");
                assert!(err.contains("line 3"), "{err}");
            }
        }
        assert!(
            d.berth(&["image", "inspect", "bad:x"]).code != 0,
            "case {i}: an image was tagged"
        );
        no_leftovers(&d);
    }
}

#[test]
fn dockerfile_from_stdin_outside_context_quiet_and_iidfile() {
    let (d, ctx) = setup("fs");
    let dir = ctx.path().join("ctx");
    write(&dir, &[("f.txt", "from ctx\n")]);
    let outside = ctx.path().join("Other.dockerfile");
    fs::write(&outside, "FROM busybox\nCOPY f.txt /f\n").unwrap();
    for c in BOTH {
        let o = build(
            &d,
            c,
            &dir,
            &["-f", outside.to_str().unwrap(), "-t", "outside"],
        );
        o.ok();
        assert_eq!(run(&d, &["outside", "cat", "/f"]), "from ctx\n");
        let o = match c {
            Client::Berth => d.berth_stdin(
                &[
                    "build",
                    "-f",
                    "-",
                    "-q",
                    "-t",
                    "stdin",
                    dir.to_str().unwrap(),
                ],
                b"FROM busybox\nLABEL from=stdin\n",
            ),
            Client::Docker => d.docker_stdin(
                &[
                    "build",
                    "-f",
                    "-",
                    "-q",
                    "-t",
                    "stdin",
                    dir.to_str().unwrap(),
                ],
                b"FROM busybox\nLABEL from=stdin\n",
            ),
        };
        let id = o.ok().trim().to_string();
        assert!(id.starts_with("sha256:"), "{id}");
        let v = inspect(&d, c, "stdin");
        assert_eq!(v["Id"], id.as_str());
        assert_eq!(v["Config"]["Labels"]["from"], "stdin");
    }
    let iid = ctx.path().join("iid");
    build(
        &d,
        Client::Berth,
        &dir,
        &[
            "-f",
            outside.to_str().unwrap(),
            "--iidfile",
            iid.to_str().unwrap(),
            "--label",
            "l=v",
        ],
    )
    .ok();
    let id = fs::read_to_string(&iid).unwrap();
    let v = inspect(&d, Client::Berth, &id);
    assert_eq!(v["Config"]["Labels"]["l"], "v");
}

/// ENV is inherited through `FROM <stage>` and not across unrelated stages; ARG is scoped to
/// the stage that declares it; meta ARGs (before FROM) need redeclaring; --build-arg overrides
/// defaults; ENV wins over an ARG of the same name in RUN; WORKDIR is created (relative paths,
/// variables); USER (name:group) applies to RUN and to run.
#[test]
fn env_arg_scoping_workdir_and_user() {
    let (d, ctx) = setup("sc");
    let dir = ctx.path();
    write(
        dir,
        &[(
            "Dockerfile",
            r#"ARG META=m1
ARG OVER=meta-over
FROM busybox AS base
ENV BASE_ENV=b
ARG STAGE_ARG=s1
ARG META
RUN echo "base:[$BASE_ENV][$STAGE_ARG][$META]" > /base.txt
FROM base AS inherits
ARG OVER
ENV FROM_ARG=${OVER}-x SUB=/sub
RUN echo "inherits:[$BASE_ENV][$STAGE_ARG][$META][$OVER]" > /inh.txt
FROM busybox AS fresh
ARG STAGE_ARG
ENV STAGE_ARG=env-wins
RUN echo "fresh:[$BASE_ENV][$STAGE_ARG][$META]" > /fresh.txt
FROM inherits
COPY --from=fresh /fresh.txt /
WORKDIR /w1
WORKDIR rel
WORKDIR ${SUB}/dir/deeper
RUN pwd > /pwd.txt && mkdir -p /home/user && chown user /home/user
USER user:wheel
RUN echo "$(id -un):$(id -gn)" > /home/user/ids.txt
WORKDIR /made/by/user
"#,
        )],
    );
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("sc:{i}");
        build(
            &d,
            *c,
            dir,
            &["-t", &tag, "--build-arg", "OVER=cli", "--no-cache"],
        )
        .ok();
        let got = run(
            &d,
            &[
                &tag,
                "sh",
                "-c",
                "cat /base.txt /inh.txt /fresh.txt /pwd.txt /home/user/ids.txt; pwd; id -un; \
                 ls -d /w1/rel /sub/dir/deeper",
            ],
        );
        assert_eq!(
            got,
            "base:[b][s1][m1]\ninherits:[b][][][cli]\nfresh:[][env-wins][]\n/sub/dir/deeper\n\
             user:wheel\n/made/by/user\nuser\n/sub/dir/deeper\n/w1/rel\n",
            "{c:?}"
        );
        let v = inspect(&d, *c, &tag);
        let env: Vec<String> = serde_json::from_value(v["Config"]["Env"].clone()).unwrap();
        assert!(env.contains(&"BASE_ENV=b".to_string()), "{env:?}");
        assert!(env.contains(&"FROM_ARG=cli-x".to_string()), "{env:?}");
        assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
        for e in &env {
            for arg in ["STAGE_ARG=", "META=", "OVER="] {
                assert!(!e.starts_with(arg), "ARG leaked into the image: {e}");
            }
        }
        assert_eq!(v["Config"]["User"], "user:wheel");
        assert_eq!(v["Config"]["WorkingDir"], "/made/by/user");
        // `run -u` and `-w` override them.
        assert_eq!(
            run(&d, &["-u", "0", "-w", "/", &tag, "sh", "-c", "id -u; pwd"]),
            "0\n/\n"
        );
    }
    no_leftovers(&d);
}

/// ADD: local tar, tar.gz, tar.bz2 and tar.xz archives are unpacked (into an existing directory,
/// merging), a plain file is copied, a URL (served from loopback by this test) is downloaded and
/// not unpacked, with --chown and --chmod; COPY never unpacks.
#[test]
fn add_archives_and_urls() {
    let (d, ctx) = setup("add");
    let dir = ctx.path();
    let remote_tar = tar_of(&[("r.txt", "remote")], "");
    let srv = HttpServer::start(vec![
        ("/files/page.txt".into(), b"page from loopback\n".to_vec()),
        ("/files/remote.tar".into(), remote_tar),
    ]);
    fs::write(
        dir.join("a.tar"),
        tar_of(&[("t/plain.txt", "plain tar")], ""),
    )
    .unwrap();
    fs::write(
        dir.join("a.tar.gz"),
        tar_of(&[("t/gz.txt", "gzip")], "gzip"),
    )
    .unwrap();
    fs::write(
        dir.join("a.tar.bz2"),
        tar_of(&[("t/bz.txt", "bzip2")], "bzip2"),
    )
    .unwrap();
    fs::write(dir.join("a.tar.xz"), tar_of(&[("t/xz.txt", "xz")], "xz")).unwrap();
    fs::write(dir.join("not-an-archive.gz"), b"just text").unwrap();
    let df = format!(
        "FROM busybox\n\
         ADD a.tar a.tar.gz a.tar.bz2 a.tar.xz /x/\n\
         ADD not-an-archive.gz /plain/\n\
         COPY a.tar /copied/\n\
         ADD {page} /web/\n\
         ADD --chown=1000:1000 --chmod=640 {page} /web/owned.txt\n\
         ADD {tar} /web/\n",
        page = srv.url("/files/page.txt"),
        tar = srv.url("/files/remote.tar"),
    );
    write(dir, &[("Dockerfile", &df)]);
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("add:{i}");
        build(&d, *c, dir, &["-t", &tag, "--no-cache"]).ok();
        let got = run(
            &d,
            &[
                &tag,
                "sh",
                "-c",
                "cd /x/t && cat plain.txt gz.txt bz.txt xz.txt; echo; cat /plain/not-an-archive.gz; \
                 echo; ls /copied; cat /web/page.txt; stat -c '%a' /web/page.txt; \
                 stat -c '%u:%g %a' /web/owned.txt; ls /web",
            ],
        );
        assert_eq!(
            got,
            "plain targzipbzip2xz\njust text\na.tar\npage from loopback\n600\n1000:1000 640\n\
             owned.txt\npage.txt\nremote.tar\n",
            "{c:?}"
        );
    }
    assert!(
        srv.hits.load(std::sync::atomic::Ordering::SeqCst) >= 6,
        "the URLs were fetched by every build"
    );
    // A URL that answers 404 fails the build, naming the line.
    write(
        dir,
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {} /x\n", srv.url("/missing")),
        )],
    );
    let o = build(&d, Client::Docker, dir, &["-t", "add:bad"]);
    let err = o.err();
    assert!(err.contains("line 2") && err.contains("404"), "{err}");
    assert!(d.berth(&["image", "inspect", "add:bad"]).code != 0);
    no_leftovers(&d);
}

/// Heredocs: a RUN script, a heredoc as a command's stdin, `<<-` tab stripping, quoted
/// delimiters (no expansion), several COPY heredocs to a directory.
#[test]
fn heredocs() {
    let (d, ctx) = setup("hd");
    let dir = ctx.path();
    write(
        dir,
        &[(
            "Dockerfile",
            "FROM busybox\n\
             ARG V=expanded\n\
             RUN <<EOF\n\
             set -e\n\
             echo one > /h1\n\
             echo \"$V\" >> /h1\n\
             EOF\n\
             RUN cat <<EOT > /h2\n\
             stdin heredoc $V\n\
             EOT\n\
             COPY <<'EOF' /h3\n\
             not $V\n\
             EOF\n\
             COPY <<a.txt <<b.txt /hd/\n\
             A $V\n\
             a.txt\n\
             B\n\
             b.txt\n\
             RUN <<-EOF\n\
             \techo tabs stripped > /h4\n\
             \tEOF\n\
             RUN echo after > /h5\n",
        )],
    );
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("hd:{i}");
        build(&d, *c, dir, &["-t", &tag, "--no-cache"]).ok();
        let got = run(
            &d,
            &[
                &tag,
                "cat",
                "/h1",
                "/h2",
                "/h3",
                "/hd/a.txt",
                "/hd/b.txt",
                "/h4",
                "/h5",
            ],
        );
        assert_eq!(
            got,
            "one\nexpanded\nstdin heredoc expanded\nnot $V\nA expanded\nB\ntabs stripped\nafter\n",
            "{c:?}"
        );
    }
    no_leftovers(&d);
}

/// The example app that scripts/up.sh builds and runs (examples/hello), through both clients.
#[test]
fn example_app_builds_and_runs() {
    let (d, _ctx) = setup("ex");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("hello:{i}");
        let out = build(&d, *c, &dir, &["-t", &tag]).ok().to_string();
        assert!(out.contains(&format!("Successfully tagged {tag}")), "{out}");
        assert_eq!(run(&d, &[&tag]), "Hello, world: from berth\n");
        assert_eq!(
            run(&d, &["-e", "GREETING_NAME=you", &tag, "again"]),
            "Hello, you: again\n"
        );
        let v = inspect(&d, *c, &tag);
        assert_eq!(v["Config"]["User"], "1000");
        assert_eq!(
            v["Config"]["Labels"]["org.opencontainers.image.title"],
            "hello"
        );
    }
    no_leftovers(&d);
}

/// Without `--network`, RUN steps are on the default bridge (an eth0 with an IPv4 address).
#[test]
fn run_steps_use_the_default_bridge() {
    let (d, ctx) = setup("br");
    let dir = ctx.path();
    write(
        dir,
        &[(
            "Dockerfile",
            "FROM busybox\nRUN ip -4 addr show eth0 | grep -c 'inet ' > /n\n",
        )],
    );
    for (i, c) in BOTH.iter().enumerate() {
        let tag = format!("br:{i}");
        let args = ["build", "--no-cache", "-t", &tag, dir.to_str().unwrap()];
        c.run(&d, &args).ok();
        assert_eq!(run(&d, &[&tag, "cat", "/n"]), "1\n", "{c:?}");
    }
    no_leftovers(&d);
}
