//! Authentication and authorization: htpasswd (bcrypt) users, and Docker's token scheme with
//! HS256-signed JWTs carrying `access` claims (`repository:<name>:pull,push`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// Users from an htpasswd file (`user:$2y$…` bcrypt lines; other hash kinds are refused).
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Credentials already checked, by hash of `user\0password\0stored-hash`, so a client that
    /// sends basic auth on every request pays for bcrypt once.
    verified: Mutex<HashSet<[u8; 32]>>,
}

const VERIFIED_CACHE_MAX: usize = 4096;

impl Htpasswd {
    pub fn load(path: &Path) -> io::Result<Htpasswd> {
        let text = std::fs::read_to_string(path)?;
        Htpasswd::parse(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected user:hash", i + 1));
            };
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(format!(
                    "line {}: user {user}: only bcrypt hashes ($2y$) are supported",
                    i + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Checks a user's password. Slow (bcrypt) the first time for each pair: call it off the
    /// async workers.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            // Spend about the same time as a real check so names cannot be probed by timing.
            let _ = bcrypt::verify(password, dummy_hash());
            return false;
        };
        let key: [u8; 32] = sha2::Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if self.verified.lock().unwrap().contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut v = self.verified.lock().unwrap();
            if v.len() >= VERIFIED_CACHE_MAX {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }

    /// True when the pair was verified before (no bcrypt needed).
    pub fn verified_cached(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key: [u8; 32] = sha2::Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        self.verified.lock().unwrap().contains(&key)
    }
}

/// A real hash to check unknown users against, so they cost as much as known ones.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| bcrypt::hash("berth-registry", 10).unwrap_or_default())
}

/// An htpasswd line for `user` (bcrypt, `$2y$`).
pub fn htpasswd_line(user: &str, password: &str, cost: u32) -> Result<String, String> {
    if user.is_empty() || user.contains(':') {
        return Err("the user name must be non-empty and contain no ':'".into());
    }
    let h = bcrypt::hash_with_result(password, cost).map_err(|e| e.to_string())?;
    Ok(format!(
        "{user}:{}",
        h.format_for_version(bcrypt::Version::TwoY)
    ))
}

/// Splits `Authorization: Basic …` into user and password.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The bearer token of `Authorization: Bearer …`.
pub fn parse_bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

// ---- HS256 JWT ----

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const B: usize = 64;
    let mut k = [0u8; B];
    if key.len() > B {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; B];
    let mut opad = [0x5cu8; B];
    for i in 0..B {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = sha2::Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    sha2::Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One `access` entry of a token: `{"type":"repository","name":"a/b","actions":["pull"]}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessEntry>,
}

impl Claims {
    /// Whether the token grants every action in `actions` on `kind:name`.
    pub fn allows(&self, kind: &str, name: &str, actions: &[&str]) -> bool {
        actions.iter().all(|want| {
            self.access.iter().any(|a| {
                a.kind == kind
                    && a.name == name
                    && a.actions.iter().any(|have| have == want || have == "*")
            })
        })
    }
}

pub fn sign_token(secret: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"));
    let signing_input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(secret, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

/// Checks a token's signature, algorithm, audience and validity period.
pub fn verify_token(
    secret: &[u8],
    token: &str,
    audience: &str,
    now: u64,
) -> Result<Claims, &'static str> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token");
    };
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "malformed signature")?;
    let expected = hmac_sha256(secret, &token.as_bytes()[..h.len() + 1 + p.len()]);
    if !ct_eq(&sig, &expected) {
        return Err("invalid signature");
    }
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| "malformed header")?)
            .map_err(|_| "malformed header")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err("unsupported algorithm");
    }
    let claims: Claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|_| "malformed claims")?)
            .map_err(|_| "malformed claims")?;
    if claims.aud != audience {
        return Err("wrong audience");
    }
    const LEEWAY: u64 = 60;
    if now >= claims.exp + LEEWAY {
        return Err("token expired");
    }
    if claims.nbf > now + LEEWAY {
        return Err("token not yet valid");
    }
    Ok(claims)
}

/// Parses a `scope` parameter (`repository:a/b:pull,push`, `registry:catalog:*`).
pub fn parse_scope(scope: &str) -> Option<AccessEntry> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    // `repository(plugin)` is an old class syntax; the class does not matter here.
    let kind = kind.split('(').next().unwrap_or(kind);
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    let actions = actions
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    Some(AccessEntry {
        kind: kind.to_string(),
        name: name.to_string(),
        actions,
    })
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block size (test case 6).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "u".into(),
            aud: "svc".into(),
            exp,
            nbf: 0,
            iat: 0,
            jti: "j".into(),
            access: vec![parse_scope("repository:a/b:pull").unwrap()],
        }
    }

    #[test]
    fn tokens() {
        let now = now_secs();
        let t = sign_token(b"secret", &claims(now + 100));
        let c = verify_token(b"secret", &t, "svc", now).unwrap();
        assert!(c.allows("repository", "a/b", &["pull"]));
        assert!(!c.allows("repository", "a/b", &["pull", "push"]));
        assert!(!c.allows("repository", "a/c", &["pull"]));
        assert_eq!(
            verify_token(b"other", &t, "svc", now).unwrap_err(),
            "invalid signature"
        );
        assert!(verify_token(b"secret", &t, "other", now).is_err());
        let old = sign_token(b"secret", &claims(now - 1000));
        assert_eq!(
            verify_token(b"secret", &old, "svc", now).unwrap_err(),
            "token expired"
        );
        // alg=none with the signature stripped.
        let mut parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        parts[0] = &none;
        parts[2] = "";
        assert!(verify_token(b"secret", &parts.join("."), "svc", now).is_err());
        assert!(verify_token(b"secret", "garbage", "svc", now).is_err());
    }

    #[test]
    fn scopes() {
        let s = parse_scope("repository:x/y:pull,push").unwrap();
        assert_eq!((s.kind.as_str(), s.name.as_str()), ("repository", "x/y"));
        assert_eq!(s.actions, vec!["pull", "push"]);
        let c = parse_scope("registry:catalog:*").unwrap();
        assert_eq!(c.actions, vec!["*"]);
        assert!(parse_scope("nonsense").is_none());
    }

    #[test]
    fn htpasswd() {
        let line = htpasswd_line("alice", "pw", 4).unwrap();
        assert!(line.starts_with("alice:$2y$04$"), "{line}");
        let h = Htpasswd::parse(&format!("# c\n{line}\n")).unwrap();
        assert!(h.verify("alice", "pw"));
        assert!(h.verified_cached("alice", "pw"));
        assert!(!h.verify("alice", "no"));
        assert!(!h.verify("bob", "pw"));
        assert!(Htpasswd::parse("bob:{SHA}abc").is_err());
        assert_eq!(
            parse_basic("Basic YWxpY2U6cHc6eA=="),
            Some(("alice".into(), "pw:x".into()))
        );
    }

    #[test]
    fn token_and_header_parsers_never_panic() {
        let mut seed = 7u64;
        let good = sign_token(b"k", &claims(now_secs() + 100));
        for _ in 0..10_000 {
            let s = crate::names::tests::noise(
                &mut seed,
                b"eyJhbGciOiJIUzI1NiJ9.-_=+/ :,BasicBearer",
                120,
            );
            let _ = verify_token(b"k", &s, "svc", 0);
            let _ = parse_basic(&s);
            let _ = parse_bearer(&s);
            let _ = parse_scope(&s);
            let mut t = good.clone().into_bytes();
            let i = (seed as usize) % t.len();
            t[i] = b"._-aZ09"[(seed >> 40) as usize % 7];
            if let Ok(t) = String::from_utf8(t)
                && t != good
            {
                assert!(verify_token(b"k", &t, "svc", now_secs()).is_err());
            }
        }
    }
}
