//! What berth remembers about a network (the `networks` table).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_meta::Table;
use berth_network::Ipv4Net;
use serde::{Deserialize, Serialize};

pub const NETWORKS: Table = Table::new("networks");

/// One subnet of a network, as settled at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConf {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub ipam_driver: String,
    pub ipam_options: BTreeMap<String, String>,
    pub config: Vec<IpamConf>,
    /// The subnets came from the user (`--ip` is allowed only then).
    pub user_subnets: bool,
    /// The Linux bridge (bridge driver).
    pub bridge: String,
    /// berth made the bridge (and so removes it); a pre-existing one is left alone.
    pub created_bridge: bool,
    /// `bridge`, `host`, `none`: cannot be removed.
    pub predefined: bool,
    pub default_bridge: bool,
}

impl NetworkRecord {
    pub fn predefined(name: &str, driver: &str) -> NetworkRecord {
        NetworkRecord {
            id: crate::containers::new_id(),
            name: name.into(),
            driver: driver.into(),
            created: crate::containers::now_rfc3339(),
            ipam_driver: "default".into(),
            predefined: true,
            ..Default::default()
        }
    }

    /// A user-defined bridge network (the embedded DNS serves these).
    pub fn user_defined(&self) -> bool {
        self.driver == "bridge" && !self.default_bridge
    }
}
