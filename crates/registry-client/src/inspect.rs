//! `GET /distribution/{name}/json`: the manifest descriptor a reference resolves to on its
//! registry, and the platforms it offers.

use berth_image::Reference;
use berth_image::config::{Descriptor, ImageConfig, Index, Manifest, Platform, media};
use serde::Serialize;

use crate::auth::AuthConfig;
use crate::client::ReqBody;
use crate::client::{Repo, endpoints, read_body, response_error};
use crate::config::RegistryConfig;
use crate::pull::{MAX_CONFIG, fetch_manifest};
use crate::{Error, Result};

#[derive(Debug, Serialize)]
pub struct DistributionInspect {
    #[serde(rename = "Descriptor")]
    pub descriptor: Descriptor,
    #[serde(rename = "Platforms")]
    pub platforms: Vec<Platform>,
}

pub fn inspect(
    cfg: &RegistryConfig,
    r: &Reference,
    auth: &AuthConfig,
) -> Result<DistributionInspect> {
    let eps = endpoints(cfg, r.domain(), true);
    let repo = Repo::connect(&eps, r.domain(), r.path(), auth, false)?;
    let by = match r.digest() {
        Some(d) => d.to_string(),
        None => r.tag().unwrap_or("latest").to_string(),
    };
    let m = fetch_manifest(&repo, r, &by, r.digest())?;
    let descriptor = Descriptor {
        media_type: m.media_type.clone(),
        digest: m.digest.clone(),
        size: m.bytes.len() as i64,
        urls: None,
        annotations: None,
        platform: None,
    };
    let platforms = match m.media_type.as_str() {
        media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => {
            let idx: Index = serde_json::from_slice(&m.bytes)
                .map_err(|e| Error::registry(format!("invalid manifest list: {e}")))?;
            idx.manifests
                .into_iter()
                .filter_map(|d| d.platform)
                .collect()
        }
        _ => {
            let man: Manifest = serde_json::from_slice(&m.bytes)
                .map_err(|e| Error::registry(format!("invalid image manifest: {e}")))?;
            let url = repo.url(&format!("blobs/{}", man.config.digest));
            let mut resp = repo.request("GET", &url, &[], ReqBody::None, &[])?;
            if !resp.status().is_success() {
                return Err(response_error(resp));
            }
            let bytes = read_body(&mut resp, MAX_CONFIG, "image config")?;
            match serde_json::from_slice::<ImageConfig>(&bytes) {
                Ok(c) if !c.os.is_empty() => vec![Platform {
                    architecture: c.architecture,
                    os: c.os,
                    os_version: c.os_version,
                    variant: c.variant,
                }],
                _ => Vec::new(),
            }
        }
    };
    Ok(DistributionInspect {
        descriptor,
        platforms,
    })
}
