//! One behavioural suite run against both drivers, plus overlay-only tests (deep chains, the
//! legacy mount path). Every mount is undone by a guard even when an assertion fails.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::changes::{Change, ChangeKind};
use crate::testutil::{MountGuard, Scratch, TarBuf, dump};
use crate::{DriverKind, Error, Snapshotter};

const L1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const L2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const L3: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const L4: &str = "4444444444444444444444444444444444444444444444444444444444444444";

fn base_layer() -> Vec<u8> {
    let mut t = TarBuf::new();
    t.dir("etc", 0o755)
        .dir("etc/sub", 0o755)
        .dir("bin", 0o755)
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir("dev", 0o755);
    t.file("etc/passwd", b"root:x:0:0", 0o644)
        .file("etc/hosts", b"127.0.0.1", 0o644);
    t.file("etc/sub/a", b"a", 0o644)
        .file("etc/sub/b", b"b", 0o644)
        .file("etc/suid", b"s", 0o4755);
    t.entry(
        EntryType::Regular,
        b"bin/sh",
        None,
        0o755,
        b"sh",
        &[("SCHILY.xattr.user.note", b"hello")],
    );
    t.symlink("sh", "bin/ash").link("bin/sh", "bin/busybox");
    t.entry(EntryType::Fifo, b"var/fifo", None, 0o600, b"", &[]);
    t.uid = 1000;
    t.gid = 1000;
    t.file("var/lib/data", b"data", 0o640);
    t.finish()
}

fn second_layer() -> Vec<u8> {
    let mut t = TarBuf::new();
    t.dir("etc", 0o755)
        .file("etc/.wh.hosts", b"", 0o644)
        .file("etc/passwd", b"root2", 0o644);
    t.dir("etc/sub", 0o755)
        .file("etc/sub/.wh..wh..opq", b"", 0o644)
        .file("etc/sub/c", b"c", 0o644);
    t.dir("opt", 0o755).file("opt/app", b"app", 0o755);
    t.finish()
}

struct Env {
    tmp: Scratch,
    sn: Snapshotter,
}

impl Env {
    fn new(kind: DriverKind) -> Env {
        let tmp = Scratch::new();
        let sn = Snapshotter::open(&tmp.path().join("snaps"), Some(kind)).unwrap();
        assert_eq!(sn.kind(), kind);
        Env { tmp, sn }
    }
    fn dir(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    fn layers(&self) {
        self.sn
            .create_layer(L1, None, &base_layer()[..], None)
            .unwrap();
        self.sn
            .create_layer(L2, Some(L1), &second_layer()[..], None)
            .unwrap();
    }
    fn mount(&self, key: &str, at: &str) -> MountGuard<'_> {
        let target = self.dir(at);
        self.sn.mount(key, &target).unwrap();
        MountGuard {
            sn: &self.sn,
            target,
        }
    }
    fn view(&self, id: &str, at: &str) -> MountGuard<'_> {
        let target = self.dir(at);
        self.sn.mount_readonly_view(id, &target).unwrap();
        MountGuard {
            sn: &self.sn,
            target,
        }
    }
}

fn names(root: &Path) -> Vec<String> {
    dump(root, false).into_keys().collect()
}

fn check_second_layer_view(m: &Path) {
    let got = names(m);
    let want = [
        "bin",
        "bin/ash",
        "bin/busybox",
        "bin/sh",
        "dev",
        "etc",
        "etc/passwd",
        "etc/sub",
        "etc/sub/c",
        "etc/suid",
        "opt",
        "opt/app",
        "var",
        "var/fifo",
        "var/lib",
        "var/lib/data",
    ];
    assert_eq!(got, want);
    assert_eq!(
        std::fs::read_to_string(m.join("etc/passwd")).unwrap(),
        "root2"
    );
    let md = |p: &str| std::fs::symlink_metadata(m.join(p)).unwrap();
    assert_eq!(md("bin/busybox").ino(), md("bin/sh").ino());
    assert_eq!(md("etc/suid").mode() & 0o7777, 0o4755);
    assert_eq!(
        (md("var/lib/data").uid(), md("var/lib/data").mode() & 0o777),
        (1000, 0o640)
    );
    assert!(crate::testutil::describe(&m.join("bin/sh"), false).contains("user.note=hello"));
}

fn kinds(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), c.path))
        .collect()
}

/// What a container does in its rootfs.
fn container_writes(m: &Path) {
    std::fs::write(m.join("new.txt"), "new").unwrap();
    std::fs::remove_file(m.join("etc/passwd")).unwrap();
    let mut data = std::fs::read(m.join("var/lib/data")).unwrap();
    data.extend_from_slice(b" more");
    std::fs::write(m.join("var/lib/data"), data).unwrap();
    std::fs::set_permissions(m.join("opt/app"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(m.join("newdir")).unwrap();
    std::fs::write(m.join("newdir/x"), "x").unwrap();
    std::fs::remove_dir_all(m.join("etc/sub")).unwrap();
    std::os::unix::fs::symlink("sh", m.join("bin/ash2")).unwrap();
}

const EXPECTED_CHANGES: [&str; 13] = [
    "C /bin",
    "A /bin/ash2",
    "C /etc",
    "D /etc/passwd",
    "D /etc/sub",
    "A /new.txt",
    "A /newdir",
    "A /newdir/x",
    "C /opt",
    "C /opt/app",
    "C /var",
    "C /var/lib",
    "C /var/lib/data",
];

fn suite_layers_and_whiteouts(kind: DriverKind) {
    let env = Env::new(kind);
    env.layers();
    assert!(env.sn.exists(L1) && env.sn.exists(L2));
    assert_eq!(env.sn.info(L2).unwrap().parent.as_deref(), Some(L1));
    let v = env.view(L2, "v2");
    check_second_layer_view(&v.target);
    // Read-only.
    assert!(std::fs::write(v.target.join("x"), "x").is_err());
    let v1 = env.view(L1, "v1");
    assert!(v1.target.join("etc/hosts").exists());
    assert_eq!(names(&v1.target.join("etc/sub")), ["a", "b"]);
    assert_eq!(env.sn.list().unwrap(), [L1, L2]);
    let u = env.sn.usage(L1).unwrap();
    match kind {
        // Each byte once (busybox is sh): passwd hosts a b suid sh ash->sh data.
        DriverKind::Overlay => assert_eq!(u, 10 + 9 + 1 + 1 + 1 + 2 + 2 + 4),
        DriverKind::Copy => assert!(u >= 30),
    }
}

fn suite_changes_diff_commit(kind: DriverKind) {
    let env = Env::new(kind);
    env.layers();
    env.sn.prepare("ctr", Some(L2)).unwrap();
    assert!(matches!(
        env.sn.prepare("ctr", Some(L2)),
        Err(Error::AlreadyExists(_))
    ));
    let m = env.mount("ctr", "rootfs");
    check_second_layer_view(&m.target);
    assert_eq!(env.sn.changes("ctr").unwrap(), []);
    container_writes(&m.target);
    assert_eq!(kinds(&env.sn.changes("ctr").unwrap()), EXPECTED_CHANGES);
    let kinds_api: Vec<u8> = env
        .sn
        .changes("ctr")
        .unwrap()
        .iter()
        .map(|c| c.kind.api_kind())
        .collect();
    assert_eq!(kinds_api[..3], [0, 1, 0]);

    // The diff, applied as a new layer over the same parent, gives the same tree.
    let mut tar = Vec::new();
    let n = env.sn.diff_tar("ctr", &mut tar).unwrap();
    assert_eq!(n as usize, tar.len());
    env.sn.create_layer(L3, Some(L2), &tar[..], None).unwrap();
    let v3 = env.view(L3, "v3");
    assert_eq!(dump(&m.target, true), dump(&v3.target, true));
    drop(v3);

    // Committing needs the snapshot unmounted; afterwards the key is gone.
    assert!(matches!(
        env.sn.commit("ctr", L4),
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        env.sn.remove("ctr"),
        Err(Error::InvalidState { .. })
    ));
    let before = dump(&m.target, true);
    drop(m);
    env.sn.commit("ctr", L4).unwrap();
    assert!(!env.sn.exists("ctr"));
    assert!(!env.sn.info(L4).unwrap().active);
    assert!(matches!(
        env.sn.changes(L4),
        Err(Error::InvalidState { .. })
    ));
    env.sn.prepare("ctr2", Some(L4)).unwrap();
    let m2 = env.mount("ctr2", "rootfs2");
    assert_eq!(dump(&m2.target, true), before);
    // A fresh snapshot of a committed layer has no changes (copies must be exact).
    assert_eq!(env.sn.changes("ctr2").unwrap(), []);
    drop(m2);
    env.sn.remove("ctr2").unwrap();
    env.sn.remove("ctr2").unwrap();
    assert_eq!(env.sn.list().unwrap(), [L1, L2, L3, L4]);
    for id in [L4, L3, L2, L1] {
        env.sn.remove(id).unwrap();
    }
    assert_eq!(env.sn.list().unwrap(), Vec::<String>::new());
}

fn suite_diff_tar_while_mounted_and_opaque(kind: DriverKind) {
    let env = Env::new(kind);
    env.layers();
    env.sn.prepare("c", Some(L2)).unwrap();
    let m = env.mount("c", "rootfs");
    // Replace a directory wholesale: overlay marks it opaque.
    std::fs::remove_dir_all(m.target.join("etc")).unwrap();
    std::fs::create_dir(m.target.join("etc")).unwrap();
    std::fs::write(m.target.join("etc/only"), "only").unwrap();
    let ch = kinds(&env.sn.changes("c").unwrap());
    for want in [
        "C /etc",
        "D /etc/passwd",
        "D /etc/sub",
        "D /etc/suid",
        "A /etc/only",
    ] {
        assert!(ch.contains(&want.to_string()), "{want} missing from {ch:?}");
    }
    let mut tar = Vec::new();
    env.sn.diff_tar("c", &mut tar).unwrap();
    env.sn.create_layer(L3, Some(L2), &tar[..], None).unwrap();
    let v = env.view(L3, "v3");
    assert_eq!(names(&v.target.join("etc")), ["only"]);
    assert_eq!(dump(&m.target, true), dump(&v.target, true));
}

fn suite_parentless_and_empty(kind: DriverKind) {
    let env = Env::new(kind);
    env.sn.prepare("scratch", None).unwrap();
    let m = env.mount("scratch", "rootfs");
    std::fs::write(m.target.join("hello"), "hi").unwrap();
    assert_eq!(kinds(&env.sn.changes("scratch").unwrap()), ["A /hello"]);
    let mut tar = Vec::new();
    env.sn.diff_tar("scratch", &mut tar).unwrap();
    env.sn.create_layer(L1, None, &tar[..], None).unwrap();
    let v = env.view(L1, "v");
    assert_eq!(
        std::fs::read_to_string(v.target.join("hello")).unwrap(),
        "hi"
    );
    assert!(env.sn.usage(L1).unwrap() >= 2);
}

fn suite_atomic_and_idempotent_create(kind: DriverKind) {
    let env = Env::new(kind);
    env.layers();
    struct Boom;
    impl Read for Boom {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("an existing layer's tar must not be read");
        }
    }
    assert_eq!(
        env.sn.create_layer(L2, Some(L1), Boom, None).unwrap(),
        Default::default()
    );
    let bad = &second_layer()[..700];
    assert!(env.sn.create_layer(L3, Some(L2), bad, None).is_err());
    assert!(!env.sn.exists(L3));
    let mut t = TarBuf::new();
    t.file("big", &[0u8; 4096], 0o644);
    assert!(matches!(
        env.sn
            .create_layer(L3, Some(L2), &t.finish()[..], Some(100)),
        Err(Error::SizeLimit { .. })
    ));
    assert!(!env.sn.exists(L3));
    let leftovers: Vec<_> = std::fs::read_dir(env.sn.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(matches!(
        env.sn.create_layer("../x", None, &[][..], None),
        Err(Error::InvalidId(_))
    ));
    assert!(matches!(
        env.sn.prepare("p", Some("nope")),
        Err(Error::NotFound(_))
    ));
}

fn suite_crash_leftovers(kind: DriverKind) {
    let env = Env::new(kind);
    env.layers();
    let root = env.sn.root().to_path_buf();
    std::fs::create_dir_all(root.join(".tmp-crashed/diff/x")).unwrap();
    // A commit interrupted after its point of no return.
    env.sn.prepare("c", Some(L2)).unwrap();
    std::fs::write(root.join("c/diff/made-in-container"), "yes").unwrap();
    std::fs::rename(root.join("c"), root.join(format!(".commit-{L3}"))).unwrap();
    // A layer build interrupted before its rename leaves only a temp dir.
    drop(env.sn);
    let sn = Snapshotter::open(&root, None).unwrap();
    assert_eq!(sn.kind(), kind);
    assert!(!root.join(".tmp-crashed").exists());
    assert!(!root.join(format!(".commit-{L3}")).exists());
    assert_eq!(sn.list().unwrap(), [L1, L2, L3]);
    let info = sn.info(L3).unwrap();
    assert!(!info.active);
    assert_eq!(info.parent.as_deref(), Some(L2));
    let target = env.tmp.path().join("v");
    std::fs::create_dir(&target).unwrap();
    sn.mount_readonly_view(L3, &target).unwrap();
    let g = MountGuard { sn: &sn, target };
    assert_eq!(
        std::fs::read_to_string(g.target.join("made-in-container")).unwrap(),
        "yes"
    );
    drop(g);
    let other = match kind {
        DriverKind::Overlay => DriverKind::Copy,
        DriverKind::Copy => DriverKind::Overlay,
    };
    assert!(matches!(
        Snapshotter::open(&root, Some(other)),
        Err(Error::Driver(_))
    ));
}

macro_rules! driver_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn layers_and_whiteouts() {
                suite_layers_and_whiteouts($kind);
            }
            #[test]
            fn changes_diff_commit() {
                suite_changes_diff_commit($kind);
            }
            #[test]
            fn diff_tar_while_mounted_and_opaque() {
                suite_diff_tar_while_mounted_and_opaque($kind);
            }
            #[test]
            fn parentless_and_empty() {
                suite_parentless_and_empty($kind);
            }
            #[test]
            fn atomic_and_idempotent_create() {
                suite_atomic_and_idempotent_create($kind);
            }
            #[test]
            fn crash_leftovers() {
                suite_crash_leftovers($kind);
            }
        }
    };
}

driver_suite!(overlay, DriverKind::Overlay);
driver_suite!(copy, DriverKind::Copy);

fn layer_id(i: usize) -> String {
    format!("{i:064x}")
}

/// Builds `n` layers: layer i adds /layer-i and /shared (overwriting); layer n/2 whites out
/// /layer-0.
fn deep_chain(sn: &Snapshotter, n: usize) {
    for i in 0..n {
        let mut t = TarBuf::new();
        t.file(&format!("layer-{i}"), format!("{i}").as_bytes(), 0o644)
            .file("shared", format!("{i}").as_bytes(), 0o644);
        if i == n / 2 {
            t.file(".wh.layer-0", b"", 0o644);
        }
        let parent = (i > 0).then(|| layer_id(i - 1));
        sn.create_layer(&layer_id(i), parent.as_deref(), &t.finish()[..], None)
            .unwrap();
    }
}

fn check_deep(m: &Path, n: usize) {
    let got = names(m);
    assert_eq!(got.len(), n); // layer-1..n-1 and shared
    assert!(!m.join("layer-0").exists());
    assert_eq!(
        std::fs::read_to_string(m.join(format!("layer-{}", n - 1))).unwrap(),
        format!("{}", n - 1)
    );
    assert_eq!(
        std::fs::read_to_string(m.join("shared")).unwrap(),
        format!("{}", n - 1)
    );
}

#[test]
fn overlay_mounts_a_128_layer_image() {
    let env = Env::new(DriverKind::Overlay);
    deep_chain(&env.sn, 128);
    let top = layer_id(127);
    env.sn.prepare("ctr", Some(&top)).unwrap();
    let m = env.mount("ctr", "rootfs");
    check_deep(&m.target, 128);
    std::fs::remove_file(m.target.join("layer-5")).unwrap();
    assert_eq!(kinds(&env.sn.changes("ctr").unwrap()), ["D /layer-5"]);
    let v = env.view(&top, "view");
    check_deep(&v.target, 128);
    assert!(
        !env.sn.use_legacy_mount(),
        "6.8+ kernels take one lowerdir+ per layer"
    );
}

#[test]
fn overlay_legacy_mount_path() {
    let env = Env::new(DriverKind::Overlay);
    env.sn.force_legacy_mount();
    env.layers();
    env.sn.prepare("ctr", Some(L2)).unwrap();
    let m = env.mount("ctr", "rootfs");
    check_second_layer_view(&m.target);
    container_writes(&m.target);
    // changes() needs a view of the parent chain: built in a private mount namespace.
    assert_eq!(kinds(&env.sn.changes("ctr").unwrap()), EXPECTED_CHANGES);
    let v = env.view(L2, "v2");
    check_second_layer_view(&v.target);
    // Short links named in each layer exist.
    let link = std::fs::read_to_string(env.sn.root().join(L1).join("link")).unwrap();
    assert_eq!(link.len(), 26);
    assert!(
        env.sn
            .root()
            .join("l")
            .join(link)
            .join("etc/passwd")
            .exists()
    );
    // The private view left no mount and no scratch dir behind.
    let mounts = crate::mount::mountinfo().unwrap();
    let views = mounts
        .iter()
        .filter(|mi| mi.mount_point.starts_with(env.sn.root()))
        .count();
    assert_eq!(views, 0);
    drop(m);
    drop(v);
    env.sn.prepare("p", None).unwrap();
    let m = env.mount("p", "rootfs-p");
    assert_eq!(names(&m.target), Vec::<String>::new());
}

#[test]
fn overlay_legacy_mount_deep_chain_fits_a_page() {
    let env = Env::new(DriverKind::Overlay);
    env.sn.force_legacy_mount();
    deep_chain(&env.sn, 60);
    env.sn.prepare("ctr", Some(&layer_id(59))).unwrap();
    let m = env.mount("ctr", "rootfs");
    check_deep(&m.target, 60);
}

#[test]
fn open_detects_overlay_and_remembers() {
    let tmp = Scratch::new();
    let root = tmp.path().join("s");
    let sn = Snapshotter::open(&root, None).unwrap();
    assert_eq!(sn.kind(), DriverKind::Overlay);
    drop(sn);
    assert_eq!(
        std::fs::read_to_string(root.join("driver")).unwrap(),
        "overlay"
    );
    assert_eq!(
        Snapshotter::open(&root, None).unwrap().kind(),
        DriverKind::Overlay
    );
    let kinds = [ChangeKind::Modified, ChangeKind::Added, ChangeKind::Deleted];
    assert_eq!(kinds.map(|k| k.letter()), ['C', 'A', 'D']);
}

/// The image store unpacks an image's layers in parallel on overlay: a child may be created
/// before its parent exists, and two threads may race on one id.
#[test]
fn overlay_layers_out_of_order_and_racing() {
    let env = Env::new(DriverKind::Overlay);
    env.sn
        .create_layer(L2, Some(L1), &second_layer()[..], None)
        .unwrap();
    env.sn
        .create_layer(L1, None, &base_layer()[..], None)
        .unwrap();
    let v = env.view(L2, "v2");
    check_second_layer_view(&v.target);
    drop(v);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                env.sn
                    .create_layer(L3, Some(L2), &second_layer()[..], None)
                    .unwrap()
            });
        }
    });
    assert!(env.sn.exists(L3));
    let root = env.sn.root();
    let dotted = std::fs::read_dir(root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(dotted, 0);
    // One short link per layer, none orphaned.
    assert_eq!(std::fs::read_dir(root.join("l")).unwrap().count(), 3);
}

fn mount_line(target: &Path) -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(target.to_str().unwrap()))
        .map(str::to_string)
        .expect("mounted")
}

#[test]
fn overlay_volatile_snapshot_remounts_and_commits() {
    for legacy in [false, true] {
        volatile_snapshot(legacy);
    }
}

fn volatile_snapshot(legacy: bool) {
    let env = Env::new(DriverKind::Overlay);
    if legacy {
        env.sn.force_legacy_mount();
    }
    env.layers();
    env.sn.prepare("vol", Some(L2)).unwrap();
    env.sn.set_volatile("vol").unwrap();
    let m = env.mount("vol", "rootfs");
    let line = mount_line(&m.target);
    assert!(line.contains("volatile"), "{line}");
    std::fs::write(m.target.join("etc/passwd"), "changed").unwrap();
    std::fs::write(m.target.join("new"), "new").unwrap();
    drop(m);
    // The kernel refuses to remount a volatile workdir it marked; the driver clears the mark.
    let m = env.mount("vol", "rootfs2");
    assert!(mount_line(&m.target).contains("volatile"));
    assert_eq!(
        std::fs::read_to_string(m.target.join("new")).unwrap(),
        "new"
    );
    drop(m);
    env.sn.commit("vol", L3).unwrap();
    assert!(!env.sn.info(L3).unwrap().active);
    let v = env.view(L3, "v3");
    assert_eq!(
        std::fs::read_to_string(v.target.join("etc/passwd")).unwrap(),
        "changed"
    );
    drop(v);
    // A committed layer is no longer volatile: set_volatile wants an active snapshot.
    assert!(env.sn.set_volatile(L3).is_err());
}
