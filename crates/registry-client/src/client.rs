//! One repository on one registry endpoint: the `/v2/` ping that learns how the registry
//! authenticates, requests carrying the right `Authorization` (token per scope, cached, renewed
//! once on a 401), and registry errors turned into docker's wording.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use ureq::http::{self, Response};

use crate::auth::{AuthConfig, Challenge, Token, fetch_token, parse_challenges};
use crate::config::{DOCKER_HUB_REGISTRY, RegistryConfig};
use crate::transport::{agent, url_error};
use crate::{Error, Result};

/// Where a registry is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub base: String,
    pub verify_tls: bool,
    /// A pull-through mirror of Docker Hub (failures fall back to the next endpoint).
    pub mirror: bool,
}

/// The endpoints to try for `domain`, in docker's order: mirrors (pulls of Docker Hub only),
/// then HTTPS; for insecure registries HTTPS without verification, then plain HTTP.
pub fn endpoints(cfg: &RegistryConfig, domain: &str, pull: bool) -> Vec<Endpoint> {
    let mut out = Vec::new();
    if domain == "docker.io" || domain == "index.docker.io" {
        if pull {
            for m in &cfg.mirrors {
                let insecure =
                    m.starts_with("http://") || cfg.is_insecure(m.split("://").nth(1).unwrap_or(m));
                out.push(Endpoint {
                    base: m.trim_end_matches('/').to_string(),
                    verify_tls: !insecure,
                    mirror: true,
                });
            }
        }
        out.push(Endpoint {
            base: format!("https://{DOCKER_HUB_REGISTRY}"),
            verify_tls: true,
            mirror: false,
        });
        return out;
    }
    if cfg.is_insecure(domain) {
        // Remember which scheme answered last time, to skip a failing TLS handshake.
        let known = scheme_cache().lock().unwrap().get(domain).cloned();
        let mut both = vec![
            Endpoint {
                base: format!("https://{domain}"),
                verify_tls: false,
                mirror: false,
            },
            Endpoint {
                base: format!("http://{domain}"),
                verify_tls: false,
                mirror: false,
            },
        ];
        if known.as_deref().is_some_and(|b| b.starts_with("http://")) {
            both.reverse();
        }
        out.extend(both);
    } else {
        out.push(Endpoint {
            base: format!("https://{domain}"),
            verify_tls: true,
            mirror: false,
        });
    }
    out
}

fn scheme_cache() -> &'static Mutex<HashMap<String, String>> {
    static C: std::sync::OnceLock<Mutex<HashMap<String, String>>> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

/// A request body.
pub enum ReqBody<'a> {
    None,
    Bytes(&'a [u8]),
    /// Streamed; `Some(len)` is sent as Content-Length, else chunked. Cannot be replayed.
    Reader(&'a mut dyn Read, Option<u64>),
}

impl ReqBody<'_> {
    fn replayable(&self) -> bool {
        !matches!(self, ReqBody::Reader(..))
    }
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
    refresh_token: Option<String>,
}

/// A repository on a registry endpoint, with its credentials and auth state.
pub struct Repo {
    pub ep: Endpoint,
    /// Registry host as named in references (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub path: String,
    creds: AuthConfig,
    actions: String,
    state: Mutex<AuthState>,
}

impl Repo {
    pub fn new(ep: Endpoint, domain: &str, path: &str, creds: AuthConfig, push: bool) -> Repo {
        Repo {
            ep,
            domain: domain.to_string(),
            path: path.to_string(),
            creds,
            actions: if push { "pull,push" } else { "pull" }.to_string(),
            state: Mutex::default(),
        }
    }

    /// Tries `endpoints` in order; the first that speaks HTTP (any status) is used.
    pub fn connect(
        endpoints: &[Endpoint],
        domain: &str,
        path: &str,
        creds: &AuthConfig,
        push: bool,
    ) -> Result<Repo> {
        let mut last = None;
        for ep in endpoints {
            let r = Repo::new(ep.clone(), domain, path, creds.clone(), push);
            match r.ping() {
                Ok(()) => return Ok(r),
                Err(e @ Error::Transport(_)) => {
                    tracing::debug!("registry endpoint {} failed: {e}", ep.base);
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::registry(format!("no endpoints found for {domain}"))))
    }

    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.ep.base, self.path)
    }

    /// `GET /v2/`: learns the auth challenge (if any). Only a failure to talk HTTP is an error.
    pub fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.ep.base);
        crate::transport::check_reachable("GET", &url)?;
        let resp = agent(self.ep.verify_tls)
            .get(&url)
            .call()
            .map_err(|e| Error::Transport(url_error("GET", &url, e)))?;
        scheme_cache()
            .lock()
            .unwrap()
            .insert(self.domain.clone(), self.ep.base.clone());
        if resp.status().as_u16() == 401 {
            let challenge = pick_challenge(&resp);
            self.state.lock().unwrap().challenge = challenge;
        }
        Ok(())
    }

    /// The challenge learnt by [`Repo::ping`].
    pub fn challenge(&self) -> Option<Challenge> {
        self.state.lock().unwrap().challenge.clone()
    }

    pub fn refresh_token(&self) -> Option<String> {
        self.state.lock().unwrap().refresh_token.clone()
    }

    pub fn scope(&self) -> String {
        format!("repository:{}:{}", self.path, self.actions)
    }

    /// The `Authorization` value for a request needing `scopes`.
    pub fn authorization(&self, scopes: &[String], renew: bool) -> Result<Option<String>> {
        if !self.creds.registrytoken.is_empty() {
            return Ok(Some(format!("Bearer {}", self.creds.registrytoken)));
        }
        let st = self.state.lock().unwrap();
        let Some(ch) = st.challenge.clone() else {
            return Ok(None);
        };
        match ch.scheme.as_str() {
            "basic" => {
                if self.creds.has_basic() {
                    Ok(Some(self.creds.basic_header()))
                } else {
                    Err(Error::Unauthorized("no basic auth credentials".into()))
                }
            }
            "bearer" => {
                let key = scopes.join(" ");
                if !renew
                    && let Some(t) = st.tokens.get(&key)
                    && t.expires > std::time::Instant::now()
                {
                    return Ok(Some(format!("Bearer {}", t.token)));
                }
                drop(st);
                let t = fetch_token(&ch, scopes, &self.creds, self.ep.verify_tls, false)?;
                let header = format!("Bearer {}", t.token);
                let mut st = self.state.lock().unwrap();
                if let Some(r) = &t.refresh_token {
                    st.refresh_token = Some(r.clone());
                }
                st.tokens.insert(key, t);
                Ok(Some(header))
            }
            _ => Ok(None),
        }
    }

    /// Sends a request for this repository (scope `repository:<path>:<actions>` plus
    /// `extra_scopes`), renewing the token once when the registry answers 401.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        mut body: ReqBody,
        extra_scopes: &[String],
    ) -> Result<Response<ureq::Body>> {
        let mut scopes = vec![self.scope()];
        scopes.extend_from_slice(extra_scopes);
        let mut renew = false;
        loop {
            let auth = self.authorization(&scopes, renew)?;
            let mut b = http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                b = b.header(*k, v.as_str());
            }
            if let Some(a) = &auth {
                b = b.header("Authorization", a.as_str());
            }
            let replayable = body.replayable();
            let ag = agent(self.ep.verify_tls);
            let res = match &mut body {
                ReqBody::None => ag.run(b.body(()).map_err(|e| Error::registry(e.to_string()))?),
                ReqBody::Bytes(bytes) => {
                    ag.run(b.body(*bytes).map_err(|e| Error::registry(e.to_string()))?)
                }
                ReqBody::Reader(r, len) => {
                    if let Some(n) = len {
                        b = b.header("Content-Length", n.to_string());
                    }
                    ag.run(
                        b.body(ureq::SendBody::from_reader(*r))
                            .map_err(|e| Error::registry(e.to_string()))?,
                    )
                }
            };
            let resp = res.map_err(|e| Error::Transport(url_error(method, url, e)))?;
            let is_bearer = self
                .state
                .lock()
                .unwrap()
                .challenge
                .as_ref()
                .is_some_and(|c| c.scheme == "bearer");
            if resp.status().as_u16() == 401 && replayable && !renew {
                // The token may have expired, or the registry wants another realm/scope.
                if let Some(ch) = pick_challenge(&resp)
                    && (is_bearer || ch.scheme == "bearer" || auth.is_none())
                {
                    let mut st = self.state.lock().unwrap();
                    let changed = st
                        .challenge
                        .as_ref()
                        .map(|c| (&c.scheme, c.params.get("realm")))
                        != Some((&ch.scheme, ch.params.get("realm")));
                    st.challenge = Some(ch);
                    drop(st);
                    if changed || is_bearer {
                        renew = true;
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
    }

    /// GET/HEAD without a body, failing on any status other than 2xx with the registry's error.
    pub fn get_ok(&self, url: &str, headers: &[(&str, String)]) -> Result<Response<ureq::Body>> {
        let resp = self.request("GET", url, headers, ReqBody::None, &[])?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(response_error(resp))
    }
}

/// Prefers a bearer challenge over basic, as docker's authorizer does.
fn pick_challenge(resp: &Response<ureq::Body>) -> Option<Challenge> {
    let mut all = Vec::new();
    for v in resp.headers().get_all("www-authenticate") {
        if let Ok(s) = v.to_str() {
            all.extend(parse_challenges(s));
        }
    }
    all.iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| all.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

/// A registry error (`errcode` JSON): the first error's code and docker's text for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: Option<String>,
    pub text: String,
}

fn code_default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "UNAUTHORIZED" => "authentication required",
        "DENIED" => "requested access to the resource is denied",
        "MANIFEST_UNKNOWN" => "manifest unknown",
        "NAME_UNKNOWN" => "repository name not known to registry",
        "BLOB_UNKNOWN" => "blob unknown to registry",
        "BLOB_UPLOAD_UNKNOWN" => "blob upload unknown to registry",
        "BLOB_UPLOAD_INVALID" => "blob upload invalid",
        "DIGEST_INVALID" => "provided digest did not match uploaded content",
        "MANIFEST_INVALID" => "manifest invalid",
        "MANIFEST_BLOB_UNKNOWN" => "blob unknown to registry",
        "NAME_INVALID" => "invalid repository name",
        "TAG_INVALID" => "manifest tag did not match URI",
        "SIZE_INVALID" => "provided length did not match content length",
        "UNSUPPORTED" => "The operation is unsupported.",
        "TOOMANYREQUESTS" => "too many requests",
        "UNKNOWN" => "unknown error",
        _ => return None,
    })
}

/// Parses an error answer's body the way distribution's client does.
pub fn api_error(status: u16, body: &[u8]) -> ApiError {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct Details {
        details: String,
    }
    if let Ok(es) = serde_json::from_slice::<Errors>(body)
        && let Some(e) = es.errors.into_iter().next()
    {
        let code = e.code.to_ascii_uppercase();
        let msg = if e.message.is_empty() {
            code_default_message(&code).unwrap_or("").to_string()
        } else {
            e.message
        };
        let name = code.to_ascii_lowercase().replace('_', " ");
        return ApiError {
            status,
            code: Some(code),
            text: format!("{name}: {msg}"),
        };
    }
    if status == 401 {
        if let Ok(d) = serde_json::from_slice::<Details>(body) {
            return ApiError {
                status,
                code: Some("UNAUTHORIZED".into()),
                text: format!("unauthorized: {}", d.details),
            };
        }
        return ApiError {
            status,
            code: Some("UNAUTHORIZED".into()),
            text: "unauthorized: authentication required".into(),
        };
    }
    ApiError {
        status,
        code: None,
        text: format!(
            "received unexpected HTTP status: {status} {}",
            status_text(status)
        ),
    }
}

/// The text of an error answer.
pub fn error_text(status: u16, body: &[u8]) -> String {
    api_error(status, body).text
}

/// Reads an error response and turns it into an [`Error`] (401 → Unauthorized).
pub fn response_error(mut resp: Response<ureq::Body>) -> Error {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let e = api_error(status, &body);
    match e.code.as_deref() {
        Some("UNAUTHORIZED") => Error::Unauthorized(e.text),
        _ => Error::Registry(e.text),
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
pub fn read_body(resp: &mut Response<ureq::Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    if let Some(n) = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && n > limit
    {
        return Err(Error::registry(format!(
            "{what} too large: {n} bytes is more than the {limit} allowed"
        )));
    }
    let mut out = Vec::new();
    let mut r = resp.body_mut().as_reader().take(limit + 1);
    r.read_to_end(&mut out)
        .map_err(|e| Error::registry(format!("reading {what}: {e}")))?;
    if out.len() as u64 > limit {
        return Err(Error::registry(format!(
            "{what} too large: more than the {limit} bytes allowed"
        )));
    }
    Ok(out)
}

pub fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn status_text(s: u16) -> &'static str {
    match s {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_like_docker() {
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"2"}}]}"#;
        let e = api_error(404, b);
        assert_eq!(e.code.as_deref(), Some("MANIFEST_UNKNOWN"));
        assert_eq!(e.text, "manifest unknown: manifest unknown");
        assert_eq!(
            api_error(401, br#"{"details":"incorrect username or password"}"#).text,
            "unauthorized: incorrect username or password"
        );
        assert_eq!(
            api_error(401, b"").text,
            "unauthorized: authentication required"
        );
        assert_eq!(
            api_error(500, b"boom").text,
            "received unexpected HTTP status: 500 Internal Server Error"
        );
        assert_eq!(
            api_error(403, br#"{"errors":[{"code":"DENIED"}]}"#).text,
            "denied: requested access to the resource is denied"
        );
    }

    #[test]
    fn endpoint_order() {
        let cfg = RegistryConfig {
            mirrors: vec!["https://mirror.example".into()],
            ..Default::default()
        };
        let e = endpoints(&cfg, "docker.io", true);
        assert_eq!(e.len(), 2);
        assert!(e[0].mirror && e[0].verify_tls);
        assert_eq!(e[1].base, "https://registry-1.docker.io");
        assert_eq!(endpoints(&cfg, "docker.io", false).len(), 1);
        let e = endpoints(&cfg, "10.9.9.9:5000", true);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].base, "https://10.9.9.9:5000");
        let e = endpoints(&cfg, "127.0.0.9:5000", true);
        assert_eq!(e.len(), 2);
        assert!(!e[0].verify_tls);
    }
}
