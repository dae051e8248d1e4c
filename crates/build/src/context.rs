//! The build context: the tar the client sends, read once. Its bytes are spooled to a file
//! (so COPY can later take file data straight from it) while every entry is indexed and its
//! content hashed. Nothing is extracted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::dockerignore::{Matcher, clean};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A hardlink to an earlier entry (`link` names it).
    Hardlink,
    Other,
}

/// One entry of the context.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the context root, `/`-separated, no leading `./` or trailing `/`.
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    /// Where the content starts in the spool file.
    pub offset: u64,
    /// Symlink or hardlink target.
    pub link: String,
    /// sha256 of the content (files), zero otherwise.
    pub digest: [u8; 32],
}

/// A received build context.
pub struct Context {
    spool: File,
    pub entries: BTreeMap<String, Entry>,
}

/// Counts bytes and copies them to the spool while the tar reader reads.
struct Tee<R, W> {
    inner: R,
    out: W,
    pos: u64,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// After the stream ends, yields zeros for a while: docker's CLI sends a context whose last
/// entry (the Dockerfile it adds for `-f -`) lacks its padding and end-of-archive blocks, which
/// Go's tar reader tolerates.
struct ZeroTail<R> {
    inner: R,
    zeros: usize,
}

impl<R: Read> Read for ZeroTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.zeros == 0 {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.zeros = 1;
        }
        let left = 2048 - (self.zeros - 1);
        let n = buf.len().min(left);
        buf[..n].fill(0);
        self.zeros += n;
        Ok(n)
    }
}

fn normalize(raw: &str) -> Option<String> {
    let c = clean(raw.trim_start_matches('/'));
    if c == "." || c.starts_with("..") {
        return None;
    }
    Some(c)
}

impl Context {
    /// Reads a context tar (plain, gzip, bzip2, xz or zstd) from `r`, spooling it at `spool`.
    pub fn read(r: impl Read, spool: &Path) -> io::Result<Context> {
        let (_, r) = crate::archive::decompress(r)?;
        let f = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(spool)?;
        let mut tee = Tee {
            inner: ZeroTail { inner: r, zeros: 0 },
            out: io::BufWriter::with_capacity(1 << 20, f.try_clone()?),
            pos: 0,
        };
        let mut entries = BTreeMap::new();
        {
            let mut ar = tar::Archive::new(&mut tee);
            let mut buf = vec![0u8; 64 << 10];
            for e in ar.entries()? {
                let mut e = e?;
                let path_raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let Some(path) = normalize(&path_raw) else {
                    continue;
                };
                let h = e.header();
                let kind = match h.entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                    tar::EntryType::Directory => Kind::Dir,
                    tar::EntryType::Symlink => Kind::Symlink,
                    tar::EntryType::Link => Kind::Hardlink,
                    t if t.is_pax_global_extensions() || t.is_pax_local_extensions() => continue,
                    _ => Kind::Other,
                };
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                let link = if kind == Kind::Hardlink {
                    normalize(&link).unwrap_or_default()
                } else {
                    link
                };
                let mut ent = Entry {
                    path: path.clone(),
                    kind,
                    mode: h.mode().unwrap_or(0o644) & 0o7777,
                    uid: h.uid().unwrap_or(0),
                    gid: h.gid().unwrap_or(0),
                    size: e.size(),
                    mtime: h.mtime().unwrap_or(0),
                    offset: e.raw_file_position(),
                    link,
                    digest: [0; 32],
                };
                if kind == Kind::File {
                    let mut hasher = Sha256::new();
                    loop {
                        let n = e.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                    }
                    ent.digest = hasher.finalize().into();
                } else {
                    ent.size = 0;
                }
                entries.insert(path, ent);
            }
        }
        // Drain what follows the end marker and flush the spool.
        io::copy(&mut tee, &mut io::sink())?;
        tee.out.flush()?;
        // Hardlinks take their target's content.
        let links: Vec<(String, String)> = entries
            .values()
            .filter(|e| e.kind == Kind::Hardlink)
            .map(|e| (e.path.clone(), e.link.clone()))
            .collect();
        for (p, target) in links {
            if let Some(t) = entries.get(&target).cloned()
                && t.kind == Kind::File
            {
                let e = entries.get_mut(&p).expect("listed");
                e.kind = Kind::File;
                e.offset = t.offset;
                e.size = t.size;
                e.digest = t.digest;
            }
        }
        // Directories that only appear as parents.
        let mut missing = Vec::new();
        for p in entries.keys() {
            let mut idx = 0;
            while let Some(i) = p[idx..].find('/') {
                let d = &p[..idx + i];
                if !entries.contains_key(d) {
                    missing.push(d.to_string());
                }
                idx += i + 1;
            }
        }
        for d in missing {
            entries.entry(d.clone()).or_insert(Entry {
                path: d,
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 0,
                offset: 0,
                link: String::new(),
                digest: [0; 32],
            });
        }
        Ok(Context { spool: f, entries })
    }

    /// Drops entries `.dockerignore` excludes (the client normally did this already).
    /// `keep` lists paths that stay regardless (docker keeps the Dockerfile for itself).
    pub fn apply_ignore(&mut self, m: &Matcher) {
        if m.is_empty() {
            return;
        }
        self.entries.retain(|p, _| !m.excluded(p));
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        let p = normalize(path)?;
        self.entries.get(&p)
    }

    /// Reads a file's whole content (the Dockerfile, `.dockerignore`).
    pub fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        let e = self
            .resolve(path, true)
            .filter(|e| e.kind == Kind::File)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.to_string()))?;
        self.read_entry(e)
    }

    pub fn read_entry(&self, e: &Entry) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; e.size as usize];
        self.spool.read_exact_at(&mut v, e.offset)?;
        Ok(v)
    }

    /// Copies a file's content to `out`.
    pub fn copy_entry(&self, e: &Entry, out: &mut dyn Write) -> io::Result<()> {
        let mut left = e.size;
        let mut off = e.offset;
        let mut buf = vec![0u8; (left.min(256 << 10)) as usize];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            self.spool.read_exact_at(&mut buf[..n], off)?;
            out.write_all(&buf[..n])?;
            left -= n as u64;
            off += n as u64;
        }
        Ok(())
    }

    /// Looks a path up, following symlinks inside the context (the last component too when
    /// `follow_last`). `None` if missing or a link leads outside.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<&Entry> {
        let mut cur = normalize(path)?;
        for _ in 0..40 {
            // Resolve symlinked parents first.
            let mut resolved = String::new();
            let comps: Vec<&str> = cur.split('/').collect();
            let mut redirected = None;
            for (i, c) in comps.iter().enumerate() {
                let p = if resolved.is_empty() {
                    c.to_string()
                } else {
                    format!("{resolved}/{c}")
                };
                let last = i == comps.len() - 1;
                match self.entries.get(&p) {
                    Some(e) if e.kind == Kind::Symlink && (!last || follow_last) => {
                        let base = resolved.clone();
                        let target = if e.link.starts_with('/') || base.is_empty() {
                            e.link.clone()
                        } else {
                            format!("{base}/{}", e.link)
                        };
                        let rest = comps[i + 1..].join("/");
                        let joined = if rest.is_empty() {
                            target
                        } else {
                            format!("{target}/{rest}")
                        };
                        redirected = Some(normalize(&joined)?);
                        break;
                    }
                    Some(_) => resolved = p,
                    None => return None,
                }
            }
            match redirected {
                Some(n) => cur = n,
                None => return self.entries.get(&cur),
            }
        }
        None
    }

    /// Entries at and below `dir` (itself first), in path order.
    pub fn walk<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let prefix = format!("{dir}/");
        let me = self.entries.get(dir);
        me.into_iter().chain(
            self.entries
                .range(prefix.clone()..)
                .take_while(move |(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v),
        )
    }

    /// Every path matching a wildcard source (Go's `filepath.Match` against each path).
    pub fn glob(&self, pattern: &str) -> Vec<&Entry> {
        let pat = clean(pattern.trim_start_matches('/'));
        self.entries
            .values()
            .filter(|e| path_match(&pat, &e.path))
            .collect()
    }
}

/// Whether a source path has wildcards (docker's `containsWildcards`).
pub fn has_wildcards(p: &str) -> bool {
    let mut esc = false;
    for c in p.chars() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go's `path.Match`: `*`, `?`, `[...]` and `\` escapes; separators are never matched by
/// wildcards.
pub fn path_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, consumed incl. ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('^') | Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let mut lo = p[i];
            if lo == '\\' {
                i += 1;
                lo = *p.get(i)?;
            }
            i += 1;
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
                hi = p[i + 1];
                if hi == '\\' {
                    hi = *p.get(i + 2)?;
                    i += 1;
                }
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        None
    }
    fn m(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != '/')
                .any(|i| m(&p[1..], &s[i..])),
            Some('?') => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..]),
            Some('[') => match (s.first(), class(&p[1..], *s.first().unwrap_or(&'\0'))) {
                (Some(c), Some((ok, n))) if *c != '/' => ok && m(&p[1 + n..], &s[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && m(&p[2..], &s[1..]),
            Some(c) => s.first() == Some(c) && m(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    m(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8], mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(1);
            b.append_data(&mut h, path, data).unwrap();
        };
        add("Dockerfile", b"FROM x\n", 0o644);
        add("src/a.txt", b"a", 0o644);
        add("./src/b.sh", b"#!/bin/sh", 0o755);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", "src").unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn indexes_hashes_and_reads() {
        let t = tempfile::tempdir().unwrap();
        let c = Context::read(&ctx_tar()[..], &t.path().join("spool")).unwrap();
        assert_eq!(c.read_file("Dockerfile").unwrap(), b"FROM x\n");
        let a = c.get("src/a.txt").unwrap();
        assert_eq!(hex::encode(a.digest), hex::encode(Sha256::digest(b"a")));
        assert_eq!(c.get("src").unwrap().kind, Kind::Dir, "implied parent");
        assert_eq!(c.get("src/b.sh").unwrap().mode, 0o755);
        assert_eq!(c.resolve("link/a.txt", true).unwrap().path, "src/a.txt");
        let walked: Vec<&str> = c.walk("src").map(|e| e.path.as_str()).collect();
        assert_eq!(walked, vec!["src", "src/a.txt", "src/b.sh"]);
        let g: Vec<&str> = c
            .glob("src/*.txt")
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(g, vec!["src/a.txt"]);
        let mut out = Vec::new();
        c.copy_entry(c.get("src/b.sh").unwrap(), &mut out).unwrap();
        assert_eq!(out, b"#!/bin/sh");
    }

    #[test]
    fn go_path_match() {
        assert!(path_match("*.txt", "a.txt"));
        assert!(!path_match("*.txt", "d/a.txt"));
        assert!(path_match("d/*", "d/a"));
        assert!(path_match("f[0-9]", "f5"));
        assert!(!path_match("f[!0-9]", "f5"));
        assert!(path_match("a?c", "abc"));
        assert!(path_match("a\\*", "a*"));
        assert!(has_wildcards("a*") && !has_wildcards("a\\*b") && has_wildcards("[x]"));
    }
}
