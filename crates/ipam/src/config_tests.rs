use super::*;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn parse(v: Value) -> Result<IpamConfig, IpamError> {
    IpamConfig::parse_with(
        &v,
        |_| Ok("nameserver 10.0.0.10\nsearch svc.local\n".into()),
    )
}

fn err_of(v: Value) -> String {
    let err = parse(v).unwrap_err();
    assert_eq!(err.cni_code(), 7, "{err}");
    err.to_string()
}

#[test]
fn legacy_range_with_defaults() {
    let cfg =
        parse(json!({"name": "net", "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}))
            .unwrap();
    assert_eq!(cfg.network, "net");
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/cni/networks"));
    assert_eq!(cfg.range_sets.len(), 1);
    let r = &cfg.range_sets[0].ranges[0];
    assert_eq!(r.gateway, ip("10.1.2.1"));
    assert_eq!(r.range_end, ip("10.1.2.254"));
    assert!(cfg.dns.is_none());
    assert!(cfg.routes.is_empty());
}

#[test]
fn order_is_runtime_then_legacy_then_ranges() {
    let cfg = parse(json!({
        "name": "net",
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.0/24"}]]},
        "ipam": {
            "subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20",
            "gateway": "10.1.0.254",
            "ranges": [[{"subnet": "10.2.0.0/24"}, {"subnet": "10.3.0.0/24"}],
                       [{"subnet": "2001:db8::/64"}]],
            "dataDir": "/tmp/x",
            "resolvConf": "/etc/whatever"
        }
    }))
    .unwrap();
    let firsts: Vec<IpNet> = cfg.range_sets.iter().map(|s| s.ranges[0].subnet).collect();
    let want: Vec<IpNet> = ["10.9.0.0/24", "10.1.0.0/24", "10.2.0.0/24", "2001:db8::/64"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(firsts, want);
    assert_eq!(cfg.range_sets[2].ranges.len(), 2);
    let legacy = &cfg.range_sets[1].ranges[0];
    assert_eq!(
        (legacy.range_start, legacy.range_end, legacy.gateway),
        (ip("10.1.0.10"), ip("10.1.0.20"), ip("10.1.0.254"))
    );
    assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
    let dns = cfg.dns.unwrap();
    assert_eq!(dns.nameservers, vec!["10.0.0.10"]);
    assert_eq!(dns.search, vec!["svc.local"]);
}

#[test]
fn routes_are_verbatim() {
    let cfg = parse(
        json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24", "routes": [
        {"dst": "0.0.0.0/0"}, {"dst": "10.5.0.0/16", "gw": "10.1.2.9", "mtu": 1400}]}}),
    )
    .unwrap();
    let out = serde_json::to_value(&cfg.routes).unwrap();
    assert_eq!(
        out,
        json!([{"dst": "0.0.0.0/0"}, {"dst": "10.5.0.0/16", "gw": "10.1.2.9", "mtu": 1400}])
    );
}

#[test]
fn validation_errors() {
    let cases = [
        (json!({"name": "n"}), "missing \"ipam\""),
        (json!({"name": "n", "ipam": {}}), "no IP ranges"),
        (json!({"name": "n", "ipam": {"ranges": []}}), "no IP ranges"),
        (json!({"name": "n", "ipam": {"ranges": [[]]}}), "is empty"),
        (
            json!({"ipam": {"subnet": "10.1.2.0/24"}}),
            "missing network",
        ),
        (
            json!({"name": "../x", "ipam": {"subnet": "10.1.2.0/24"}}),
            "network name",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/31"}}),
            "too small",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/32"}}),
            "too small",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "2001:db8::/127"}}),
            "too small",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "2001:db8::/128"}}),
            "too small",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.5/24"}}),
            "host bits",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "banana"}}),
            "not a CIDR",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24", "rangeStart": "10.1.3.1"}}),
            "rangeStart 10.1.3.1 is outside",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24", "rangeEnd": "10.1.3.1"}}),
            "rangeEnd 10.1.3.1 is outside",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9",
                   "rangeEnd": "10.1.2.8"}}),
            "after rangeEnd",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24", "gateway": "10.7.0.1"}}),
            "gateway 10.7.0.1 is outside",
        ),
        (
            json!({"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"},
                                                     {"subnet": "2001:db8::/64"}]]}}),
            "mixes IPv4 and IPv6",
        ),
        (
            json!({"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"},
                                                     {"subnet": "10.1.0.0/16"}]]}}),
            "range set 0: 10.1.2.0/24",
        ),
        (
            json!({"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}],
                                                    [{"subnet": "10.1.2.0/25"}]]}}),
            "overlaps range set 1",
        ),
        (
            json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24"},
                   "runtimeConfig": {"ipRanges": [[{"subnet": "10.1.2.0/24"}]]}}),
            "overlaps range set 1",
        ),
        (json!({"name": "n", "ipam": {"ranges": "x"}}), "ipam:"),
    ];
    for (value, needle) in cases {
        let msg = err_of(value.clone());
        assert!(msg.contains(needle), "{value}: {msg}");
    }
}

#[test]
fn unreadable_resolv_conf_is_an_error() {
    let v = json!({"name": "n", "ipam": {"subnet": "10.1.2.0/24", "resolvConf": "/nope"}});
    let err = IpamConfig::parse_with(&v, |_| Err(io::Error::from(io::ErrorKind::NotFound)));
    assert!(err.unwrap_err().to_string().contains("/nope"));
}

#[test]
fn requested_ips_are_merged() {
    let v = json!({"args": {"cni": {"ips": ["10.1.2.7", "2001:db8::7/64"]}},
                   "runtimeConfig": {"ips": ["10.1.2.8/24", "10.1.2.7"]}});
    let ips = requested_ips(&v, Some("K8S_POD_NAME=x;IP=10.1.2.50,10.1.2.51")).unwrap();
    let want: Vec<IpAddr> = [
        "10.1.2.50",
        "10.1.2.51",
        "10.1.2.7",
        "2001:db8::7",
        "10.1.2.8",
    ]
    .iter()
    .map(|s| ip(s))
    .collect();
    assert_eq!(ips, want);
    assert!(requested_ips(&json!({}), Some("IP=nope")).is_err());
    assert!(requested_ips(&json!({"runtimeConfig": {"ips": "x"}}), None).is_err());
}
