//! Claims: the `weft` plugin tells weftd which pod is about to own which addresses
//! (policy contract, "the claim socket"). The wire format and the in-memory table; pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::json;

/// One claim: pod `namespace/name` (sandbox `container_id`) owns `ips` on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// CNI_CONTAINERID of the ADD (for logs).
    pub container_id: String,
    /// The addresses IPAM allocated.
    pub ips: Vec<IpAddr>,
}

impl Claim {
    /// `namespace/name`, the pod's store key.
    pub fn pod_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    op: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    container_id: String,
    #[serde(default)]
    ips: Vec<String>,
}

/// Reads one request line.
pub fn parse_request(line: &str) -> Result<Claim, String> {
    let req: Request =
        serde_json::from_str(line.trim()).map_err(|e| format!("malformed request: {e}"))?;
    if req.op != "claim" {
        return Err(format!("unknown op {:?}", req.op));
    }
    if req.namespace.is_empty() || req.name.is_empty() {
        return Err("claim needs namespace and name".into());
    }
    if req.ips.is_empty() {
        return Err("claim needs at least one address".into());
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    for text in &req.ips {
        // An address with a prefix ("10.244.1.5/24") is accepted: CNI results carry those.
        let bare = text.split('/').next().unwrap_or_default();
        let ip: IpAddr = bare
            .parse()
            .map_err(|_| format!("bad address {text:?} in claim"))?;
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok(Claim {
        namespace: req.namespace,
        name: req.name,
        container_id: req.container_id,
        ips,
    })
}

/// The answer line for a claim.
pub fn reply_line(result: &Result<(), String>) -> String {
    let value = match result {
        Ok(()) => json!({ "ok": true }),
        Err(error) => json!({ "ok": false, "error": error }),
    };
    format!("{value}\n")
}

/// Claims in force, by pod. An address belongs to at most one pod: the latest claim wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimTable {
    by_pod: BTreeMap<(String, String), Claim>,
}

impl ClaimTable {
    /// Records `claim`, replacing the pod's earlier one and taking its addresses away from
    /// any other pod (whose claim is forgotten once it has none left).
    pub fn record(&mut self, claim: Claim) {
        let pod = (claim.namespace.clone(), claim.name.clone());
        self.by_pod.retain(|other, c| {
            if *other == pod {
                return false;
            }
            c.ips.retain(|ip| !claim.ips.contains(ip));
            !c.ips.is_empty()
        });
        self.by_pod.insert(pod, claim);
    }

    /// Forgets the claim of pod `namespace/name` (its object was deleted).
    pub fn forget(&mut self, namespace: &str, name: &str) -> bool {
        self.by_pod
            .remove(&(namespace.to_string(), name.to_string()))
            .is_some()
    }

    /// The claim of pod `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Claim> {
        self.by_pod.get(&(namespace.to_string(), name.to_string()))
    }

    /// Every claim.
    pub fn iter(&self) -> impl Iterator<Item = &Claim> {
        self.by_pod.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(ns: &str, name: &str, ips: &[&str]) -> Claim {
        Claim {
            namespace: ns.into(),
            name: name.into(),
            container_id: "c1".into(),
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn parses_the_contract_example() {
        let line = r#"{"op":"claim","namespace":"x","name":"a","containerId":"abc","ips":["10.244.1.5","fd00::5"]}"#;
        let c = parse_request(line).unwrap();
        assert_eq!(c.pod_key(), "x/a");
        assert_eq!(c.container_id, "abc");
        assert_eq!(c.ips.len(), 2);
        let prefixed = r#"{"op":"claim","namespace":"x","name":"a","ips":["10.244.1.5/24"]}"#;
        assert_eq!(
            parse_request(prefixed).unwrap().ips,
            vec!["10.244.1.5".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn refuses_bad_requests() {
        for (line, want) in [
            ("nope", "malformed"),
            (
                r#"{"op":"release","namespace":"x","name":"a","ips":["10.0.0.1"]}"#,
                "unknown op",
            ),
            (
                r#"{"op":"claim","name":"a","ips":["10.0.0.1"]}"#,
                "namespace",
            ),
            (
                r#"{"op":"claim","namespace":"x","name":"a","ips":[]}"#,
                "at least one",
            ),
            (
                r#"{"op":"claim","namespace":"x","name":"a","ips":["x"]}"#,
                "bad address",
            ),
        ] {
            let e = parse_request(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn replies_are_one_json_line() {
        assert_eq!(reply_line(&Ok(())), "{\"ok\":true}\n");
        let e = reply_line(&Err("no".into()));
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"], "no");
        assert!(e.ends_with('\n') && e.matches('\n').count() == 1);
    }

    fn is_claimed(t: &ClaimTable, ip: &str) -> bool {
        let ip: IpAddr = ip.parse().unwrap();
        t.iter().any(|c| c.ips.contains(&ip))
    }

    #[test]
    fn latest_claim_owns_the_address() {
        let mut t = ClaimTable::default();
        t.record(claim("x", "a", &["10.0.0.5", "fd00::5"]));
        t.record(claim("x", "b", &["10.0.0.6"]));
        // A new pod gets a's IPv4 address: a keeps only its IPv6 one.
        t.record(claim("y", "c", &["10.0.0.5"]));
        assert_eq!(
            t.get("x", "a").unwrap().ips,
            vec!["fd00::5".parse::<IpAddr>().unwrap()]
        );
        // ...and then its IPv6 one too: a's claim is gone.
        t.record(claim("y", "d", &["fd00::5"]));
        assert!(t.get("x", "a").is_none());
        assert!(is_claimed(&t, "10.0.0.6"));
        // A pod's new claim (a retried ADD) replaces its old one.
        t.record(claim("x", "b", &["10.0.0.7"]));
        assert!(!is_claimed(&t, "10.0.0.6"));
        assert!(t.forget("x", "b"));
        assert!(!t.forget("x", "b"));
        assert_eq!(t.iter().count(), 2);
    }
}
