//! bolero targets: run as quick checks under `cargo test`; deeper with `cargo bolero test`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use weft_proto::{CniArgs, CniResult, CniVersion, NetConf};

#[test]
fn fuzz_netconf_parse() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok((conf, version)) = NetConf::parse(bytes) {
            let _ = conf.prev_result(version);
            let _ = conf.args_cni_ips();
            let _ = conf.args_cni_mac();
        }
    });
}

#[test]
fn fuzz_result_from_json() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return;
        };
        if let Ok(result) = CniResult::from_json(&value, CniVersion::V1_1_0) {
            // Whatever we accept we can write back at 1.1.0 without loss.
            let json = result.to_json(CniVersion::V1_1_0).unwrap();
            assert_eq!(
                CniResult::from_json(&json, CniVersion::V1_1_0).unwrap(),
                result
            );
        }
    });
}

#[test]
fn fuzz_cni_args() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(s) = std::str::from_utf8(bytes) {
            let _ = CniArgs::parse(s);
        }
    });
}
