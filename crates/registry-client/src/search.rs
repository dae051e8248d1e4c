//! `docker search`: the registry's v1 search endpoint (`/v1/search?q=&n=`), with docker's
//! term splitting (`host/term` searches `host`), limit range and filters.

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::client::{Endpoint, api_error};
use crate::config::{INDEX_HOST, RegistryConfig};
use crate::transport::{agent, url_error};
use crate::{Error, Result};

/// One search hit, as the Engine API returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_automated: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// The filters `GET /images/search` accepts.
#[derive(Debug, Clone, Default)]
pub struct SearchFilters {
    pub is_official: Option<bool>,
    pub is_automated: Option<bool>,
    pub stars: Option<i64>,
}

/// Splits `host/rest` when the first part looks like a registry host (docker's rule).
pub fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (INDEX_HOST.to_string(), term.to_string()),
    }
}

pub fn search(
    cfg: &RegistryConfig,
    term: &str,
    limit: Option<i64>,
    filters: &SearchFilters,
    auth: &AuthConfig,
) -> Result<Vec<SearchResult>> {
    if term.contains("://") {
        return Err(Error::Invalid(format!(
            "invalid repository name: repository name ({term}) should not have a scheme"
        )));
    }
    let limit = limit.unwrap_or(25);
    let limit = if limit == 0 { 25 } else { limit };
    if !(1..=100).contains(&limit) {
        return Err(Error::Invalid(format!(
            "limit {limit} is outside the range of [1, 100]"
        )));
    }
    if filters.is_automated == Some(true) {
        return Ok(Vec::new());
    }
    let (index, mut q) = split_term(term);
    let official_index = index == INDEX_HOST || index == "docker.io";
    if official_index {
        q = q.strip_prefix("library/").unwrap_or(&q).to_string();
    }
    let host = if official_index {
        INDEX_HOST
    } else {
        index.as_str()
    };
    let mut eps = vec![Endpoint {
        base: format!("https://{host}"),
        verify_tls: !cfg.is_insecure(host),
        mirror: false,
    }];
    if cfg.is_insecure(host) {
        eps.push(Endpoint {
            base: format!("http://{host}"),
            verify_tls: false,
            mirror: false,
        });
    }
    let mut last = None;
    for ep in &eps {
        let mut u = url::Url::parse(&format!("{}/v1/search", ep.base))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        u.query_pairs_mut()
            .append_pair("q", &q)
            .append_pair("n", &limit.to_string());
        crate::transport::check_reachable("GET", u.as_str())?;
        let mut req = agent(ep.verify_tls)
            .get(u.as_str())
            .header("X-Docker-Token", "true");
        if auth.has_basic() {
            req = req.header("Authorization", auth.basic_header());
        } else if !auth.registrytoken.is_empty() {
            req = req.header("Authorization", format!("Bearer {}", auth.registrytoken));
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(e) => {
                last = Some(Error::Transport(url_error("GET", u.as_str(), e)));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| Error::registry(url_error("GET", u.as_str(), e)))?;
        if status == 401 {
            return Err(Error::Unauthorized(api_error(status, &body).text));
        }
        if status != 200 {
            return Err(Error::registry(format!("unexpected status code {status}")));
        }
        let r: SearchResults = serde_json::from_slice(&body)
            .map_err(|e| Error::registry(format!("error decoding registry search results: {e}")))?;
        let out = r
            .results
            .into_iter()
            .filter(|x| filters.is_official.is_none_or(|o| o == x.is_official))
            .filter(|x| filters.stars.is_none_or(|s| x.star_count >= s))
            .map(|mut x| {
                x.is_automated = false;
                x
            })
            .collect();
        return Ok(out);
    }
    Err(last.unwrap_or_else(|| Error::registry("no search endpoint")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_like_docker() {
        assert_eq!(split_term("busybox"), (INDEX_HOST.into(), "busybox".into()));
        assert_eq!(split_term("user/x"), (INDEX_HOST.into(), "user/x".into()));
        assert_eq!(
            split_term("127.0.0.1:5000/x"),
            ("127.0.0.1:5000".into(), "x".into())
        );
        assert_eq!(
            split_term("localhost/a/b"),
            ("localhost".into(), "a/b".into())
        );
        let cfg = RegistryConfig::default();
        let e = search(
            &cfg,
            "x",
            Some(101),
            &SearchFilters::default(),
            &AuthConfig::default(),
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "limit 101 is outside the range of [1, 100]"
        );
    }
}
