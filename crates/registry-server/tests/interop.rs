//! Real clients against the registry: skopeo and podman, with and without auth. Each test is
//! skipped (with a note on stderr) only when its tool is not installed.

mod common;
use std::path::Path;
use std::process::{Command, Output};

use berth_registry_server::TokenConfig;
use berth_registry_server::auth;
use common::*;

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: {tool} is not installed; this interop test did not run");
    }
    found
}

/// Writes a one-layer OCI image layout tagged `v1` and returns the manifest digest.
fn write_layout(dir: &Path, seed: &str) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> String {
        let d = sha256(data);
        std::fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), data).unwrap();
        d
    };
    let mut b = tar::Builder::new(Vec::new());
    let content = format!("hello from berth ({seed})\n");
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", content.as_bytes())
        .unwrap();
    let layer = b.into_inner().unwrap();
    let layer_d = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/hello"], "Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": [layer_d]},
    }))
    .unwrap();
    let config_d = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_d = put(&manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_d, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    manifest_d
}

/// Runs a tool with its credentials file isolated in `tmp`.
fn run(tmp: &Path, tool: &str, args: &[&str]) -> Output {
    let auth_file = tmp.join("auth.json");
    if !auth_file.exists() {
        std::fs::write(&auth_file, b"{}").unwrap();
    }
    Command::new(tool)
        .args(args)
        .env("REGISTRY_AUTH_FILE", tmp.join("auth.json"))
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn podman(tmp: &Path, args: &[&str]) -> Output {
    let root = tmp.join("podman-root");
    let runroot = tmp.join("podman-run");
    let state = tmp.join("podman-state");
    let mut all = vec![
        "--tmpdir",
        state.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        runroot.to_str().unwrap(),
        "--storage-driver",
        "vfs",
        "--events-backend",
        "none",
    ];
    all.extend_from_slice(args);
    run(tmp, "podman", &all)
}

#[test]
fn skopeo_copy_in_inspect_and_out() {
    if !have("skopeo") {
        return;
    }
    let reg = Reg::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, "skopeo");
    let dest = format!("docker://{}/interop/skopeo:v1", reg.addr);
    ok(run(
        tmp.path(),
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &dest,
        ],
    ));

    let c = reg.c();
    let r = c.get("/v2/interop/skopeo/manifests/v1");
    assert_eq!(r.status, 200);
    let digest = r.header("Docker-Content-Digest").unwrap().to_string();

    let info: serde_json::Value = serde_json::from_str(&ok(run(
        tmp.path(),
        "skopeo",
        &["inspect", "--tls-verify=false", &dest],
    )))
    .unwrap();
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["RepoTags"], serde_json::json!(["v1"]));
    assert_eq!(info["Labels"]["seed"], "skopeo");
    let raw = ok(run(
        tmp.path(),
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &dest],
    ));
    assert_eq!(raw.as_bytes(), r.body.as_slice());

    // Back out into a fresh layout: the same manifest, blobs that verify.
    let out = tmp.path().join("out");
    ok(run(
        tmp.path(),
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:v1", out.display()),
        ],
    ));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    for e in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            sha256(&data),
            format!("sha256:{}", e.file_name().to_string_lossy())
        );
    }

    // Registry to registry, as Docker schema 2 (exercises mounts and the Docker media types).
    ok(run(
        tmp.path(),
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &dest,
            &format!("docker://{}/interop/docker:v2", reg.addr),
        ],
    ));
    let r = c.get("/v2/interop/docker/manifests/v2");
    assert_eq!(r.header("Content-Type"), Some(DOCKER_MANIFEST));
    let tags = ok(run(
        tmp.path(),
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/interop/docker", reg.addr),
        ],
    ));
    assert!(tags.contains("\"v2\""), "{tags}");
    // Delete through skopeo.
    ok(run(
        tmp.path(),
        "skopeo",
        &[
            "delete",
            "--tls-verify=false",
            &format!("docker://{}/interop/docker:v2", reg.addr),
        ],
    ));
    assert_eq!(c.get("/v2/interop/docker/manifests/v2").status, 404);
}

#[test]
fn podman_push_and_pull() {
    if !have("podman") || !have("skopeo") {
        return;
    }
    let reg = Reg::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, "podman");
    ok(run(
        tmp.path(),
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{}/interop/podman:v1", reg.addr),
        ],
    ));
    let src = format!("{}/interop/podman:v1", reg.addr);
    ok(podman(tmp.path(), &["pull", "--tls-verify=false", &src]));
    let pushed = format!("{}/interop/pushed:v2", reg.addr);
    ok(podman(tmp.path(), &["tag", &src, &pushed]));
    ok(podman(tmp.path(), &["push", "--tls-verify=false", &pushed]));
    let c = reg.c();
    assert_eq!(
        c.get("/v2/interop/pushed/tags/list").json()["tags"],
        serde_json::json!(["v2"])
    );
    // Pull it back by digest after removing the local copies.
    let digest = c
        .head("/v2/interop/pushed/manifests/v2")
        .header("Docker-Content-Digest")
        .unwrap()
        .to_string();
    ok(podman(tmp.path(), &["rmi", "-a", "-f"]));
    let by_digest = format!("{}/interop/pushed@{digest}", reg.addr);
    ok(podman(
        tmp.path(),
        &["pull", "--tls-verify=false", &by_digest],
    ));
    let labels = ok(podman(
        tmp.path(),
        &[
            "image",
            "inspect",
            "--format",
            "{{.Labels.seed}}",
            &by_digest,
        ],
    ));
    assert_eq!(labels.trim(), "podman");
    ok(podman(tmp.path(), &["rmi", "-a", "-f"]));
}

fn users_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("htpasswd");
    std::fs::write(
        &p,
        format!(
            "{}\n",
            auth::htpasswd_line("alice", "wonderland", 5).unwrap()
        ),
    )
    .unwrap();
    p
}

#[test]
fn skopeo_and_podman_with_basic_auth() {
    if !have("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let users = users_file(tmp.path());
    let reg = Reg::start_with(|c| c.htpasswd = Some(users));
    auth_roundtrip(&reg, tmp.path());
}

#[test]
fn skopeo_and_podman_with_token_auth() {
    if !have("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let users = users_file(tmp.path());
    let reg = Reg::start_with(|c| {
        c.htpasswd = Some(users);
        c.token = Some(TokenConfig {
            realm: "/auth/token".into(),
            service: "berth-interop".into(),
            issuer: "berth-interop".into(),
            secret: b"interop-secret-interop-secret".to_vec(),
            expiration: 300,
        });
    });
    auth_roundtrip(&reg, tmp.path());
}

fn auth_roundtrip(reg: &Reg, tmp: &Path) {
    let layout = tmp.join("layout");
    write_layout(&layout, "auth");
    let dest = format!("docker://{}/secure/app:v1", reg.addr);
    let src = format!("oci:{}:v1", layout.display());
    // No credentials: refused.
    let o = run(
        tmp,
        "skopeo",
        &["copy", "--dest-tls-verify=false", &src, &dest],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication required"),
        "{err}"
    );
    // Wrong password: refused.
    let o = run(
        tmp,
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:nope",
            &src,
            &dest,
        ],
    );
    assert!(!o.status.success());
    // Right credentials.
    ok(run(
        tmp,
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wonderland",
            &src,
            &dest,
        ],
    ));
    let info: serde_json::Value = serde_json::from_str(&ok(run(
        tmp,
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:wonderland",
            &dest,
        ],
    )))
    .unwrap();
    assert_eq!(info["Labels"]["seed"], "auth");
    let o = run(tmp, "skopeo", &["inspect", "--tls-verify=false", &dest]);
    assert!(!o.status.success());

    if !have("podman") {
        return;
    }
    let image = format!("{}/secure/app:v1", reg.addr);
    let o = podman(tmp, &["pull", "--tls-verify=false", &image]);
    assert!(!o.status.success());
    ok(podman(
        tmp,
        &[
            "pull",
            "--tls-verify=false",
            "--creds",
            "alice:wonderland",
            &image,
        ],
    ));
    let pushed = format!("{}/secure/pushed:v1", reg.addr);
    ok(podman(tmp, &["tag", &image, &pushed]));
    let o = podman(tmp, &["push", "--tls-verify=false", &pushed]);
    assert!(!o.status.success());
    ok(podman(
        tmp,
        &[
            "push",
            "--tls-verify=false",
            "--creds",
            "alice:wonderland",
            &pushed,
        ],
    ));
    // podman login stores the credentials in the isolated auth file; pulls then need no flag.
    ok(podman(
        tmp,
        &[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "wonderland",
            &reg.addr.to_string(),
        ],
    ));
    ok(podman(tmp, &["rmi", "-a", "-f"]));
    ok(podman(tmp, &["pull", "--tls-verify=false", &pushed]));
    ok(podman(tmp, &["logout", &reg.addr.to_string()]));
    ok(podman(tmp, &["rmi", "-a", "-f"]));
}
