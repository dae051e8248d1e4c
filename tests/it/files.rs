//! A container's files from outside: cp both ways (and the symlink case), diff, commit, export;
//! plus top, rename, events, prune and ps filters.

use berth_testkit::Daemon;

use crate::util::Client;

fn with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox");
    d
}

fn files_flow(c: Client) {
    let d = with_busybox();
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "box",
            "busybox",
            "sh",
            "-c",
            "echo motd > /etc/motd; touch /tmp/new; rm /bin/ash; ln -s /tmp /x; sleep 300",
        ],
    )
    .ok();
    assert!(crate::containers::eventually(5, || c
        .run(&d, &["exec", "box", "test", "-L", "/x"])
        .code
        == 0));

    // cp in and out.
    let host = d.dir.path().join("hostfile.txt");
    std::fs::write(&host, "from the host\n").unwrap();
    c.run(&d, &["cp", host.to_str().unwrap(), "box:/root/"])
        .ok();
    assert_eq!(
        c.run(&d, &["exec", "box", "cat", "/root/hostfile.txt"])
            .ok(),
        "from the host\n"
    );
    let out = d.dir.path().join("motd.out");
    c.run(&d, &["cp", "box:/etc/motd", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "motd\n");
    let dir_out = d.dir.path().join("etc-copy");
    c.run(&d, &["cp", "box:/etc", dir_out.to_str().unwrap()])
        .ok();
    assert!(dir_out.join("passwd").exists() && dir_out.join("motd").exists());
    // The symlink case: /x -> /tmp inside the container, so the file lands in its /tmp.
    c.run(&d, &["cp", host.to_str().unwrap(), "box:/x/"]).ok();
    assert_eq!(
        c.run(&d, &["exec", "box", "cat", "/tmp/hostfile.txt"]).ok(),
        "from the host\n"
    );
    assert!(
        !std::path::Path::new("/tmp/hostfile.txt").exists(),
        "cp escaped to the host's /tmp"
    );
    let e = c.run(&d, &["cp", "box:/no/such/file", out.to_str().unwrap()]);
    assert!(
        e.err().contains("Could not find the file /no/such/file"),
        "{}",
        e.stderr
    );

    // diff: A/C/D as docker prints them.
    let diff = c.run(&d, &["diff", "box"]);
    let text = diff.ok();
    for want in ["A /etc/motd", "A /tmp/new", "D /bin/ash", "C /etc", "A /x"] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in diff:\n{text}"
        );
    }
    assert!(!text.contains("/etc/hostname"), "{text}");

    // commit, then run the new image.
    let id = c
        .run(
            &d,
            &[
                "commit",
                "-m",
                "snapshot",
                "-c",
                "ENV COMMITTED=yes",
                "box",
                "committed:1",
            ],
        )
        .ok()
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "cat /etc/motd; echo $COMMITTED; test -e /bin/ash || echo ash-gone",
        ],
    );
    assert_eq!(o.ok(), "motd\nyes\nash-gone\n");
    let h = c.run(&d, &["history", "--format", "{{.Comment}}", "committed:1"]);
    assert!(
        h.ok().lines().next().unwrap_or("") == "snapshot",
        "{}",
        h.stdout
    );

    // export contents.
    let tarfile = d.dir.path().join("export.tar");
    c.run(&d, &["export", "-o", tarfile.to_str().unwrap(), "box"])
        .ok();
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&tarfile).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "etc/motd"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "bin/busybox")
    );
    assert!(
        !names
            .iter()
            .any(|n| n.trim_start_matches("./") == "bin/ash")
    );

    // top and rename.
    let top = c.run(&d, &["top", "box"]);
    assert!(top.ok().contains("sleep 300"), "{}", top.stdout);
    assert!(
        top.stdout.starts_with("UID") || top.stdout.contains("PID"),
        "{}",
        top.stdout
    );
    c.run(&d, &["rename", "box", "renamed"]).ok();
    assert_eq!(
        c.run(&d, &["inspect", "-f", "{{.Name}}", "renamed"])
            .ok()
            .trim(),
        "/renamed"
    );
    c.run(&d, &["rm", "-f", "renamed"]).ok();
}

#[test]
fn files_flow_through_docker() {
    files_flow(Client::Docker);
}

#[test]
fn files_flow_through_berth() {
    files_flow(Client::Berth);
}

#[test]
fn ps_filters_events_prune_and_restart() {
    let d = with_busybox();
    let c = Client::Docker;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    c.run(
        &d,
        &[
            "run", "--name", "three", "--label", "team=a", "busybox", "sh", "-c", "exit 3",
        ],
    );
    c.run(
        &d,
        &[
            "run", "-d", "--name", "up", "--label", "team=b", "busybox", "sleep", "300",
        ],
    )
    .ok();
    let names = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ps", "-a", "--format", "{{.Names}}"];
        v.extend_from_slice(args);
        let mut r: Vec<String> = c.run(&d, &v).ok().lines().map(str::to_string).collect();
        r.sort();
        r
    };
    assert_eq!(names(&["--filter", "exited=3"]), vec!["three"]);
    assert_eq!(names(&["--filter", "label=team=b"]), vec!["up"]);
    assert_eq!(names(&["--filter", "status=running"]), vec!["up"]);
    assert_eq!(
        names(&["--filter", "ancestor=busybox"]),
        vec!["three", "up"]
    );
    assert_eq!(names(&["--filter", "name=thr"]), vec!["three"]);
    let latest = c.run(&d, &["ps", "-l", "--format", "{{.Names}}"]);
    assert_eq!(latest.ok().trim(), "up");
    assert_eq!(c.run(&d, &["ps", "-n", "1", "-q"]).ok().lines().count(), 1);

    // restart gives a new start time.
    let before = c
        .run(&d, &["inspect", "-f", "{{.State.StartedAt}}", "up"])
        .ok()
        .to_string();
    c.run(&d, &["restart", "-t", "1", "up"]).ok();
    let after = c
        .run(&d, &["inspect", "-f", "{{.State.StartedAt}}", "up"])
        .ok()
        .to_string();
    assert_ne!(before, after);

    // Events, with docker's field names, bounded by --since/--until.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let ev = c.run(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=three",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    let text = ev.ok();
    for want in [
        "container create three",
        "container start three",
        "container die three",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let json = c.run(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{json .}}",
            "--filter",
            "event=die",
        ],
    );
    let first: serde_json::Value = serde_json::from_str(json.ok().lines().next().unwrap()).unwrap();
    assert_eq!(first["Actor"]["Attributes"]["exitCode"], "3");

    // container prune removes the stopped one only.
    let p = c.run(&d, &["container", "prune", "-f"]);
    assert!(p.ok().contains("Deleted Containers:"), "{}", p.stdout);
    assert_eq!(names(&[]), vec!["up"]);
    c.run(&d, &["rm", "-f", "up"]).ok();
}
