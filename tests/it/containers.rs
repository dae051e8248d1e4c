//! The container lifecycle through both CLIs: run, exit codes, logs, ps, stop/kill/rm, wait,
//! exec, pause, restart policies, and the errors docker gives for bad input.

use std::time::{Duration, Instant};

use berth_testkit::Daemon;

use crate::util::Client;

fn daemon_with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox");
    d
}

/// Polls `f` until it returns true (at most `secs` seconds).
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn run_basics(c: Client) {
    let d = daemon_with_busybox();
    let out = c.run(&d, &["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(out.ok(), "hi\n", "stderr: {}", out.stderr);
    // --rm removed it.
    assert_eq!(c.run(&d, &["ps", "-aq"]).ok().trim(), "");

    // Exit codes as docker reports them.
    let out = c.run(
        &d,
        &["run", "--name", "three", "busybox", "sh", "-c", "exit 3"],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = c.run(
        &d,
        &[
            "run",
            "--name",
            "errs",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ],
    );
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    // Detached, logs, ps, wait, inspect.
    let id = c
        .run(
            &d,
            &[
                "run",
                "-d",
                "--name",
                "sleeper",
                "busybox",
                "sh",
                "-c",
                "echo started; sleep 300",
            ],
        )
        .ok()
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert!(eventually(5, || c.run(&d, &["logs", "sleeper"]).stdout == "started\n"));
    let ps = c.run(&d, &["ps"]);
    let text = ps.ok();
    assert!(
        text.starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{text}"
    );
    assert!(text.contains("sleeper") && text.contains("Up "), "{text}");
    let st = c.run(
        &d,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.Name}}",
            "sleeper",
        ],
    );
    assert_eq!(st.ok().trim(), "running true /sleeper");
    let hostname = c.run(&d, &["exec", "sleeper", "hostname"]);
    assert_eq!(hostname.ok().trim(), &id[..12]);

    // Killed by SIGKILL → 137.
    c.run(&d, &["kill", "sleeper"]).ok();
    let w = c.run(&d, &["wait", "sleeper"]);
    assert_eq!(w.ok().trim(), "137");
    let st = c.run(
        &d,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "sleeper",
        ],
    );
    assert_eq!(st.ok().trim(), "exited 137");
    let all = c.run(&d, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(all.ok().contains("sleeper Exited (137)"), "{}", all.stdout);
    let filtered = c.run(
        &d,
        &[
            "ps",
            "-a",
            "-q",
            "--filter",
            "status=exited",
            "--filter",
            "name=sleeper",
        ],
    );
    assert_eq!(filtered.ok().trim(), &id[..12]);

    // Stop: `sh` as PID 1 ignores SIGTERM, so after the timeout comes SIGKILL (as docker).
    c.run(&d, &["start", "sleeper"]).ok();
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.State.Running}}", "sleeper"])
            .ok()
            .trim(),
        "true"
    );
    let t0 = Instant::now();
    c.run(&d, &["stop", "-t", "1", "sleeper"]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "stop -t 1 took {:?}",
        t0.elapsed()
    );
    let st = c.run(
        &d,
        &[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.ExitCode}}",
            "sleeper",
        ],
    );
    assert_eq!(st.ok().trim(), "false 137");
    // A process that handles TERM stops at once with its own status.
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "polite",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 143' TERM; while true; do sleep 0.1; done",
        ],
    )
    .ok();
    let t0 = Instant::now();
    c.run(&d, &["stop", "polite"]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stop of a TERM-handling process took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.State.ExitCode}}", "polite"])
            .ok()
            .trim(),
        "143"
    );
    c.run(&d, &["rm", "polite"]).ok();
    c.run(&d, &["rm", "sleeper", "errs", "three"]).ok();
    assert_eq!(c.run(&d, &["ps", "-aq"]).ok().trim(), "");
}

#[test]
fn run_basics_through_docker() {
    run_basics(Client::Docker);
}

#[test]
fn run_basics_through_berth() {
    run_basics(Client::Berth);
}

#[test]
fn bad_input_gets_docker_errors_and_leaves_nothing() {
    let d = daemon_with_busybox();
    let c = Client::Docker;
    let e = c.run(&d, &["run", "--pull", "never", "nosuchimage:1", "true"]);
    assert!(e.err().contains("No such image"), "{}", e.stderr);
    c.run(&d, &["create", "--name", "taken", "busybox", "true"])
        .ok();
    let e = c.run(&d, &["create", "--name", "taken", "busybox", "true"]);
    assert!(
        e.err()
            .contains("Conflict. The container name \"/taken\" is already in use"),
        "{}",
        e.stderr
    );
    let e = c.run(&d, &["run", "--restart", "bogus", "busybox", "true"]);
    assert!(e.err().contains("invalid restart policy"), "{}", e.stderr);
    let e = c.run(&d, &["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert!(
        e.err().contains("unable to find user nosuchuser"),
        "{}",
        e.stderr
    );
    let e = c.run(&d, &["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(e.code, 127, "{}", e.stderr);
    assert!(
        e.stderr.contains("executable file not found"),
        "{}",
        e.stderr
    );
    let e = c.run(&d, &["exec", "taken", "true"]);
    assert!(e.err().contains("is not running"), "{}", e.stderr);
    // A working directory reached through a symlink that climbs out stays inside the container.
    c.run(
        &d,
        &[
            "run",
            "--name",
            "linker",
            "busybox",
            "ln",
            "-s",
            "../../../../../../../tmp",
            "/escape",
        ],
    )
    .ok();
    c.run(&d, &["commit", "linker", "linked:1"]).ok();
    c.run(&d, &["rm", "linker"]).ok();
    let marker = format!("bt-wd-{}", std::process::id());
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "-w",
            &format!("/escape/{marker}"),
            "linked:1",
            "pwd",
        ],
    );
    // The symlink resolves inside the container root: its /tmp, not the host's.
    assert_eq!(o.ok().trim(), format!("/tmp/{marker}"));
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "-w created a directory on the host"
    );
    let e = c.run(
        &d,
        &["run", "--rm", "-w", "relative/dir", "busybox", "true"],
    );
    assert!(
        e.err().contains("needs to be an absolute path"),
        "{}",
        e.stderr
    );
    // Nothing half-made: only the created container exists, nothing is mounted.
    let ps = c.run(&d, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(ps.ok().trim(), "taken");
    c.run(&d, &["rmi", "linked:1"]).ok();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(d.data_root.join("containers").to_str().unwrap()),
        "a container rootfs is still mounted"
    );
}

#[test]
fn pause_freezes_and_exec_is_refused() {
    let d = daemon_with_busybox();
    let c = Client::Docker;
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "counter",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
        ],
    )
    .ok();
    assert!(eventually(5, || c
        .run(&d, &["exec", "counter", "cat", "/tmp/n"])
        .code
        == 0));
    c.run(&d, &["pause", "counter"]).ok();
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.State.Status}}", "counter"])
            .ok()
            .trim(),
        "paused"
    );
    let e = c.run(&d, &["exec", "counter", "cat", "/tmp/n"]);
    assert!(e.err().contains("is paused"), "{}", e.stderr);
    let n1 = std::fs::read_to_string(
        d.data_root
            .join("containers")
            .join(container_id(&d, "counter"))
            .join("rootfs/tmp/n"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let n2 = std::fs::read_to_string(
        d.data_root
            .join("containers")
            .join(container_id(&d, "counter"))
            .join("rootfs/tmp/n"),
    )
    .unwrap();
    assert_eq!(n1, n2, "the counter advanced while paused");
    c.run(&d, &["unpause", "counter"]).ok();
    assert!(eventually(5, || {
        let n3 = c.run(&d, &["exec", "counter", "cat", "/tmp/n"]).stdout;
        n3.trim().parse::<u64>().unwrap_or(0) > n2.trim().parse::<u64>().unwrap_or(0)
    }));
    c.run(&d, &["rm", "-f", "counter"]).ok();
}

fn container_id(d: &Daemon, name: &str) -> String {
    d.docker(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .trim()
        .to_string()
}

#[test]
fn restart_policies() {
    let d = daemon_with_busybox();
    let c = Client::Docker;
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "always",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "sleep 0.2; exit 1",
        ],
    )
    .ok();
    assert!(
        eventually(15, || c
            .run(&d, &["inspect", "-f", "{{.RestartCount}}", "always"])
            .stdout
            .trim()
            .parse::<i64>()
            .unwrap_or(0)
            >= 2),
        "always did not restart"
    );
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "twice",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "exit 4",
        ],
    )
    .ok();
    assert!(eventually(15, || {
        let s = c
            .run(
                &d,
                &[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
                    "twice",
                ],
            )
            .stdout;
        s.trim() == "exited 2 4"
    }));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.RestartCount}}", "twice"])
            .ok()
            .trim(),
        "2",
        "on-failure:2 restarted more than twice"
    );
    // docker stop is never undone by the policy.
    c.run(&d, &["stop", "-t", "1", "always"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.State.Running}}", "always"])
            .ok()
            .trim(),
        "false"
    );
    c.run(&d, &["rm", "-f", "always", "twice"]).ok();
}

#[test]
fn live_restore_keeps_containers_running_across_a_crash() {
    let mut d = daemon_with_busybox();
    let c = Client::Docker;
    let mut names = Vec::new();
    for i in 0..20 {
        let name = format!("live{i}");
        let mut args = vec!["run", "-d", "--name", &name];
        if i % 4 == 0 {
            args.push("-t");
        }
        args.extend(["busybox", "sh", "-c", "echo up; sleep 600"]);
        c.run(&d, &args).ok();
        names.push(name);
    }
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "shortlived",
            "busybox",
            "sh",
            "-c",
            "sleep 1; exit 7",
        ],
    )
    .ok();
    d.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    d.restart();
    for n in &names {
        assert_eq!(
            c.run(&d, &["inspect", "-f", "{{.State.Running}}", n])
                .ok()
                .trim(),
            "true",
            "{n} stopped"
        );
    }
    assert!(eventually(5, || c
        .run(
            &d,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                "shortlived"
            ]
        )
        .stdout
        .trim()
        == "exited 7"));
    assert!(c.run(&d, &["logs", "live1"]).ok().contains("up"));
    assert_eq!(
        c.run(&d, &["exec", "live2", "echo", "exec-ok"]).ok().trim(),
        "exec-ok"
    );
    c.run(&d, &["stop", "-t", "1", "live3"]).ok();
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.State.Running}}", "live3"])
            .ok()
            .trim(),
        "false"
    );
    c.run(&d, &["rm", "-f", "live0", "live1", "live2"]).ok();
}
