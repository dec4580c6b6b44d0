//! Every supported cniVersion: the ADD result comes back in the request's version and shape,
//! compared with golden files under `tests/golden/<version>/` (MACs, host veth names and
//! netns paths normalised). `UPDATE_GOLDEN=1 cargo test -p weft-plugin --test versions`
//! rewrites them. DEL (with the cached result as prevResult) and CHECK work in each version.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{Map, Value, json};

const VERSIONS: &[&str] = &["0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Replaces the parts of a result that vary between runs.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let out: Map<String, Value> = o
                .iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_str()) {
                        ("mac", Some(_)) => json!("<mac>"),
                        ("sandbox", Some(_)) => json!("<netns>"),
                        ("name", Some(n)) if n.starts_with("veth") => json!("<veth>"),
                        _ => normalise(v),
                    };
                    (k.clone(), v)
                })
                .collect();
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn golden(version: &str, case: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(version)
        .join(format!("{case}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pretty).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    let want: Value = serde_json::from_str(&want).expect("golden JSON");
    assert_eq!(
        actual,
        &want,
        "{version}/{case} differs from {}",
        path.display()
    );
}

fn check_shape(version: &str, res: &Value) {
    assert_eq!(res["cniVersion"], version);
    if version == "0.2.0" {
        assert!(
            res.get("ip4").is_some() && res.get("ip6").is_some(),
            "{res}"
        );
        assert!(
            res.get("interfaces").is_none() && res.get("ips").is_none(),
            "{res}"
        );
        return;
    }
    let versioned = version.starts_with("0.");
    for ip in res["ips"].as_array().expect("ips") {
        assert_eq!(ip.get("version").is_some(), versioned, "{version}: {ip}");
    }
}

fn run_case(version: &str, case: &str, ranges: Value, extra: Value) {
    let tag = format!("v{}{case}", version.replace('.', ""));
    let node = Node::new(&tag);
    let pod = netns(&tag);
    let name = format!("net{}", version.replace('.', ""));
    let list = weft_list(version, &name, &node.data_dir(), ranges, extra);
    let att = pod_att("c1", &pod);
    let res = node
        .rt
        .add(&list, &att)
        .unwrap_or_else(|e| panic!("{version} ADD: {e}"));
    check_shape(version, &res);
    golden(version, case, &normalise(&res));
    if version >= "0.4.0" {
        node.rt
            .check(&list, &att)
            .unwrap_or_else(|e| panic!("{version} CHECK: {e}"));
    }
    node.rt
        .del(&list, &att)
        .unwrap_or_else(|e| panic!("{version} DEL: {e}"));
    assert_eq!(node.reservations(&name), vec![]);
    assert_eq!(node.host_veths(), Vec::<String>::new());
}

#[test]
fn bridge_dual_stack_in_every_version() {
    for v in VERSIONS {
        run_case(
            v,
            "bridge_dual",
            dual_ranges(),
            json!({"isDefaultGateway": true}),
        );
    }
}

#[test]
fn ptp_dual_stack_in_every_version() {
    let ranges = json!([[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]]);
    for v in VERSIONS {
        run_case(
            v,
            "ptp_dual",
            ranges.clone(),
            json!({"mode": "ptp", "mtu": 1450}),
        );
    }
}

#[test]
fn ipam_result_in_every_version() {
    let node = Node::new("vipam");
    let pod = netns("vipam");
    let p = pod.path().to_string_lossy().into_owned();
    for v in VERSIONS {
        // A data dir per version, so every version's golden result is a first allocation.
        let dir = node.data.path().join(v);
        let stdin = json!({"cniVersion": v, "name": "vipam", "type": "bridge", "ipam": {
            "type": "weft-ipam", "ranges": dual_ranges(), "dataDir": dir,
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.0.0.0/8", "gw": "10.88.0.254"}]}});
        let bin = env!("CARGO_BIN_EXE_weft-ipam");
        let env = att_env("ADD", "c1", &p, "eth0");
        let res = success(&node.exec(bin, &env, stdin.to_string().as_bytes()));
        check_shape(v, &res);
        golden(v, "ipam_dual", &normalise(&res));
        success(&node.exec(
            bin,
            &att_env("DEL", "c1", &p, "eth0"),
            stdin.to_string().as_bytes(),
        ));
        assert_eq!(reservations(&dir.join("vipam")), vec![]);
    }
}
