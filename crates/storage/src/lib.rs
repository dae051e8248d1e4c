//! berth's storage layer: OCI layer tars (safe apply, create, whiteouts) and snapshot drivers.
//!
//! # API
//!
//! ```text
//! compression::{Compression {None, Gzip, Zstd}, detect(&[u8]) -> Compression,
//!               decompressed(impl Read) -> io::Result<(Compression, Box<dyn Read>)>}  // bzip2/xz: ErrorKind::Unsupported
//! layer::{WhiteoutMode {Overlay, Remove}, ApplyOptions {whiteouts, size_limit, lowers}, ApplyStats {size, entries},
//!         apply(dest, tar, &opts) -> Result<ApplyStats>, write_tree(src, out) -> Result<u64>}
//! changes::{ChangeKind {Modified, Added, Deleted} (.api_kind() 0/1/2, .letter() C/A/D), Change {kind, path}}
//! DriverKind {Overlay, Copy} (.as_str()), SnapshotInfo {id, parent, active}
//! Snapshotter::open(root, Option<DriverKind>) -> Result<Snapshotter>
//!   .kind() .root()
//!   .create_layer(id, parent: Option<&str>, tar: impl Read, size_limit: Option<u64>) -> Result<ApplyStats>
//!   .exists(id) -> bool   .info(id) -> Result<SnapshotInfo>   .list() -> Result<Vec<String>>   .remove(id)
//!   .prepare(key, parent: Option<&str>)   .mount(key, target)   .mount_readonly_view(id, target)   .unmount(target)
//!   .changes(key) -> Result<Vec<Change>>  .diff_tar(key, out) -> Result<u64>  .commit(key, id)  .usage(id) -> Result<u64>
//! Error (one thiserror enum; messages name the entry, path or snapshot)
//! ```
//!
//! # Safety of extraction
//!
//! Layer tars are untrusted. [`layer::apply`] resolves every parent directory with
//! `openat2(RESOLVE_IN_ROOT)` against an fd of the destination, so symlinks met on the way
//! (absolute, `..`-laden, chained) resolve inside it, and creates the last component with
//! `*at` calls that never follow a symlink. Entry names are cleaned as if rooted (`../../x` is
//! `x`), hardlink targets likewise. Whiteouts with empty, `.` or `..` names are refused.
//! overlayfs's own xattrs (`trusted.overlay.*`) are never taken from a tar. The port of
//! containerd's breakout tests lives in `layer_tests.rs`.
//!
//! # Drivers
//!
//! Snapshots are directories named by id under the root (layout in `snapshot.rs`), built under
//! a temp name, flushed with one `syncfs`, and renamed into place; `open` deletes leftover temps
//! and finishes commits that passed their point of no return. The overlay driver keeps each
//! layer's own diff and mounts a chain with the new mount API, one `lowerdir+` per layer (passed
//! as a directory fd where the kernel takes one, 6.13+; as a path on 6.8+), so a 128-layer image
//! mounts. On older kernels it falls back to mount(2) with Docker-style short links
//! `l/<26 chars>` resolved from the root by a helper thread with its own cwd: berthd's process
//! cwd is never touched. Mounts use `index=off,redirect_dir=nofollow,metacopy=off` so an upper
//! dir is a self-contained diff that `commit` adopts as a layer. `changes()` compares the upper
//! dir with a read-only overlay of the parent chain that is never attached anywhere (a detached
//! mount, or one in a helper thread's private mount namespace). The copy driver keeps full trees,
//! bind-mounts them, and diffs by comparing trees as Docker's naive differ does.
//!
//! The overlay driver does not need a layer's parent to exist when the layer is created, so an
//! image's layers may be unpacked in parallel; only a hardlink to a file of a lower layer (rare:
//! copy-up puts both names in one layer) needs the parents there.

pub mod changes;
pub mod compression;
mod copy;
mod error;
mod fsutil;
pub mod layer;
mod mount;
mod overlay;
pub mod pathcopy;
mod snapshot;
mod whiteout;

#[cfg(test)]
mod layer_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
pub use snapshot::{DriverKind, SnapshotInfo, Snapshotter};
