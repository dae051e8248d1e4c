//! Content digests (`sha256:<hex>`), parsed and validated like opencontainers/go-digest,
//! plus streaming hashers for readers and writers.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A digest algorithm we can parse. Only sha256 is ever computed by the store; the others
/// exist so that references carrying them parse the way docker's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a digest; messages are go-digest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid checksum digest format")]
    InvalidFormat,
    #[error("invalid checksum digest length")]
    InvalidLength,
    #[error("unsupported digest algorithm")]
    Unsupported,
}

/// A validated digest: algorithm plus lowercase hex of the right length.
///
/// Ordering and hashing follow the string form (`sha256:…` sorts before `sha512:…`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algo:hex` with go-digest's `Parse` rules and error order.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some(colon) = s.find(':') else {
            return Err(DigestError::InvalidFormat);
        };
        if colon == 0 || colon + 1 == s.len() {
            return Err(DigestError::InvalidFormat);
        }
        let (name, hex) = (&s[..colon], &s[colon + 1..]);
        let Some(algorithm) = Algorithm::from_name(name) else {
            // An unknown algorithm is "unsupported" only if the whole string is well formed.
            return Err(if is_well_formed_unknown(name, hex) {
                DigestError::Unsupported
            } else {
                DigestError::InvalidFormat
            });
        };
        Digest::from_parts(algorithm, hex)
    }

    /// Builds a digest from an algorithm and its hex encoding, validating the hex.
    pub fn from_parts(algorithm: Algorithm, hex: &str) -> Result<Digest, DigestError> {
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::InvalidLength);
        }
        if !is_lower_hex(hex) {
            return Err(DigestError::InvalidFormat);
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// A sha256 digest from 64 lowercase hex characters (no `sha256:` prefix).
    pub fn from_sha256_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::from_parts(Algorithm::Sha256, hex)
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::from_sha256_bytes(&Sha256::digest(bytes))
    }

    fn from_sha256_bytes(raw: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(raw),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part after the colon.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters: docker's short image ID.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// True when `bytes` hash to this digest (always false for algorithms we don't compute).
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        self.algorithm == Algorithm::Sha256 && Digest::sha256_of(bytes) == *self
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// go-digest's anchored `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn is_well_formed_unknown(name: &str, encoded: &str) -> bool {
    let lower_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let name_ok = name
        .split(['.', '+', '_', '-'])
        .all(|part| !part.is_empty() && part.bytes().all(lower_alnum));
    let encoded_ok = encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    name_ok && encoded_ok
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 for callers that feed bytes themselves.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl Digester {
    pub fn new() -> Digester {
        Digester::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest and the number of bytes hashed.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256_bytes(&self.hasher.finalize()), self.len)
    }
}

/// A writer that hashes everything written through it.
pub struct DigestWriter<W: Write> {
    inner: W,
    digester: Digester,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W) -> DigestWriter<W> {
        DigestWriter {
            inner,
            digester: Digester::new(),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.digester.len()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, the digest of what was written and its length. Does not flush.
    pub fn finish(self) -> (W, Digest, u64) {
        let (digest, len) = self.digester.finish();
        (self.inner, digest, len)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Hash only what the inner writer accepted, so short writes stay consistent.
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes everything read through it.
pub struct DigestReader<R: Read> {
    inner: R,
    digester: Digester,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> DigestReader<R> {
        DigestReader {
            inner,
            digester: Digester::new(),
        }
    }

    /// Bytes read so far.
    pub fn read_bytes(&self) -> u64 {
        self.digester.len()
    }

    /// The inner reader, the digest of what was read and its length.
    pub fn finish(self) -> (R, Digest, u64) {
        let (digest, len) = self.digester.finish();
        (self.inner, digest, len)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn sha256_of_known_values() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY);
        assert_eq!(Digest::sha256_of(b"hello").to_string(), HELLO);
        assert_eq!(Digest::sha256_of(b"hello").algorithm(), Algorithm::Sha256);
        assert_eq!(Digest::sha256_of(b"hello").short(), "2cf24dba5fb0");
        assert!(Digest::parse(HELLO).unwrap().verifies(b"hello"));
        assert!(!Digest::parse(HELLO).unwrap().verifies(b"hello!"));
    }

    #[test]
    fn parse_valid() {
        let d = Digest::parse(HELLO).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.to_string(), HELLO);
        let s384 = format!("sha384:{}", "a".repeat(96));
        assert_eq!(Digest::parse(&s384).unwrap().algorithm(), Algorithm::Sha384);
        let s512 = format!("sha512:{}", "f".repeat(128));
        assert_eq!(Digest::parse(&s512).unwrap().to_string(), s512);
        assert_eq!(HELLO.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn parse_errors_follow_go_digest() {
        use DigestError::*;
        let cases: &[(&str, DigestError)] = &[
            ("", InvalidFormat),
            ("sha256", InvalidFormat),
            ("sha256:", InvalidFormat),
            (":abcd", InvalidFormat),
            ("sha256:abc", InvalidLength),
            (&format!("sha256:{}", "A".repeat(64)), InvalidFormat),
            (&format!("sha256:{}", "g".repeat(64)), InvalidFormat),
            (&format!("sha384:{}", "a".repeat(64)), InvalidLength),
            (&format!("md5:{}", "a".repeat(32)), Unsupported),
            (&format!("sha256+b64:{}", "a".repeat(32)), Unsupported),
            (&format!("SHA256:{}", "a".repeat(64)), InvalidFormat),
            ("foo:bar baz", InvalidFormat),
        ];
        for (input, want) in cases {
            assert_eq!(Digest::parse(input), Err(*want), "input {input:?}");
        }
        assert_eq!(
            Digest::parse("sha256:abc").unwrap_err().to_string(),
            "invalid checksum digest length"
        );
        assert_eq!(
            Digest::parse("md5:ab").unwrap_err().to_string(),
            "unsupported digest algorithm"
        );
        assert_eq!(
            Digest::parse("nope").unwrap_err().to_string(),
            "invalid checksum digest format"
        );
    }

    #[test]
    fn ordering_and_hash_follow_string_form() {
        let a = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        let b = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
        let c = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        let mut v = vec![c.clone(), b.clone(), a.clone()];
        v.sort();
        assert_eq!(v, vec![a.clone(), b, c]);
        let set: std::collections::HashSet<Digest> = [a.clone(), a].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn serde_as_string() {
        let d = Digest::parse(HELLO).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{HELLO}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let err = serde_json::from_str::<Digest>("\"sha256:xyz\"").unwrap_err();
        assert!(err.to_string().contains("invalid checksum digest length"));
    }

    #[test]
    fn writer_hashes_what_passes() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        assert_eq!(w.written(), 5);
        let (inner, digest, len) = w.finish();
        assert_eq!(inner, b"hello");
        assert_eq!(digest.to_string(), HELLO);
        assert_eq!(len, 5);
    }

    #[test]
    fn reader_hashes_what_passes() {
        let data = vec![7u8; 1 << 20];
        let mut r = DigestReader::new(&data[..]);
        let mut sink = Vec::new();
        io::copy(&mut r, &mut sink).unwrap();
        let (_, digest, len) = r.finish();
        assert_eq!(len, data.len() as u64);
        assert_eq!(digest, Digest::sha256_of(&data));
        assert_eq!(sink, data);
    }

    #[test]
    fn digester_matches_one_shot() {
        let mut d = Digester::new();
        assert!(d.is_empty());
        d.update(b"he");
        d.update(b"llo");
        let (digest, len) = d.finish();
        assert_eq!((digest.to_string().as_str(), len), (HELLO, 5));
    }
}
