//! `-u user[:group]` → numbers, read from the container's own /etc/passwd and /etc/group with
//! runc's rules (libcontainer/user `GetExecUser`) and docker's error wording.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups from /etc/group membership (only when no group was named).
    pub additional_gids: Vec<u32>,
    /// From passwd, `/` when unknown (docker sets HOME from it).
    pub home: String,
}

const MAX_FILE: u64 = 16 << 20;
const MAX_ID: u64 = i32::MAX as u64;

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(s: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    s.lines().filter_map(|l| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = l.split(':').collect();
        Some(PasswdEntry {
            name: f.first().copied().unwrap_or(""),
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(s: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    s.lines().filter_map(|l| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = l.split(':').collect();
        Some(GroupEntry {
            name: f.first().copied().unwrap_or(""),
            gid: f.get(2)?.parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|x| !x.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// Reads a file of the container (`etc/passwd`) without following symlinks out of `rootfs`;
/// only regular files (a FIFO or device must not block or flood berthd). `None` if missing.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<Option<String>> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("opening {}", rootfs.display()), e.into()))?;
    let fd: OwnedFd = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => {
            return Err(Error::io(
                format!("opening /{rel} in the container"),
                e.into(),
            ));
        }
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(format!("stat /{rel}"), e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(None);
    }
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(MAX_FILE)
        .read_to_string(&mut s)
        .map_err(|e| Error::io(format!("reading /{rel} in the container"), e))?;
    Ok(Some(s))
}

/// Resolves docker's `-u` value (`""`, `name`, `uid`, `name:group`, `uid:gid`) against the
/// container's files. A numeric uid without a passwd entry is allowed (gid 0), as in docker.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let group = read_in_root(rootfs, "etc/group")?;
    resolve_with(spec, passwd.as_deref(), group.as_deref())
}

fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(crate) fn resolve_with(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<User> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let uid_arg = parse_id(user_arg);
    let gid_arg = parse_id(group_arg);
    let range = || Error::User("uids and gids must be in range 0-2147483647".into());

    let mut u = User {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
    };
    let found = passwd.and_then(|p| {
        passwd_entries(p)
            .find(|e| match (user_arg.is_empty(), uid_arg) {
                (true, _) => e.uid == 0,
                (false, Some(id)) => u64::from(e.uid) == id,
                (false, None) => e.name == user_arg,
            })
            .map(|e| (e.name.to_string(), e.uid, e.gid, e.home.to_string()))
    });
    let mut matched_name = None;
    if let Some((name, uid, gid, home)) = found {
        u.uid = uid;
        u.gid = gid;
        u.home = home;
        matched_name = Some(name);
    } else if !user_arg.is_empty() {
        let Some(id) = uid_arg else {
            return Err(Error::User(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )));
        };
        if id > MAX_ID {
            return Err(range());
        }
        u.uid = id as u32;
    }

    if !group_arg.is_empty() {
        let g = group.and_then(|g| {
            group_entries(g)
                .find(|e| match gid_arg {
                    Some(id) => u64::from(e.gid) == id,
                    None => e.name == group_arg,
                })
                .map(|e| e.gid)
        });
        u.gid = match (g, gid_arg) {
            (Some(gid), _) => gid,
            (None, Some(id)) if id <= MAX_ID => id as u32,
            (None, Some(_)) => return Err(range()),
            (None, None) => {
                return Err(Error::User(format!(
                    "unable to find group {group_arg}: no matching entries in group file"
                )));
            }
        };
    } else if let (Some(name), Some(g)) = (&matched_name, group) {
        // Supplementary groups only in the implicit form (runc).
        u.additional_gids = group_entries(g)
            .filter(|e| e.members.contains(&name.as_str()))
            .map(|e| e.gid)
            .collect();
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:user\nuser:x:1000:\naudio:x:29:root,user\nnogroup:x:65534:\n";

    fn r(s: &str) -> Result<User> {
        resolve_with(s, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn default_is_root() {
        let u = r("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![29]);
    }

    #[test]
    fn by_name_and_number() {
        let u = r("user").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![10, 29]);
        assert_eq!(u.home, "/home/user");
        assert_eq!(r("1000").unwrap().uid, 1000);
        let u = r("4242").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.len()), (4242, 0, 0));
    }

    #[test]
    fn explicit_group() {
        let u = r("user:wheel").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        assert!(u.additional_gids.is_empty());
        assert_eq!(r("user:777").unwrap().gid, 777);
        assert_eq!(
            r("5:6").unwrap(),
            User {
                uid: 5,
                gid: 6,
                additional_gids: vec![],
                home: "/".into()
            }
        );
    }

    #[test]
    fn errors_like_docker() {
        assert_eq!(
            r("nope").unwrap_err().to_string(),
            "unable to find user nope: no matching entries in passwd file"
        );
        assert_eq!(
            r("user:x").unwrap_err().to_string(),
            "unable to find group x: no matching entries in group file"
        );
        assert_eq!(
            resolve_with("nope", None, None).unwrap_err().to_string(),
            "unable to find user nope: no matching entries in passwd file"
        );
        assert!(r("99999999999").is_err());
        // No passwd file at all: numbers still work.
        assert_eq!(resolve_with("12:34", None, None).unwrap().gid, 34);
    }
}
