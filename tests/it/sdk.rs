//! Python's docker SDK against berthd.

use std::process::Command;

use berth_testkit::Daemon;

#[test]
fn python_docker_sdk_works_unchanged() {
    let ok = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "Python's docker SDK is missing (scripts/install-deps.sh installs it with pip)"
    );
    let d = Daemon::start();
    d.import_busybox("busybox");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/python_sdk.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(d.host())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("python-sdk-ok"),
        "stdout: {stdout}\nstderr: {}\ndaemon log tail: {}",
        String::from_utf8_lossy(&o.stderr),
        d.log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
