//! Result conversion details not covered by the golden files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;
use weft_proto::{CniResult, CniVersion, codes};

#[test]
fn reads_go_style_nulls_and_zeroes() {
    let v = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "", "mtu": 0, "sandbox": ""}],
        "ips": null,
        "routes": [{"dst": "0.0.0.0/0", "table": 0, "scope": 0, "priority": 0}],
        "dns": {"nameservers": null, "domain": ""},
    });
    let r = CniResult::from_json(&v, CniVersion::V1_1_0).unwrap();
    let i = &r.interfaces[0];
    assert_eq!(
        (i.mac.as_ref(), i.mtu, i.sandbox.as_ref()),
        (None, None, None)
    );
    assert_eq!(r.routes[0].table, Some(0));
    assert_eq!(r.routes[0].scope, Some(0));
    assert_eq!(r.routes[0].priority, None);
    assert!(r.dns.is_empty());
}

#[test]
fn version_errors() {
    let e = CniResult::from_json(&json!({"cniVersion": "9.9.9"}), CniVersion::V1_0_0).unwrap_err();
    assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
    let e = CniResult::from_json(&json!({"cniVersion": 4}), CniVersion::V1_0_0).unwrap_err();
    assert_eq!(e.code, codes::DECODE_FAILURE);
    let e = CniResult::from_json(&json!([1]), CniVersion::V1_0_0).unwrap_err();
    assert_eq!(e.code, codes::DECODE_FAILURE);
    let e = CniResult::from_json(&json!({"ips": [{"address": "nope"}]}), CniVersion::V1_0_0)
        .unwrap_err();
    assert_eq!(e.code, codes::DECODE_FAILURE);
}

#[test]
fn v04_version_field_must_match_family() {
    let v = json!({"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.2/24"}]});
    assert_eq!(
        CniResult::from_json(&v, CniVersion::V0_4_0)
            .unwrap_err()
            .code,
        codes::DECODE_FAILURE
    );
}

#[test]
fn zero_addresses_cannot_be_0_2_0() {
    let r = CniResult::default();
    assert_eq!(
        r.to_json(CniVersion::V0_2_0).unwrap_err().code,
        codes::INCOMPATIBLE_VERSION
    );
    assert_eq!(
        r.to_json(CniVersion::V1_0_0).unwrap(),
        json!({"cniVersion": "1.0.0"})
    );
}

#[test]
fn v02_upconverts_to_ips_and_merged_routes() {
    let v = json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
    });
    let (r, version) = CniResult::from_json_versioned(&v, CniVersion::V1_0_0).unwrap();
    assert_eq!(version, CniVersion::V0_2_0);
    assert_eq!(r.ips.len(), 2);
    assert_eq!(r.routes.len(), 2);
    let out = r.to_json(CniVersion::V0_4_0).unwrap();
    assert_eq!(out["ips"][1]["version"], "6");
    assert!(out.get("interfaces").is_none());
}
