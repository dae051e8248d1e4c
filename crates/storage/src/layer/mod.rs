//! OCI/Docker layer tars: applying one onto a directory (safely) and writing one from a tree.

mod apply;
pub(crate) mod write;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::Result;

/// What to do with whiteout entries (`.wh.NAME`, `.wh..wh..opq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Keep them as overlayfs whiteouts (char device 0/0; `trusted.overlay.opaque=y` on opaque
    /// directories): for a directory that will be an overlay lowerdir.
    Overlay,
    /// Apply them onto a full tree by deleting the whited-out paths (copy driver, plain unpack).
    #[default]
    Remove,
}

/// How to apply a layer.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Maximum total bytes of regular-file content; more is an error (decompression bomb).
    pub size_limit: Option<u64>,
    /// Overlay mode only: the lower layers' directories, top first. A hardlink whose target is
    /// not in this layer is satisfied from them by copying the target (overlayfs would copy it
    /// up too). Without them such a hardlink is an error.
    pub lowers: Vec<PathBuf>,
}

/// What applying a layer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Bytes of regular-file content written.
    pub size: u64,
    /// Tar entries processed (including whiteouts).
    pub entries: u64,
}

/// Extracts an (already decompressed) OCI/Docker layer tar into `dest`, which must exist.
///
/// Nothing outside `dest` is ever created, modified or removed: entry names are cleaned as if
/// rooted (`../x` is `x`), parent directories are resolved by the kernel with `dest` as root
/// (`openat2(RESOLVE_IN_ROOT)`: a symlink met on the way resolves inside `dest`), and the last
/// component is created with `*at` calls that never follow a symlink. Owners, modes (setuid and
/// friends only as the tar says), mtimes, xattrs, hardlinks, devices and fifos are restored.
/// The stream is read to its end (so a digesting reader sees every byte); a tar that stops
/// inside an entry or without its end-of-archive marker is an error.
pub fn apply(dest: &Path, tar: impl Read, opts: &ApplyOptions) -> Result<ApplyStats> {
    apply::apply(dest, tar, opts)
}

/// Writes the whole tree under `src` as a layer tar (entries in bytewise path order, hardlinks as
/// links, xattrs as PAX `SCHILY.xattr.*`, sockets skipped) and returns the bytes written.
/// The same tree always gives the same bytes.
pub fn write_tree(src: &Path, out: impl Write) -> Result<u64> {
    write::write_tree(src, out)
}

/// Writes entry `name` of directory `dir` as tar path `prefix` and, for a directory, its whole
/// tree below as `prefix/…`.
pub fn write_entry(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    prefix: &[u8],
    out: impl Write,
) -> Result<u64> {
    write::write_entry(dir, name, prefix, out)
}
