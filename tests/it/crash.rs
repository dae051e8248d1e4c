//! Crash safety: berthd killed with SIGKILL in the middle of loading a 200 MB archive leaves no
//! partial image and, after a restart, no orphaned blob or snapshot.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{Daemon, bin, tree_listing};

fn dir_bytes(p: &std::path::Path) -> u64 {
    tree_listing(p).iter().map(|(_, s)| *s).sum()
}

#[test]
fn kill9_during_a_200mb_load_leaves_nothing_behind() {
    let mut d = Daemon::start();
    let archive = d.dir.path().join("big.tar");
    berth_testkit::archive::write_big_archive(&archive, "big:1", 5, 40).unwrap();
    let keep = d.import_busybox("keep:1");

    let mut load = Command::new(bin("berth"))
        .args(["-H", &d.host(), "load", "-i", archive.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the load is well under way (staged bytes in tmp/), then crash the daemon.
    let tmp = d.data_root.join("tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir_bytes(&tmp) < 60 << 20 {
        assert!(Instant::now() < deadline, "load never got going");
        if let Ok(Some(_)) = load.try_wait() {
            panic!("load finished before the crash; make the archive bigger");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    let _ = load.wait();

    d.restart();
    let images = d.berth(&["images", "-a", "-q", "--no-trunc"]);
    assert_eq!(
        images.ok().trim(),
        keep,
        "only the image from before the crash is listed"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "tmp/ is cleaned at start"
    );
    // Only keep:1's config and layer blobs remain.
    let blobs: Vec<String> = std::fs::read_dir(d.data_root.join("content/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(blobs.len(), 2, "orphaned blobs: {blobs:?}");
    assert!(blobs.contains(&keep[7..].to_string()));
    let snaps: Vec<_> = std::fs::read_dir(d.data_root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    assert_eq!(snaps.len(), 1, "orphaned snapshots: {snaps:?}");

    // The same archive loads completely afterwards.
    let l = d.berth(&["load", "-i", archive.to_str().unwrap()]);
    assert!(l.ok().contains("Loaded image: big:1"), "{}", l.stdout);
    let insp = d.berth(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "big:1",
    ]);
    assert_eq!(insp.ok().trim(), "5");
}
