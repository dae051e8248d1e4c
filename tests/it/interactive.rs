//! Interactive I/O: `run -it` and `exec -it` in a real pty, attach with detach keys, stdin
//! closing a `run -i` container, and `logs -f` ending with the container.

use std::time::Duration;

use berth_testkit::Daemon;

use crate::containers::eventually;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox");
    d
}

fn tty_session(d: &Daemon, docker: bool) {
    let o = d.pty(docker, &["run", "-it", "--rm", "busybox", "tty"], &[]);
    assert_eq!(o.code, 0, "{}", o.output);
    assert!(o.output.contains("/dev/pts/0"), "{}", o.output);
    // Typed input echoes through the container's terminal; `exit 3` is the status.
    let typed: &[(Duration, &[u8])] =
        &[(ms(500), b"echo typed-$((40+2))\r"), (ms(300), b"exit 3\r")];
    let o = d.pty(docker, &["run", "-it", "--rm", "busybox", "sh"], typed);
    assert_eq!(o.code, 3, "{}", o.output);
    assert!(
        o.output.contains("echo typed-$((40+2))"),
        "no echo of the typed line: {}",
        o.output
    );
    assert!(o.output.contains("typed-42"), "{}", o.output);
    // exec -it into a container without a terminal of its own.
    let cmd = if docker {
        &["run", "-d", "--name", "host1", "busybox", "sleep", "300"]
    } else {
        &["run", "-d", "--name", "host2", "busybox", "sleep", "300"]
    };
    let name = cmd[3];
    let out = if docker { d.docker(cmd) } else { d.berth(cmd) };
    out.ok();
    let o = d.pty(
        docker,
        &["exec", "-it", name, "sh", "-c", "tty; stty size"],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.output);
    assert!(o.output.contains("/dev/pts/0"), "{}", o.output);
    assert!(
        o.output.contains("24 80"),
        "exec did not get the terminal size: {}",
        o.output
    );
    let o = d.pty(docker, &["exec", "-it", name, "sh", "-c", "exit 5"], &[]);
    assert_eq!(o.code, 5, "{}", o.output);
    d.docker(&["rm", "-f", name]).ok();
}

#[test]
fn tty_run_and_exec_through_docker() {
    tty_session(&with_busybox(), true);
}

#[test]
fn tty_run_and_exec_through_berth() {
    tty_session(&with_busybox(), false);
}

#[test]
fn attach_and_detach_keys() {
    let d = with_busybox();
    d.docker(&["run", "-dit", "--name", "shell", "busybox", "sh"])
        .ok();
    let keys: &[(Duration, &[u8])] = &[
        (ms(600), b"echo attached-$((1+1))\r"),
        (ms(400), b"\x10\x11"),
    ];
    let o = d.pty(true, &["attach", "shell"], keys);
    // docker's attach reports a detach as an error: "read escape sequence", status 1.
    assert_eq!(o.code, 1, "{}", o.output);
    assert!(o.output.contains("read escape sequence"), "{}", o.output);
    assert!(o.output.contains("attached-2"), "{}", o.output);
    // Detaching leaves the container running.
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "shell"])
            .ok()
            .trim(),
        "true"
    );
    // Custom detach keys through berth.
    let keys: &[(Duration, &[u8])] = &[(ms(600), b"echo again\r"), (ms(400), b"\x01x")];
    let o = d.pty(
        false,
        &["attach", "--detach-keys", "ctrl-a,x", "shell"],
        keys,
    );
    assert_eq!(o.code, 1, "{}", o.output);
    assert!(o.output.contains("read escape sequence"), "{}", o.output);
    assert!(o.output.contains("again"), "{}", o.output);
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "shell"])
            .ok()
            .trim(),
        "true"
    );
    // Typing `exit` through attach ends the container itself.
    let keys: &[(Duration, &[u8])] = &[(ms(600), b"exit 6\r")];
    d.pty(true, &["attach", "shell"], keys);
    assert!(eventually(5, || d
        .docker(&["inspect", "-f", "{{.State.ExitCode}}", "shell"])
        .stdout
        .trim()
        == "6"));
    d.docker(&["rm", "shell"]).ok();
}

#[test]
fn closing_stdin_ends_a_run_i_container_and_logs_follow() {
    let d = with_busybox();
    for docker in [true, false] {
        let args = ["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"];
        let out = if docker {
            d.docker_stdin(&args, b"piped input\n")
        } else {
            d.berth_stdin(&args, b"piped input\n")
        };
        assert_eq!(out.ok(), "piped input\ndone\n");
    }
    // logs -f ends when the container does.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick $i; sleep 0.3; done",
    ])
    .ok();
    let started = std::time::Instant::now();
    let l = d.docker(&["logs", "-f", "ticker"]);
    assert_eq!(l.ok(), "tick 1\ntick 2\ntick 3\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    let l = d.berth(&["logs", "--tail", "1", "-t", "ticker"]);
    let line = l.ok().trim().to_string();
    assert!(line.ends_with("tick 3") && line.starts_with("20"), "{line}");
    d.docker(&["rm", "ticker"]).ok();
}
