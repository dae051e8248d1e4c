//! Storage: crash safety of uploads, garbage collection, a copied root, concurrent pushes.

mod common;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_berth-registry");

/// The real binary, serving `root`; killed (SIGKILL) on drop if still running.
struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Proc {
    fn start(root: &Path) -> Proc {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--root",
            ])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Proc { child, addr }
    }

    fn c(&self) -> Client {
        Client {
            addr: self.addr,
            auth: None,
        }
    }

    /// SIGKILL: no chance to clean up.
    fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st:?}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn killed_mid_upload_never_exposes_a_blob_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let d = sha256(&data);

    let p = Proc::start(&root);
    let c = p.c();
    let loc = c
        .req("POST", "/v2/crash/blobs/uploads/", &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    assert_eq!(
        c.req(
            "PATCH",
            &loc,
            &[("Content-Range", "0-99999")],
            &data[..100_000]
        )
        .status,
        202
    );
    p.crash();

    // Only the upload directory holds the bytes; nothing under blobs/.
    assert!(files_under(&root.join("blobs")).is_empty());
    assert!(!files_under(&root.join("uploads")).is_empty());

    let p = Proc::start(&root);
    let c = p.c();
    assert_eq!(c.head(&format!("/v2/crash/blobs/{d}")).status, 404);
    assert_eq!(c.get(&format!("/v2/crash/blobs/{d}")).status, 404);
    // The session survived the crash: its offset is where the data stopped.
    let r = c.get(&loc);
    assert_eq!((r.status, r.header("Range")), (204, Some("0-99999")));
    let r = c.req(
        "PATCH",
        &loc,
        &[("Content-Range", "100000-199999")],
        &data[100_000..],
    );
    assert_eq!(r.status, 202);
    let r = c.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(c.get(&format!("/v2/crash/blobs/{d}")).body, data);
    assert!(files_under(&root.join("uploads")).is_empty());

    // A second crash mid-upload of a different blob; gc clears the leftover.
    let loc = c
        .req("POST", "/v2/crash/blobs/uploads/", &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    assert_eq!(c.req("PATCH", &loc, &[], b"half a blob").status, 202);
    p.crash();
    let out = Command::new(BIN)
        .args(["gc", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(files_under(&root.join("uploads")).is_empty());
}

#[test]
fn gc_removes_only_unreferenced_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let p = Proc::start(&root);
    let c = p.c();
    let keep = push_image(&c, "gc/keep", "v1", "keep");
    let gone = push_image(&c, "gc/gone", "v1", "gone");
    // Shared layer: pushed to both repositories, referenced by `keep` only once `gone` is deleted.
    let shared = push_blob(
        &c,
        "gc/gone",
        format!("layer bytes of {}", "keep").as_bytes(),
    );
    assert_eq!(shared, keep.layers[0]);
    let stray = push_blob(&c, "gc/keep", b"uploaded but never referenced");
    // An untagged (but still recorded) manifest survives a plain gc.
    let untagged = push_image(&c, "gc/keep", "tmp", "untagged");
    assert_eq!(c.delete("/v2/gc/keep/manifests/tmp").status, 202);
    assert_eq!(
        c.delete(&format!("/v2/gc/gone/manifests/{}", gone.digest))
            .status,
        202
    );

    // Refused while the registry runs.
    let out = Command::new(BIN)
        .args(["gc", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.stop();

    let before = files_under(&root.join("blobs"));
    let out = Command::new(BIN)
        .args(["gc", "--dry-run", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("dry run"), "{text}");
    assert_eq!(files_under(&root.join("blobs")), before);

    let out = Command::new(BIN)
        .args(["gc", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let has = |d: &str| {
        root.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
            .exists()
    };
    // Deleted: the deleted manifest, its config and unique layer, the stray blob.
    for d in [&gone.digest, &gone.config, &gone.layers[0], &stray] {
        assert!(!has(d), "{d} should be gone:\n{text}");
        assert!(text.contains(d.as_str()), "{text}");
    }
    // Kept: everything `keep` references, and the untagged manifest with its blobs.
    for d in [
        &keep.digest,
        &keep.config,
        &keep.layers[0],
        &untagged.digest,
        &untagged.config,
    ] {
        assert!(has(d), "{d} should stay:\n{text}");
    }

    // The registry still serves what it kept, and forgot the links to what went.
    let p = Proc::start(&root);
    let c = p.c();
    assert_eq!(c.get("/v2/gc/keep/manifests/v1").body, keep.manifest);
    assert_eq!(
        c.get(&format!("/v2/gc/keep/blobs/{}", keep.layers[0]))
            .status,
        200
    );
    assert_eq!(
        c.get(&format!("/v2/gc/gone/blobs/{}", keep.layers[0]))
            .status,
        200
    );
    assert_eq!(
        c.head(&format!("/v2/gc/gone/blobs/{}", gone.layers[0]))
            .status,
        404
    );
    assert_eq!(c.head(&format!("/v2/gc/keep/blobs/{stray}")).status, 404);
    p.stop();

    // --delete-untagged drops the untagged manifest too.
    let out = Command::new(BIN)
        .args(["gc", "--delete-untagged", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!has(&untagged.digest));
    assert!(!has(&untagged.config));
    assert!(has(&keep.digest));
}

#[test]
fn gc_keeps_index_children_and_referrers_with_delete_untagged() {
    let reg = Reg::start();
    let c = reg.c();
    let child = push_image(&c, "multi", "child-tag", "child");
    assert_eq!(c.delete("/v2/multi/manifests/child-tag").status, 202);
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.manifest.len()}],
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&c, "multi", "latest", OCI_INDEX, &idx).status,
        201
    );
    let empty = push_blob(&c, "multi", b"{}");
    let sig = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.manifest.len()},
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&c, "multi", &sha256(&sig), OCI_MANIFEST, &sig).status,
        201
    );
    let mut reg = reg;
    let root = reg.root();
    reg.stop();
    let mut out = Vec::new();
    let report = berth_registry_server::gc::run(
        &root,
        berth_registry_server::gc::GcOptions {
            dry_run: false,
            delete_untagged: true,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        report.manifests_deleted,
        0,
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        report.blobs_deleted.is_empty(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn copied_root_serves_the_same_content() {
    let mut reg = Reg::start();
    let c = reg.c();
    let a = push_image(&c, "copy/a", "v1", "a");
    let b = push_image(&c, "copy/b", "stable", "b");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let big_d = push_blob(&c, "copy/a", &big);
    let catalog = c.get("/v2/_catalog").json();
    reg.stop();

    let dest = tempfile::tempdir().unwrap();
    copy_tree(&reg.root(), &dest.path().join("moved"));
    drop(reg); // the original is gone entirely

    let p = Proc::start(&dest.path().join("moved"));
    let c = p.c();
    assert_eq!(c.get("/v2/_catalog").json(), catalog);
    for (repo, tag, img) in [("copy/a", "v1", &a), ("copy/b", "stable", &b)] {
        let r = c.get(&format!("/v2/{repo}/manifests/{tag}"));
        assert_eq!(r.body, img.manifest);
        assert_eq!(r.header("Docker-Content-Digest"), Some(img.digest.as_str()));
        for d in img.layers.iter().chain([&img.config]) {
            let r = c.get(&format!("/v2/{repo}/blobs/{d}"));
            assert_eq!(sha256(&r.body), *d);
        }
    }
    assert_eq!(c.get(&format!("/v2/copy/a/blobs/{big_d}")).body, big);
    // And it takes new pushes.
    push_image(&c, "copy/c", "v1", "c");
    p.stop();
}

#[test]
fn concurrent_pushes_of_the_same_blob() {
    let reg = Reg::start();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 239) as u8).collect();
    let d = sha256(&data);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let c = reg.c();
            let data = data.clone();
            let d = d.clone();
            std::thread::spawn(move || {
                let repo = format!("same/r{}", i % 3);
                let loc = c
                    .req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"")
                    .header("Location")
                    .unwrap()
                    .to_string();
                // Two chunks each.
                let r = c.req(
                    "PATCH",
                    &loc,
                    &[("Content-Range", "0-999999")],
                    &data[..1_000_000],
                );
                assert_eq!(r.status, 202);
                let r = c.req(
                    "PUT",
                    &format!("{loc}?digest={d}"),
                    &[("Content-Range", "1000000-1999999")],
                    &data[1_000_000..],
                );
                assert_eq!(r.status, 201, "{}", r.text());
                repo
            })
        })
        .collect();
    let repos: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let c = reg.c();
    for repo in repos {
        assert_eq!(c.get(&format!("/v2/{repo}/blobs/{d}")).body, data);
    }
    assert_eq!(files_under(&reg.root().join("blobs")).len(), 1);
    assert!(files_under(&reg.root().join("uploads")).is_empty());
}

#[test]
fn second_server_on_the_same_root_is_refused() {
    let reg = Reg::start();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(reg.root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
}
