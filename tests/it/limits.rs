//! Resource limits through the docker CLI: every flag lands in the container's cgroup files on
//! the host and in `inspect`; `update` changes them live; OOM, pids and block-I/O limits bite;
//! `stats` renders; bad values get docker's errors and create nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::Daemon;
use serde_json::Value;

fn with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox");
    d
}

/// A v1 cgroup file of the container (these hosts are cgroup v1).
fn cg(d: &Daemon, id: &str, controller: &str, file: &str) -> String {
    let p = format!("/sys/fs/cgroup/{controller}{}/{id}/{file}", d.cgroup_parent);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("reading {p}: {e}"))
        .trim()
        .to_string()
}

fn host_config(d: &Daemon, name: &str) -> Value {
    let v: Value = serde_json::from_str(d.docker(&["inspect", name]).ok()).unwrap();
    v[0]["HostConfig"].clone()
}

#[test]
fn run_flags_reach_the_cgroup_and_inspect_and_update_changes_them_live() {
    let d = with_busybox();
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "200M",
        "--memory-swap=300M",
        "--memory-reservation",
        "100M",
        "--memory-swappiness",
        "30",
        "-c",
        "512",
        "--cpus",
        "1.5",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--pids-limit",
        "50",
        "--blkio-weight",
        "300",
        "busybox",
        "sleep",
        "300",
    ]);
    let id = o.ok().trim().to_string();
    assert_eq!(cg(&d, &id, "memory", "memory.limit_in_bytes"), "209715200");
    assert_eq!(
        cg(&d, &id, "memory", "memory.memsw.limit_in_bytes"),
        "314572800"
    );
    assert_eq!(
        cg(&d, &id, "memory", "memory.soft_limit_in_bytes"),
        "104857600"
    );
    assert_eq!(cg(&d, &id, "memory", "memory.swappiness"), "30");
    assert_eq!(cg(&d, &id, "cpu", "cpu.shares"), "512");
    assert_eq!(cg(&d, &id, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg(&d, &id, "cpu", "cpu.cfs_quota_us"), "150000");
    assert_eq!(cg(&d, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cg(&d, &id, "cpuset", "cpuset.mems"), "0");
    assert_eq!(cg(&d, &id, "pids", "pids.max"), "50");
    let hc = host_config(&d, "lim");
    assert_eq!(hc["Memory"], 209715200);
    assert_eq!(hc["MemorySwap"], 314572800);
    assert_eq!(hc["MemoryReservation"], 104857600);
    assert_eq!(hc["MemorySwappiness"], 30);
    assert_eq!(hc["CpuShares"], 512);
    assert_eq!(hc["NanoCpus"], 1_500_000_000i64);
    assert_eq!(hc["CpusetCpus"], "0");
    assert_eq!(hc["PidsLimit"], 50);
    // This kernel has no proportional block-I/O weight: accepted with docker's warning, 0.
    let weight_file = std::path::Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists();
    if weight_file {
        assert_eq!(cg(&d, &id, "blkio", "blkio.weight"), "300");
        assert_eq!(hc["BlkioWeight"], 300);
    } else {
        assert_eq!(hc["BlkioWeight"], 0);
        assert!(
            o.stderr.contains("does not support Block I/O weight"),
            "{}",
            o.stderr
        );
    }

    // update: the live cgroup and the record change together.
    d.docker(&[
        "update",
        "-m",
        "300M",
        "--memory-swap",
        "400M",
        "-c",
        "256",
        "--pids-limit",
        "70",
        "--cpus",
        "0.5",
        "lim",
    ])
    .ok();
    assert_eq!(cg(&d, &id, "memory", "memory.limit_in_bytes"), "314572800");
    assert_eq!(
        cg(&d, &id, "memory", "memory.memsw.limit_in_bytes"),
        "419430400"
    );
    assert_eq!(cg(&d, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(cg(&d, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg(&d, &id, "pids", "pids.max"), "70");
    let hc = host_config(&d, "lim");
    assert_eq!(
        (hc["Memory"].as_i64(), hc["MemorySwap"].as_i64()),
        (Some(314572800), Some(419430400))
    );
    assert_eq!(
        (hc["CpuShares"].as_i64(), hc["PidsLimit"].as_i64()),
        (Some(256), Some(70))
    );
    // Lowering below what runs is fine; raising memory past the swap limit alone is refused.
    let e = d.docker(&["update", "-m", "500M", "lim"]);
    assert!(
        e.err()
            .contains("Memory limit should be smaller than already set memoryswap limit"),
        "{}",
        e.stderr
    );
    assert_eq!(cg(&d, &id, "memory", "memory.limit_in_bytes"), "314572800");
    d.docker(&["update", "--restart", "on-failure:3", "lim"])
        .ok();
    assert_eq!(
        host_config(&d, "lim")["RestartPolicy"]["Name"],
        "on-failure"
    );
    // A stopped container's update is recorded and applied at the next start.
    d.docker(&["rm", "-f", "lim"]).ok();

    // Unset --memory-swap means twice the memory, as docker does.
    let id = d
        .docker(&["run", "-d", "-m", "64m", "busybox", "sleep", "300"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(
        cg(&d, &id, "memory", "memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(host_config(&d, &id)["MemorySwap"], 134217728);
    d.docker(&["rm", "-f", &id]).ok();
}

#[test]
fn oom_kill_is_reported_and_a_fork_bomb_is_stopped() {
    let d = with_busybox();
    // A shell variable doubling until it passes 64 MiB (no swap: memory-swap equals memory).
    let o = d.docker(&[
        "run",
        "--name",
        "hog",
        "-m",
        "64m",
        "--memory-swap",
        "64m",
        "busybox",
        "sh",
        "-c",
        "a=aaaaaaaaaaaaaaaa; while true; do a=$a$a; done",
    ]);
    assert_eq!(o.code, 137, "{}", o.stderr);
    let st: Value = serde_json::from_str(d.docker(&["inspect", "hog"]).ok()).unwrap();
    assert_eq!(st[0]["State"]["OOMKilled"], true);
    assert_eq!(st[0]["State"]["ExitCode"], 137);
    let ev = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", now_secs() + 1),
        "--filter",
        "event=oom",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ]);
    assert!(ev.ok().contains("hog oom"), "{}", ev.stdout);

    // 50 background sleeps under a limit of 20 tasks: forks fail and the kernel counts them.
    let id = d
        .docker(&[
            "run",
            "-d",
            "--pids-limit",
            "20",
            "busybox",
            "sh",
            "-c",
            "(for i in $(seq 50); do sleep 60 & done); exec sleep 60",
        ])
        .ok()
        .trim()
        .to_string();
    let t = Instant::now();
    while !d.docker(&["logs", &id]).stderr.contains("can't fork") {
        assert!(t.elapsed() < Duration::from_secs(20), "no fork was refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let current: u64 = cg(&d, &id, "pids", "pids.current").parse().unwrap();
    assert!(current <= 20, "{current} tasks under a limit of 20");
    assert!(cg(&d, &id, "pids", "pids.current") != "0");
    d.docker(&["rm", "-f", &id]).ok();
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A loop device over a file in the test's directory, detached when dropped.
struct Loop(String);

impl Loop {
    fn new(d: &Daemon) -> Loop {
        let f = d.dir.path().join("disk.img");
        std::fs::write(&f, vec![0u8; 16 << 20]).unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&f)
            .output()
            .expect("losetup");
        assert!(
            o.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Loop(String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn device_write_bps_throttles_a_loop_device() {
    let d = with_busybox();
    let dev = Loop::new(&d);
    let rate = format!("{}:1mb", dev.0);
    let t = Instant::now();
    let o = d.docker(&[
        "run",
        "--name",
        "dd",
        "--device",
        &dev.0,
        "--device-write-bps",
        &rate,
        "busybox",
        "dd",
        "if=/dev/zero",
        &format!("of={}", dev.0),
        "bs=64k",
        "count=48",
        "oflag=direct",
    ]);
    let took = t.elapsed();
    o.ok();
    // 3 MiB at 1 MiB/s: about 3 s (the first second's budget goes at once).
    assert!(
        took >= Duration::from_millis(1800),
        "3 MiB took only {took:?}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    let hc = host_config(&d, "dd");
    assert_eq!(hc["BlkioDeviceWriteBps"][0]["Rate"], 1048576);
    assert_eq!(hc["BlkioDeviceWriteBps"][0]["Path"], dev.0.as_str());
    // The other throttles and the CFS/OOM knobs land in their files too.
    let id = d
        .docker(&[
            "run",
            "-d",
            "--device-read-bps",
            &format!("{}:2mb", dev.0),
            "--device-read-iops",
            &format!("{}:100", dev.0),
            "--device-write-iops",
            &format!("{}:50", dev.0),
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "-m",
            "64m",
            "--oom-kill-disable",
            "busybox",
            "sleep",
            "300",
        ])
        .ok()
        .trim()
        .to_string();
    let numbers = {
        let md = std::fs::metadata(&dev.0).unwrap();
        let rdev = std::os::unix::fs::MetadataExt::rdev(&md);
        format!(
            "{}:{}",
            (rdev >> 8) & 0xfff,
            (rdev & 0xff) | ((rdev >> 12) & 0xfff00)
        )
    };
    assert_eq!(
        cg(&d, &id, "blkio", "blkio.throttle.read_bps_device"),
        format!("{numbers} 2097152")
    );
    assert_eq!(
        cg(&d, &id, "blkio", "blkio.throttle.read_iops_device"),
        format!("{numbers} 100")
    );
    assert_eq!(
        cg(&d, &id, "blkio", "blkio.throttle.write_iops_device"),
        format!("{numbers} 50")
    );
    assert_eq!(cg(&d, &id, "cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(cg(&d, &id, "cpu", "cpu.cfs_quota_us"), "25000");
    assert!(cg(&d, &id, "memory", "memory.oom_control").contains("oom_kill_disable 1"));
    let hc = host_config(&d, &id);
    assert_eq!(
        (hc["CpuPeriod"].as_i64(), hc["CpuQuota"].as_i64()),
        (Some(50000), Some(25000))
    );
    assert_eq!(hc["OomKillDisable"], true);
    assert_eq!(hc["BlkioDeviceReadIOps"][0]["Rate"], 100);
    d.docker(&["rm", "-f", &id]).ok();
    // Without --device the node is absent; a host disk stays unusable.
    let o = d.docker(&["run", "--rm", "busybox", "ls", &dev.0]);
    assert_ne!(o.code, 0);
    d.docker(&["rm", "dd"]).ok();
}

#[test]
fn stats_render_in_the_docker_cli() {
    let d = with_busybox();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "100M",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ])
    .ok();
    d.docker(&["create", "--name", "idle", "busybox", "true"])
        .ok();
    let o = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}|{{.BlockIO}}",
        "busy",
    ]);
    let line = o.ok().trim().to_string();
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f[0], "busy", "{line}");
    let cpu: f64 = f[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 20.0, "a busy loop shows real CPU use: {line}");
    assert!(f[2].ends_with("/ 100MiB"), "{line}");
    assert_eq!(f[4], "1", "{line}");
    // -a includes stopped containers with zeros; the raw API answers docker's JSON shape.
    let all = d.docker(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.CPUPerc}}",
    ]);
    assert!(all.ok().contains("idle 0.00%"), "{}", all.stdout);
    let (code, _, body) = crate::util::curl(
        &d,
        "GET",
        "/containers/busy/stats?stream=false&one-shot=true",
    );
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
    assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(v["memory_stats"]["limit"], 104857600);
    assert_eq!(v["pids_stats"]["current"], 1);
    assert_eq!(v["name"], "/busy");
    d.docker(&["rm", "-f", "busy", "idle"]).ok();
}

#[test]
fn bad_limits_get_dockers_errors_and_create_nothing() {
    let d = with_busybox();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["-m", "1k"],
            "Minimum memory limit allowed is 6MB".into(),
        ),
        (
            vec!["--cpus", "99"],
            format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            ),
        ),
        (
            vec!["-m", "100m", "--memory-swap", "50m"],
            "Minimum memoryswap limit should be larger than memory limit".into(),
        ),
        (
            vec!["--cpuset-cpus", "0-99"],
            "Requested CPUs are not available".into(),
        ),
        (
            vec!["--cap-add", "FOO"],
            "unknown capability: \"CAP_FOO\"".into(),
        ),
        (
            vec!["--device", "/nonexistent-dev"],
            "error gathering device information".into(),
        ),
        (
            vec!["--blkio-weight", "5"],
            "Range of blkio weight is from 10 to 1000".into(),
        ),
    ];
    // berth's CLI leaves these to the daemon (the docker CLI checks some itself).
    let daemon_checked: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--sysctl", "kernel.panic=1"],
            "sysctl 'kernel.panic=1' is not allowed".into(),
        ),
        (
            vec!["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "is not allowed".into(),
        ),
        (
            vec!["--security-opt", "seccomp={bad"],
            "seccomp profile".into(),
        ),
    ];
    for (flags, want) in &daemon_checked {
        let mut args = vec!["create"];
        args.extend(flags.iter().copied());
        args.extend(["busybox", "true"]);
        let e = d.berth(&args);
        assert_ne!(e.code, 0, "{flags:?} was accepted");
        assert!(
            e.stderr.contains(want.as_str()),
            "{flags:?}: want {want:?}, got {}",
            e.stderr
        );
    }
    for (flags, want) in &cases {
        let mut args = vec!["create"];
        args.extend(flags.iter().copied());
        args.extend(["busybox", "true"]);
        let e = d.docker(&args);
        assert_ne!(e.code, 0, "{flags:?} was accepted");
        assert!(
            e.stderr.contains(want.as_str()),
            "{flags:?}: want {want:?}, got {}",
            e.stderr
        );
    }
    assert_eq!(
        d.docker(&["ps", "-aq"]).ok().trim(),
        "",
        "a refused create left a container"
    );
}

#[test]
fn ulimits_shm_size_no_new_privileges_and_privileged() {
    let d = with_busybox();
    let run = |args: &[&str], script: &str| {
        let mut v = vec!["run", "--rm"];
        v.extend_from_slice(args);
        v.extend(["busybox", "sh", "-c", script]);
        d.docker(&v)
    };
    let o = run(
        &["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=500"],
        "ulimit -n; ulimit -Hn; ulimit -u",
    );
    assert_eq!(o.ok(), "1024\n2048\n500\n");
    let o = run(&["--shm-size", "32m"], "df -k /dev/shm | tail -1");
    assert!(
        o.ok().split_whitespace().nth(1) == Some("32768"),
        "{}",
        o.stdout
    );
    let o = run(
        &["--security-opt", "no-new-privileges"],
        "grep NoNewPrivs /proc/self/status",
    );
    assert!(o.ok().contains("1"), "{}", o.stdout);
    let o = run(&[], "grep NoNewPrivs /proc/self/status");
    assert!(o.ok().contains("0"), "{}", o.stdout);
    // --read-only with a writable --tmpfs.
    let o = run(
        &["--read-only", "--tmpfs", "/scratch"],
        "touch /scratch/ok && touch /nope",
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
    // Privileged: the host's devices, no masked paths, a writable /sys/fs/cgroup.
    let o = run(
        &["--privileged"],
        "test -e /dev/loop-control && echo dev; wc -c < /proc/interrupts; grep Seccomp: /proc/self/status",
    );
    let text = o.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "dev", "{text}");
    assert_ne!(lines[1].trim(), "0", "{text}");
    assert!(lines[2].ends_with('0'), "{text}");
    let o = run(&[], "test -e /dev/loop-control && echo dev || echo none");
    assert_eq!(o.ok(), "none\n");
}

/// `run --cgroup-parent`: the container's cgroup goes under the given parent (relative paths
/// from the root, as docker's cgroupfs driver), its limits land there, pause and stats find it,
/// and `rm` removes it. Paths that would leave the hierarchy are refused.
#[test]
fn a_container_cgroup_parent_is_honoured() {
    let d = with_busybox();
    // Under the test daemon's own parent, so the test kit's cleanup covers it.
    let parent = format!("{}/custom", d.cgroup_parent.trim_start_matches('/'));
    let id = d
        .docker(&[
            "run",
            "-d",
            "--cgroup-parent",
            &parent,
            "-m",
            "64m",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok()
        .trim()
        .to_string();
    let dir = format!("/sys/fs/cgroup/memory/{parent}/{id}");
    let limit = std::fs::read_to_string(format!("{dir}/memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), "67108864");
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .trim()
        .to_string();
    let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l.trim() == pid), "{procs}");
    assert_eq!(host_config(&d, &id)["CgroupParent"], parent.as_str());
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/memory{}/{id}", d.cgroup_parent)).exists(),
        "not under the daemon's parent"
    );
    d.docker(&["pause", &id]).ok();
    let state = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/{parent}/{id}/freezer.state"
    ))
    .unwrap();
    assert_eq!(state.trim(), "FROZEN");
    d.docker(&["unpause", &id]).ok();
    let stats = d
        .docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id])
        .ok()
        .to_string();
    assert!(stats.contains("64MiB"), "{stats}");
    d.docker(&["rm", "-f", &id]).ok();
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    let e = d.docker(&[
        "run",
        "--rm",
        "--cgroup-parent",
        "../../x",
        "busybox",
        "true",
    ]);
    assert!(e.err().contains("invalid cgroup parent"), "{}", e.stderr);
}
