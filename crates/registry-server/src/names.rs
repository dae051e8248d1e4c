//! Parsing of the untrusted identifiers in request paths and queries: repository names, tags,
//! digests, upload session IDs, and `Content-Range`/`Range` headers.

use std::fmt;

use sha2::Digest as _;

/// The longest repository name accepted (the spec asks for fewer than 256 characters).
pub const MAX_NAME_LEN: usize = 255;

/// Checks a repository name against the spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Checks a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    if b.is_empty() || b.len() > 128 {
        return false;
    }
    let first = b[0].is_ascii_alphanumeric() || b[0] == b'_';
    first
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

/// The digest algorithms this registry can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A running hash of one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// Why a digest string was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:hex` by the spec's grammar.
    Malformed,
    /// Well-formed, but an algorithm this registry cannot verify.
    Unsupported,
}

/// A verified-shape content digest (`sha256:<64 hex>` or `sha512:<128 hex>`, lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl PartialOrd for Algorithm {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Algorithm {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let alg_ok = !alg.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-'));
        let hex_ok = !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        if !alg_ok || !hex_ok {
            return Err(DigestError::Malformed);
        }
        let algorithm = Algorithm::parse(alg).ok_or(DigestError::Unsupported)?;
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed);
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest of `data` with `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(data);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

/// Upload session IDs are UUIDs we made: 36 characters of lowercase hex and dashes. Checking the
/// shape keeps path tricks (`..`) out of the uploads directory.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// A fresh random (version 4) UUID.
pub fn new_upload_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses an upload chunk's `Content-Range`: `<start>-<end>`, inclusive (the spec's
/// `^[0-9]+-[0-9]+$`; a `bytes ` prefix and a `/total` suffix are tolerated).
pub fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v.strip_prefix("bytes ").unwrap_or(v).trim_start();
    let v = v.split_once('/').map(|(r, _)| r).unwrap_or(v);
    let (a, b) = v.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The outcome of a `Range` request header against a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range: serve the whole blob (absent, or a form we ignore as RFC 9110 allows).
    Full,
    /// Serve bytes `start..=end`.
    Partial(u64, u64),
    /// A syntactically valid range that selects nothing: 416.
    Unsatisfiable,
}

/// Parses `Range: bytes=a-b`, `bytes=a-`, `bytes=-n` (a single range; multiple ranges are
/// answered with the whole body, which RFC 9110 allows).
pub fn parse_range(v: &str, size: u64) -> ByteRange {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => ByteRange::Full,
        (true, false) => match num(b) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial(size.saturating_sub(n), size - 1),
            None => ByteRange::Full,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return ByteRange::Full;
            };
            let end = if b.is_empty() { Some(u64::MAX) } else { num(b) };
            let Some(end) = end else {
                return ByteRange::Full;
            };
            if end < start {
                return ByteRange::Full;
            }
            if start >= size {
                return ByteRange::Unsatisfiable;
            }
            ByteRange::Partial(start, end.min(size - 1))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/busybox",
            "a.b_c__d---e/f0",
            "x/y/z",
            "0",
            "my-app.v2",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a_.b", "a b", "a/../b", "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_name(&"a".repeat(256)));
        assert!(valid_name(&"a".repeat(255)));
    }

    #[test]
    fn tags() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x.Y-1"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a:b"));
        assert!(!valid_tag(""));
    }

    #[test]
    fn digests() {
        let h = "a".repeat(64);
        assert_eq!(
            Digest::parse(&format!("sha256:{h}")).unwrap().to_string(),
            format!("sha256:{h}")
        );
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert_eq!(
            Digest::parse(&format!("sha256:{}", "A".repeat(64))),
            Err(DigestError::Malformed)
        );
        assert_eq!(Digest::parse("sha256:abc"), Err(DigestError::Malformed));
        assert_eq!(Digest::parse("sha256"), Err(DigestError::Malformed));
        assert_eq!(Digest::parse(":abc"), Err(DigestError::Malformed));
        assert_eq!(Digest::parse("md5:abc"), Err(DigestError::Unsupported));
        assert_eq!(
            Digest::parse(&format!("sha256:{h}/..")),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            Digest::of(Algorithm::Sha256, b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn upload_ids() {
        let id = new_upload_id();
        assert!(valid_upload_id(&id), "{id}");
        assert!(!valid_upload_id("../../../../../../../../../../etc/pa"));
        assert_ne!(new_upload_id(), id);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9)));
        assert_eq!(parse_content_range("5-"), None);
        assert_eq!(parse_content_range("a-b"), None);
        assert_eq!(parse_content_range("-3"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), ByteRange::Partial(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), ByteRange::Partial(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), ByteRange::Partial(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), ByteRange::Partial(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), ByteRange::Partial(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), ByteRange::Full);
        assert_eq!(parse_range("items=0-1", 100), ByteRange::Full);
        assert_eq!(parse_range("bytes=9-3", 100), ByteRange::Full);
    }

    /// A small deterministic generator for the no-panic sweeps below.
    pub(crate) fn noise(seed: &mut u64, alphabet: &[u8], max: usize) -> String {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let len = (next() as usize) % (max + 1);
        (0..len)
            .map(|_| alphabet[(next() as usize) % alphabet.len()] as char)
            .collect()
    }

    #[test]
    fn parsers_never_panic() {
        let alphabet = b"sha256:0123456789abcdefABCDEF-_./ =,bytes%\xc3";
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            let s = noise(&mut seed, alphabet, 80);
            let _ = valid_name(&s);
            let _ = valid_tag(&s);
            let _ = Digest::parse(&s);
            let _ = valid_upload_id(&s);
            let _ = parse_content_range(&s);
            for size in [0, 1, 100] {
                if let ByteRange::Partial(a, b) = parse_range(&s, size) {
                    assert!(a <= b && b < size, "{s:?} {size}");
                }
            }
        }
    }
}
