//! Docker image references (`[domain/]path[:tag][@digest]`), parsed and normalized the way
//! github.com/distribution/reference does, with docker's error messages.
//!
//! The grammar is checked by hand instead of with regular expressions; each helper below
//! names the production it stands for.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's historical domain, folded into [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag added to name-only references.
pub const DEFAULT_TAG: &str = "latest";
/// Longest allowed repository path (the name without its domain).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a string is not a reference; messages are distribution/reference's and moby's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid tag format")]
    InvalidTag,
    #[error("repository name must be lowercase")]
    ContainsUppercase,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    NameNotLowercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexRepositoryName(String),
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("repository name must be canonical")]
    NameNotCanonical,
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("cannot import digest reference")]
    DigestReference,
    #[error("refusing to create a tag with a digest reference")]
    TagWithDigest,
    #[error("refusing to create an ambiguous tag using digest algorithm as name")]
    AmbiguousTagName,
}

/// A named reference. `domain` is empty only for references from [`Reference::parse`] whose
/// name has no domain part; normalized references always have one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// `reference.Parse`: the syntax check without any normalization (`busybox` keeps an
    /// empty domain, `foo/bar` has domain `foo`).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        let Some(parts) = split_reference(s) else {
            let lower = s.to_lowercase();
            if lower != s && split_reference(&lower).is_some() {
                return Err(ReferenceError::ContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        if parts.path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let digest = parts.digest.map(Digest::parse).transpose()?;
        Ok(Reference {
            domain: parts.domain.to_owned(),
            path: parts.path.to_owned(),
            tag: parts.tag.map(str::to_owned),
            digest,
        })
    }

    /// `reference.ParseNormalizedNamed`: what docker does with a name typed by a user
    /// (`busybox` → `docker.io/library/busybox`).
    pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
        if is_identifier(s) {
            return Err(ReferenceError::HexRepositoryName(s.to_owned()));
        }
        let (domain, remainder) = split_docker_domain(s);
        // The lowercase check covers what precedes the first colon, as docker's does.
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::NameNotLowercase(remote.to_owned()));
        }
        Reference::parse(&format!("{domain}/{remainder}"))
    }

    /// `reference.ParseNamed`: like [`Reference::parse_normalized`] but the input must
    /// already be in canonical (fully qualified) form.
    pub fn parse_named(s: &str) -> Result<Reference, ReferenceError> {
        let named = Reference::parse_normalized(s)?;
        if named.to_string() != s {
            return Err(ReferenceError::NameNotCanonical);
        }
        Ok(named)
    }

    /// `reference.WithName`: a name with neither tag nor digest, not normalized.
    pub fn with_name(name: &str) -> Result<Reference, ReferenceError> {
        let Some((domain, path)) = split_name(name) else {
            return Err(ReferenceError::InvalidFormat);
        };
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Reference {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag: None,
            digest: None,
        })
    }

    /// Registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        join_name(&self.domain, &self.path)
    }

    /// The name as docker shows it, e.g. `busybox`, `user/x`, `host:5000/a/b`.
    pub fn familiar_name(&self) -> String {
        let (domain, path) = self.familiar_parts();
        join_name(domain, path)
    }

    /// The reference as docker shows it, e.g. `busybox:latest` or `busybox@sha256:…`.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    fn familiar_parts(&self) -> (&str, &str) {
        if self.domain != DEFAULT_DOMAIN {
            return (&self.domain, &self.path);
        }
        // Only a single-component official name loses its "library/" prefix.
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => ("", rest),
            _ => ("", &self.path),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
    }

    /// True when the reference has neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// `reference.TagNameOnly`: adds `latest` when there is neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.is_name_only() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// `reference.ParseDockerRef`'s second half: a tag+digest reference keeps only its
    /// digest; a name-only reference gets `latest`.
    pub fn into_docker_ref(mut self) -> Reference {
        if self.tag.is_some() && self.digest.is_some() {
            self.tag = None;
            return self;
        }
        self.with_default_tag()
    }

    /// `reference.WithTag`: replaces the tag (keeping any digest) after validating it.
    pub fn with_tag(mut self, tag: &str) -> Result<Reference, ReferenceError> {
        self.tag = Some(parse_tag(tag)?.to_owned());
        Ok(self)
    }

    /// `reference.WithDigest`: replaces the digest, keeping any tag.
    pub fn with_digest(mut self, digest: Digest) -> Reference {
        self.digest = Some(digest);
        self
    }

    /// `reference.TrimNamed`: the bare name.
    pub fn without_tag_or_digest(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    /// Same as [`Reference::parse_normalized`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse_normalized(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Reference::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

/// What `reference.ParseAnyReference` returns: an image ID/digest or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReference {
    Digest(Digest),
    Named(Reference),
}

impl AnyReference {
    /// A 64-hex string or a valid digest is a digest; anything else must be a name.
    pub fn parse(s: &str) -> Result<AnyReference, ReferenceError> {
        if is_identifier(s) {
            return Ok(AnyReference::Digest(Digest::from_sha256_hex(s)?));
        }
        if let Ok(digest) = Digest::parse(s) {
            return Ok(AnyReference::Digest(digest));
        }
        Reference::parse_normalized(s).map(AnyReference::Named)
    }
}

/// Validates a tag (`[\w][\w.-]{0,127}`), returning it unchanged.
pub fn parse_tag(tag: &str) -> Result<&str, ReferenceError> {
    if is_tag(tag) {
        Ok(tag)
    } else {
        Err(ReferenceError::InvalidTag)
    }
}

/// The daemon's `POST /images/{name}/tag?repo=&tag=` parameters, as moby's
/// `httputils.RepoTagReference` reads them: `Ok(None)` for an empty `repo` (docker then
/// answers success and does nothing), the default tag when `tag` is empty, and the checks
/// the reference store applies before recording a tag.
pub fn repo_tag_reference(repo: &str, tag: &str) -> Result<Option<Reference>, ReferenceError> {
    if repo.is_empty() {
        return Ok(None);
    }
    let named = Reference::parse_normalized(repo)?;
    if named.digest.is_some() {
        return Err(ReferenceError::DigestReference);
    }
    let tagged = if tag.is_empty() {
        named.with_default_tag()
    } else {
        named.with_tag(tag)?
    };
    check_new_tag(&tagged)?;
    Ok(Some(tagged))
}

/// The reference store's refusals when adding a tag: no digest references, and no
/// repository called `sha256` (it would read as an image ID).
pub fn check_new_tag(reference: &Reference) -> Result<(), ReferenceError> {
    if reference.digest.is_some() {
        return Err(ReferenceError::TagWithDigest);
    }
    if reference.familiar_name() == "sha256" {
        return Err(ReferenceError::AmbiguousTagName);
    }
    Ok(())
}

/// A full image ID: 64 lowercase hex characters, with or without `sha256:`.
pub fn is_full_id(s: &str) -> bool {
    is_identifier(s.strip_prefix("sha256:").unwrap_or(s))
}

/// Something that may name an image by (a prefix of) its ID: 1 to 64 lowercase hex
/// characters, optionally after `sha256:`. The store tries ID lookup for these before,
/// or instead of, name lookup.
pub fn looks_like_id_prefix(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (1..=64).contains(&hex.len()) && is_lower_hex(hex)
}

// ---- grammar -------------------------------------------------------------------------

struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// `name [":" tag] ["@" digest]`. Neither name nor tag may contain `@`, and a tag has no
/// `/`, so the first `@` starts the digest and a last `:` not followed by `/` starts the
/// tag (a colon in the domain is always followed by the path's `/`).
fn split_reference(s: &str) -> Option<Parts<'_>> {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_digest_syntax(d)) {
        return None;
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) {
        return None;
    }
    let (domain, path) = split_name(name)?;
    Some(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// `[domain "/"] remote-name`. The domain, when present, is the whole first component:
/// it is taken whenever it parses as one and the rest is a valid remote name.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some((first, rest)) = name.split_once('/')
        && is_domain_and_port(first)
        && is_remote_name(rest)
    {
        return Some((first, rest));
    }
    is_remote_name(name).then_some(("", name))
}

/// `path-component ("/" path-component)*`
fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `[._] | __ | -+`.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host [":" port]` with host a domain name or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return false;
        };
        let addr = &inner[..close];
        if addr.is_empty() || !addr.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        (None, &inner[close + 1..])
    } else {
        match s.find(':') {
            Some(i) => (Some(&s[..i]), &s[i..]),
            None => (Some(s), ""),
        }
    };
    if let Some(host) = host
        && !host.split('.').all(is_domain_component)
    {
        return false;
    }
    match port.strip_prefix(':') {
        Some(digits) => !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()),
        None => port.is_empty(),
    }
}

/// `[a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

/// `[\w][\w.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = s.as_bytes();
    (1..=128).contains(&b.len())
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// The reference grammar's digest: `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*`
/// `":"` 32 or more hex digits. go-digest validates it further afterwards.
fn is_digest_syntax(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(component_ok)
        && hex.len() >= 32
        && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

/// `[a-f0-9]{64}`: an image ID without its algorithm.
fn is_identifier(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `splitDockerDomain`: decides whether the first component is a registry and fills in
/// Docker Hub's domain and `library/` namespace.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((first, rest)) = name.split_once('/') else {
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    let (domain, remote) = if first == "localhost" {
        (first, rest)
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        // Looks like a host name, an address or a port; namespaces are never uppercase.
        (first, rest)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        return (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"));
    }
    (domain, remote.to_owned())
}

fn join_name(domain: &str, path: &str) -> String {
    if domain.is_empty() {
        path.to_owned()
    } else {
        format!("{domain}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FF64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const REDIS_HEX: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

    /// Expected name, domain, tag and digest ("" = absent), or the expected error.
    type Want = Result<(String, &'static str, &'static str, String), ReferenceError>;

    fn ok(name: &str, domain: &'static str, tag: &'static str, digest: &str) -> Want {
        Ok((name.to_owned(), domain, tag, digest.to_owned()))
    }

    /// reference_test.go's TestReferenceParse table.
    fn rows() -> Vec<(String, Want)> {
        use ReferenceError::*;
        let sha = format!("sha256:{FF64}");
        let sha512 = format!("sha512:{FF64}{FF64}");
        let long_ok = format!("{}a", "a/".repeat(127));
        vec![
            ("test_com".into(), ok("test_com", "", "", "")),
            ("test.com:tag".into(), ok("test.com", "", "tag", "")),
            ("test.com:5000".into(), ok("test.com", "", "5000", "")),
            (
                "test.com/repo:tag".into(),
                ok("test.com/repo", "test.com", "tag", ""),
            ),
            (
                "test:5000/repo".into(),
                ok("test:5000/repo", "test:5000", "", ""),
            ),
            (
                "test:5000/repo:tag".into(),
                ok("test:5000/repo", "test:5000", "tag", ""),
            ),
            (
                format!("test:5000/repo@{sha}"),
                ok("test:5000/repo", "test:5000", "", &sha),
            ),
            (
                format!("test:5000/repo:tag@{sha}"),
                ok("test:5000/repo", "test:5000", "tag", &sha),
            ),
            ("".into(), Err(NameEmpty)),
            (":justtag".into(), Err(InvalidFormat)),
            (format!("@{sha}"), Err(InvalidFormat)),
            (
                "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
                Err(Digest(DigestError::InvalidLength)),
            ),
            (
                format!("validname@invaliddigest:{FF64}"),
                Err(Digest(DigestError::Unsupported)),
            ),
            ("Uppercase:tag".into(), Err(ContainsUppercase)),
            (
                "test:5000/Uppercase/lowercase:tag".into(),
                Err(ContainsUppercase),
            ),
            (
                "lowercase:Uppercase".into(),
                ok("lowercase", "", "Uppercase", ""),
            ),
            (format!("domain/{}:tag", "a".repeat(256)), Err(NameTooLong)),
            (
                format!("{long_ok}:tag-puts-this-over-max"),
                ok(&long_ok, "a", "tag-puts-this-over-max", ""),
            ),
            ("aa/asdf$$^/aa".into(), Err(InvalidFormat)),
            (
                "sub-dom1.foo.com/bar/baz/quux".into(),
                ok("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "", ""),
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
                ok(
                    "sub-dom1.foo.com/bar/baz/quux",
                    "sub-dom1.foo.com",
                    "some-long-tag",
                    "",
                ),
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com".into(),
                ok(
                    "b.gcr.io/test.example.com/my-app",
                    "b.gcr.io",
                    "test.example.com",
                    "",
                ),
            ),
            (
                "xn--n3h.com/myimage:xn--n3h.com".into(),
                ok("xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", ""),
            ),
            (
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"),
                ok(
                    "xn--7o8h.com/myimage",
                    "xn--7o8h.com",
                    "xn--7o8h.com",
                    &sha512,
                ),
            ),
            ("foo_bar.com:8080".into(), ok("foo_bar.com", "", "8080", "")),
            (
                "foo/foo_bar.com:8080".into(),
                ok("foo/foo_bar.com", "foo", "8080", ""),
            ),
            ("192.168.1.1".into(), ok("192.168.1.1", "", "", "")),
            ("192.168.1.1:tag".into(), ok("192.168.1.1", "", "tag", "")),
            ("192.168.1.1:5000".into(), ok("192.168.1.1", "", "5000", "")),
            (
                "192.168.1.1/repo".into(),
                ok("192.168.1.1/repo", "192.168.1.1", "", ""),
            ),
            (
                "192.168.1.1:5000/repo".into(),
                ok("192.168.1.1:5000/repo", "192.168.1.1:5000", "", ""),
            ),
            (
                "192.168.1.1:5000/repo:5050".into(),
                ok("192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", ""),
            ),
            ("[2001:db8::1]".into(), Err(InvalidFormat)),
            ("[2001:db8::1]:5000".into(), Err(InvalidFormat)),
            ("[2001:db8::1]:tag".into(), Err(InvalidFormat)),
            (
                "[2001:db8::1]/repo".into(),
                ok("[2001:db8::1]/repo", "[2001:db8::1]", "", ""),
            ),
            (
                "[2001:db8:1:2:3:4:5:6]/repo:tag".into(),
                ok(
                    "[2001:db8:1:2:3:4:5:6]/repo",
                    "[2001:db8:1:2:3:4:5:6]",
                    "tag",
                    "",
                ),
            ),
            (
                "[2001:db8::1]:5000/repo".into(),
                ok("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", ""),
            ),
            (
                "[2001:db8::1]:5000/repo:tag".into(),
                ok("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", ""),
            ),
            (
                format!("[2001:db8::1]:5000/repo@{sha}"),
                ok("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", &sha),
            ),
            (
                format!("[2001:db8::1]:5000/repo:tag@{sha}"),
                ok("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", &sha),
            ),
            (
                "[2001:db8::]:5000/repo".into(),
                ok("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "", ""),
            ),
            (
                "[::1]:5000/repo".into(),
                ok("[::1]:5000/repo", "[::1]:5000", "", ""),
            ),
            ("[fe80::1%eth0]:5000/repo".into(), Err(InvalidFormat)),
            (
                "[fe80::1%@invalidzone]:5000/repo".into(),
                Err(InvalidFormat),
            ),
            (
                format!("example.com/{}:tag", "a".repeat(255)),
                ok(
                    &format!("example.com/{}", "a".repeat(255)),
                    "example.com",
                    "tag",
                    "",
                ),
            ),
        ]
    }

    #[test]
    fn parse_table_from_reference_test() {
        for (input, want) in rows() {
            let got = Reference::parse(&input);
            match want {
                Err(e) => assert_eq!(got, Err(e), "input {input:?}"),
                Ok((name, domain, tag, digest)) => {
                    let r = got.unwrap_or_else(|e| panic!("{input:?}: {e}"));
                    assert_eq!(r.to_string(), input, "round trip");
                    assert_eq!(r.name(), name, "name of {input:?}");
                    assert_eq!(r.domain(), domain, "domain of {input:?}");
                    assert_eq!(r.tag().unwrap_or(""), tag, "tag of {input:?}");
                    let d = r.digest().map(|d| d.to_string()).unwrap_or_default();
                    assert_eq!(d, digest, "digest of {input:?}");
                }
            }
        }
    }

    #[test]
    fn with_name_failures_and_domain_split() {
        for bad in [
            "",
            ":justtag",
            "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "example.com/repo:tag",
            "aa/asdf$$^/aa",
        ] {
            assert_eq!(
                Reference::with_name(bad),
                Err(ReferenceError::InvalidFormat),
                "{bad:?}"
            );
        }
        assert_eq!(
            Reference::with_name(&format!("example.com/{}", "a".repeat(256))),
            Err(ReferenceError::NameTooLong)
        );
        for (input, domain, path) in [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "", "test_com/foo"),
            ("test:8080/foo", "test:8080", "foo"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ] {
            let r = Reference::with_name(input).unwrap();
            assert_eq!((r.domain(), r.path()), (domain, path), "{input}");
        }
    }

    #[test]
    fn with_tag_and_digest() {
        let r = Reference::with_name("test.com:8000/foo").unwrap();
        assert_eq!(
            r.clone().with_tag("TAG5").unwrap().to_string(),
            "test.com:8000/foo:TAG5"
        );
        let d = Digest::sha256_of(b"x");
        let both = r.clone().with_digest(d.clone()).with_tag("t").unwrap();
        assert_eq!(both.to_string(), format!("test.com:8000/foo:t@{d}"));
        assert_eq!(
            r.clone()
                .with_tag("t")
                .unwrap()
                .with_digest(d.clone())
                .to_string(),
            format!("test.com:8000/foo:t@{d}")
        );
        assert_eq!(
            both.without_tag_or_digest().to_string(),
            "test.com:8000/foo"
        );
        assert_eq!(
            Reference::parse_normalized("busybox")
                .unwrap()
                .with_tag("-foo"),
            Err(ReferenceError::InvalidTag)
        );
        assert!(Reference::parse_normalized("-foo").is_err());
    }

    #[test]
    fn normalized_valid_and_invalid_names() {
        let valid = [
            "docker/docker",
            "library/debian",
            "debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ];
        for name in valid {
            if let Err(e) = Reference::parse_normalized(name) {
                panic!("{name:?} should be valid: {e}");
            }
        }
        let invalid = [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
        ];
        for name in invalid {
            assert!(
                Reference::parse_normalized(name).is_err(),
                "{name:?} should be invalid"
            );
        }
    }

    #[test]
    fn repository_info_table() {
        // (remote name, familiar name, full name, ambiguous name, domain)
        let rows = [
            (
                "fooo/bar",
                "fooo/bar",
                "docker.io/fooo/bar",
                "index.docker.io/fooo/bar",
                "docker.io",
            ),
            (
                "library/ubuntu",
                "ubuntu",
                "docker.io/library/ubuntu",
                "library/ubuntu",
                "docker.io",
            ),
            (
                "nonlibrary/ubuntu",
                "nonlibrary/ubuntu",
                "docker.io/nonlibrary/ubuntu",
                "",
                "docker.io",
            ),
            (
                "other/library",
                "other/library",
                "docker.io/other/library",
                "",
                "docker.io",
            ),
            (
                "private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "privatebase",
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000/privatebase",
                "",
                "127.0.0.1:8000",
            ),
            (
                "private/moonbase",
                "example.com/private/moonbase",
                "example.com/private/moonbase",
                "",
                "example.com",
            ),
            (
                "privatebase",
                "example.com/privatebase",
                "example.com/privatebase",
                "",
                "example.com",
            ),
            (
                "private/moonbase",
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
                "",
                "example.com:8000",
            ),
            (
                "privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "",
                "example.com:8000",
            ),
            (
                "library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
            ),
            (
                "library/foo",
                "foo",
                "docker.io/library/foo",
                "docker.io/foo",
                "docker.io",
            ),
            (
                "library/foo/bar",
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "",
                "docker.io",
            ),
            (
                "store/foo/bar",
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "",
                "docker.io",
            ),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
        ];
        for (remote, familiar, full, ambiguous, domain) in rows {
            for input in [familiar, full, ambiguous] {
                if input.is_empty() {
                    continue;
                }
                let r =
                    Reference::parse_normalized(input).unwrap_or_else(|e| panic!("{input}: {e}"));
                assert_eq!(r.familiar_name(), familiar, "familiar name of {input}");
                assert_eq!(r.to_string(), full, "full name of {input}");
                assert_eq!(r.domain(), domain, "domain of {input}");
                assert_eq!(r.path(), remote, "path of {input}");
            }
        }
    }

    #[test]
    fn normalized_split_hostname() {
        for (input, domain, path) in [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
            ("localhost/x", "localhost", "x"),
            ("localhost:5000/a/b", "localhost:5000", "a/b"),
        ] {
            let r = Reference::parse_normalized(input).unwrap();
            assert_eq!((r.domain(), r.path()), (domain, path), "{input}");
        }
    }

    #[test]
    fn tag_and_digest_together() {
        let short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
        let r = Reference::parse_normalized(short).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
        assert_eq!(r.tag(), Some("latest"));
        assert!(r.digest().is_some());
        assert_eq!(r.familiar_string(), short);
        let docker_ref = r.into_docker_ref();
        assert_eq!(docker_ref.tag(), None);
        assert_eq!(
            docker_ref.familiar_string(),
            "busybox@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
        );
    }

    #[test]
    fn parse_any_reference() {
        let named = |s: &str, full: &str| match AnyReference::parse(s).unwrap() {
            AnyReference::Named(r) => assert_eq!(r.to_string(), full, "{s}"),
            other => panic!("{s}: {other:?}"),
        };
        named("redis", "docker.io/library/redis");
        named("redis:latest", "docker.io/library/redis:latest");
        named(
            "docker.io/library/redis:latest",
            "docker.io/library/redis:latest",
        );
        named(
            &format!("redis@sha256:{REDIS_HEX}"),
            &format!("docker.io/library/redis@sha256:{REDIS_HEX}"),
        );
        named("dmcgowan/myapp", "docker.io/dmcgowan/myapp");
        named("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest");
        named(
            &format!("dmcgowan/myapp@sha256:{REDIS_HEX}"),
            &format!("docker.io/dmcgowan/myapp@sha256:{REDIS_HEX}"),
        );
        named(
            &REDIS_HEX[..63],
            &format!("docker.io/library/{}", &REDIS_HEX[..63]),
        );
        named("dbcc1", "docker.io/library/dbcc1");
        for s in [REDIS_HEX.to_owned(), format!("sha256:{REDIS_HEX}")] {
            match AnyReference::parse(&s).unwrap() {
                AnyReference::Digest(d) => assert_eq!(d.to_string(), format!("sha256:{REDIS_HEX}")),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn docker_error_messages() {
        let msg = |s: &str| Reference::parse_normalized(s).unwrap_err().to_string();
        assert_eq!(
            msg("BUSYBOX"),
            "invalid reference format: repository name (library/BUSYBOX) must be lowercase"
        );
        assert_eq!(
            msg("UPPER/Case"),
            "invalid reference format: repository name (Case) must be lowercase"
        );
        assert_eq!(
            msg("user/Name:tag"),
            "invalid reference format: repository name (user/Name) must be lowercase"
        );
        assert_eq!(
            msg(REDIS_HEX),
            format!(
                "invalid repository name ({REDIS_HEX}), cannot specify 64-byte hexadecimal strings"
            )
        );
        assert_eq!(
            msg(&format!("{}/x", "a".repeat(255))),
            "repository name must not be more than 255 characters"
        );
        assert_eq!(msg("a b"), "invalid reference format");
        assert_eq!(msg(""), "invalid reference format");
        assert_eq!(msg("busybox:"), "invalid reference format");
        assert_eq!(
            msg(&format!("busybox@sha256:{}", &FF64[..40])),
            "invalid checksum digest length"
        );
        assert_eq!(
            msg(&format!("busybox@sha256:{}", FF64.to_uppercase())),
            "invalid checksum digest format"
        );
        assert_eq!(
            Reference::parse("").unwrap_err().to_string(),
            "repository name must have at least one component"
        );
    }

    #[test]
    fn familiar_and_full_forms() {
        // (input, full name, familiar name, familiar string after TagNameOnly)
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox",
                "busybox",
                "busybox:latest",
            ),
            ("user/x", "docker.io/user/x", "user/x", "user/x:latest"),
            (
                "host:5000/a/b:t",
                "host:5000/a/b",
                "host:5000/a/b",
                "host:5000/a/b:t",
            ),
            (
                "index.docker.io/library/alpine:3",
                "docker.io/library/alpine",
                "alpine",
                "alpine:3",
            ),
            (
                "localhost/x",
                "localhost/x",
                "localhost/x",
                "localhost/x:latest",
            ),
        ];
        for (input, full_name, familiar_name, familiar_tagged) in cases {
            let r = Reference::parse_normalized(input)
                .unwrap()
                .with_default_tag();
            assert_eq!(r.name(), full_name, "{input}");
            assert_eq!(r.familiar_name(), familiar_name, "{input}");
            assert_eq!(r.familiar_string(), familiar_tagged, "{input}");
        }
        let r = Reference::parse_normalized("busybox")
            .unwrap()
            .with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let d = format!("busybox@sha256:{REDIS_HEX}");
        let r = Reference::parse_normalized(&d).unwrap().with_default_tag();
        assert_eq!(r.tag(), None, "a digest reference gets no default tag");
        assert_eq!(r.familiar_string(), d);
        assert_eq!(
            "alpine".parse::<Reference>().unwrap().name(),
            "docker.io/library/alpine"
        );
    }

    #[test]
    fn parse_named_requires_canonical_form() {
        assert!(Reference::parse_named("docker.io/library/busybox:latest").is_ok());
        for (input, domain, path) in [
            ("test.com/foo", "test.com", "foo"),
            ("test:8080/foo", "test:8080", "foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
        ] {
            let r = Reference::parse_named(input).unwrap();
            assert_eq!((r.domain(), r.path()), (domain, path));
        }
        for input in [
            "test_com/foo",
            "test.com",
            "foo",
            "library/foo",
            "docker.io/foo",
        ] {
            assert_eq!(
                Reference::parse_named(input),
                Err(ReferenceError::NameNotCanonical),
                "{input}"
            );
        }
    }

    #[test]
    fn serde_round_trip() {
        let r = Reference::parse_normalized("busybox:1").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/library/busybox:1\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }

    #[test]
    fn tags() {
        assert_eq!(parse_tag("latest"), Ok("latest"));
        assert_eq!(parse_tag("_x.Y-1"), Ok("_x.Y-1"));
        assert!(parse_tag(&"a".repeat(128)).is_ok());
        for bad in [
            "",
            "-foo",
            ".x",
            &"a".repeat(129),
            "a:b",
            "a/b",
            "%goodbye",
            "#hashtagit",
            "F)xcz(",
            "..",
        ] {
            assert_eq!(parse_tag(bad), Err(ReferenceError::InvalidTag), "{bad:?}");
        }
        assert_eq!(ReferenceError::InvalidTag.to_string(), "invalid tag format");
    }

    #[test]
    fn daemon_tag_request() {
        let r = repo_tag_reference("myrepo", "").unwrap().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/myrepo:latest");
        let r = repo_tag_reference("localhost:5000/x:old", "new")
            .unwrap()
            .unwrap();
        assert_eq!(r.familiar_string(), "localhost:5000/x:new");
        assert_eq!(repo_tag_reference("", "x"), Ok(None));
        assert_eq!(
            repo_tag_reference("a", "-bad"),
            Err(ReferenceError::InvalidTag)
        );
        assert_eq!(
            repo_tag_reference(&format!("a@sha256:{REDIS_HEX}"), "")
                .unwrap_err()
                .to_string(),
            "cannot import digest reference"
        );
        assert_eq!(
            repo_tag_reference("sha256", "sometag")
                .unwrap_err()
                .to_string(),
            "refusing to create an ambiguous tag using digest algorithm as name"
        );
        // "sha256:sometag" as repo parses as name sha256 with tag sometag.
        assert_eq!(
            repo_tag_reference("sha256:sometag", ""),
            Err(ReferenceError::AmbiguousTagName)
        );
        assert!(repo_tag_reference("HOSTNAME.DOMAIN.COM:443/foo/bar", "").is_ok());
        assert!(matches!(
            repo_tag_reference("-busybox:test", ""),
            Err(ReferenceError::InvalidFormat)
        ));
    }

    #[test]
    fn id_helpers() {
        assert!(is_full_id(REDIS_HEX));
        assert!(is_full_id(&format!("sha256:{REDIS_HEX}")));
        assert!(!is_full_id(&REDIS_HEX[..63]));
        assert!(!is_full_id(&REDIS_HEX.to_uppercase()));
        assert!(!is_full_id(&format!("sha512:{REDIS_HEX}")));
        assert!(looks_like_id_prefix("d"));
        assert!(looks_like_id_prefix("dbcc1c35ac38"));
        assert!(looks_like_id_prefix("sha256:dbcc1c"));
        assert!(looks_like_id_prefix(REDIS_HEX));
        assert!(!looks_like_id_prefix(""));
        assert!(!looks_like_id_prefix("sha256:"));
        assert!(!looks_like_id_prefix("busybox"));
        assert!(!looks_like_id_prefix("DBCC"));
        assert!(!looks_like_id_prefix(&format!("{REDIS_HEX}0")));
    }
}
