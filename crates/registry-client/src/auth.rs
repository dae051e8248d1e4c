//! Credentials and the registry auth handshake.
//!
//! - [`AuthConfig`]: what docker clients send in `X-Registry-Auth` (base64url JSON) and in
//!   `POST /auth`.
//! - [`Challenge`]: a parsed `WWW-Authenticate` header (`Bearer realm=…,service=…,scope=…` or
//!   `Basic realm=…`).
//! - [`fetch_token`]: the token flow: `GET realm?service=&scope=` (with basic credentials when
//!   known), or `POST realm` with a refresh token (identity token); `token`/`access_token`.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::transport::{agent, url_error};
use crate::{Error, Result};

/// docker's `registry.AuthConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64 `user:password` (config.json style); filled into username/password on decode.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An OAuth refresh token from an earlier login.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl AuthConfig {
    /// Decodes `X-Registry-Auth` (base64url JSON; standard base64 accepted too). Anything
    /// unreadable counts as no credentials, as docker's daemon treats it on pulls.
    pub fn from_header(v: Option<&str>) -> AuthConfig {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
            return AuthConfig::default();
        };
        let engines = [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        for e in engines {
            if let Ok(bytes) = e.decode(v)
                && let Ok(a) = serde_json::from_slice::<AuthConfig>(&bytes)
            {
                return a.normalized();
            }
        }
        // Old clients send the JSON itself.
        serde_json::from_str::<AuthConfig>(v)
            .map(AuthConfig::normalized)
            .unwrap_or_default()
    }

    /// Fills username/password from `auth` when they are empty.
    pub fn normalized(mut self) -> AuthConfig {
        if self.username.is_empty()
            && !self.auth.is_empty()
            && let Ok(b) = base64::engine::general_purpose::STANDARD.decode(self.auth.trim())
            && let Ok(s) = String::from_utf8(b)
            && let Some((u, p)) = s.split_once(':')
        {
            self.username = u.to_string();
            self.password = p.trim_matches('\0').to_string();
        }
        self
    }

    /// Encodes as docker's `X-Registry-Auth` value.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(self).expect("auth config serializes"))
    }

    pub fn has_basic(&self) -> bool {
        !self.username.is_empty() && !self.password.is_empty()
    }

    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// Lowercase scheme: `bearer` or `basic`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses every challenge of a `WWW-Authenticate` value (RFC 7235, quoted strings with
/// escapes; what distribution's `challenge.ResponseChallenges` reads).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let b = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let s = *i;
        while *i < b.len() && !matches!(b[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        header[s..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // `word=` is a parameter of the current challenge; a bare word starts a new one.
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch_len = utf8_len(b[i]);
                    v.push_str(&header[i..(i + ch_len).min(b.len())]);
                    i += ch_len;
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            out.last_mut()
                .expect("checked")
                .params
                .insert(word.to_ascii_lowercase(), value);
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// A bearer token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Token {
    pub token: String,
    pub refresh_token: Option<String>,
    pub expires: std::time::Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// Gets a bearer token for `scopes` from the challenge's realm.
pub fn fetch_token(
    challenge: &Challenge,
    scopes: &[String],
    creds: &AuthConfig,
    verify_tls: bool,
    offline: bool,
) -> Result<Token> {
    let realm = challenge
        .params
        .get("realm")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::registry("no realm specified for token auth challenge"))?;
    let realm_url = url::Url::parse(realm)
        .map_err(|e| Error::registry(format!("invalid token auth challenge realm: {e}")))?;
    if realm_url.scheme() != "http" && realm_url.scheme() != "https" {
        return Err(Error::registry(format!(
            "invalid token auth challenge realm: unsupported scheme {}",
            realm_url.scheme()
        )));
    }
    let service = challenge.params.get("service").cloned().unwrap_or_default();
    crate::transport::check_reachable("GET", realm_url.as_str())?;
    let http = agent(verify_tls);
    let resp = if !creds.identitytoken.is_empty() {
        // OAuth2 refresh-token grant (docker's identity tokens).
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &creds.identitytoken)
            .append_pair("service", &service)
            .append_pair("client_id", "docker")
            .append_pair("scope", &scopes.join(" "));
        let body = form.finish();
        http.post(realm_url.as_str())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.as_bytes())
    } else {
        let mut u = realm_url.clone();
        {
            let mut q = u.query_pairs_mut();
            if !service.is_empty() {
                q.append_pair("service", &service);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
            if creds.has_basic() {
                q.append_pair("account", &creds.username);
            }
            if offline && creds.has_basic() {
                q.append_pair("offline_token", "true")
                    .append_pair("client_id", "docker");
            }
        }
        let mut req = http.get(u.as_str());
        if creds.has_basic() {
            req = req.header("Authorization", creds.basic_header());
        }
        req.call()
    };
    let mut resp = resp.map_err(|e| Error::Transport(url_error("GET", realm, e)))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| Error::registry(url_error("GET", realm, e)))?;
    if status == 401 || status == 403 {
        let msg = crate::client::error_text(status, &body);
        return Err(Error::Unauthorized(msg));
    }
    if !(200..300).contains(&status) {
        return Err(Error::registry(format!(
            "token auth attempt for registry: {realm_url} request failed with status: {status} {}",
            crate::client::status_text(status)
        )));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| Error::registry(format!("unable to decode token response: {e}")))?;
    let token = if !parsed.access_token.is_empty() {
        parsed.access_token
    } else {
        parsed.token
    };
    if token.is_empty() {
        return Err(Error::registry(
            "authorization server did not include a token in the response",
        ));
    }
    if token.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(Error::registry(
            "unable to decode token response: the token holds control characters",
        ));
    }
    let secs = if parsed.expires_in < 60 {
        60
    } else {
        parsed.expires_in
    };
    Ok(Token {
        token,
        refresh_token: (!parsed.refresh_token.is_empty()).then_some(parsed.refresh_token),
        // Renew a little early.
        expires: std::time::Instant::now()
            + std::time::Duration::from_secs(secs.saturating_sub(10)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_like_distribution() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:library/busybox:pull");
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        let c = parse_challenges(r#"Basic realm="a\"b", Bearer realm=x,error=invalid_token"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].params["realm"], "a\"b");
        assert_eq!(c[1].params["realm"], "x");
        assert_eq!(c[1].params["error"], "invalid_token");
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn auth_header_round_trip() {
        let a = AuthConfig {
            username: "u".into(),
            password: "p?>".into(),
            serveraddress: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        let h = a.to_header();
        assert!(!h.contains('+') && !h.contains('/'));
        assert_eq!(AuthConfig::from_header(Some(&h)), a);
        assert_eq!(AuthConfig::from_header(Some("e30=")), AuthConfig::default());
        assert_eq!(AuthConfig::from_header(Some("%%%")), AuthConfig::default());
        let with_auth = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("x:y"),
            ..Default::default()
        };
        let d = AuthConfig::from_header(Some(&with_auth.to_header()));
        assert_eq!((d.username.as_str(), d.password.as_str()), ("x", "y"));
        assert!(d.has_basic());
        assert_eq!(d.basic_header(), "Basic eDp5");
    }
}
