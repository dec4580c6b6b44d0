//! A pure interpreter of a [`Ruleset`] for one new-connection packet, mirroring what the
//! kernel does with the rendered table. Tests use it to check the compiler against the
//! evaluator without a kernel; `weftctl policy trace` may use it to explain a node's table.

use std::net::IpAddr;

use super::{Action, AddrField, Family, L4, Ruleset};

/// Outcome of walking a chain.
enum Walk {
    Accept,
    Drop,
    Return,
}

impl Ruleset {
    /// Would the `forward` hook let a new connection from `src` to `dst` (same family)
    /// on `l4`/`port` through? Established flows are not modelled: they are accepted right
    /// after the quarantine check.
    pub fn simulate(&self, src: IpAddr, dst: IpAddr, l4: L4, port: u16) -> bool {
        let quarantine = if src.is_ipv4() {
            "wp_quarantine4"
        } else {
            "wp_quarantine6"
        };
        if self.set_contains(quarantine, src) || self.set_contains(quarantine, dst) {
            return false;
        }
        if self.set_contains(
            if src.is_ipv4() {
                "wp_node4"
            } else {
                "wp_node6"
            },
            src,
        ) {
            return true;
        }
        let (egress, ingress) = match Family::of(&src) {
            Family::V4 => ("wp_egress4", "wp_ingress4"),
            Family::V6 => ("wp_egress6", "wp_ingress6"),
        };
        for (map, key) in [(egress, src), (ingress, dst)] {
            let Some(chain) = self.map_lookup(map, key) else {
                continue;
            };
            match self.walk(chain, src, dst, l4, port) {
                Walk::Accept => return true,
                Walk::Drop => return false,
                Walk::Return => {}
            }
        }
        true
    }

    fn walk(&self, chain: &str, src: IpAddr, dst: IpAddr, l4: L4, port: u16) -> Walk {
        let Some(chain) = self.chains.iter().find(|c| c.name.as_str() == chain) else {
            return Walk::Return;
        };
        for rule in &chain.rules {
            let addr_ok = rule.addr.as_ref().is_none_or(|(field, family, set)| {
                let ip = match field {
                    AddrField::Saddr => src,
                    AddrField::Daddr => dst,
                };
                Family::of(&ip) == *family && self.set_contains(set.as_str(), ip)
            });
            let ports_ok = rule.ports.as_ref().is_none_or(|m| {
                m.l4 == l4
                    && m.ports
                        .as_ref()
                        .is_none_or(|r| r.iter().any(|(s, e)| (*s..=*e).contains(&port)))
            });
            if addr_ok && ports_ok {
                return match rule.action {
                    Action::Accept => Walk::Accept,
                    Action::Drop => Walk::Drop,
                    Action::Return => Walk::Return,
                };
            }
        }
        Walk::Return
    }

    fn set_contains(&self, name: &str, ip: IpAddr) -> bool {
        let probe = super::AddrRange::single(ip);
        self.sets
            .iter()
            .filter(|s| s.name.as_str() == name)
            .flat_map(|s| &s.elements)
            .any(|r| r.family == probe.family && r.start <= probe.start && probe.start <= r.end)
    }

    fn map_lookup(&self, name: &str, ip: IpAddr) -> Option<&str> {
        self.maps
            .iter()
            .filter(|m| m.name.as_str() == name)
            .flat_map(|m| &m.elements)
            .find(|(k, _)| *k == ip)
            .map(|(_, chain)| chain.as_str())
    }
}
