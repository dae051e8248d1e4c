//! The Engine API core: ping, version negotiation, errors, version/info through both CLIs.

use berth_testkit::Daemon;

use crate::util::curl;

#[test]
fn ping_version_and_errors_follow_docker() {
    let d = Daemon::start();
    let (st, head, _) = curl(&d, "HEAD", "/_ping");
    assert_eq!(st, 200);
    let h = head.to_lowercase();
    for want in [
        "api-version: 1.47",
        "ostype: linux",
        "swarm: inactive",
        "builder-version:",
        "server: berth/",
    ] {
        assert!(h.contains(want), "missing {want} in {head}");
    }
    let (st, _, body) = curl(&d, "GET", "/_ping");
    assert_eq!((st, body.as_str()), (200, "OK"));

    let (st, _, body) = curl(&d, "GET", "/v1.47/version");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ApiVersion"], "1.47");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Os"], "linux");

    assert_eq!(curl(&d, "GET", "/v1.24/version").0, 200);
    let (st, _, body) = curl(&d, "GET", "/v1.99/version");
    assert_eq!(st, 400);
    assert!(
        body.contains("client version 1.99 is too new. Maximum supported API version is 1.47"),
        "{body}"
    );
    let (st, _, body) = curl(&d, "GET", "/v1.12/version");
    assert_eq!(st, 400);
    assert!(
        body.contains("is too old. Minimum supported API version is 1.24"),
        "{body}"
    );
    let (st, _, body) = curl(&d, "GET", "/v1.47/no/such/thing");
    assert_eq!(st, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"],
        "page not found"
    );
    let (st, _, body) = curl(&d, "GET", "/images/nope/json");
    assert_eq!(st, 404);
    assert!(body.contains("No such image: nope"), "{body}");
}

#[test]
fn version_and_info_through_both_clis() {
    let d = Daemon::start();
    let out = d.docker(&["version"]);
    let text = out.ok();
    assert!(text.contains("Server: berth"), "{text}");
    assert!(
        text.contains("API version:      1.47 (minimum version 1.24)"),
        "{text}"
    );
    let out = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(out.ok().trim(), "1.47");

    let out = d.berth(&["version"]);
    assert!(
        out.ok().contains("API version:      1.47"),
        "{}",
        out.stdout
    );
    let out = d.berth(&["version", "--format", "{{.Server.ApiVersion}}"]);
    assert_eq!(out.ok().trim(), "1.47");

    let out = d.docker(&["info"]);
    let text = out.ok();
    assert!(text.contains("Storage Driver: overlay2"), "{text}");
    assert!(
        text.contains(&format!("Docker Root Dir: {}", d.data_root.display())),
        "{text}"
    );
    assert!(
        text.contains("Cgroup Version: 1") || text.contains("Cgroup Version: 2"),
        "{text}"
    );
    let out = d.docker(&["info", "--format", "{{.Images}} {{.Driver}}"]);
    assert_eq!(out.ok().trim(), "0 overlay2");
    let out = d.berth(&["info"]);
    assert!(
        out.ok().contains("Storage Driver: overlay2"),
        "{}",
        out.stdout
    );
    let out = d.berth(&["system", "info", "--format", "{{.OSType}}"]);
    assert_eq!(out.ok().trim(), "linux");
}

#[test]
fn daemon_refuses_a_second_instance_and_bad_config() {
    let d = Daemon::start();
    let o = std::process::Command::new(berth_testkit::bin("berthd"))
        .arg("--data-root")
        .arg(&d.data_root)
        .arg("-H")
        .arg(format!("unix://{}/other.sock", d.dir.path().display()))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another berthd is already running"));

    let cfg = d.dir.path().join("bad.json");
    std::fs::write(&cfg, r#"{"data-root": "/x", "bogus-key": 1}"#).unwrap();
    let o = std::process::Command::new(berth_testkit::bin("berthd"))
        .arg("--config-file")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("don't match any configuration option: bogus-key")
    );
}

#[test]
fn clean_shutdown_removes_the_socket() {
    let mut d = Daemon::start();
    assert!(d.sock.exists());
    assert!(d.stop(), "berthd did not exit on SIGTERM");
    assert!(!d.sock.exists(), "socket left behind");
    d.restart();
    assert_eq!(d.berth(&["images", "-q"]).ok(), "");
}
