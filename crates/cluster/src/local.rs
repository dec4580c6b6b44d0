//! The node-local facts file the `weft` plugin reads: written by `weftd`, read at every ADD.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::Backend;

/// Where `weftd` writes the [`NodeLocalConfig`].
pub const NODE_LOCAL_CONFIG_PATH: &str = "/run/weft/node.json";

/// What the plugin needs to know about its node, owned by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLocalConfig {
    /// This node's name.
    pub node: String,
    /// Pod subnets leased to this node (one per family).
    pub subnets: Vec<IpNet>,
    /// Pod interface MTU.
    pub mtu: u32,
    /// Cross-node backend in use.
    pub backend: Backend,
    /// The cluster CIDRs (traffic to them is never masqueraded).
    pub cluster_cidrs: Vec<IpNet>,
}

impl NodeLocalConfig {
    /// Pretty JSON, newline-terminated, for the facts file.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Parses the facts file contents.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = NodeLocalConfig {
            node: "n1".into(),
            subnets: vec![
                "10.244.3.0/24".parse().unwrap(),
                "fd00:0:0:3::/64".parse().unwrap(),
            ],
            mtu: 1450,
            backend: Backend::default(),
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        };
        let j = c.to_json().unwrap();
        assert!(j.contains("\"clusterCidrs\""));
        assert!(j.contains("\"type\": \"vxlan\""));
        assert_eq!(NodeLocalConfig::from_json(&j).unwrap(), c);
    }
}
