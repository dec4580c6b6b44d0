//! `nodeConfig`: the node facts file `weftd` writes (`/run/weft/node.json`). When a conflist
//! names it, the plugin takes from it what the conflist leaves out: `ipam.ranges` (one range
//! set per node subnet) and `mtu`. Anything written in the conflist wins.

use std::borrow::Cow;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_proto::{CniError, codes};

use crate::error::PluginError;
use crate::skel::Request;

/// The fields of the facts file the plugin uses (the agent owns the format:
/// `weft_cluster::NodeLocalConfig`; unknown fields are ignored).
#[derive(Debug, Deserialize)]
struct NodeFacts {
    subnets: Vec<IpNet>,
    mtu: Option<u32>,
}

/// The request with the node facts filled in, or the request itself when the configuration
/// names no `nodeConfig`. A missing or unreadable file means the agent is not ready yet:
/// code 11 (try again later), which runtimes retry.
pub fn resolve(req: &Request) -> Result<Cow<'_, Request>, PluginError> {
    let Some(path) = req.raw.get("nodeConfig").and_then(Value::as_str) else {
        return Ok(Cow::Borrowed(req));
    };
    let facts = read_facts(Path::new(path))?;
    let mut raw = req.raw.clone();
    merge(&mut raw, &facts);
    let mut out = req.clone();
    out.conf.ipam = raw.get("ipam").cloned();
    out.stdin = serde_json::to_vec(&raw)
        .map_err(|e| PluginError::config(format!("re-encoding the configuration: {e}")))?;
    out.raw = raw;
    Ok(Cow::Owned(out))
}

fn read_facts(path: &Path) -> Result<NodeFacts, PluginError> {
    let not_ready = |why: String| {
        PluginError::Cni(CniError::new(
            codes::TRY_AGAIN_LATER,
            format!(
                "node facts {}: {why} (is weftd running on this node?)",
                path.display()
            ),
        ))
    };
    let bytes = std::fs::read(path).map_err(|e| not_ready(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| not_ready(e.to_string()))
}

/// Fills `ipam.ranges` when the IPAM section has neither `ranges` nor a legacy `subnet`, and
/// `mtu` when it is absent.
fn merge(raw: &mut Value, facts: &NodeFacts) {
    let Some(obj) = raw.as_object_mut() else {
        return;
    };
    if let (false, Some(mtu)) = (obj.contains_key("mtu"), facts.mtu) {
        obj.insert("mtu".into(), json!(mtu));
    }
    let Some(ipam) = obj.get_mut("ipam").and_then(Value::as_object_mut) else {
        return;
    };
    if !ipam.contains_key("ranges") && !ipam.contains_key("subnet") && !facts.subnets.is_empty() {
        let sets: Vec<Value> = facts
            .subnets
            .iter()
            .map(|s| json!([{ "subnet": s.trunc().to_string() }]))
            .collect();
        ipam.insert("ranges".into(), Value::Array(sets));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            subnets: vec![
                "10.244.3.0/24".parse().unwrap(),
                "fd00:10:244:3::/64".parse().unwrap(),
            ],
            mtu: Some(1450),
        }
    }

    #[test]
    fn fills_ranges_and_mtu_when_absent() {
        let mut raw = json!({"type": "weft", "ipam": {"type": "weft-ipam"}});
        merge(&mut raw, &facts());
        assert_eq!(raw["mtu"], 1450);
        assert_eq!(
            raw["ipam"]["ranges"],
            json!([[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:244:3::/64"}]])
        );
    }

    #[test]
    fn explicit_configuration_wins() {
        let mut raw = json!({"mtu": 1400, "ipam": {"type": "weft-ipam", "subnet": "10.1.0.0/24"}});
        merge(&mut raw, &facts());
        assert_eq!(raw["mtu"], 1400);
        assert!(raw["ipam"].get("ranges").is_none());
    }

    #[test]
    fn unknown_fields_in_the_facts_file_are_ignored() {
        let f: NodeFacts = serde_json::from_str(
            r#"{"node":"n1","subnets":["10.244.3.0/24"],"mtu":1450,"backend":{"type":"host-gw"},"clusterCidrs":[]}"#,
        )
        .unwrap();
        assert_eq!(f.subnets.len(), 1);
    }
}
