//! Shared test kit: a runtime whose CNI_PATH holds weft's chained plugins and the
//! reference plugins (mixed chains), running in a throwaway node namespace.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test helpers may fail loudly
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_runtime::{Attachment, Runtime};
use weft_testns::TestNs;

/// Reference plugins from the Debian package.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Directory of this crate's plugin binaries.
pub fn own_bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-tuning"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A runtime with weft's binaries first, then the reference plugins.
pub fn runtime(node: &TestNs, cache: &Path) -> Runtime {
    Runtime {
        cni_path: vec![own_bin_dir(), PathBuf::from(REFERENCE_DIR)],
        node_netns: Some(node.path().to_path_buf()),
        cache_dir: cache.to_path_buf(),
    }
}

/// The reference `bridge` + `host-local` as the main plugin; `subnet` e.g. "10.77.0.0/24".
pub fn ref_bridge(bridge: &str, subnets: &[&str], data_dir: &Path) -> Value {
    let ranges: Vec<Value> = subnets.iter().map(|s| json!([{ "subnet": s }])).collect();
    json!({
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "hairpinMode": true,
        "ipam": {"type": "host-local", "ranges": ranges, "dataDir": data_dir}
    })
}

/// A conflist at 1.0.0 (what the reference plugins speak).
pub fn conflist(name: &str, plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins})
}

/// A pod attachment with Kubernetes-style CNI_ARGS.
pub fn attachment(id: &str, pod: &TestNs) -> Attachment {
    Attachment::kubernetes(id, &pod.path().to_string_lossy(), "eth0", id)
}

/// Runs `ip -j link show <dev>` in `ns` and returns the JSON object.
pub fn ip_link(ns: &TestNs, dev: &str) -> Value {
    let out = ns
        .exec(std::process::Command::new("ip").args(["-d", "-j", "link", "show", dev]))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

/// Reads a sysctl inside `ns`.
pub fn sysctl(ns: &TestNs, key: &str) -> String {
    ns.run(|| std::fs::read_to_string(Path::new("/proc/sys").join(key)).unwrap())
        .trim()
        .to_string()
}

/// A temporary directory for caches and data dirs.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs plugin `index` of `list` by itself with `command`, as the runtime would inside the
/// chain (`prev` as prevResult), asserts it succeeded and returns what it printed (`null`
/// for an empty answer, as DEL gives).
pub fn run_alone(
    rt: &Runtime,
    list: &Value,
    index: usize,
    command: &str,
    att: &Attachment,
    prev: Option<&Value>,
) -> Value {
    let plugin = &list["plugins"][index];
    let (_, conf) = weft_runtime::request_conf(list, plugin, att, prev).unwrap();
    let kind = plugin["type"].as_str().unwrap();
    let out = rt
        .exec_raw(kind, command, Some(att), conf.to_string().as_bytes())
        .unwrap();
    assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stdout));
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first address of a CNI result, without its prefix length.
pub fn first_ip(result: &Value) -> String {
    let cidr = result["ips"][0]["address"].as_str().unwrap();
    cidr.split('/').next().unwrap().to_string()
}
