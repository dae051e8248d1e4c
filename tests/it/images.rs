//! Image management through both CLIs: import (file and stdin), images and its filters, tag,
//! rmi semantics, history, inspect, prune, system df.

use berth_testkit::{Daemon, busybox_tar};

use crate::util::{Client, inspect};

fn ids(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn import_flow(c: Client) {
    let d = Daemon::start();
    let tar = busybox_tar();
    let tar = tar.to_str().unwrap();

    // Import from a file, with changes and a message.
    let out = c.run(
        &d,
        &[
            "import",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "LABEL tier=base",
            "-m",
            "from file",
            tar,
            "bb:1",
        ],
    );
    let id1 = out.ok().trim().to_string();
    assert!(id1.starts_with("sha256:") && id1.len() == 71, "{id1}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Import from stdin.
    let bytes = std::fs::read(tar).unwrap();
    let out = c.run_stdin(&d, &["import", "-", "bb:stdin"], &bytes);
    let id2 = out.ok().trim().to_string();
    assert_ne!(id1, id2, "different configs give different images");

    let listing = c.run(&d, &["images"]);
    let text = listing.ok();
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{text}"
    );
    assert!(text.contains("bb           1 "), "{text}");
    assert!(text.contains("bb           stdin"), "{text}");
    assert!(text.contains(&id1[7..19]), "{text}");

    // -q, --no-trunc, --format.
    let q = ids(c.run(&d, &["images", "-q"]).ok());
    assert_eq!(q.len(), 2);
    assert!(q.contains(&id1[7..19].to_string()));
    let full = ids(c.run(&d, &["images", "-q", "--no-trunc"]).ok());
    assert!(full.contains(&id1), "{full:?}");
    let f = c.run(&d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names = ids(f.ok());
    names.sort();
    assert_eq!(names, vec!["bb:1", "bb:stdin"]);
    let j = c.run(&d, &["images", "--format", "{{json .}}"]);
    let first: serde_json::Value = serde_json::from_str(j.ok().lines().next().unwrap()).unwrap();
    assert_eq!(first["Repository"], "bb");
    let t = c.run(&d, &["images", "--format", "table {{.ID}}\t{{.Tag}}"]);
    assert!(t.ok().starts_with("IMAGE ID       TAG"), "{}", t.stdout);

    // Filters: reference, before, since, dangling, label; and the positional repository.
    let only = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        v.extend_from_slice(args);
        let mut r = ids(c.run(&d, &v).ok());
        r.sort();
        r
    };
    assert_eq!(only(&["--filter", "reference=bb:1"]), vec!["bb:1"]);
    assert_eq!(only(&["--filter", "reference=bb:st*"]), vec!["bb:stdin"]);
    assert_eq!(
        only(&["--filter", "reference=bb"]),
        vec!["bb:1", "bb:stdin"]
    );
    assert_eq!(only(&["bb:1"]), vec!["bb:1"]);
    assert_eq!(only(&["--filter", "before=bb:stdin"]), vec!["bb:1"]);
    assert_eq!(only(&["--filter", "since=bb:1"]), vec!["bb:stdin"]);
    assert_eq!(only(&["--filter", "label=tier=base"]), vec!["bb:1"]);
    assert_eq!(only(&["--filter", "label=tier"]), vec!["bb:1"]);
    assert!(only(&["--filter", "dangling=true"]).is_empty());
    assert_eq!(only(&["--filter", "dangling=false"]).len(), 2);
    let bad = c.run(&d, &["images", "--filter", "bogus=1"]);
    assert!(
        bad.err().contains("invalid filter 'bogus'"),
        "{}",
        bad.stderr
    );

    // Tag: a second name for the same image.
    c.run(&d, &["tag", "bb:1", "other/name:x"]).ok();
    assert_eq!(
        only(&["--filter", "reference=other/*"]),
        vec!["other/name:x"]
    );
    let insp = inspect(&d, c, "other/name:x");
    assert_eq!(insp["Id"], id1.as_str());
    let mut tags: Vec<String> = insp["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, vec!["bb:1", "other/name:x"]);
    assert_eq!(insp["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(insp["Config"]["Labels"]["tier"], "base");
    assert_eq!(insp["RootFS"]["Type"], "layers");
    assert_eq!(insp["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(insp["Size"].as_i64().unwrap() > 1_000_000);
    assert_eq!(insp["Os"], "linux");
    assert_eq!(insp["Architecture"], "amd64");
    assert_eq!(insp["Comment"], "from file");
    assert!(insp["Created"].as_str().unwrap().starts_with("20"));
    assert!(insp["Metadata"]["LastTagTime"].as_str().is_some());

    // Removing by ID while two repositories name it needs -f.
    let e = c.run(&d, &["rmi", &id1[7..19]]);
    assert!(
        e.err()
            .contains("image is referenced in multiple repositories"),
        "{}",
        e.stderr
    );

    // History: one layer, with the import message.
    let h = c.run(&d, &["history", "bb:1"]);
    let ht = h.ok();
    assert!(ht.starts_with("IMAGE          CREATED"), "{ht}");
    assert_eq!(ht.lines().count(), 2, "{ht}");
    assert!(ht.contains("from file"), "{ht}");
    let hq = ids(c.run(&d, &["history", "-q", "--no-trunc", "bb:1"]).ok());
    assert_eq!(hq, vec![id1.clone()]);

    // rmi of one name only untags while another name remains.
    let out = c.run(&d, &["rmi", "other/name:x"]);
    assert_eq!(out.ok().trim(), "Untagged: other/name:x");
    assert_eq!(only(&[]), vec!["bb:1", "bb:stdin"]);
    // The last name goes with the image.
    let out = c.run(&d, &["rmi", "bb:1"]);
    let t = out.ok();
    assert!(t.contains("Untagged: bb:1"), "{t}");
    assert!(t.contains(&format!("Deleted: {id1}")), "{t}");
    assert_eq!(only(&[]), vec!["bb:stdin"]);
    // The shared layer stays with bb:stdin and the image still lists its size.
    let insp2 = inspect(&d, c, "bb:stdin");
    assert!(insp2["Size"].as_i64().unwrap() > 1_000_000);

    let e = c.run(&d, &["rmi", "nope:latest"]);
    assert!(
        e.err().contains("No such image: nope:latest"),
        "{}",
        e.stderr
    );
    let e = c.run(&d, &["tag", "bb:stdin", "UPPER/Case:tag"]);
    assert!(
        e.err().to_lowercase().contains("must be lowercase"),
        "{}",
        e.stderr
    );
    assert_eq!(only(&[]), vec!["bb:stdin"]);
}

#[test]
fn image_flow_through_berth() {
    import_flow(Client::Berth);
}

#[test]
fn image_flow_through_docker() {
    import_flow(Client::Docker);
}

#[test]
fn dangling_images_and_prune() {
    let d = Daemon::start();
    let tar = busybox_tar();
    let tar = tar.to_str().unwrap();
    let a = d
        .berth(&["import", "-m", "a", tar, "x:1"])
        .ok()
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Re-importing under the same tag leaves the first image dangling.
    let b = d
        .berth(&["import", "-m", "b", tar, "x:1"])
        .ok()
        .trim()
        .to_string();
    assert_ne!(a, b);
    let dangling = ids(d
        .docker(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
        .ok());
    assert_eq!(dangling, vec![a.clone()]);
    let listing = d.docker(&["images"]);
    assert!(
        listing.ok().contains("<none>       <none>"),
        "{}",
        listing.stdout
    );

    let df = d.docker(&["system", "df"]);
    let text = df.ok();
    assert!(text.starts_with("TYPE"), "{text}");
    assert!(text.contains("Images          2"), "{text}");

    let p = d.docker(&["image", "prune", "-f"]);
    let text = p.ok();
    assert!(text.contains(&format!("deleted: {a}")), "{text}");
    assert!(text.contains("Total reclaimed space:"), "{text}");
    assert_eq!(
        ids(d.berth(&["images", "-q", "--no-trunc"]).ok()),
        vec![b.clone()]
    );

    // prune -a removes every image no container uses.
    let p = d.berth(&["image", "prune", "-a", "-f"]);
    assert!(p.ok().contains(&format!("deleted: {b}")), "{}", p.stdout);
    assert!(d.berth(&["images", "-q"]).ok().is_empty());
    // Nothing is left on disk either.
    let blobs = std::fs::read_dir(d.data_root.join("content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "blobs left after pruning everything");
}

/// Serves one file over HTTP on loopback (for `import URL`); returns the URL.
fn serve_once(body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/rootfs.tar")
}

#[test]
fn import_from_a_url() {
    let d = Daemon::start();
    for c in [Client::Berth, Client::Docker] {
        let url = serve_once(std::fs::read(busybox_tar()).unwrap());
        let id = c
            .run(&d, &["import", &url, "fromurl:1"])
            .ok()
            .trim()
            .to_string();
        assert!(id.starts_with("sha256:"), "{id}");
        let h = c.run(&d, &["history", "--format", "{{.Comment}}", "fromurl:1"]);
        assert_eq!(h.ok().trim(), format!("Imported from {url}"));
    }
    let bad = d.berth(&["import", "http://127.0.0.1:1/nothing.tar", "x:1"]);
    assert!(bad.err().contains("cannot download"), "{}", bad.stderr);
}

#[test]
fn the_copy_driver_serves_the_same_flows() {
    let d = Daemon::start_with(&["--storage-driver", "vfs"]);
    let out = d.docker(&["info", "--format", "{{.Driver}}"]);
    assert_eq!(out.ok().trim(), "vfs");
    let id = d.import_busybox("cp:1");
    let tar = d.dir.path().join("cp.tar");
    d.berth(&["save", "-o", tar.to_str().unwrap(), "cp:1"]).ok();
    d.berth(&["rmi", "cp:1"]).ok();
    d.docker(&["load", "-i", tar.to_str().unwrap()]).ok();
    assert_eq!(d.berth(&["images", "-q", "--no-trunc"]).ok().trim(), id);
    // The layer is a full tree under the copy driver.
    assert!(
        std::fs::read_dir(d.data_root.join("snapshots"))
            .unwrap()
            .count()
            >= 1
    );
}
