//! Image references as the docker CLI reads them (distribution/reference): normalizing
//! `busybox` to `docker.io/library/busybox`, and printing the familiar short form back.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, …
    pub domain: String,
    /// `library/busybox`
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

const DEFAULT_DOMAIN: &str = "docker.io";

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|x| x == '-');
        if !ok || sep.is_empty() {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

fn is_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

/// True for a bare 64-hex image ID (docker's `ParseAnyReference` treats it as an ID).
pub fn is_full_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

impl Reference {
    /// `reference.ParseNormalizedNamed`.
    pub fn parse(s: &str) -> Result<Reference, String> {
        if s.is_empty() {
            return Err("invalid reference format".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder)) if is_domain(first) => {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "invalid reference format: repository name ({path}) must be lowercase"
            ));
        }
        if !path.split('/').all(valid_component)
            || tag.as_deref().is_some_and(|t| !valid_tag(t))
            || digest.as_deref().is_some_and(|d| !valid_digest(d))
            || domain.chars().any(|c| c.is_whitespace() || c == '@')
        {
            return Err("invalid reference format".into());
        }
        if is_full_id(name) {
            return Err(format!(
                "invalid repository name ({name}), cannot specify 64-byte hexadecimal strings"
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `reference.TagNameOnly`: `latest` when neither a tag nor a digest is given.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// The full name without tag or digest: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `reference.FamiliarName`: `busybox`, `user/app`, `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// `reference.FamiliarString`: the familiar name with its tag and digest.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_prints_back() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(
            r.clone().with_default_tag().familiar_string(),
            "busybox:latest"
        );
        let r = Reference::parse("docker.io/library/alpine:3.19").unwrap();
        assert_eq!(r.familiar_string(), "alpine:3.19");
        let r = Reference::parse("localhost:5000/app/x:v1").unwrap();
        assert_eq!(r.domain, "localhost:5000");
        assert_eq!(r.familiar_name(), "localhost:5000/app/x");
        let r = Reference::parse("user/app@sha256:0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.familiar_name(), "user/app");
        assert_eq!(r.tag, None);
    }

    #[test]
    fn rejects_bad_references() {
        assert_eq!(
            Reference::parse("Busybox").unwrap_err(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            Reference::parse("a:b:c").unwrap_err(),
            "invalid reference format"
        );
        assert_eq!(
            Reference::parse("").unwrap_err(),
            "invalid reference format"
        );
        assert!(Reference::parse("bad..name").is_err());
        assert!(is_full_id(
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(!is_full_id("busybox"));
    }
}
