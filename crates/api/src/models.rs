//! Engine API shapes berth defines itself: where Docker's JSON has fields the generated
//! models lack (image `Parent`, `DockerVersion`) or where the CLI must see every field even when
//! empty (Go clients read `null` happily, Python SDK code indexes keys directly).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /images/json` item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    #[serde(default)]
    pub parent_id: String,
    #[serde(default)]
    pub repo_tags: Vec<String>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub size: i64,
    #[serde(default)]
    pub shared_size: i64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub containers: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: Option<String>,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    #[serde(default)]
    pub repo_tags: Vec<String>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    #[serde(default)]
    pub parent: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub docker_version: String,
    #[serde(default)]
    pub author: String,
    /// The image's run config, with Docker's container-config defaults filled in.
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub size: i64,
    #[serde(default)]
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS", default)]
    pub root_fs: RootFs,
    #[serde(default)]
    pub metadata: ImageMetadata,
}

/// `GET /images/{name}/history` item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

/// `DELETE /images/{name}` item: exactly one of the two is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// `POST /images/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImagePruneReport {
    pub images_deleted: Option<Vec<DeleteItem>>,
    pub space_reclaimed: i64,
}

/// `GET /system/df` (the parts berth fills so far).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<serde_json::Value>,
    pub volumes: Vec<serde_json::Value>,
    pub build_cache: Vec<serde_json::Value>,
}

/// `{"message": …}`: every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub message: String,
}

/// `GET /containers/json` item, read leniently: every field defaults, so a daemon that omits
/// one (or an older API version) still lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: Vec<PortSummary>,
    pub size_rw: Option<i64>,
    pub size_root_fs: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub network_settings: Option<SummaryNetworkSettings>,
    pub mounts: Vec<MountPointSummary>,
    pub image_manifest_descriptor: Option<serde_json::Value>,
}

/// A port of a listed container (`PrivatePort` inside, `PublicPort` on `IP` when published).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortSummary {
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    #[serde(rename = "PublicPort", skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryNetworkSettings {
    pub networks: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPointSummary {
    #[serde(rename = "Type")]
    pub kind: String,
    pub name: String,
    pub source: String,
    pub destination: String,
    pub driver: String,
}

/// `POST /containers/{id}/wait` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitResponse {
    pub status_code: i64,
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitError {
    pub message: String,
}

/// The `X-Docker-Container-Path-Stat` header of `HEAD|GET /containers/{id}/archive`
/// (base64 of this JSON). `mode` holds Go's `os.FileMode` bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// Go's `os.ModeDir`.
    pub const MODE_DIR: u32 = 1 << 31;
    /// Go's `os.ModeSymlink`.
    pub const MODE_SYMLINK: u32 = 1 << 27;
    /// Go's `os.ModeDevice`.
    pub const MODE_DEVICE: u32 = 1 << 26;
    /// Go's `os.ModeIrregular`.
    pub const MODE_IRREGULAR: u32 = 1 << 19;

    pub fn is_dir(&self) -> bool {
        self.mode & Self::MODE_DIR != 0
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & Self::MODE_SYMLINK != 0
    }
}
