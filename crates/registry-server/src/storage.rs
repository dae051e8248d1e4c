//! The registry's files under `--root`. Everything is relative to the root, so the directory can
//! be copied, backed up or moved to another volume and served again as it is.
//!
//! ```text
//! blobs/<alg>/<hex>                                 content (layers, configs, manifests), immutable
//! uploads/<uuid>/data, uploads/<uuid>/repo          uploads in progress (never served as blobs)
//! repositories/<name>/_layers/<alg>/<hex>           a blob belongs to the repository (empty file)
//! repositories/<name>/_manifests/revisions/<alg>/<hex>   a manifest belongs to it (holds its media type)
//! repositories/<name>/_manifests/tags/<tag>         a tag (holds the manifest digest)
//! repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>   a referrer (holds its descriptor)
//! ```
//!
//! Every file that is replaced is written to a dot-named temp file beside it, fsynced and renamed,
//! then the directory is fsynced. Blobs arrive through `uploads/`, are verified against their
//! digest while written, and are renamed into `blobs/` only when they match, so a partial or
//! wrong blob is never visible.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::names::{Algorithm, Digest, valid_name, valid_tag};

pub struct Storage {
    root: PathBuf,
}

/// A manifest as stored: its media type and exact bytes.
pub struct StoredManifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("paths under the root have a parent");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", crate::names::new_upload_id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory so a rename or unlink in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl Storage {
    /// Opens (creating if needed) a registry root.
    pub fn open(root: &Path) -> io::Result<Storage> {
        for d in ["blobs", "uploads", "repositories"] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(Storage {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    pub fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    fn layer_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_layers")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn revision_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_manifests/revisions")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn tags_dir(&self, name: &str) -> PathBuf {
        self.repo_dir(name).join("_manifests/tags")
    }

    fn referrers_dir(&self, name: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_referrers")
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    pub fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    pub fn repo_exists(&self, name: &str) -> bool {
        self.repo_dir(name).join("_layers").is_dir()
            || self.repo_dir(name).join("_manifests").is_dir()
    }

    // ---- blobs ----

    /// The blob's size, if the registry holds it.
    pub fn blob_size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(d)).ok().map(|m| m.len())
    }

    /// Moves a verified, fsynced file into the blob store. When the blob is already there (a
    /// concurrent push of the same content) the new copy is dropped: both hold the same bytes.
    pub fn commit_blob(&self, src: &Path, d: &Digest) -> io::Result<()> {
        let dest = self.blob_path(d);
        if dest.exists() {
            let _ = fs::remove_file(src);
            return Ok(());
        }
        let dir = dest.parent().expect("blob dir");
        fs::create_dir_all(dir)?;
        fs::rename(src, &dest)?;
        sync_dir(dir)
    }

    /// Stores bytes already in memory (manifests) as a blob.
    pub fn put_blob_bytes(&self, d: &Digest, data: &[u8]) -> io::Result<()> {
        let dest = self.blob_path(d);
        if dest.exists() {
            return Ok(());
        }
        write_atomic(&dest, data)
    }

    /// Whether `name` may serve the blob: it was uploaded or mounted there, or it is one of the
    /// repository's manifests.
    pub fn has_blob_in_repo(&self, name: &str, d: &Digest) -> bool {
        self.layer_link(name, d).exists() || self.revision_link(name, d).exists()
    }

    pub fn has_layer(&self, name: &str, d: &Digest) -> bool {
        self.layer_link(name, d).exists()
    }

    pub fn link_layer(&self, name: &str, d: &Digest) -> io::Result<()> {
        let p = self.layer_link(name, d);
        if p.exists() {
            return Ok(());
        }
        write_atomic(&p, b"")
    }

    /// Removes the repository's link to a blob. Returns false if there was none.
    pub fn unlink_layer(&self, name: &str, d: &Digest) -> io::Result<bool> {
        match fs::remove_file(self.layer_link(name, d)) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---- manifests and tags ----

    pub fn has_manifest(&self, name: &str, d: &Digest) -> bool {
        self.revision_link(name, d).exists()
    }

    pub fn get_manifest(&self, name: &str, d: &Digest) -> io::Result<Option<StoredManifest>> {
        let media_type = match fs::read_to_string(self.revision_link(name, d)) {
            Ok(m) => m,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match fs::read(self.blob_path(d)) {
            Ok(bytes) => Ok(Some(StoredManifest {
                media_type: media_type.trim().to_string(),
                bytes,
            })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn resolve_tag(&self, name: &str, tag: &str) -> io::Result<Option<Digest>> {
        match fs::read_to_string(self.tags_dir(name).join(tag)) {
            Ok(s) => Ok(Digest::parse(s.trim()).ok()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records a manifest (its bytes must already be in the blob store) in a repository: the
    /// revision link, its referrer entry when it has a subject, then its tags.
    pub fn link_manifest(
        &self,
        name: &str,
        d: &Digest,
        media_type: &str,
        referrer: Option<(&Digest, &[u8])>,
        tags: &[&str],
    ) -> io::Result<()> {
        write_atomic(&self.revision_link(name, d), media_type.as_bytes())?;
        if let Some((subject, descriptor)) = referrer {
            let p = self.referrers_dir(name, subject).join(format!(
                "{}-{}",
                d.algorithm().as_str(),
                d.hex()
            ));
            write_atomic(&p, descriptor)?;
        }
        for tag in tags {
            write_atomic(&self.tags_dir(name).join(tag), d.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// Removes a tag. Returns false if there was none.
    pub fn delete_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        match fs::remove_file(self.tags_dir(name).join(tag)) {
            Ok(()) => {
                let _ = sync_dir(&self.tags_dir(name));
                Ok(true)
            }
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a manifest from a repository with the tags that point at it and its referrer
    /// entry. The bytes stay in `blobs/` until `gc`. Returns false if it was not there.
    pub fn delete_manifest(&self, name: &str, d: &Digest) -> io::Result<bool> {
        let Some(m) = self.get_manifest(name, d)? else {
            return Ok(false);
        };
        for tag in self.list_tags(name)?.unwrap_or_default() {
            if self.resolve_tag(name, &tag)?.as_ref() == Some(d) {
                self.delete_tag(name, &tag)?;
            }
        }
        if let Some(subject) = crate::manifest::subject_of(&m.bytes) {
            let p = self.referrers_dir(name, &subject).join(format!(
                "{}-{}",
                d.algorithm().as_str(),
                d.hex()
            ));
            let _ = fs::remove_file(p);
        }
        match fs::remove_file(self.revision_link(name, d)) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The repository's tags in byte order, or None when the repository does not exist.
    pub fn list_tags(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let mut tags = match fs::read_dir(self.tags_dir(name)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|t| valid_tag(t))
                .collect::<Vec<_>>(),
            Err(e) if not_found(&e) => Vec::new(),
            Err(e) => return Err(e),
        };
        tags.sort();
        Ok(Some(tags))
    }

    /// Every manifest digest recorded in the repository.
    pub fn list_revisions(&self, name: &str) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        let base = self.repo_dir(name).join("_manifests/revisions");
        list_digests(&base, &mut out)?;
        Ok(out)
    }

    /// Every blob linked into the repository.
    pub fn list_layers(&self, name: &str) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        list_digests(&self.repo_dir(name).join("_layers"), &mut out)?;
        Ok(out)
    }

    /// The stored descriptors of the manifests whose subject is `subject`.
    pub fn referrers(&self, name: &str, subject: &Digest) -> io::Result<Vec<Vec<u8>>> {
        let rd = match fs::read_dir(self.referrers_dir(name, subject)) {
            Ok(rd) => rd,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut entries: Vec<(String, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                (!n.starts_with('.')).then(|| (n, e.path()))
            })
            .collect();
        entries.sort();
        let mut out = Vec::new();
        for (_, p) in entries {
            if let Ok(b) = fs::read(p) {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// All repository names, sorted.
    pub fn list_repositories(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        walk_repos(&self.root.join("repositories"), "", &mut out)?;
        out.sort();
        Ok(out)
    }

    /// Every blob in the store.
    pub fn list_blobs(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        list_digests(&self.root.join("blobs"), &mut out)?;
        Ok(out)
    }
}

/// Reads `<base>/<alg>/<hex>` entries as digests, skipping anything else.
fn list_digests(base: &Path, out: &mut Vec<Digest>) -> io::Result<()> {
    let rd = match fs::read_dir(base) {
        Ok(rd) => rd,
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for alg in rd.filter_map(|e| e.ok()) {
        let Some(alg) = alg.file_name().to_str().and_then(Algorithm::parse) else {
            continue;
        };
        for e in fs::read_dir(base.join(alg.as_str()))?.filter_map(|e| e.ok()) {
            if let Some(n) = e.file_name().to_str()
                && let Ok(d) = Digest::parse(&format!("{}:{n}", alg.as_str()))
            {
                out.push(d);
            }
        }
    }
    Ok(())
}

fn walk_repos(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut is_repo = false;
    for e in rd.filter_map(|e| e.ok()) {
        let Ok(n) = e.file_name().into_string() else {
            continue;
        };
        if n == "_layers" || n == "_manifests" {
            is_repo = true;
            continue;
        }
        if n.starts_with('_') || n.starts_with('.') || !e.file_type()?.is_dir() {
            continue;
        }
        let full = if prefix.is_empty() {
            n.clone()
        } else {
            format!("{prefix}/{n}")
        };
        if valid_name(&full) {
            walk_repos(&e.path(), &full, out)?;
        }
    }
    if is_repo && !prefix.is_empty() {
        out.push(prefix.to_string());
    }
    Ok(())
}
