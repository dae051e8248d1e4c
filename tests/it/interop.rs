//! Archives berth writes are read by skopeo and podman; archives podman writes load into berth.

use std::process::Command;

use berth_testkit::{Daemon, have};

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Removes a podman image when the test ends, pass or fail.
struct PodmanImage(String);
impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn skopeo_reads_berth_archives() {
    assert!(
        have("skopeo"),
        "skopeo is not installed (scripts/install-deps.sh installs it)"
    );
    let d = Daemon::start();
    let id = d.import_busybox("interop/skopeo:1");
    let out = d.dir.path().join("s.tar");
    d.berth(&["save", "-o", out.to_str().unwrap(), "interop/skopeo:1"])
        .ok();
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("docker-archive:{}", out.display()),
        ],
    );
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(m["config"]["digest"], id.as_str(), "{raw}");
    let cfg = run(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", out.display()),
        ],
    );
    let c: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    // The same archive read as an OCI layout archive.
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", out.display()),
        ],
    );
    assert!(raw.contains(&id[7..]), "{raw}");
}

#[test]
fn podman_loads_berth_archives_and_berth_loads_podmans() {
    assert!(
        have("podman"),
        "podman is not installed (scripts/install-deps.sh installs it)"
    );
    let d = Daemon::start();
    let name = format!("localhost/berth-interop-{}:1", std::process::id());
    let id = d.import_busybox(&name);
    let _guard = PodmanImage(name.clone());
    let out = d.dir.path().join("p.tar");
    d.berth(&["save", "-o", out.to_str().unwrap(), &name]).ok();
    let loaded = run("podman", &["load", "-i", out.to_str().unwrap()]);
    assert!(
        loaded.contains(&name) || loaded.contains(&id[7..]),
        "{loaded}"
    );
    let pid = run(
        "podman",
        &["image", "inspect", "--format", "{{.Id}}", &name],
    );
    assert_eq!(pid.trim(), &id[7..], "podman sees the same image ID");

    // And back: podman's docker-archive into berth.
    let back = d.dir.path().join("from-podman.tar");
    run(
        "podman",
        &[
            "save",
            "--format",
            "docker-archive",
            "-o",
            back.to_str().unwrap(),
            &name,
        ],
    );
    d.berth(&["rmi", &name]).ok();
    let l = d.berth(&["load", "-i", back.to_str().unwrap()]);
    assert!(l.ok().contains("Loaded image"), "{}", l.stdout);
    let insp = d.berth(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(insp.ok().trim(), id);
    // podman's OCI archive too.
    let oci = d.dir.path().join("from-podman-oci.tar");
    run(
        "podman",
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            oci.to_str().unwrap(),
            &name,
        ],
    );
    d.berth(&["rmi", &name]).ok();
    d.berth(&["load", "-i", oci.to_str().unwrap()]).ok();
    assert_eq!(d.berth(&["images", "-q", "--no-trunc"]).ok().trim(), id);
}
