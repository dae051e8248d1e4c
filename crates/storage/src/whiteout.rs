//! OCI/AUFS whiteout names and their overlayfs equivalents.

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use rustix::fs::{self as rfs, FileType, Mode};

use crate::fsutil::{self, Node};

/// `.wh.NAME` in a layer tar deletes NAME from the layers below.
pub(crate) const PREFIX: &[u8] = b".wh.";
/// `.wh..wh.*` names are AUFS bookkeeping (hardlink dirs etc.), skipped.
const META_PREFIX: &[u8] = b".wh..wh.";
/// Makes its directory opaque: nothing below shows through.
pub(crate) const OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr that marks an opaque directory.
pub(crate) const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

/// What a tar entry's last path component says about whiteouts.
pub(crate) enum Whiteout<'a> {
    /// Not a whiteout: an ordinary entry.
    No,
    Opaque,
    /// AUFS metadata, ignored.
    Meta,
    /// Deletes this name (not yet validated: may be empty, `.` or `..`).
    Remove(&'a [u8]),
}

pub(crate) fn classify(base: &[u8]) -> Whiteout<'_> {
    if !base.starts_with(PREFIX) {
        Whiteout::No
    } else if base == OPAQUE {
        Whiteout::Opaque
    } else if base.starts_with(META_PREFIX) {
        Whiteout::Meta
    } else {
        Whiteout::Remove(&base[PREFIX.len()..])
    }
}

/// Creates an overlayfs whiteout (character device 0/0) named `name` in `dir`.
pub(crate) fn make_overlay_whiteout(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(rfs::mknodat(
        dir,
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )?)
}

/// Whether directory `name` in `dir` carries overlayfs's opaque mark.
pub(crate) fn is_opaque(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    Ok(fsutil::get_xattr(&Node::at(dir, name), OPAQUE_XATTR)?.is_some_and(|v| v == b"y"))
}
