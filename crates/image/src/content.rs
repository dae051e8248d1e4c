//! The content-addressed blob store: `content/blobs/sha256/<hex>`.
//!
//! Blobs arrive through an [`Ingest`]: written into the temp area while being hashed, verified
//! against the expected digest, fsynced, and only then renamed under their digest. The temp area
//! is wiped at start, so a crash mid-write never leaves a partial blob under a real name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, DigestWriter};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {0} is larger than the allowed {1} bytes")]
    TooLarge(String, u64),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
    let context = context.into();
    move |source| ContentError::Io { context, source }
}

pub struct ContentStore {
    blobs: PathBuf,
    tmp: PathBuf,
    seq: AtomicU64,
}

impl ContentStore {
    /// Opens the store under `root` and empties its temp area (leftovers of a crash).
    pub fn open(root: &Path, tmp: &Path) -> Result<ContentStore, ContentError> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err(format!("creating {}", blobs.display())))?;
        if tmp.exists() {
            fs::remove_dir_all(tmp).map_err(io_err(format!("cleaning {}", tmp.display())))?;
        }
        fs::create_dir_all(tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        Ok(ContentStore {
            blobs,
            tmp: tmp.to_path_buf(),
            seq: AtomicU64::new(0),
        })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).exists()
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, ContentError> {
        File::open(self.path(d)).map_err(io_err(format!("opening blob {d}")))
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ContentError> {
        fs::read(self.path(d)).map_err(io_err(format!("reading blob {d}")))
    }

    pub fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.path(d)).ok().map(|m| m.len())
    }

    pub fn delete(&self, d: &Digest) {
        let _ = fs::remove_file(self.path(d));
    }

    /// Digests of every blob present (for garbage collection).
    pub fn list(&self) -> Vec<Digest> {
        let Ok(rd) = fs::read_dir(&self.blobs) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| format!("sha256:{n}").parse().ok())
            })
            .collect()
    }

    /// A fresh private directory in the temp area (removed when the returned guard drops).
    pub fn temp_dir(&self, what: &str) -> Result<TempDir, ContentError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let p = self.tmp.join(format!("{what}-{}-{n}", std::process::id()));
        fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        Ok(TempDir(p))
    }

    /// Writes a whole blob held in memory (configs, manifests).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        let d = Digest::sha256_of(bytes);
        if self.exists(&d) {
            return Ok(d);
        }
        let tmp = self.temp_dir("put")?;
        let p = tmp.0.join("blob");
        let mut f = File::create(&p).map_err(io_err("creating temp blob"))?;
        f.write_all(bytes).map_err(io_err("writing temp blob"))?;
        f.sync_all().map_err(io_err("syncing temp blob"))?;
        self.commit_file(&p, &d)?;
        Ok(d)
    }

    /// Moves a verified temp file into place under its digest. Idempotent.
    pub fn commit_file(&self, tmp: &Path, d: &Digest) -> Result<(), ContentError> {
        let dst = self.path(d);
        if dst.exists() {
            return Ok(());
        }
        fs::rename(tmp, &dst).map_err(io_err(format!("storing blob {d}")))?;
        Ok(())
    }

    /// Syncs the blob directory so renames survive a power loss.
    pub fn sync_dir(&self) {
        if let Ok(d) = File::open(&self.blobs) {
            let _ = d.sync_all();
        }
    }
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A blob written to a temp file while hashed; [`Staged`] once complete.
pub struct Staged {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

/// Streams `r` into `path`, hashing as it goes; checks `expected` and `limit`, fsyncs.
pub fn stage(
    mut r: impl Read,
    path: &Path,
    expected: Option<&Digest>,
    limit: Option<u64>,
    what: &str,
) -> Result<Staged, ContentError> {
    let f = File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let mut w = DigestWriter::new(io::BufWriter::with_capacity(1 << 20, f));
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ContentError::Io {
                    context: format!("reading {what}"),
                    source: e,
                });
            }
        };
        total += n as u64;
        if let Some(l) = limit
            && total > l
        {
            return Err(ContentError::TooLarge(what.to_string(), l));
        }
        w.write_all(&buf[..n])
            .map_err(io_err(format!("writing {what}")))?;
    }
    let (bw, digest, size) = w.finish();
    let f = bw.into_inner().map_err(|e| ContentError::Io {
        context: format!("writing {what}"),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io_err(format!("syncing {what}")))?;
    if let Some(exp) = expected
        && *exp != digest
    {
        return Err(ContentError::DigestMismatch {
            what: what.to_string(),
            expected: exp.clone(),
            actual: digest,
        });
    }
    Ok(Staged {
        path: path.to_path_buf(),
        digest,
        size,
    })
}
