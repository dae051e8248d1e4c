//! Manifest validation on push: the media type, the descriptors it references, its subject.

use serde_json::{Map, Value};

use crate::error::{Code, RegistryError};
use crate::names::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Manifests larger than this are refused with 413.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    /// An image manifest (OCI or Docker schema 2): a config and layers.
    Image,
    /// An index or manifest list: other manifests.
    Index,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Debug)]
pub struct Parsed {
    pub kind: Kind,
    pub media_type: String,
    /// Blobs that must be in the repository: the config and the layers (foreign layers with
    /// `urls` are exempt).
    pub blobs: Vec<Digest>,
    /// Manifests that must be in the repository (an index's entries).
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    artifact_type: Option<String>,
    annotations: Option<Value>,
}

fn invalid(msg: impl Into<String>) -> RegistryError {
    RegistryError::msg(Code::ManifestInvalid, msg)
}

/// The media type of a `Content-Type` header without its parameters.
pub fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

fn descriptor_digest(v: &Value, what: &str) -> Result<Digest, RegistryError> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(format!("{what} is not a descriptor")))?;
    let d = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what} has no digest")))?;
    if let Some(size) = o.get("size")
        && size.as_u64().is_none()
    {
        return Err(invalid(format!("{what} has an invalid size")));
    }
    Digest::parse(d).map_err(|_| {
        RegistryError::msg(
            Code::ManifestInvalid,
            format!("{what} has an invalid digest {d:?}"),
        )
    })
}

/// Parses and checks a manifest pushed with `content_type`.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, RegistryError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| invalid("manifest is not a JSON object"))?;
    let field_type = o.get("mediaType").and_then(Value::as_str);
    let header_type = content_type
        .map(bare_media_type)
        .filter(|t| !t.is_empty() && *t != "application/json" && *t != "application/octet-stream");
    if matches!(header_type, Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED))
        || o.get("schemaVersion").and_then(Value::as_u64) == Some(1)
    {
        return Err(RegistryError::msg(
            Code::ManifestInvalid,
            "Docker schema 1 manifests are not supported",
        ));
    }
    if o.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    if let (Some(h), Some(f)) = (header_type, field_type)
        && h != f
    {
        return Err(invalid(format!(
            "Content-Type {h} does not match the manifest's mediaType {f}"
        )));
    }
    let media_type = match header_type.or(field_type) {
        Some(t) => t.to_string(),
        None if o.contains_key("manifests") => OCI_INDEX.to_string(),
        None if o.contains_key("config") => OCI_MANIFEST.to_string(),
        None => return Err(invalid("cannot tell the manifest's media type")),
    };
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Image,
        OCI_INDEX | DOCKER_LIST => Kind::Index,
        other => {
            return Err(invalid(format!("unsupported manifest media type {other}")));
        }
    };
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    match kind {
        Kind::Image => {
            let config = o
                .get("config")
                .ok_or_else(|| invalid("manifest has no config"))?;
            blobs.push(descriptor_digest(config, "config")?);
            let layers = o
                .get("layers")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("manifest has no layers array"))?;
            for (i, l) in layers.iter().enumerate() {
                let d = descriptor_digest(l, &format!("layer {i}"))?;
                let foreign = l
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    blobs.push(d);
                }
            }
        }
        Kind::Index => {
            let list = o
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("index has no manifests array"))?;
            for (i, m) in list.iter().enumerate() {
                manifests.push(descriptor_digest(m, &format!("manifest {i}"))?);
            }
        }
    }
    let subject = match o.get("subject") {
        None | Some(Value::Null) => None,
        Some(s) => Some(descriptor_digest(s, "subject")?),
    };
    let artifact_type = o
        .get("artifactType")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            if kind == Kind::Image {
                o.get("config")
                    .and_then(|c| c.get("mediaType"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            } else {
                None
            }
        });
    Ok(Parsed {
        kind,
        media_type,
        blobs,
        manifests,
        subject,
        artifact_type,
        annotations: o.get("annotations").filter(|a| a.is_object()).cloned(),
    })
}

impl Parsed {
    /// The descriptor the referrers API lists for this manifest.
    pub fn referrer_descriptor(&self, digest: &Digest, size: usize) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("mediaType".into(), self.media_type.clone().into());
        m.insert("digest".into(), digest.to_string().into());
        m.insert("size".into(), size.into());
        if let Some(a) = &self.artifact_type {
            m.insert("artifactType".into(), a.clone().into());
        }
        if let Some(a) = &self.annotations {
            m.insert("annotations".into(), a.clone());
        }
        serde_json::to_vec(&Value::Object(m)).expect("json")
    }
}

/// The subject digest of a stored manifest, if it has one.
pub fn subject_of(bytes: &[u8]) -> Option<Digest> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    Digest::parse(v.get("subject")?.get("digest")?.as_str()?).ok()
}

/// Every digest a stored manifest references (config, layers, index entries), for `gc`.
pub fn references(bytes: &[u8]) -> Vec<Digest> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |d: Option<&Value>| {
        if let Some(d) = d.and_then(|d| d.get("digest")).and_then(Value::as_str)
            && let Ok(d) = Digest::parse(d)
        {
            out.push(d);
        }
    };
    add(v.get("config"));
    for key in ["layers", "manifests", "blobs"] {
        if let Some(a) = v.get(key).and_then(Value::as_array) {
            for l in a {
                add(Some(l));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('a'), "size": 2},
            "layers": [{"mediaType": "x", "digest": d('b'), "size": 3},
                       {"mediaType": "x", "digest": d('c'), "size": 3, "urls": ["http://x"]}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d('e'), "size": 9},
            "annotations": {"k": "v"}
        });
        let p = parse(m.to_string().as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(p.kind, Kind::Image);
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.subject.as_ref().unwrap().to_string(), d('e'));
        let desc: Value =
            serde_json::from_slice(&p.referrer_descriptor(&Digest::parse(&d('f')).unwrap(), 10))
                .unwrap();
        assert_eq!(
            desc["artifactType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(desc["annotations"]["k"], "v");
    }

    #[test]
    fn refusals() {
        assert!(parse(b"nope", None).is_err());
        assert!(parse(b"[]", None).is_err());
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).is_err());
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        assert!(parse(idx.to_string().as_bytes(), Some(OCI_MANIFEST)).is_err());
        assert!(parse(idx.to_string().as_bytes(), Some(OCI_INDEX)).is_ok());
        let bad = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"digest": "sha256:xyz", "size": 1}]});
        assert!(parse(bad.to_string().as_bytes(), None).is_err());
        let weird = serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"});
        assert!(parse(weird.to_string().as_bytes(), None).is_err());
    }

    #[test]
    fn mutated_manifests_never_panic() {
        let base = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d('a'), "size": 1,
                           "platform": {"os": "linux"}}],
            "subject": {"digest": d('b'), "size": 2},
        })
        .to_string()
        .into_bytes();
        let mut seed = 42u64;
        for _ in 0..5_000 {
            let mut m = base.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 32) as u8;
            }
            let _ = parse(&m, Some(OCI_INDEX));
            let _ = parse(&m, None);
            let _ = subject_of(&m);
            let _ = references(&m);
        }
    }
}
