//! The copy driver's own parts: changes and diffs by comparing full trees (Docker's naive diff).

use std::io::Write;
use std::os::fd::AsFd;

use rustix::fs::OFlags;

use crate::changes::{self, ChangeKind, RawChange};
use crate::error::{Error, Result};
use crate::fsutil::{self, cstring};
use crate::layer::write::TarWriter;
use crate::snapshot::Snapshotter;

pub(crate) fn changes(sn: &Snapshotter, key: &str, parent: Option<&str>) -> Result<Vec<RawChange>> {
    let new =
        fsutil::open_dir(&sn.diff(key)).map_err(Error::io(format!("opening snapshot {key}")))?;
    let old = match parent {
        Some(p) => {
            Some(fsutil::open_dir(&sn.diff(p)).map_err(Error::io(format!("opening layer {p}")))?)
        }
        None => None,
    };
    changes::compute(new, old, changes::Mode::Naive)
}

/// A layer tar of `changes` (sorted, parents first) read from `key`'s tree.
pub(crate) fn diff_tar(
    sn: &Snapshotter,
    key: &str,
    changes: &[RawChange],
    out: impl Write,
) -> Result<u64> {
    let root =
        fsutil::open_dir(&sn.diff(key)).map_err(Error::io(format!("opening snapshot {key}")))?;
    let mut w = TarWriter::new(out);
    for c in changes {
        let (parent, name) = fsutil::split_last(&c.path);
        if c.kind == ChangeKind::Deleted {
            w.add_whiteout(parent, name, None)?;
            continue;
        }
        let ctx = || format!("reading /{}", String::from_utf8_lossy(&c.path));
        // The tree may be in use by a container: resolve without following anything.
        let dir =
            match fsutil::open_beneath(root.as_fd(), parent, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(d) => d,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV)
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(Error::io(ctx())(e)),
            };
        let cname = cstring(name).map_err(Error::io(ctx()))?;
        let Some(s) = fsutil::lstat_opt(dir.as_fd(), &cname).map_err(Error::io(ctx()))? else {
            continue;
        };
        w.add(dir.as_fd(), &cname, &c.path, &s)?;
    }
    w.finish()
}
