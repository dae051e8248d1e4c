//! `POST /auth`: checks credentials against a registry the way docker's `loginV2` does: ping
//! `/v2/`, answer the challenge (token with the credentials, or basic), and expect a 200.

use crate::auth::{AuthConfig, fetch_token};
use crate::client::{Repo, endpoints};
use crate::config::{INDEX_SERVER, RegistryConfig};
use crate::transport::{agent, url_error};
use crate::{Error, Result};

/// The registry host a login's server address names (`https://index.docker.io/v1/` and
/// `docker.io` are Docker Hub).
pub fn registry_host(server: &str) -> String {
    let s = server.trim();
    if s.is_empty() || s == INDEX_SERVER {
        return "docker.io".into();
    }
    let stripped = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = stripped.split('/').next().unwrap_or(stripped);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// Checks `auth` against its registry. Returns the identity (refresh) token the registry gave,
/// if any.
pub fn login(cfg: &RegistryConfig, auth: &AuthConfig) -> Result<String> {
    let host = registry_host(&auth.serveraddress);
    let eps = endpoints(cfg, &host, false);
    let repo = Repo::connect(&eps, &host, "", auth, false)?;
    let url = format!("{}/v2/", repo.ep.base);
    let Some(ch) = repo.challenge() else {
        // No authentication needed: any credentials do.
        return Ok(String::new());
    };
    let header = match ch.scheme.as_str() {
        "bearer" => {
            let t = fetch_token(&ch, &[], auth, repo.ep.verify_tls, true).map_err(|e| match e {
                Error::Unauthorized(m) => Error::Unauthorized(url_error("GET", &url, m)),
                Error::Registry(m) | Error::Transport(m) => {
                    Error::Unauthorized(url_error("GET", &url, m))
                }
                other => other,
            })?;
            let refresh = t.refresh_token.clone().unwrap_or_default();
            (format!("Bearer {}", t.token), refresh)
        }
        "basic" => {
            if !auth.has_basic() {
                return Err(Error::Unauthorized(url_error(
                    "GET",
                    &url,
                    "no basic auth credentials",
                )));
            }
            (auth.basic_header(), String::new())
        }
        other => {
            return Err(Error::registry(format!("unsupported auth scheme {other}")));
        }
    };
    let resp = agent(repo.ep.verify_tls)
        .get(&url)
        .header("Authorization", &header.0)
        .call()
        .map_err(|e| Error::Transport(url_error("GET", &url, e)))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(Error::Unauthorized(format!(
            "login attempt to {url} failed with status: {status} {}",
            crate::client::status_text(status)
        )));
    }
    Ok(header.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(registry_host(INDEX_SERVER), "docker.io");
        assert_eq!(registry_host(""), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
    }
}
