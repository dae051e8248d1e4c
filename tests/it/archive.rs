//! save | load round trips, and bad archives that must change nothing.

use std::path::Path;

use berth_testkit::archive::{ArchiveImage, layer_tar, sha256_hex, write_docker_archive};
use berth_testkit::{Daemon, busybox_tar, tree_listing};

use crate::util::{Client, inspect};

fn history_of(d: &Daemon, c: Client, name: &str) -> String {
    c.run(
        d,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CreatedBy}} {{.Size}} {{.Comment}}",
            name,
        ],
    )
    .ok()
    .to_string()
}

fn round_trip(c: Client) {
    let d = Daemon::start();
    let tar = busybox_tar();
    let tar = tar.to_str().unwrap();
    let a = c
        .run(&d, &["import", "-m", "first", tar, "one:1"])
        .ok()
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = c
        .run(&d, &["import", "-c", "ENV X=1", tar, "two:2"])
        .ok()
        .trim()
        .to_string();
    c.run(&d, &["tag", "two:2", "two:alias"]).ok();
    let hist_a = history_of(&d, c, "one:1");
    let hist_b = history_of(&d, c, "two:2");

    let out = d.dir.path().join("both.tar");
    c.run(
        &d,
        &[
            "save",
            "-o",
            out.to_str().unwrap(),
            "one:1",
            "two:2",
            "two:alias",
        ],
    )
    .ok();
    // Docker 25+'s layout: an OCI layout that also carries manifest.json.
    let names = tar_names(&out);
    for want in [
        "manifest.json",
        "index.json",
        "oci-layout",
        &format!("blobs/sha256/{}", &a[7..]),
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }

    c.run(&d, &["rmi", "one:1", "two:2", "two:alias"]).ok();
    assert!(c.run(&d, &["images", "-q"]).ok().is_empty());

    let bytes = std::fs::read(&out).unwrap();
    let loaded = c.run_stdin(&d, &["load"], &bytes);
    let text = loaded.ok();
    for t in [
        "Loaded image: one:1",
        "Loaded image: two:2",
        "Loaded image: two:alias",
    ] {
        assert!(text.contains(t), "{text}");
    }
    assert_eq!(inspect(&d, c, "one:1")["Id"], a.as_str());
    assert_eq!(inspect(&d, c, "two:alias")["Id"], b.as_str());
    assert_eq!(
        inspect(&d, c, "two:2")["Config"]["Env"],
        serde_json::json!(["X=1"])
    );
    assert_eq!(history_of(&d, c, "one:1"), hist_a);
    assert_eq!(history_of(&d, c, "two:2"), hist_b);

    // Loading again is harmless; `-i` and `-q` work.
    let again = c.run(&d, &["load", "-q", "-i", out.to_str().unwrap()]);
    assert!(
        again.ok().contains("Loaded image: one:1"),
        "{}",
        again.stdout
    );

    // Save to stdout; by ID saves the image untagged.
    let s = c.run(&d, &["save", &a[7..19]]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stdout.len() > 1000);
    let nowhere = d.dir.path().join("nope.tar");
    let e = c.run(&d, &["save", "-o", nowhere.to_str().unwrap(), "nope:1"]);
    assert!(e.err().contains("No such image"), "{}", e.stderr);
}

fn tar_names(p: &Path) -> Vec<String> {
    let f = std::fs::File::open(p).unwrap();
    let mut a = tar::Archive::new(f);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn save_load_round_trip_through_berth() {
    round_trip(Client::Berth);
}

#[test]
fn save_load_round_trip_through_docker() {
    round_trip(Client::Docker);
}

/// What must not change when a load fails: the metadata DB and every stored blob and snapshot.
type Listing = Vec<(String, u64)>;

fn state(d: &Daemon) -> (String, Listing, Listing) {
    let db = std::fs::read(d.data_root.join("metadata.db")).unwrap();
    (
        sha256_hex(&db),
        tree_listing(&d.data_root.join("content")),
        tree_listing(&d.data_root.join("snapshots")),
    )
}

fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    // Hand-written headers so names like ../etc/passwd survive (tar builders refuse them).
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        let size = format!("{:011o}", data.len());
        h[124..135].copy_from_slice(size.as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let cks = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(cks.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[test]
fn bad_archives_are_refused_and_change_nothing() {
    let d = Daemon::start();
    d.import_busybox("keep:1");
    let before = state(&d);

    let good_layer = layer_tar(&[("hello.txt", b"hello".to_vec())]);
    let mut good = Vec::new();
    write_docker_archive(
        &mut good,
        &[ArchiveImage::new(&["good:1"], vec![good_layer.clone()])],
    )
    .unwrap();

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // A truncated archive.
    cases.push((
        "truncated",
        good[..good.len() / 2].to_vec(),
        "invalid archive",
    ));
    // A path escaping the archive.
    cases.push((
        "traversal",
        // Followed by a large entry: the refusal must reach the client although the daemon
        // stops reading early.
        raw_tar(&[
            ("../etc/passwd", b"root::0:0::/:/bin/sh\n"),
            ("filler", &vec![7u8; 8 << 20]),
        ]),
        "outside the archive",
    ));
    // manifest.json naming a layer that is not there.
    let cfg = berth_testkit::archive::image_config(std::slice::from_ref(&good_layer), &["sh"]);
    let cfg_name = format!("{}.json", sha256_hex(&cfg));
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": cfg_name, "RepoTags": ["missing:1"], "Layers": ["nothere/layer.tar"]}
    ]))
    .unwrap();
    cases.push((
        "missing layer",
        raw_tar(&[(&cfg_name, &cfg), ("manifest.json", &manifest)]),
        "not in the archive",
    ));
    // A layer whose content does not match the config's diff ID.
    let other_layer = layer_tar(&[("evil.txt", b"not what the config says".to_vec())]);
    let mut img = ArchiveImage::new(&["mismatch:1"], vec![other_layer]);
    img.config = cfg.clone();
    let mut mismatch = Vec::new();
    write_docker_archive(&mut mismatch, &[img]).unwrap();
    cases.push(("diff id mismatch", mismatch, "does not match"));
    // An OCI blob whose bytes do not hash to its name.
    let fake = format!("blobs/sha256/{}", "ab".repeat(32));
    cases.push((
        "blob digest",
        raw_tar(&[(&fake, b"garbage"), ("index.json", b"{}")]),
        "digest mismatch",
    ));
    // An invalid reference in RepoTags.
    let mut upper = Vec::new();
    write_docker_archive(
        &mut upper,
        &[ArchiveImage::new(
            &["UPPER/Case:tag"],
            vec![good_layer.clone()],
        )],
    )
    .unwrap();
    cases.push(("uppercase tag", upper, "must be lowercase"));

    for (what, bytes, want) in &cases {
        for c in [Client::Berth, Client::Docker] {
            let out = c.run_stdin(&d, &["load"], bytes);
            let err = out.err();
            assert!(
                err.contains(want),
                "{what} via {c:?}: expected {want:?} in {err:?}"
            );
            assert_eq!(state(&d), before, "{what} via {c:?} changed the store");
        }
    }
    assert_eq!(
        d.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok()
            .trim(),
        "keep:1"
    );
    // The good archive still loads after all that.
    d.berth_stdin(&["load"], &good).ok();
    assert!(d.berth(&["images"]).ok().contains("good"));
    let tmp_left = std::fs::read_dir(d.data_root.join("tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "staging files left in tmp/");
}

#[test]
fn oci_layout_and_compressed_archives_load() {
    let d = Daemon::start();
    d.import_busybox("src:1");
    let out = d.dir.path().join("src.tar");
    d.berth(&["save", "-o", out.to_str().unwrap(), "src:1"])
        .ok();
    // Strip manifest.json: what remains is a plain OCI layout (read via index.json).
    let f = std::fs::File::open(&out).unwrap();
    let mut ar = tar::Archive::new(f);
    let mut b = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_path_buf();
        if p.to_str() == Some("manifest.json") || p.to_str() == Some("repositories") {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        b.append_data(&mut h, &p, data.as_slice()).unwrap();
    }
    let oci = b.into_inner().unwrap();
    let id = d
        .berth(&["images", "-q", "--no-trunc"])
        .ok()
        .trim()
        .to_string();
    d.berth(&["rmi", "src:1"]).ok();
    let l = d.berth_stdin(&["load"], &oci);
    assert!(l.ok().contains("Loaded image: src:1"), "{}", l.stdout);
    assert_eq!(d.berth(&["images", "-q", "--no-trunc"]).ok().trim(), id);

    // gzip-compressed archives load too (docker load accepts them).
    d.berth(&["rmi", "src:1"]).ok();
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&out)
        .output()
        .unwrap()
        .stdout;
    d.berth_stdin(&["load"], &gz).ok();
    assert_eq!(d.berth(&["images", "-q", "--no-trunc"]).ok().trim(), id);
}

#[test]
fn a_layer_hard_linking_into_a_lower_layer_loads() {
    // Layers unpack in parallel; the upper one links to a file only the lower one has.
    let d = Daemon::start();
    let lower = layer_tar(&[("data/base.txt", b"base".to_vec())]);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, "data/link.txt", "data/base.txt")
        .unwrap();
    let upper = b.into_inner().unwrap();
    let mut archive = Vec::new();
    write_docker_archive(
        &mut archive,
        &[ArchiveImage::new(&["linked:1"], vec![lower, upper])],
    )
    .unwrap();
    let out = d.berth_stdin(&["load"], &archive);
    assert!(
        out.ok().contains("Loaded image: linked:1"),
        "{}",
        out.stdout
    );
    let insp = d.berth(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "linked:1",
    ]);
    assert_eq!(insp.ok().trim(), "2");
}
