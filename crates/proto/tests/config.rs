//! Request configuration parsing: the Ref skel's validation order and codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde::Deserialize;
use serde_json::json;
use weft_proto::{CniVersion, NetConf, codes, decode_plugin_conf};

fn code_of(bytes: &[u8]) -> u32 {
    NetConf::parse(bytes).unwrap_err().code
}

#[test]
fn invalid_json_is_6() {
    assert_eq!(code_of(b"not json"), codes::DECODE_FAILURE);
    assert_eq!(code_of(b""), codes::DECODE_FAILURE);
    assert_eq!(code_of(b"[]"), codes::DECODE_FAILURE);
    assert_eq!(code_of(br#"{"name": 5}"#), codes::DECODE_FAILURE);
}

#[test]
fn name_rules_are_7() {
    assert_eq!(
        code_of(br#"{"cniVersion":"1.0.0","type":"x"}"#),
        codes::INVALID_CONFIG
    );
    assert_eq!(
        code_of(br#"{"cniVersion":"1.0.0","name":""}"#),
        codes::INVALID_CONFIG
    );
    assert_eq!(
        code_of(br#"{"cniVersion":"1.0.0","name":"a/b"}"#),
        codes::INVALID_CONFIG
    );
    assert_eq!(
        code_of(br#"{"cniVersion":"1.0.0","name":".hidden"}"#),
        codes::INVALID_CONFIG
    );
}

#[test]
fn name_is_checked_before_version() {
    assert_eq!(code_of(br#"{"cniVersion":"9.9.9"}"#), codes::INVALID_CONFIG);
}

#[test]
fn version_rules() {
    assert_eq!(
        code_of(br#"{"cniVersion":"9.9.9","name":"n"}"#),
        codes::INCOMPATIBLE_VERSION
    );
    assert_eq!(
        code_of(br#"{"cniVersion":1,"name":"n"}"#),
        codes::DECODE_FAILURE
    );
    let (_, v) = NetConf::parse(br#"{"name":"n","type":"bridge"}"#).unwrap();
    assert_eq!(v, CniVersion::V0_1_0);
    let (_, v) = NetConf::parse(br#"{"name":"n","cniVersion":"0.4.0"}"#).unwrap();
    assert_eq!(v, CniVersion::V0_4_0);
}

#[test]
fn typed_field_of_wrong_type_is_6() {
    assert_eq!(
        code_of(br#"{"name":"n","cniVersion":"1.0.0","ipMasq":"yes"}"#),
        codes::DECODE_FAILURE
    );
}

#[test]
fn unknown_keys_and_capabilities_are_kept() {
    let input = json!({
        "cniVersion": "1.1.0", "name": "net", "type": "bridge",
        "capabilities": {"portMappings": true},
        "bridge": "cni0", "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"},
        "dns": {"nameservers": ["10.1.0.1"]},
        "ipMasq": true,
        "runtimeConfig": {"ips": ["10.1.2.9/24"], "mac": "c2:11:22:33:44:55",
                          "portMappings": [{"hostPort": 8080}], "aliases": ["x"]},
        "args": {"cni": {"ips": ["10.1.2.42"], "mac": "C2:00:00:00:00:01"}},
    });
    let bytes = serde_json::to_vec(&input).unwrap();
    let (conf, version, raw) = NetConf::parse_raw(&bytes).unwrap();
    assert_eq!(version, CniVersion::V1_1_0);
    assert_eq!(conf.plugin_type, "bridge");
    assert_eq!(conf.extra["bridge"], "cni0");
    assert_eq!(conf.extra["isGateway"], true);
    assert_eq!(conf.capabilities.as_ref().unwrap()["portMappings"], true);
    assert_eq!(conf.ip_masq, Some(true));
    assert_eq!(conf.dns.as_ref().unwrap().nameservers, vec!["10.1.0.1"]);
    assert_eq!(conf.runtime_config.extra["aliases"], json!(["x"]));
    assert!(conf.runtime_config.port_mappings.is_some());
    let ips = conf.runtime_config.requested_ips().unwrap();
    assert_eq!(ips[0].prefix, Some(24));
    assert_eq!(
        conf.runtime_config.mac_addr().unwrap().unwrap().to_string(),
        "c2:11:22:33:44:55"
    );
    let args_ips = conf.args_cni_ips().unwrap();
    assert_eq!(args_ips[0].addr.to_string(), "10.1.2.42");
    assert_eq!(args_ips[0].prefix, None);
    assert_eq!(
        conf.args_cni_mac().unwrap().unwrap().to_string(),
        "c2:00:00:00:00:01"
    );
    // Serializing back keeps every key: the delegate must get the whole config.
    assert_eq!(serde_json::to_value(&conf).unwrap(), raw);

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Bridge {
        bridge: String,
        is_gateway: bool,
    }
    let own: Bridge = decode_plugin_conf(&raw).unwrap();
    assert_eq!((own.bridge.as_str(), own.is_gateway), ("cni0", true));
}

#[test]
fn null_runtime_config_and_bad_requests() {
    let (conf, _) =
        NetConf::parse(br#"{"name":"n","cniVersion":"1.0.0","runtimeConfig":null}"#).unwrap();
    assert!(conf.runtime_config.is_empty());
    assert!(conf.args_cni_ips().unwrap().is_empty());
    let (conf, _) = NetConf::parse(
        br#"{"name":"n","cniVersion":"1.0.0","runtimeConfig":{"ips":["10.0.0.1/33"]},"args":{"cni":{"ips":"x","mac":5}}}"#,
    )
    .unwrap();
    assert_eq!(
        conf.runtime_config.requested_ips().unwrap_err().code,
        codes::INVALID_CONFIG
    );
    assert_eq!(conf.args_cni_ips().unwrap_err().code, codes::INVALID_CONFIG);
    assert_eq!(conf.args_cni_mac().unwrap_err().code, codes::INVALID_CONFIG);
}

#[test]
fn prev_result_without_version_uses_request_version() {
    let bytes = br#"{"name":"n","cniVersion":"0.4.0","prevResult":{"ips":[{"version":"4","address":"10.0.0.2/24"}]}}"#;
    let (conf, v) = NetConf::parse(bytes).unwrap();
    let prev = conf.prev_result(v).unwrap().unwrap();
    assert_eq!(prev.ips[0].address.to_string(), "10.0.0.2/24");
    let (conf, v) = NetConf::parse(br#"{"name":"n","cniVersion":"1.0.0"}"#).unwrap();
    assert!(conf.prev_result(v).unwrap().is_none());
}
