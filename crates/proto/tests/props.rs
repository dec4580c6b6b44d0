//! Property tests: version round-trips of the result model, and parsers never panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use weft_proto::{
    CniArgs, CniEnv, CniResult, CniVersion, Dns, Interface, IpConfig, NetConf, Route, SUPPORTED,
};

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn ip_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(b, p)| IpNet::V4(Ipv4Net::new(b.into(), p).unwrap())),
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(b, p)| IpNet::V6(Ipv6Net::new(b.into(), p).unwrap())),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{1,12}"
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        text(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(1u32..100_000),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(name, mac, sandbox, mtu, socket_path, pci_id)| Interface {
            name,
            mac,
            sandbox,
            mtu,
            socket_path,
            pci_id,
        })
}

fn ip_config() -> impl Strategy<Value = IpConfig> {
    (
        ip_net(),
        proptest::option::of(ip_addr()),
        proptest::option::of(0usize..8),
    )
        .prop_map(|(address, gateway, interface)| IpConfig {
            address,
            gateway,
            interface,
        })
}

fn route() -> impl Strategy<Value = Route> {
    let nonzero = || proptest::option::of(1u32..=u32::MAX);
    (
        ip_net(),
        proptest::option::of(ip_addr()),
        nonzero(),
        nonzero(),
        nonzero(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn dns() -> impl Strategy<Value = Dns> {
    let list = || proptest::collection::vec(text(), 0..3);
    (list(), proptest::option::of(text()), list(), list()).prop_map(
        |(nameservers, domain, search, options)| Dns {
            nameservers,
            domain,
            search,
            options,
        },
    )
}

fn result() -> impl Strategy<Value = CniResult> {
    (
        proptest::collection::vec(interface(), 0..4),
        proptest::collection::vec(ip_config(), 0..4),
        proptest::collection::vec(route(), 0..4),
        dns(),
    )
        .prop_map(|(interfaces, ips, routes, dns)| CniResult {
            interfaces,
            ips,
            routes,
            dns,
        })
}

fn strip_extras(mut r: CniResult) -> CniResult {
    for i in &mut r.interfaces {
        (i.mtu, i.socket_path, i.pci_id) = (None, None, None);
    }
    r.routes = r
        .routes
        .iter()
        .map(|rt| Route::new(rt.dst, rt.gw))
        .collect();
    r
}

/// What survives a trip through `v`'s wire form; `None` when `v` cannot carry it at all.
fn projection(r: &CniResult, v: CniVersion) -> Option<CniResult> {
    match v {
        CniVersion::V1_1_0 => Some(r.clone()),
        CniVersion::V1_0_0 | CniVersion::V0_4_0 | CniVersion::V0_3_1 | CniVersion::V0_3_0 => {
            Some(strip_extras(r.clone()))
        }
        CniVersion::V0_1_0 | CniVersion::V0_2_0 => {
            let mut out = CniResult {
                dns: r.dns.clone(),
                ..CniResult::default()
            };
            for v4 in [true, false] {
                if let Some(ip) = r.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4) {
                    out.ips.push(IpConfig {
                        interface: None,
                        ..ip.clone()
                    });
                    let family = r.routes.iter().filter(|rt| rt.dst.addr().is_ipv4() == v4);
                    out.routes
                        .extend(family.map(|rt| Route::new(rt.dst, rt.gw)));
                }
            }
            (!out.ips.is_empty()).then_some(out)
        }
    }
}

proptest! {
    #[test]
    fn result_round_trips_every_version(r in result()) {
        for &v in SUPPORTED {
            match projection(&r, v) {
                Some(expected) => {
                    let json = r.to_json(v).unwrap();
                    prop_assert_eq!(json["cniVersion"].as_str(), Some(v.as_str()));
                    // Read with a different default: the embedded cniVersion must win.
                    let back = CniResult::from_json(&json, CniVersion::V0_1_0).unwrap();
                    prop_assert_eq!(back, expected, "version {}", v);
                }
                None => prop_assert!(r.to_json(v).is_err()),
            }
        }
    }

    #[test]
    fn netconf_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = NetConf::parse(&bytes);
    }

    #[test]
    fn netconf_parse_templated_never_panics(name in ".{0,8}", version in ".{0,8}", extra in ".{0,16}") {
        let doc = format!(r#"{{"name":{name:?},"cniVersion":{version:?},"x":{extra:?},"runtimeConfig":{{"ips":[{extra:?}]}}}}"#);
        if let Ok((conf, v)) = NetConf::parse(doc.as_bytes()) {
            let _ = conf.runtime_config.requested_ips();
            let _ = conf.prev_result(v);
        }
    }

    #[test]
    fn unknown_keys_survive_netconf(key in "[a-z]{1,10}", value in any::<i64>()) {
        prop_assume!(!["name", "type", "ipam", "dns", "args"].contains(&key.as_str()));
        let doc = serde_json::json!({"name": "n", "cniVersion": "1.0.0", key.clone(): value});
        let (conf, _) = NetConf::parse(doc.to_string().as_bytes()).unwrap();
        prop_assert_eq!(&conf.extra[&key], &serde_json::json!(value));
    }

    #[test]
    fn env_and_args_never_panic(cmd in "ADD|DEL|CHECK|GC|.{0,5}", id in ".{0,20}", ifname in ".{0,20}", args in ".{0,40}") {
        let _ = CniArgs::parse(&args);
        let vars = [("CNI_COMMAND", cmd), ("CNI_CONTAINERID", id), ("CNI_NETNS", "/x".into()),
            ("CNI_IFNAME", ifname), ("CNI_ARGS", args)];
        let _ = CniEnv::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
}
