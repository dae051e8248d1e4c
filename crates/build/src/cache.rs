//! Build cache keys: a step's result is reused when its key is the same, and the key covers
//! the parent image, the instruction as it will run (after expansion), and for COPY/ADD the
//! content and metadata of every source file — but never an mtime.

use sha2::{Digest as _, Sha256};

/// Accumulates the parts of a key; every part is length-prefixed so no two lists collide.
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn new(kind: &str, parent: &str) -> KeyBuilder {
        let mut k = KeyBuilder(Sha256::new());
        k.add("berth-build-cache/v1");
        k.add(kind);
        k.add(parent);
        k
    }

    pub fn add(&mut self, part: &str) -> &mut Self {
        self.add_bytes(part.as_bytes())
    }

    pub fn add_bytes(&mut self, part: &[u8]) -> &mut Self {
        self.0.update((part.len() as u64).to_le_bytes());
        self.0.update(part);
        self
    }

    pub fn add_all<S: AsRef<str>>(&mut self, parts: &[S]) -> &mut Self {
        self.add(&parts.len().to_string());
        for p in parts {
            self.add(p.as_ref());
        }
        self
    }

    /// The key, as hex.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The checksum of a tree of files as COPY sees it: relative path, type, mode, owner (only
/// when kept), link target and content digest of each, in order.
#[derive(Default)]
pub struct TreeSum(Option<Sha256>);

impl TreeSum {
    pub fn add(
        &mut self,
        rel: &str,
        kind: char,
        mode: u32,
        owner: Option<(u64, u64)>,
        link: &str,
        digest: &[u8],
    ) {
        let h = self.0.get_or_insert_with(Sha256::new);
        let line = format!(
            "{rel}\0{kind}\0{mode:o}\0{}\0{link}\0{}\n",
            owner.map(|(u, g)| format!("{u}:{g}")).unwrap_or_default(),
            hex::encode(digest)
        );
        h.update(line.as_bytes());
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.unwrap_or_default().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_part_boundaries() {
        let mut a = KeyBuilder::new("RUN", "p");
        a.add("ab").add("c");
        let mut b = KeyBuilder::new("RUN", "p");
        b.add("a").add("bc");
        assert_ne!(a.finish(), b.finish());
        let mut t1 = TreeSum::default();
        t1.add("f", 'f', 0o644, None, "", &[1, 2]);
        let mut t2 = TreeSum::default();
        t2.add("f", 'f', 0o755, None, "", &[1, 2]);
        assert_ne!(t1.finish(), t2.finish());
    }
}
