//! The HTTP agents: one verifying TLS (Mozilla's roots), one for insecure registries that
//! skips verification (as docker does for `insecure-registries` over HTTPS). Connections are
//! pooled per agent for the life of the process.

use std::sync::OnceLock;
use std::time::Duration;

use ureq::Agent;
use ureq::tls::{TlsConfig, TlsProvider};

fn build(verify: bool) -> Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .disable_verification(!verify)
        .build();
    Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .user_agent(format!("berth/{}", env!("CARGO_PKG_VERSION")))
        // Registries (S3, CDNs) redirect blob GETs; credentials are not forwarded across.
        .max_redirects(10)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        // A stalled connection is an error (and a resumable one), not a hang.
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_per_write(Some(Duration::from_secs(60)))
        .max_idle_connections_per_host(8)
        .build()
        .into()
}

pub fn agent(verify_tls: bool) -> &'static Agent {
    static SECURE: OnceLock<Agent> = OnceLock::new();
    static INSECURE: OnceLock<Agent> = OnceLock::new();
    if verify_tls {
        SECURE.get_or_init(|| build(true))
    } else {
        INSECURE.get_or_init(|| build(false))
    }
}

/// With `BERTH_REGISTRY_LOOPBACK_ONLY` set (the test daemons set it), registries are only
/// contacted on loopback: a stray pull of a Docker Hub name fails at once instead of
/// resolving and reaching the internet.
pub fn check_reachable(method: &str, url: &str) -> crate::Result<()> {
    if std::env::var_os("BERTH_REGISTRY_LOOPBACK_ONLY").is_none() {
        return Ok(());
    }
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(crate::Error::Transport(url_error(
            method,
            url,
            format!("{host} is not a loopback address and BERTH_REGISTRY_LOOPBACK_ONLY is set"),
        )))
    }
}

/// Go's `url.Error` text for a failed request: `Get "http://h/v2/": <err>`.
pub fn url_error(method: &str, url: &str, err: impl std::fmt::Display) -> String {
    let mut m = method.to_ascii_lowercase();
    if let Some(f) = m.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    format!("{m} \"{url}\": {err}")
}
