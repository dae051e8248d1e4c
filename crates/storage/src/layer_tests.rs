//! Tests of layer apply/write, including a port of containerd's archive breakout cases
//! (`TestBreakouts`): each hostile tar must fail, or land entirely inside the destination with
//! the effect containerd expects. Every case also checks that nothing outside changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::error::Error;
use crate::layer::{self, ApplyOptions, WhiteoutMode};
use crate::testutil::{Scratch, TarBuf, describe, dump, same_file};

fn opts(mode: WhiteoutMode) -> ApplyOptions {
    ApplyOptions {
        whiteouts: mode,
        ..Default::default()
    }
}

/// A destination `root/` next to an `outside/` tree that must never change.
struct Arena {
    tmp: Scratch,
}

impl Arena {
    fn new() -> Arena {
        let tmp = Scratch::new();
        let out = tmp.path().join("outside");
        std::fs::create_dir_all(out.join("etc")).unwrap();
        std::fs::write(out.join("etc/passwd"), "host").unwrap();
        std::fs::write(out.join("victim"), "keep me").unwrap();
        std::fs::create_dir(tmp.path().join("root")).unwrap();
        Arena { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
    fn outside_state(&self) -> BTreeMap<String, String> {
        let mut d = dump(&self.outside(), true);
        d.insert(".".into(), describe(&self.outside(), true));
        // The directory holding both must not gain entries either.
        let names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        d.insert("..".into(), format!("{names:?}"));
        d
    }
}

enum Expect {
    Fails,
    Ok(fn(&Path)),
}

/// Runs a case in Remove mode (checking `expect`) and in Overlay mode (checking only that the
/// outcome is the same kind and nothing escapes).
fn breakout(pre: fn(&Path), tar: &TarBuf, expect: Expect) {
    for mode in [WhiteoutMode::Remove, WhiteoutMode::Overlay] {
        let a = Arena::new();
        pre(&a.root());
        let before = a.outside_state();
        let r = layer::apply(&a.root(), &tar.finish()[..], &opts(mode));
        match (&expect, mode) {
            (Expect::Fails, _) => assert!(r.is_err(), "{mode:?}: expected an error, got {r:?}"),
            (Expect::Ok(check), WhiteoutMode::Remove) => {
                r.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
                check(&a.root());
            }
            (Expect::Ok(_), WhiteoutMode::Overlay) => {}
        }
        assert_eq!(
            before,
            a.outside_state(),
            "{mode:?}: something outside the root changed"
        );
    }
}

fn nothing(_: &Path) {}

fn tc() -> TarBuf {
    TarBuf::new()
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap()
}

fn unbroken(root: &Path) {
    assert_eq!(read(root, "etc/unbroken"), "unbroken");
}

fn pre_etc(root: &Path) {
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "inside").unwrap();
}

fn pre_etc_all_users(root: &Path) {
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), "all users").unwrap();
}

fn is_symlink(root: &Path, p: &str) -> bool {
    std::fs::symlink_metadata(root.join(p))
        .unwrap()
        .file_type()
        .is_symlink()
}

fn passwd_inside(t: &mut TarBuf) -> &mut TarBuf {
    t.dir("etc", 0o770).file("/etc/passwd", b"inside", 0o644)
}

#[test]
fn breakout_symlink_absolute() {
    let mut t = tc();
    t.dir("etc", 0o755)
        .symlink("/etc", "localetc")
        .file("/localetc/unbroken", b"unbroken", 0o644);
    breakout(nothing, &t, Expect::Ok(unbroken));
}

#[test]
fn breakout_symlink_up_and_out() {
    let mut t = tc();
    t.dir("etc", 0o755)
        .dir("dummy", 0o755)
        .symlink("/dummy/../etc", "localetc")
        .file("/localetc/unbroken", b"unbroken", 0o644);
    breakout(nothing, &t, Expect::Ok(unbroken));
}

#[test]
fn breakout_symlink_multiple_absolute() {
    let mut t = tc();
    t.dir("etc", 0o755)
        .dir("dummy", 0o755)
        .symlink("/etc", "/dummy/etc")
        .symlink("/dummy/etc", "localetc")
        .file("/dummy/etc/unbroken", b"unbroken", 0o644);
    breakout(nothing, &t, Expect::Ok(unbroken));
}

#[test]
fn breakout_symlink_multiple_relative() {
    let mut t = tc();
    t.dir("etc", 0o755)
        .dir("dummy", 0o755)
        .symlink("/etc", "/dummy/etc")
        .symlink("./dummy/etc", "localetc")
        .file("/dummy/etc/unbroken", b"unbroken", 0o644);
    breakout(nothing, &t, Expect::Ok(unbroken));
}

#[test]
fn breakout_symlink_empty_file() {
    let mut t = tc();
    t.dir("etc", 0o755)
        .file("etc/emptied", b"notempty", 0o644)
        .symlink("/etc", "localetc")
        .file("/localetc/emptied", b"", 0o644);
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert_eq!(read(r, "etc/emptied"), "")),
    );
}

#[test]
fn breakout_hardlink_relative() {
    let mut t = tc();
    passwd_inside(&mut t)
        .dir("breakouts", 0o755)
        .symlink("../../etc", "breakouts/d1")
        .link("/breakouts/d1/passwd", "breakouts/mypasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "/breakouts/mypasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_hardlink_down_and_out() {
    let mut t = tc();
    passwd_inside(&mut t)
        .dir("breakouts", 0o755)
        .dir("downandout", 0o755)
        .symlink("../downandout/../../etc", "breakouts/d1")
        .link("/breakouts/d1/passwd", "breakouts/mypasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "/breakouts/mypasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_hardlink_absolute() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("/etc", "localetc")
        .link("/localetc/passwd", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "localpasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_hardlink_relative_long() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("../../../../../../../etc", "localetc")
        .link("/localetc/passwd", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "localpasswd", "/etc/passwd"))),
    );
}

/// Deliberate difference from containerd: `upandout` does not exist, so the kernel (like any
/// process in the container) cannot resolve `localetc/passwd`, and the hardlink is refused
/// instead of being resolved lexically.
#[test]
fn breakout_hardlink_relative_up_and_out() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("upandout/../../../etc", "localetc")
        .link("/localetc/passwd", "localpasswd");
    breakout(nothing, &t, Expect::Fails);
}

#[test]
fn breakout_hardlink_direct_relative() {
    let mut t = tc();
    passwd_inside(&mut t).link("../../../../../etc/passwd", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "localpasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_hardlink_direct_absolute() {
    let mut t = tc();
    passwd_inside(&mut t).link("/etc/passwd", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "localpasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_symlink_parent_directory() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("/etc/", "..")
        .link("/etc/passwd", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "/localpasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_symlink_empty_filename() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("/etc/", "")
        .link("/etc/passwd", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "/localpasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_symlink_parent_relative() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("/etc/", "localetc/sub/..")
        .link("/etc/passwd", "/localetc/localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| {
            assert!(is_symlink(r, "localetc"));
            assert!(same_file(r, "/localetc/localpasswd", "/etc/passwd"));
        }),
    );
}

#[test]
fn breakout_symlink_slash_ended() {
    let mut t = tc();
    passwd_inside(&mut t)
        .dir("localetc/", 0o770)
        .link("/etc/passwd", "/localetc/localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "/localetc/localpasswd", "/etc/passwd"))),
    );
}

fn pre_etc_and_localetc_dir(root: &Path) {
    pre_etc(root);
    std::fs::create_dir(root.join("localetc")).unwrap();
}

#[test]
fn breakout_symlink_override_directory() {
    let mut t = tc();
    t.symlink("/etc", "localetc")
        .link("/etc/passwd", "/localetc/localpasswd");
    breakout(
        pre_etc_and_localetc_dir,
        &t,
        Expect::Ok(|r| {
            assert!(is_symlink(r, "localetc"));
            assert!(same_file(r, "/localetc/localpasswd", "/etc/passwd"));
        }),
    );
}

#[test]
fn breakout_symlink_override_directory_relative() {
    let mut t = tc();
    t.symlink("../../etc", "localetc")
        .link("/etc/passwd", "/localetc/localpasswd");
    breakout(
        pre_etc_and_localetc_dir,
        &t,
        Expect::Ok(|r| assert!(same_file(r, "/localetc/localpasswd", "/etc/passwd"))),
    );
}

#[test]
fn breakout_directory_override_symlink() {
    let mut t = tc();
    t.dir("/localetc/", 0o755)
        .link("/etc/passwd", "/localetc/localpasswd");
    breakout(
        |r| {
            pre_etc(r);
            std::os::unix::fs::symlink("/etc", r.join("localetc")).unwrap();
        },
        &t,
        Expect::Ok(|r| {
            assert!(!is_symlink(r, "localetc"));
            assert!(same_file(r, "/localetc/localpasswd", "/etc/passwd"));
        }),
    );
}

#[test]
fn breakout_directory_override_symlink_and_hardlink() {
    let mut t = tc();
    t.dir("/localetc/", 0o755)
        .file("/localetc/localpasswd", b"different", 0o644);
    breakout(
        |r| {
            pre_etc(r);
            std::os::unix::fs::symlink("etc", r.join("localetc")).unwrap();
            std::fs::hard_link(r.join("etc/passwd"), r.join("etc/localpasswd")).unwrap();
        },
        &t,
        Expect::Ok(|r| {
            assert!(!same_file(r, "/localetc/localpasswd", "/etc/passwd"));
            assert_eq!(read(r, "etc/passwd"), "inside");
        }),
    );
}

#[test]
fn breakout_whiteout_root_parent() {
    let mut t = tc();
    t.file(".wh...", b"", 0o644);
    breakout(pre_etc, &t, Expect::Fails);
}

#[test]
fn breakout_whiteout_parent() {
    let mut t = tc();
    t.file("etc/.wh...", b"", 0o644);
    breakout(pre_etc, &t, Expect::Fails);
}

#[test]
fn breakout_whiteout_root() {
    let mut t = tc();
    t.file(".wh..", b"", 0o644);
    breakout(pre_etc, &t, Expect::Fails);
}

#[test]
fn breakout_whiteout_current_directory() {
    let mut t = tc();
    t.file("etc/.wh..", b"", 0o644);
    breakout(pre_etc, &t, Expect::Fails);
}

#[test]
fn breakout_whiteout_symlink() {
    let mut t = tc();
    t.file(".wh.localetc", b"", 0o644);
    breakout(
        |r| {
            pre_etc_all_users(r);
            std::os::unix::fs::symlink("/etc", r.join("localetc")).unwrap();
        },
        &t,
        Expect::Ok(|r| {
            assert_eq!(read(r, "etc/passwd"), "all users");
            assert!(
                !r.join("localetc").exists()
                    && std::fs::symlink_metadata(r.join("localetc")).is_err()
            );
        }),
    );
}

#[test]
fn breakout_whiteout_symlink_path() {
    let mut t = tc();
    t.file("localetc/.wh.whitedout", b"", 0o644);
    breakout(
        |r| {
            pre_etc_all_users(r);
            std::fs::write(r.join("etc/whitedout"), "ahhhh whiteout").unwrap();
            std::os::unix::fs::symlink("/etc", r.join("localetc")).unwrap();
        },
        &t,
        Expect::Ok(|r| {
            assert_eq!(read(r, "etc/passwd"), "all users");
            assert!(std::fs::symlink_metadata(r.join("etc/whitedout")).is_err());
        }),
    );
}

#[test]
fn breakout_whiteout_directory_name() {
    let mut t = tc();
    t.file(".wh.etc/somefile", b"non-empty", 0o644);
    breakout(
        |r| {
            pre_etc_all_users(r);
            std::os::unix::fs::symlink("/etc", r.join("localetc")).unwrap();
        },
        &t,
        Expect::Ok(|r| {
            assert_eq!(read(r, "etc/passwd"), "all users");
            assert_eq!(read(r, ".wh.etc/somefile"), "non-empty");
        }),
    );
}

#[test]
fn breakout_whiteout_dead_symlink_parent() {
    let mut t = tc();
    t.file("localetc/.wh.etc", b"", 0o644);
    breakout(
        |r| {
            pre_etc_all_users(r);
            std::os::unix::fs::symlink("/dne", r.join("localetc")).unwrap();
        },
        &t,
        Expect::Ok(|r| assert_eq!(read(r, "etc/passwd"), "all users")),
    );
}

#[test]
fn breakout_whiteout_relative_path() {
    let mut t = tc();
    t.file("dne/../.wh.etc", b"", 0o644);
    breakout(
        |r| {
            pre_etc_all_users(r);
            std::os::unix::fs::symlink("/dne", r.join("localetc")).unwrap();
        },
        &t,
        Expect::Ok(|r| assert!(!r.join("etc").exists())),
    );
}

/// A hardlink to a symlink links the symlink itself (never its target).
fn check_link_to_symlink(r: &Path, link: &str, symlink: &str) {
    assert!(is_symlink(r, link));
    let (a, b) = (
        std::fs::symlink_metadata(r.join(link)).unwrap(),
        std::fs::symlink_metadata(r.join(symlink)).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert!(same_file(r, link, "/etc/passwd"));
}

#[test]
fn breakout_hardlink_symlink_before_create_target() {
    let mut t = tc();
    t.dir("etc", 0o770)
        .symlink("/etc/passwd", "localpasswd")
        .link("localpasswd", "localpasswd-dup")
        .file("/etc/passwd", b"after", 0o644);
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| check_link_to_symlink(r, "localpasswd-dup", "localpasswd")),
    );
}

#[test]
fn breakout_hardlink_symlink_relative() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("../../../../../etc/passwd", "passwdlink")
        .link("/passwdlink", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| check_link_to_symlink(r, "localpasswd", "passwdlink")),
    );
}

#[test]
fn breakout_hardlink_symlink_absolute() {
    let mut t = tc();
    passwd_inside(&mut t)
        .symlink("/etc/passwd", "passwdlink")
        .link("/passwdlink", "localpasswd");
    breakout(
        nothing,
        &t,
        Expect::Ok(|r| check_link_to_symlink(r, "localpasswd", "passwdlink")),
    );
}

/// A symlink named by an absolute host path pointing at a 0400 host file, then a hardlink to
/// it: the host file's mode must not change (nothing is chmod'ed through a link).
#[test]
fn breakout_hardlink_symlink_chmod() {
    for mode in [WhiteoutMode::Remove, WhiteoutMode::Overlay] {
        let a = Arena::new();
        let perm400 = a.outside().join("perm400");
        std::fs::write(&perm400, "...").unwrap();
        std::fs::set_permissions(&perm400, std::fs::Permissions::from_mode(0o400)).unwrap();
        let ep = a.outside().join("also-exists-outside-root");
        std::fs::write(&ep, "...").unwrap();
        std::fs::set_permissions(&ep, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = a.outside_state();
        let mut t = tc();
        t.symlink(perm400.to_str().unwrap(), ep.to_str().unwrap())
            .link(ep.to_str().unwrap(), "sketchylink");
        layer::apply(&a.root(), &t.finish()[..], &opts(mode)).unwrap();
        assert_eq!(
            std::fs::metadata(&perm400).unwrap().permissions().mode() & 0o7777,
            0o400
        );
        assert!(is_symlink(&a.root(), "sketchylink"));
        assert_eq!(before, a.outside_state());
    }
}

// --- Escapes aimed at a real directory outside the root (absolute paths to it). ---

/// Runs a tar built from the outside dir's absolute path; nothing outside may change. `expect`:
/// whether apply succeeds (`None`: either, e.g. refused as a dangling symlink in one mode only).
/// Returns the last root for further checks.
fn escape_case(build: impl Fn(&str) -> TarBuf, expect: Option<bool>) -> Arena {
    let mut last = None;
    for mode in [WhiteoutMode::Remove, WhiteoutMode::Overlay] {
        let a = Arena::new();
        let before = a.outside_state();
        let t = build(a.outside().to_str().unwrap());
        let r = layer::apply(&a.root(), &t.finish()[..], &opts(mode));
        if let Some(ok) = expect {
            assert_eq!(r.is_ok(), ok, "{mode:?}: {r:?}");
        }
        assert_eq!(
            before,
            a.outside_state(),
            "{mode:?}: something outside changed"
        );
        last = Some(a);
    }
    last.unwrap()
}

#[test]
fn escape_dotdot_names_are_clamped() {
    let a = escape_case(
        |_| {
            let mut t = tc();
            t.file("../outside/victim", b"pwned", 0o644)
                .file("../../../../tmp/x", b"pwned", 0o644);
            t
        },
        Some(true),
    );
    assert_eq!(read(&a.root(), "outside/victim"), "pwned");
    assert_eq!(read(&a.root(), "tmp/x"), "pwned");
}

#[test]
fn escape_absolute_symlink_then_write_through() {
    // The link's target does not exist inside the root: writing through it is refused.
    escape_case(
        |out| {
            let mut t = tc();
            t.symlink(out, "a").file("a/victim", b"pwned", 0o644);
            t
        },
        Some(false),
    );
    // Once it exists inside the root, that is where the write lands.
    let a = escape_case(
        |out| {
            let mut t = tc();
            t.dir(out, 0o755)
                .symlink(out, "a")
                .file("a/victim", b"pwned", 0o644);
            t
        },
        Some(true),
    );
    let inner = format!("{}/victim", a.outside().display());
    assert_eq!(read(&a.root(), inner.trim_start_matches('/')), "pwned");
}

#[test]
fn escape_relative_symlink_chain() {
    let a = escape_case(
        |_| {
            let mut t = tc();
            t.dir("outside", 0o755)
                .symlink("../outside", "b")
                .symlink("b", "a")
                .symlink("a/../../outside", "c");
            t.file("a/victim", b"pwned", 0o644)
                .file("c/new", b"pwned", 0o644);
            t
        },
        Some(true),
    );
    assert_eq!(read(&a.root(), "outside/victim"), "pwned");
    assert_eq!(read(&a.root(), "outside/new"), "pwned");
}

#[test]
fn escape_hardlink_to_outside_file() {
    // The target is looked up inside the root, where it does not exist.
    escape_case(
        |out| {
            let mut t = tc();
            t.link(&format!("{out}/victim"), "l");
            t
        },
        Some(false),
    );
    escape_case(
        |_| {
            let mut t = tc();
            t.link("../outside/victim", "l");
            t
        },
        Some(false),
    );
}

#[test]
fn escape_hardlink_through_symlinked_dir() {
    escape_case(
        |out| {
            let mut t = tc();
            t.symlink(out, "d").link("d/victim", "l");
            t
        },
        Some(false),
    );
}

#[test]
fn escape_whiteout_and_opaque_through_symlinked_parent() {
    escape_case(
        |out| {
            let mut t = tc();
            t.symlink(out, "d").file("d/.wh.victim", b"", 0o644).file(
                "d/etc/.wh..wh..opq",
                b"",
                0o644,
            );
            t.symlink("../outside", "e")
                .file("e/.wh.victim", b"", 0o644);
            t
        },
        None,
    );
}

#[test]
fn escape_overwrite_symlink_itself_not_target() {
    // A regular file entry over an existing symlink replaces the symlink.
    let a = Arena::new();
    std::os::unix::fs::symlink(a.outside().join("victim"), a.root().join("f")).unwrap();
    let before = a.outside_state();
    let mut t = tc();
    t.file("f", b"mine", 0o644);
    layer::apply(&a.root(), &t.finish()[..], &opts(WhiteoutMode::Remove)).unwrap();
    assert!(!is_symlink(&a.root(), "f"));
    assert_eq!(read(&a.root(), "f"), "mine");
    assert_eq!(before, a.outside_state());
}

#[test]
fn escape_devices_stay_inside() {
    let a = Arena::new();
    let mut t = tc();
    t.entry(EntryType::Char, b"../dev/null", None, 0o666, b"", &[])
        .entry(EntryType::Fifo, b"/fifo", None, 0o600, b"", &[]);
    let before = a.outside_state();
    layer::apply(&a.root(), &t.finish()[..], &opts(WhiteoutMode::Remove)).unwrap();
    assert!(describe(&a.root().join("dev/null"), false).starts_with("devc:"));
    assert!(describe(&a.root().join("fifo"), false).starts_with("fifo"));
    assert_eq!(before, a.outside_state());
}

// --- Apply semantics. ---

fn apply_remove(root: &Path, t: &TarBuf) -> crate::Result<layer::ApplyStats> {
    layer::apply(root, &t.finish()[..], &opts(WhiteoutMode::Remove))
}

#[test]
fn restores_every_kind_and_its_metadata() {
    let a = Arena::new();
    let r = a.root();
    let mut t = tc();
    t.mtime = 1_500_000_000;
    t.uid = 1;
    t.gid = 2;
    t.dir("d", 0o750);
    t.entry(
        EntryType::Directory,
        b"d/sticky",
        None,
        0o1777,
        b"",
        &[("SCHILY.xattr.user.dir", b"dv")],
    );
    t.uid = 1000;
    t.gid = 1000;
    t.entry(
        EntryType::Regular,
        b"d/suid",
        None,
        0o4755,
        b"#!",
        &[("SCHILY.xattr.user.k", b"v"), ("mtime", b"1500000001.25")],
    );
    t.entry(EntryType::Regular, b"d/sgid", None, 0o2711, b"x", &[]);
    t.uid = 5;
    t.gid = 6;
    t.symlink("suid", "d/ln");
    t.uid = 0;
    t.gid = 0;
    t.link("d/suid", "d/hard");
    t.entry(EntryType::Fifo, b"d/fifo", None, 0o640, b"", &[]);
    t.entry(EntryType::Char, b"d/null", None, 0o666, b"", &[]);
    t.entry(EntryType::Block, b"d/loop", None, 0o660, b"", &[]);
    t.entry(
        EntryType::Regular,
        b"d/trusted",
        None,
        0o644,
        b"",
        &[
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.trusted.t", b"tv"),
        ],
    );
    let stats = apply_remove(&r, &t).unwrap();
    assert_eq!(stats.size, 3);
    assert_eq!(stats.entries, 10);
    let m = |p: &str| std::fs::symlink_metadata(r.join(p)).unwrap();
    assert_eq!(
        (
            m("d").mode() & 0o7777,
            m("d").uid(),
            m("d").gid(),
            m("d").mtime()
        ),
        (0o750, 1, 2, 1_500_000_000)
    );
    assert_eq!(m("d/sticky").mode() & 0o7777, 0o1777);
    assert_eq!(
        (m("d/suid").mode() & 0o7777, m("d/suid").uid()),
        (0o4755, 1000)
    );
    assert_eq!(
        (m("d/suid").mtime(), m("d/suid").mtime_nsec()),
        (1_500_000_001, 250_000_000)
    );
    assert_eq!(m("d/sgid").mode() & 0o7777, 0o2711);
    assert_eq!(
        (m("d/ln").uid(), m("d/ln").gid(), m("d/ln").mtime()),
        (5, 6, 1_500_000_000)
    );
    assert_eq!(
        std::fs::read_link(r.join("d/ln")).unwrap(),
        Path::new("suid")
    );
    assert_eq!(m("d/hard").ino(), m("d/suid").ino());
    assert!(describe(&r.join("d/fifo"), false).starts_with("fifo mode=640"));
    assert!(describe(&r.join("d/null"), false).starts_with("devc:"));
    assert!(describe(&r.join("d/loop"), false).starts_with("devb:"));
    assert!(describe(&r.join("d/suid"), false).contains("user.k=v"));
    assert!(describe(&r.join("d/sticky"), false).contains("user.dir=dv"));
    let tr = describe(&r.join("d/trusted"), false);
    assert!(
        tr.contains("trusted.t=tv") && !tr.contains("redirect"),
        "{tr}"
    );
    let c = crate::fsutil::cstring(r.join("d/trusted").to_str().unwrap().as_bytes()).unwrap();
    assert!(
        crate::fsutil::get_xattr(&crate::fsutil::Node::Path(c), c"trusted.overlay.redirect")
            .unwrap()
            .is_none()
    );
}

#[test]
fn replaces_and_reuses_existing_entries() {
    let a = Arena::new();
    let r = a.root();
    std::fs::create_dir_all(r.join("keep/inner")).unwrap();
    std::fs::write(r.join("keep/inner/f"), "old").unwrap();
    std::fs::create_dir_all(r.join("wasdir/x")).unwrap();
    std::fs::write(r.join("wasfile"), "f").unwrap();
    std::os::unix::fs::symlink("nowhere", r.join("waslink")).unwrap();
    let mut t = tc();
    t.dir("keep", 0o700)
        .file("wasdir", b"now a file", 0o644)
        .dir("wasfile", 0o755)
        .file("waslink", b"now a file", 0o600);
    t.file("./a/../b", b"cleaned", 0o644);
    apply_remove(&r, &t).unwrap();
    assert_eq!(read(&r, "keep/inner/f"), "old");
    assert_eq!(
        std::fs::metadata(r.join("keep")).unwrap().mode() & 0o777,
        0o700
    );
    assert_eq!(read(&r, "wasdir"), "now a file");
    assert!(r.join("wasfile").is_dir());
    assert_eq!(read(&r, "waslink"), "now a file");
    assert_eq!(read(&r, "b"), "cleaned");
    assert!(!r.join("a").exists());
}

#[test]
fn overlay_whiteouts_become_devices_and_xattrs() {
    let a = Arena::new();
    let r = a.root();
    let mut t = tc();
    t.dir("d", 0o755)
        .file("d/.wh..wh..opq", b"", 0o644)
        .file("d/.wh.gone", b"", 0o644)
        .file(".wh..wh.plnk", b"", 0o644);
    t.file("deep/er/.wh.x", b"", 0o644);
    layer::apply(&r, &t.finish()[..], &opts(WhiteoutMode::Overlay)).unwrap();
    assert!(describe(&r.join("d/gone"), false).starts_with("devc:0 "));
    assert!(describe(&r.join("deep/er/x"), false).starts_with("devc:0 "));
    let c = crate::fsutil::cstring(r.join("d").to_str().unwrap().as_bytes()).unwrap();
    let v =
        crate::fsutil::get_xattr(&crate::fsutil::Node::Path(c), c"trusted.overlay.opaque").unwrap();
    assert_eq!(v.as_deref(), Some(&b"y"[..]));
    assert!(!r.join(".wh..wh.plnk").exists());
    assert!(!r.join("d/.wh..wh..opq").exists() && !r.join("d/.wh.gone").exists());
}

#[test]
fn remove_mode_opaque_spares_this_layers_entries() {
    let a = Arena::new();
    let r = a.root();
    std::fs::create_dir_all(r.join("d/sub")).unwrap();
    std::fs::write(r.join("d/old"), "lower").unwrap();
    std::fs::write(r.join("d/sub/old"), "lower").unwrap();
    std::fs::write(r.join("d/keep"), "lower").unwrap();
    std::fs::write(r.join("other"), "lower").unwrap();
    let mut t = tc();
    // Entries before the marker (even inside a reused subdirectory) belong to this layer.
    t.dir("d", 0o755)
        .file("d/keep", b"layer", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/new", b"layer", 0o644);
    t.file("d/implied/x", b"layer", 0o644);
    t.file("d/.wh..wh..opq", b"", 0o644)
        .file("d/after", b"layer", 0o644)
        .file(".wh.other", b"", 0o644);
    apply_remove(&r, &t).unwrap();
    let got: Vec<String> = dump(&r, false).into_keys().collect();
    assert_eq!(
        got,
        [
            "d",
            "d/after",
            "d/implied",
            "d/implied/x",
            "d/keep",
            "d/sub",
            "d/sub/new"
        ]
    );
    assert_eq!(read(&r, "d/keep"), "layer");
}

#[test]
fn size_limit_stops_a_bomb() {
    let mut t = tc();
    t.file("a", &[1u8; 600], 0o644)
        .file("b", &[2u8; 600], 0o644);
    let a = Arena::new();
    let e = layer::apply(
        &a.root(),
        &t.finish()[..],
        &ApplyOptions {
            size_limit: Some(1000),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::SizeLimit { limit: 1000, entry } if entry == "b"),
        "{e}"
    );
    let a = Arena::new();
    layer::apply(
        &a.root(),
        &t.finish()[..],
        &ApplyOptions {
            size_limit: Some(1200),
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn truncated_tars_are_errors() {
    let mut t = tc();
    t.file("a", &[7u8; 5000], 0o644).file("b", b"bbb", 0o644);
    let full = t.finish();
    // Inside a file's data, inside a header, at an entry boundary without the end marker.
    for cut in [3000, 512 * 11 + 100, t.out.len()] {
        let a = Arena::new();
        let e = layer::apply(&a.root(), &full[..cut], &opts(WhiteoutMode::Remove)).unwrap_err();
        assert!(
            matches!(e, Error::Truncated { .. } | Error::Io { .. }),
            "cut {cut}: {e}"
        );
    }
    let a = Arena::new();
    let e = layer::apply(
        &a.root(),
        &b"this is not a tar at all, just some text padding"[..],
        &opts(WhiteoutMode::Remove),
    );
    assert!(e.is_err());
    let a = Arena::new();
    layer::apply(&a.root(), &full[..], &opts(WhiteoutMode::Remove)).unwrap();
}

#[test]
fn reads_to_the_end_of_the_stream() {
    struct Counting<'a>(&'a [u8], usize);
    impl Read for Counting<'_> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(b)?;
            self.1 += n;
            Ok(n)
        }
    }
    let mut t = tc();
    t.file("a", b"x", 0o644);
    let mut bytes = t.finish();
    bytes.extend_from_slice(&[0u8; 10240]);
    let mut c = Counting(&bytes, 0);
    let a = Arena::new();
    layer::apply(&a.root(), &mut c, &opts(WhiteoutMode::Remove)).unwrap();
    assert_eq!(c.1, bytes.len());
}

#[test]
fn hardlink_errors_and_lower_targets() {
    let a = Arena::new();
    let mut t = tc();
    t.link("missing", "l");
    assert!(apply_remove(&a.root(), &t).is_err());
    let mut t = tc();
    t.dir("d", 0o755).link("d", "l");
    assert!(apply_remove(&a.root(), &t).is_err());
    // Overlay layers may link to a file of a lower layer: it is copied with its metadata.
    let lower = a.tmp.path().join("lower");
    std::fs::create_dir_all(lower.join("bin")).unwrap();
    std::fs::write(lower.join("bin/tool"), "tool").unwrap();
    std::fs::set_permissions(
        lower.join("bin/tool"),
        std::fs::Permissions::from_mode(0o4711),
    )
    .unwrap();
    let up = a.tmp.path().join("upper");
    std::fs::create_dir(&up).unwrap();
    let mut t = tc();
    t.dir("bin", 0o755).link("bin/tool", "bin/alias");
    let o = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        size_limit: None,
        lowers: vec![lower.clone()],
    };
    layer::apply(&up, &t.finish()[..], &o).unwrap();
    assert_eq!(read(&up, "bin/alias"), "tool");
    assert_eq!(
        std::fs::metadata(up.join("bin/alias")).unwrap().mode() & 0o7777,
        0o4711
    );
}

#[test]
fn write_tree_roundtrips_and_is_deterministic() {
    let a = Arena::new();
    let src = a.root();
    let long_dir = format!("deep/{}", "segment/".repeat(20));
    let long_name = format!("{long_dir}{}", "n".repeat(200));
    let mut t = tc();
    t.dir("d", 0o751)
        .file("d/f", b"hello", 0o4755)
        .link("d/f", "d/f2")
        .symlink(&"t".repeat(150), "d/longlink");
    t.entry(
        EntryType::Regular,
        b"d/x",
        None,
        0o600,
        b"xx",
        &[("SCHILY.xattr.user.a", b"1"), ("uid", b"3000000")],
    );
    t.entry(EntryType::Fifo, b"d/p", None, 0o644, b"", &[]);
    t.entry(
        EntryType::Regular,
        b"d/caf\xe9",
        None,
        0o644,
        b"latin1",
        &[],
    );
    t.file(&long_name, b"long", 0o644);
    apply_remove(&src, &t).unwrap();
    assert_eq!(std::fs::metadata(src.join("d/x")).unwrap().uid(), 3_000_000);
    let mut one = Vec::new();
    let n = layer::write_tree(&src, &mut one).unwrap();
    assert_eq!(n as usize, one.len());
    let mut two = Vec::new();
    layer::write_tree(&src, &mut two).unwrap();
    assert_eq!(one, two);
    let dst = a.tmp.path().join("copy");
    std::fs::create_dir(&dst).unwrap();
    layer::apply(&dst, &one[..], &opts(WhiteoutMode::Remove)).unwrap();
    assert_eq!(dump(&src, true), dump(&dst, true));
    let ino = |p: &str| std::fs::metadata(dst.join(p)).unwrap().ino();
    assert_eq!(ino("d/f2"), ino("d/f"));
    // Other tar readers agree (GNU tar, if installed).
    if std::process::Command::new("tar")
        .arg("--version")
        .output()
        .is_ok()
    {
        let p = a.tmp.path().join("t.tar");
        std::fs::write(&p, &one).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&"n".repeat(200)));
    }
}

/// Throughput check (run with `--ignored --nocapture`): ~200 MB in files of mixed sizes.
#[test]
#[ignore]
fn perf_apply_200mb() {
    let mut t = tc();
    let big = vec![0x5au8; 4 << 20];
    let mut total = 0;
    let mut i = 0;
    while total < 200 << 20 {
        let size = match i % 10 {
            0 => 4 << 20,
            1..=3 => 64 << 10,
            _ => 2 << 10,
        };
        if i % 100 == 0 {
            t.dir(&format!("d{}", i / 100), 0o755);
        }
        t.file(&format!("d{}/f{i}", i / 100), &big[..size], 0o644);
        total += size;
        i += 1;
    }
    let tar = t.finish();
    for mode in [
        WhiteoutMode::Overlay,
        WhiteoutMode::Remove,
        WhiteoutMode::Overlay,
        WhiteoutMode::Remove,
    ] {
        let a = Arena::new();
        let start = std::time::Instant::now();
        let s = layer::apply(&a.root(), &tar[..], &opts(mode)).unwrap();
        let el = start.elapsed();
        eprintln!(
            "{mode:?}: {} files, {} MB in {el:?}",
            s.entries,
            s.size >> 20
        );
        let start = std::time::Instant::now();
        let n = layer::write_tree(&a.root(), std::io::sink()).unwrap();
        eprintln!("write_tree: {} MB in {:?}", n >> 20, start.elapsed());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let a = Arena::new();
    let start = std::time::Instant::now();
    let (_, r) = crate::compression::decompressed(&gz[..]).unwrap();
    layer::apply(&a.root(), r, &opts(WhiteoutMode::Overlay)).unwrap();
    eprintln!(
        "gzip ({} MB compressed): {:?}",
        gz.len() >> 20,
        start.elapsed()
    );
}
