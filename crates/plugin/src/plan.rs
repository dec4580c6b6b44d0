//! Pure planning: from the validated configuration and the IPAM outcome to the complete
//! desired state of one attachment (links, addresses, routes, sysctls, masquerade), before
//! anything is touched. The executor (`apply.rs`) only carries a plan out; CHECK compares
//! the kernel against the same plan.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::conf::{MainConf, Mode};
use crate::error::PluginError;
use crate::naming;

/// One address IPAM gave the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddress {
    /// The pod's address with its subnet's prefix length.
    pub address: IpNet,
    /// The subnet's gateway, if IPAM returned one.
    pub gateway: Option<IpAddr>,
}

/// A route as IPAM lists it (`gw` absent = via the family's gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gw: Option<IpAddr>,
}

/// A route to install: either via a next hop or directly on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; `None` = link scope on the interface.
    pub via: Option<IpAddr>,
    /// Whether the route appears in the CNI result (link routes to the gateway do not).
    pub in_result: bool,
}

/// The bridge and what it carries (bridge mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    /// Bridge name.
    pub name: String,
    /// Gateway addresses (gw/prefix) put on the bridge when `isGateway`.
    pub gateway_addrs: Vec<IpNet>,
    /// MTU for the bridge.
    pub mtu: Option<u32>,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Replace a different IPv4 address on the bridge.
    pub force_address: bool,
}

/// Everything one attachment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPlan {
    /// Host-side veth name (deterministic, see `naming`).
    pub host_veth: String,
    /// Alias written on the host veth so GC can find the attachment.
    pub alias: String,
    /// The pod-side interface name (`CNI_IFNAME`).
    pub pod_ifname: String,
    /// MTU for both veth ends.
    pub mtu: Option<u32>,
    /// Hairpin on the bridge port.
    pub hairpin: bool,
    /// Bridge to attach to (bridge mode), or `None` (ptp).
    pub bridge: Option<BridgePlan>,
    /// Addresses on the pod interface.
    pub pod_addrs: Vec<IpNet>,
    /// Routes in the pod, in order (a gateway's link route before routes via it).
    pub pod_routes: Vec<PlannedRoute>,
    /// Addresses on the host veth (ptp: the gateway as /32 or /128).
    pub host_addrs: Vec<IpNet>,
    /// Routes on the node toward the pod (ptp: pod/32 dev host veth).
    pub host_routes: Vec<IpNet>,
    /// Forwarding to enable on the node: (IPv4, IPv6).
    pub forwarding: (bool, bool),
    /// Pod addresses to masquerade (with their subnet prefixes), tagged.
    pub masq: Option<(Vec<IpNet>, String)>,
    /// `macspoofchk` (bridge mode): frames from the pod must carry the pod's MAC; the tag
    /// of the attachment's elements.
    pub macspoof: Option<String>,
}

/// Identity of the attachment being planned.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// Network name.
    pub network: &'a str,
    /// Container id.
    pub container_id: &'a str,
    /// Pod interface name.
    pub ifname: &'a str,
}

fn host_prefix(ip: IpAddr) -> IpNet {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, len).unwrap_or_else(|_| IpNet::from(ip))
}

fn default_route(ip: IpAddr) -> IpNet {
    let (net, len) = match ip {
        IpAddr::V4(_) => (IpAddr::from([0u8; 4]), 0),
        IpAddr::V6(_) => (IpAddr::from([0u16; 8]), 0),
    };
    IpNet::new(net, len).unwrap_or_else(|_| IpNet::from(net))
}

/// The gateway of an address: the one IPAM gave, else the subnet's first host (reference
/// behaviour when `isGateway` is set and IPAM omits it).
fn gateway_of(a: &PodAddress, need: bool) -> Result<Option<IpAddr>, PluginError> {
    if let Some(gw) = a.gateway {
        if !a.address.contains(&gw) {
            return Err(PluginError::config(format!(
                "gateway {gw} is outside the pod subnet {}",
                a.address.trunc()
            )));
        }
        return Ok(Some(gw));
    }
    if !need {
        return Ok(None);
    }
    let first = a.address.trunc().hosts().next();
    Ok(first.filter(|gw| *gw != a.address.addr()))
}

/// Plans one attachment.
pub fn plan_attachment(
    conf: &MainConf,
    who: Who<'_>,
    addrs: &[PodAddress],
    ipam_routes: &[IpamRoute],
) -> Result<AttachmentPlan, PluginError> {
    let ptp = conf.mode == Mode::Ptp;
    if ptp && addrs.is_empty() {
        return Err(PluginError::config(
            "ptp mode needs IPAM to return an address",
        ));
    }
    let mut gateways: Vec<(IpAddr, IpNet)> = Vec::new();
    let mut forwarding = (false, false);
    for a in addrs {
        let gw = gateway_of(a, conf.is_gateway || ptp)?;
        match gw {
            Some(gw) => gateways.push((gw, a.address)),
            None if ptp => {
                return Err(PluginError::config(format!(
                    "ptp mode needs a gateway for {}",
                    a.address
                )));
            }
            None => {}
        }
        if conf.is_gateway || ptp {
            if a.address.addr().is_ipv4() {
                forwarding.0 = true;
            } else {
                forwarding.1 = true;
            }
        }
    }
    let family_gw = |dst: &IpNet| {
        gateways
            .iter()
            .find(|(gw, _)| gw.is_ipv4() == dst.addr().is_ipv4())
            .map(|(gw, _)| *gw)
    };

    let mut pod_routes = Vec::new();
    if ptp {
        // The pod reaches its gateway on the link, then its subnet and everything else via it.
        for (gw, net) in &gateways {
            pod_routes.push(PlannedRoute {
                dst: host_prefix(*gw),
                via: None,
                in_result: false,
            });
            pod_routes.push(PlannedRoute {
                dst: net.trunc(),
                via: Some(*gw),
                in_result: false,
            });
        }
    }
    for r in ipam_routes {
        let via = r.gw.or_else(|| family_gw(&r.dst));
        if via.is_none() && ptp {
            return Err(PluginError::config(format!(
                "no gateway for route {}",
                r.dst
            )));
        }
        pod_routes.push(PlannedRoute {
            dst: r.dst,
            via,
            in_result: true,
        });
    }
    if conf.is_default_gateway {
        for (gw, _) in &gateways {
            let dst = default_route(*gw);
            if !pod_routes.iter().any(|r| r.dst == dst) {
                pod_routes.push(PlannedRoute {
                    dst,
                    via: Some(*gw),
                    in_result: true,
                });
            }
        }
    }

    let bridge = (!ptp).then(|| BridgePlan {
        name: conf.bridge.clone(),
        gateway_addrs: if conf.is_gateway {
            gateways
                .iter()
                .filter_map(|(gw, net)| IpNet::new(*gw, net.prefix_len()).ok())
                .collect()
        } else {
            Vec::new()
        },
        mtu: conf.mtu,
        promisc: conf.promisc_mode,
        force_address: conf.force_address,
    });
    let (host_addrs, host_routes) = if ptp {
        (
            gateways.iter().map(|(gw, _)| host_prefix(*gw)).collect(),
            addrs
                .iter()
                .map(|a| host_prefix(a.address.addr()))
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let masq = (conf.ip_masq && !addrs.is_empty()).then(|| {
        (
            addrs.iter().map(|a| a.address).collect(),
            naming::nft_tag(who.network, who.container_id, who.ifname),
        )
    });
    Ok(AttachmentPlan {
        host_veth: naming::host_veth_name(who.network, who.container_id, who.ifname),
        alias: naming::attachment_alias(who.network, who.container_id, who.ifname),
        pod_ifname: who.ifname.to_string(),
        mtu: conf.mtu,
        hairpin: conf.hairpin_mode,
        bridge,
        pod_addrs: addrs.iter().map(|a| a.address).collect(),
        pod_routes,
        host_addrs,
        host_routes,
        forwarding,
        masq,
        macspoof: (conf.macspoofchk && !ptp)
            .then(|| naming::nft_tag(who.network, who.container_id, who.ifname)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who() -> Who<'static> {
        Who {
            network: "net",
            container_id: "c1",
            ifname: "eth0",
        }
    }

    fn addr(a: &str, gw: Option<&str>) -> PodAddress {
        PodAddress {
            address: a.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn bridge_gateway_defaults_to_first_host() {
        let conf = MainConf::from_value(&json!({"isDefaultGateway": true})).unwrap();
        let p = plan_attachment(&conf, who(), &[addr("10.1.0.5/24", None)], &[]).unwrap();
        let b = p.bridge.unwrap();
        assert_eq!(
            b.gateway_addrs,
            vec!["10.1.0.1/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(p.pod_routes.len(), 1);
        assert_eq!(p.pod_routes[0].dst, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(p.forwarding, (true, false));
    }

    #[test]
    fn dual_stack_routes_pick_the_family_gateway() {
        let conf = MainConf::from_value(&json!({"isGateway": true})).unwrap();
        let routes = [
            IpamRoute {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None,
            },
            IpamRoute {
                dst: "::/0".parse().unwrap(),
                gw: None,
            },
        ];
        let p = plan_attachment(
            &conf,
            who(),
            &[
                addr("10.1.0.5/24", Some("10.1.0.1")),
                addr("fd00::5/64", Some("fd00::1")),
            ],
            &routes,
        )
        .unwrap();
        assert_eq!(p.pod_routes[0].via, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(p.pod_routes[1].via, Some("fd00::1".parse().unwrap()));
        assert_eq!(p.forwarding, (true, true));
    }

    #[test]
    fn ptp_routes_through_a_link_scoped_gateway() {
        let conf = MainConf::from_value(&json!({"mode": "ptp", "ipMasq": true})).unwrap();
        let p =
            plan_attachment(&conf, who(), &[addr("10.1.0.5/24", Some("10.1.0.1"))], &[]).unwrap();
        assert!(p.bridge.is_none());
        assert_eq!(
            p.pod_routes[0],
            PlannedRoute {
                dst: "10.1.0.1/32".parse().unwrap(),
                via: None,
                in_result: false
            }
        );
        assert_eq!(p.pod_routes[1].dst, "10.1.0.0/24".parse::<IpNet>().unwrap());
        assert_eq!(p.host_addrs, vec!["10.1.0.1/32".parse::<IpNet>().unwrap()]);
        assert_eq!(p.host_routes, vec!["10.1.0.5/32".parse::<IpNet>().unwrap()]);
        assert!(p.masq.is_some());
    }

    #[test]
    fn gateway_outside_subnet_is_rejected() {
        let conf = MainConf::from_value(&json!({"isGateway": true})).unwrap();
        let e = plan_attachment(&conf, who(), &[addr("10.1.0.5/24", Some("10.2.0.1"))], &[]);
        assert!(e.is_err());
    }
}
