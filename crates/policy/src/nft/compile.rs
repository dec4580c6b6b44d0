//! Policies + inventory → [`Ruleset`] for one node (pure).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::ident::{Ident, fnv1a};
use super::ranges::{AddrRange, block_minus, normalize};
use super::render::rule_text;
use super::{Action, AddrField, AddrSet, Chain, Family, L4, PortMatch, Rule, Ruleset, VerdictMap};
use crate::eval::{
    Direction, Resolved, RuleView, isolating_policies, peer_matches, rules, selectors_match_pod,
};
use crate::inventory::{Cluster, Pod};
use crate::model::{IntOrString, NetworkPolicyPeer, Protocol};
use crate::validate::ValidatedPolicy;

/// Compiles the policies that protect the pods of `node`. Peer sets cover pods on every
/// node (a peer may be remote); the verdict maps hold only `node`'s pods.
pub fn compile(cluster: &Cluster, node: &str) -> Ruleset {
    compile_with_quarantine(cluster, node, &[])
}

/// [`compile`], plus addresses `node` must cut off in both directions: a pod that claimed
/// them is not known yet, so no policy can be evaluated for it (sets `wp_quarantine4/6`,
/// checked before anything else in the forward chain).
pub fn compile_with_quarantine(cluster: &Cluster, node: &str, quarantined: &[IpAddr]) -> Ruleset {
    let mut b = Builder::default();
    b.fixed_sets("wp_node4", "wp_node6", cluster.node_ips(node));
    b.fixed_sets("wp_quarantine4", "wp_quarantine6", quarantined);
    for pod in cluster.pods.iter().filter(|p| p.node == node) {
        for direction in [Direction::Egress, Direction::Ingress] {
            let mut policies = isolating_policies(cluster, pod, direction);
            if policies.is_empty() {
                continue;
            }
            policies.sort_by(|a, c| {
                (a.namespace(), &a.metadata.name).cmp(&(c.namespace(), &c.metadata.name))
            });
            let mut chain_rules = Vec::new();
            for policy in policies {
                for rule in &rules(policy, direction) {
                    let ctx = RuleCtx {
                        cluster,
                        policy,
                        direction,
                        target: pod,
                    };
                    chain_rules.extend(b.compile_rule(&ctx, rule));
                }
            }
            chain_rules.push(Rule {
                addr: None,
                ports: None,
                action: Action::Drop,
            });
            let chain = b.add_chain(chain_rules);
            for ip in &pod.ips {
                b.maps
                    .insert((direction, Family::of(ip), *ip), chain.clone());
            }
        }
    }
    b.finish()
}

struct RuleCtx<'a> {
    cluster: &'a Cluster,
    policy: &'a ValidatedPolicy,
    direction: Direction,
    /// The policed pod (resolves named ports for ingress).
    target: &'a Pod,
}

impl RuleCtx<'_> {
    /// Identity of a peer list: its definition plus the policy namespace (which a bare
    /// podSelector refers to). Sets are named by it, so equal peer lists in different
    /// policies share one set, and a set keeps its name while pods and labels change.
    fn peers_key(&self, peers: &[NetworkPolicyPeer]) -> String {
        let definition = serde_json::to_string(peers).unwrap_or_default();
        format!("{}|{definition}", self.policy.namespace())
    }

    fn field(&self) -> AddrField {
        match self.direction {
            Direction::Ingress => AddrField::Saddr,
            Direction::Egress => AddrField::Daddr,
        }
    }

    fn action(&self) -> Action {
        match self.direction {
            Direction::Ingress => Action::Accept,
            Direction::Egress => Action::Return,
        }
    }
}

#[derive(Default)]
struct Builder {
    sets: BTreeMap<Ident, AddrSet>,
    chains: BTreeMap<Ident, Vec<Rule>>,
    maps: BTreeMap<(Direction, Family, IpAddr), Ident>,
    /// Egress named-port rules per (peers, protocol, name): they do not depend on the
    /// source pod.
    named_cache: HashMap<String, Vec<Rule>>,
}

impl Builder {
    /// One always-present interval set per family holding `ips` of that family.
    fn fixed_sets(&mut self, v4: &'static str, v6: &'static str, ips: &[IpAddr]) {
        for (family, name) in [(Family::V4, v4), (Family::V6, v6)] {
            let ranges = ips.iter().map(|ip| AddrRange::single(*ip)).collect();
            let name = Ident::fixed(name);
            self.sets.insert(
                name.clone(),
                AddrSet {
                    name,
                    family,
                    elements: normalize(family, ranges),
                },
            );
        }
    }

    fn compile_rule(&mut self, ctx: &RuleCtx<'_>, rule: &RuleView<'_>) -> Vec<Rule> {
        let (groups, named) = port_groups(ctx, rule);
        let mut out = Vec::new();
        // Ports were listed but none applies here (e.g. an unresolved named port): the
        // numeric part of the rule matches nothing, rather than every port.
        let numeric: Vec<Option<PortMatch>> = if rule.ports.is_empty() {
            vec![None]
        } else {
            groups
                .into_iter()
                .map(|(l4, ports)| Some(PortMatch { l4, ports }))
                .collect()
        };
        let addrs = self.peer_sets(ctx, rule.peers);
        for addr in &addrs {
            for ports in &numeric {
                out.push(Rule {
                    addr: addr.clone(),
                    ports: ports.clone(),
                    action: ctx.action(),
                });
            }
        }
        for (l4, name) in named {
            out.extend(self.egress_named_port(ctx, rule.peers, l4, &name));
        }
        out
    }

    /// The address matches of a rule: `[None]` when it has no peers (all peers), else one
    /// per family.
    fn peer_sets(
        &mut self,
        ctx: &RuleCtx<'_>,
        peers: &[NetworkPolicyPeer],
    ) -> Vec<Option<(AddrField, Family, Ident)>> {
        if peers.is_empty() {
            return vec![None];
        }
        let hash = fnv1a(&ctx.peers_key(peers));
        let names = [
            (Family::V4, Ident::hashed("s4", hash)),
            (Family::V6, Ident::hashed("s6", hash)),
        ];
        // Every pod the rule's policy selects shares these sets: compute them once.
        if names.iter().any(|(_, n)| !self.sets.contains_key(n)) {
            let ranges = peer_ranges(ctx, peers);
            for (family, name) in &names {
                let elements = normalize(*family, ranges.clone());
                self.sets.insert(
                    name.clone(),
                    AddrSet {
                        name: name.clone(),
                        family: *family,
                        elements,
                    },
                );
            }
        }
        names
            .into_iter()
            .map(|(family, name)| Some((ctx.field(), family, name)))
            .collect()
    }

    /// Egress to a named port: the number depends on the destination pod, so destinations
    /// are grouped by the number their port resolves to, one set per number.
    fn egress_named_port(
        &mut self,
        ctx: &RuleCtx<'_>,
        peers: &[NetworkPolicyPeer],
        l4: L4,
        name: &str,
    ) -> Vec<Rule> {
        let cache_key = format!("{}/{l4:?}/{name}", ctx.peers_key(peers));
        if let Some(rules) = self.named_cache.get(&cache_key) {
            return rules.clone();
        }
        let protocol = protocol_of(l4);
        let mut by_port: BTreeMap<u16, Vec<AddrRange>> = BTreeMap::new();
        for pod in &ctx.cluster.pods {
            let Some(number) = pod.resolve_named_port(name, &protocol) else {
                continue;
            };
            for ip in &pod.ips {
                let ep = Resolved {
                    pod: Some(pod),
                    ip: *ip,
                };
                if peers.is_empty()
                    || peers
                        .iter()
                        .any(|p| peer_matches(ctx.cluster, ctx.policy.namespace(), p, &ep))
                {
                    by_port
                        .entry(number)
                        .or_default()
                        .push(AddrRange::single(*ip));
                }
            }
        }
        let mut out = Vec::new();
        for (number, ranges) in by_port {
            let hash = fnv1a(&format!("{cache_key}/{number}"));
            for (family, tag) in [(Family::V4, "n4"), (Family::V6, "n6")] {
                let set = Ident::hashed(tag, hash);
                let elements = normalize(family, ranges.clone());
                self.sets.insert(
                    set.clone(),
                    AddrSet {
                        name: set.clone(),
                        family,
                        elements,
                    },
                );
                out.push(Rule {
                    addr: Some((AddrField::Daddr, family, set)),
                    ports: Some(PortMatch {
                        l4,
                        ports: Some(vec![(number, number)]),
                    }),
                    action: ctx.action(),
                });
            }
        }
        self.named_cache.insert(cache_key, out.clone());
        out
    }

    fn add_chain(&mut self, rules: Vec<Rule>) -> Ident {
        let text: Vec<String> = rules.iter().map(rule_text).collect();
        let name = Ident::hashed("c", fnv1a(&text.join("\n")));
        self.chains.entry(name.clone()).or_insert(rules);
        name
    }

    fn finish(self) -> Ruleset {
        let mut maps = Vec::new();
        for (direction, family, name) in [
            (Direction::Egress, Family::V4, "wp_egress4"),
            (Direction::Egress, Family::V6, "wp_egress6"),
            (Direction::Ingress, Family::V4, "wp_ingress4"),
            (Direction::Ingress, Family::V6, "wp_ingress6"),
        ] {
            let elements = self
                .maps
                .iter()
                .filter(|((d, f, _), _)| *d == direction && *f == family)
                .map(|((_, _, ip), chain)| (*ip, chain.clone()))
                .collect();
            maps.push(VerdictMap {
                name: Ident::fixed(name),
                family,
                elements,
            });
        }
        Ruleset {
            sets: self.sets.into_values().collect(),
            maps,
            chains: self
                .chains
                .into_iter()
                .map(|(name, rules)| Chain { name, rules })
                .collect(),
        }
    }
}

/// Per protocol: inclusive port ranges, or `None` for every port.
type PortGroups = BTreeMap<L4, Option<Vec<(u16, u16)>>>;

/// Numeric port matches per protocol (`None` = all ports), plus the named ports that must
/// be resolved per destination (egress only; ingress resolves against the target pod).
fn port_groups(ctx: &RuleCtx<'_>, rule: &RuleView<'_>) -> (PortGroups, BTreeSet<(L4, String)>) {
    let mut groups = PortGroups::new();
    let mut named = BTreeSet::new();
    for entry in rule.ports {
        let protocol = entry.effective_protocol();
        let Some(l4) = l4_of(&protocol) else { continue };
        let range = match &entry.port {
            None => {
                groups.insert(l4, None);
                continue;
            }
            Some(IntOrString::Int(start)) => {
                let end = entry.end_port.map_or(*start, i64::from);
                match (u16::try_from(*start), u16::try_from(end)) {
                    (Ok(s), Ok(e)) => (s, e),
                    _ => continue,
                }
            }
            Some(IntOrString::String(name)) => match ctx.direction {
                Direction::Egress => {
                    named.insert((l4, name.clone()));
                    continue;
                }
                Direction::Ingress => match ctx.target.resolve_named_port(name, &protocol) {
                    Some(n) => (n, n),
                    None => continue,
                },
            },
        };
        if let Some(list) = groups.entry(l4).or_insert_with(|| Some(Vec::new())) {
            list.push(range);
        }
    }
    for ports in groups.values_mut().flatten() {
        *ports = merge_ports(std::mem::take(ports));
    }
    (groups, named)
}

fn merge_ports(mut ports: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ports.sort();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (s, e) in ports {
        match out.last_mut() {
            Some(last) if u32::from(s) <= u32::from(last.1) + 1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Addresses a rule's peers cover: selected pods' IPs and ipBlock ranges.
fn peer_ranges(ctx: &RuleCtx<'_>, peers: &[NetworkPolicyPeer]) -> Vec<AddrRange> {
    let mut out = Vec::new();
    for peer in peers {
        if let Some(block) = peer.ip_block.as_ref().and_then(|b| b.parse()) {
            out.extend(block_minus(block.cidr, &block.except));
            continue;
        }
        for pod in &ctx.cluster.pods {
            if selectors_match_pod(ctx.cluster, ctx.policy.namespace(), peer, pod) {
                out.extend(pod.ips.iter().map(|ip| AddrRange::single(*ip)));
            }
        }
    }
    out
}

fn l4_of(p: &Protocol) -> Option<L4> {
    match p {
        Protocol::Tcp => Some(L4::Tcp),
        Protocol::Udp => Some(L4::Udp),
        Protocol::Sctp => Some(L4::Sctp),
        Protocol::Unsupported(_) => None,
    }
}

fn protocol_of(l4: L4) -> Protocol {
    match l4 {
        L4::Tcp => Protocol::Tcp,
        L4::Udp => Protocol::Udp,
        L4::Sctp => Protocol::Sctp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Node;
    use crate::model::NetworkPolicy;
    use crate::nft::{ElementOp, element_delta};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn pod(name: &str, addr: &str) -> Pod {
        Pod {
            namespace: "x".into(),
            name: name.into(),
            labels: [("pod".to_string(), name.to_string())].into(),
            ips: vec![ip(addr)],
            node: "n1".into(),
            ports: Vec::new(),
        }
    }

    /// x/a is isolated for ingress and admits x/b only; x/c is not isolated at all.
    fn cluster() -> Cluster {
        let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "only-b", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}
        }))
        .unwrap();
        Cluster {
            pods: vec![
                pod("a", "10.1.0.1"),
                pod("b", "10.1.0.2"),
                pod("c", "10.1.0.3"),
            ],
            nodes: vec![Node {
                name: "n1".into(),
                ips: vec![ip("10.0.0.1")],
            }],
            policies: vec![policy.validate().unwrap()],
            ..Cluster::default()
        }
    }

    fn set<'a>(rs: &'a Ruleset, name: &str) -> &'a AddrSet {
        rs.sets.iter().find(|s| s.name.as_str() == name).unwrap()
    }

    #[test]
    fn quarantine_sets_always_exist_and_hold_their_family() {
        let plain = compile(&cluster(), "n1");
        assert!(set(&plain, "wp_quarantine4").elements.is_empty());
        assert!(set(&plain, "wp_quarantine6").elements.is_empty());
        let q = compile_with_quarantine(&cluster(), "n1", &[ip("10.1.0.9"), ip("fd00::9")]);
        assert_eq!(
            set(&q, "wp_quarantine4").elements,
            vec![AddrRange::single(ip("10.1.0.9"))]
        );
        assert_eq!(
            set(&q, "wp_quarantine6").elements,
            vec![AddrRange::single(ip("fd00::9"))]
        );
    }

    #[test]
    fn quarantined_address_is_cut_off_both_ways_before_any_policy() {
        let c = cluster();
        let (b, c_ip, node) = (ip("10.1.0.2"), ip("10.1.0.3"), ip("10.0.0.1"));
        let plain = compile(&c, "n1");
        assert!(plain.simulate(b, ip("10.1.0.1"), L4::Tcp, 80));
        assert!(plain.simulate(b, c_ip, L4::Tcp, 80));
        // x/c is isolated by nothing, and b is an allowed peer of x/a: still cut off.
        let q = compile_with_quarantine(&c, "n1", &[c_ip, b]);
        assert!(!q.simulate(b, ip("10.1.0.1"), L4::Tcp, 80));
        assert!(!q.simulate(c_ip, ip("10.1.0.1"), L4::Udp, 53));
        assert!(!q.simulate(ip("10.9.9.9"), c_ip, L4::Tcp, 80));
        assert!(!q.simulate(node, c_ip, L4::Tcp, 80));
        // Other traffic is as before.
        assert!(q.simulate(ip("10.9.9.9"), ip("10.9.9.8"), L4::Tcp, 80));
        assert!(!q.simulate(ip("10.9.9.9"), ip("10.1.0.1"), L4::Tcp, 80));
    }

    #[test]
    fn quarantine_changes_are_element_only() {
        let c = cluster();
        let plain = compile(&c, "n1");
        let q = compile_with_quarantine(&c, "n1", &[ip("10.1.0.9")]);
        let delta = element_delta(&plain, &q).unwrap();
        assert_eq!(
            delta.ops,
            vec![ElementOp::AddRange(
                Ident::fixed("wp_quarantine4"),
                AddrRange::single(ip("10.1.0.9"))
            )]
        );
        let lift = element_delta(&q, &plain).unwrap();
        assert!(
            lift.render()
                .contains("delete element inet weft_policy wp_quarantine4 { 10.1.0.9 }"),
            "{}",
            lift.render()
        );
    }

    #[test]
    fn rendered_chain_drops_quarantine_first() {
        let text = compile_with_quarantine(&cluster(), "n1", &[ip("10.1.0.9")]).render();
        assert!(text.contains(
            "set wp_quarantine4 { type ipv4_addr; flags interval; elements = { 10.1.0.9 }; }"
        ));
        let drop4 = text.find("ip saddr @wp_quarantine4 drop").unwrap();
        let drop6 = text.find("ip6 daddr @wp_quarantine6 drop").unwrap();
        let ct = text.find("ct state established,related accept").unwrap();
        let vmap = text.find("vmap @wp_egress4").unwrap();
        assert!(drop4 < drop6 && drop6 < ct && ct < vmap, "{text}");
        assert!(text.contains("ip daddr @wp_quarantine4 drop"));
        assert!(text.contains("ip6 saddr @wp_quarantine6 drop"));
    }
}
