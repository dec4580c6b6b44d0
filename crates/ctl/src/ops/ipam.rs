//! IPAM inspection, pure part: which network and ranges the conflist configures, and the
//! decision whether a reservation has leaked.
//!
//! A reservation is leaked only when every piece of evidence agrees:
//! - no pod object in the datastore has its address on this node;
//! - the attachment it records (container id, ifname) has no host veth (so its pod
//!   network namespace is gone, see [`super::attach`]);
//! - it is older than a grace period: an ADD reserves the address before it creates the
//!   veth, and before the API server records the pod IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use serde_json::{Value, json};
use weft_ipam::{Holder, IpamConfig};

use super::attach::LinkSnapshot;

/// IPAM types whose reservations use host-local's layout.
const HOST_LOCAL_TYPES: &[&str] = &["weft-ipam", "host-local"];

/// What a conflist says about IPAM.
#[derive(Debug, Clone)]
pub struct NetworkIpam {
    /// The parsed IPAM config (network name, ranges, data dir).
    pub config: IpamConfig,
    /// The bridge pods attach to, when the main plugin runs in bridge mode.
    pub bridge: Option<String>,
}

/// Finds the first plugin of `conflist` with a host-local style `ipam` and parses it.
pub fn network_ipam(conflist: &Value) -> Result<NetworkIpam> {
    let name = conflist
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("conflist has no name"))?;
    let plugins = conflist
        .get("plugins")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("conflist has no plugins"))?;
    let plugin = plugins
        .iter()
        .find(|p| {
            p.pointer("/ipam/type")
                .and_then(Value::as_str)
                .is_some_and(|t| HOST_LOCAL_TYPES.contains(&t))
        })
        .ok_or_else(|| anyhow!("no plugin in conflist {name} uses weft-ipam or host-local"))?;
    let request = json!({
        "cniVersion": conflist.get("cniVersion").cloned().unwrap_or(json!("1.0.0")),
        "name": name,
        "ipam": plugin.get("ipam").cloned().unwrap_or(Value::Null),
    });
    let config = IpamConfig::from_request(&request).context("conflist ipam")?;
    let bridge_mode = plugin
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("bridge")
        == "bridge";
    let bridge =
        (plugin.get("type").and_then(Value::as_str) == Some("weft") && bridge_mode).then(|| {
            plugin
                .get("bridge")
                .and_then(Value::as_str)
                .unwrap_or("cni0")
                .to_string()
        });
    Ok(NetworkIpam { config, bridge })
}

/// What is known about one reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationFacts {
    /// The address.
    pub ip: IpAddr,
    /// Who holds it, per the reservation file.
    pub holder: Holder,
    /// When it was written.
    pub reserved_at: Option<SystemTime>,
}

/// Evidence gathered from the datastore and the kernel.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// The IPAM network name (the attachment aliases carry it).
    pub network: &'a str,
    /// `namespace/name` of the pod object holding each address on this node.
    pub pods_by_ip: &'a HashMap<IpAddr, String>,
    /// Links of the node's namespace.
    pub links: &'a LinkSnapshot,
    /// Now.
    pub now: SystemTime,
    /// Reservations younger than this are never leaked.
    pub grace: Duration,
}

/// The state of one reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// A pod object on this node has the address.
    InUse,
    /// No pod object has it yet, but the attachment exists (pod starting, or the
    /// datastore is behind).
    Attached,
    /// Too new to judge: an ADD may still be running.
    Recent,
    /// No pod object, no attachment, old enough: safe to release.
    Leaked,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::InUse => "in use",
            State::Attached => "attached (no pod object)",
            State::Recent => "recent",
            State::Leaked => "LEAKED",
        })
    }
}

/// One row of `weftctl ipam --check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The address.
    pub ip: IpAddr,
    /// Container id recorded (empty for an unreadable record).
    pub container_id: String,
    /// Interface recorded (`None` for legacy and unreadable records).
    pub ifname: Option<String>,
    /// The pod object holding the address, if any.
    pub pod: Option<String>,
    /// Does the attachment's host veth exist?
    pub attached: bool,
    /// Seconds since the reservation was written.
    pub age_seconds: Option<u64>,
    /// The verdict.
    pub state: State,
}

/// Judges one reservation.
pub fn judge(facts: &ReservationFacts, evidence: &Evidence<'_>) -> Finding {
    let (container_id, ifname) = match &facts.holder {
        Holder::Attachment { id, ifname } => (id.clone(), Some(ifname.clone())),
        Holder::LegacyId(id) => (id.clone(), None),
        Holder::Unknown => (String::new(), None),
    };
    let attached = !container_id.is_empty()
        && evidence
            .links
            .has_attachment(evidence.network, &container_id, ifname.as_deref());
    let pod = evidence.pods_by_ip.get(&facts.ip).cloned();
    let age = facts
        .reserved_at
        .and_then(|t| evidence.now.duration_since(t).ok());
    let state = if pod.is_some() {
        State::InUse
    } else if attached {
        State::Attached
    } else if age.is_none_or(|a| a < evidence.grace) {
        // An unknown age (clock skew, racing removal) counts as recent: never guess.
        State::Recent
    } else {
        State::Leaked
    };
    Finding {
        ip: facts.ip,
        container_id,
        ifname,
        pod,
        attached,
        age_seconds: age.map(|a| a.as_secs()),
        state,
    }
}

/// Number of distinct attachments (pods, in practice) holding addresses.
pub fn attachment_count(holders: &[Holder]) -> usize {
    holders
        .iter()
        .filter(|h| !matches!(h, Holder::Unknown))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn conflist() -> Value {
        json!({"cniVersion": "1.0.0", "name": "weft", "plugins": [
            {"type": "weft", "mode": "bridge", "bridge": "weft0",
             "ipam": {"type": "weft-ipam", "ranges": [[{"subnet": "10.244.1.0/24"}],
                                                       [{"subnet": "fd00:10:244:1::/64"}]],
                      "dataDir": "/var/lib/cni/networks"}},
            {"type": "weft-portmap"}]})
    }

    #[test]
    fn reads_network_ranges_and_bridge_from_the_conflist() {
        let n = network_ipam(&conflist()).unwrap();
        assert_eq!(n.config.network, "weft");
        assert_eq!(n.config.range_sets.len(), 2);
        assert_eq!(n.bridge.as_deref(), Some("weft0"));
        let mut ptp = conflist();
        ptp["plugins"][0]["mode"] = json!("ptp");
        assert_eq!(network_ipam(&ptp).unwrap().bridge, None);
        let no_ipam = json!({"name": "x", "plugins": [{"type": "loopback"}]});
        assert!(network_ipam(&no_ipam).is_err());
    }

    fn attachment(id: &str) -> Holder {
        Holder::Attachment {
            id: id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn judges_with_all_evidence() {
        let now = SystemTime::now();
        let old = Some(now - Duration::from_secs(600));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let pods: HashMap<IpAddr, String> = [(ip("10.244.1.2"), "default/a".to_string())].into();
        let links = LinkSnapshot {
            names: HashSet::new(),
            attachments: [("weft".into(), "c3".into(), "eth0".into())].into(),
        };
        let evidence = Evidence {
            network: "weft",
            pods_by_ip: &pods,
            links: &links,
            now,
            grace: Duration::from_secs(120),
        };
        let facts = |addr: &str, holder: Holder, at| ReservationFacts {
            ip: ip(addr),
            holder,
            reserved_at: at,
        };
        let state = |f: ReservationFacts| judge(&f, &evidence).state;
        assert_eq!(
            state(facts("10.244.1.2", attachment("c2"), old)),
            State::InUse
        );
        assert_eq!(
            state(facts("10.244.1.3", attachment("c3"), old)),
            State::Attached
        );
        let recent = Some(now - Duration::from_secs(5));
        assert_eq!(
            state(facts("10.244.1.4", attachment("c4"), recent)),
            State::Recent
        );
        assert_eq!(
            state(facts("10.244.1.4", attachment("c4"), None)),
            State::Recent
        );
        assert_eq!(
            state(facts("10.244.1.4", attachment("c4"), old)),
            State::Leaked
        );
        let legacy = Holder::LegacyId("c3".into());
        assert_eq!(state(facts("10.244.1.5", legacy, old)), State::Attached);
        assert_eq!(
            state(facts("10.244.1.6", Holder::Unknown, old)),
            State::Leaked
        );
        let f = judge(&facts("10.244.1.4", attachment("c4"), old), &evidence);
        assert_eq!(f.age_seconds, Some(600));
        assert_eq!(f.ifname.as_deref(), Some("eth0"));
    }

    #[test]
    fn counts_attachments_not_addresses() {
        let dual = [
            attachment("a"),
            attachment("a"),
            attachment("b"),
            Holder::Unknown,
        ];
        assert_eq!(attachment_count(&dual), 2);
    }
}
