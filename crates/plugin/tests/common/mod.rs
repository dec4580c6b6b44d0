//! Shared kit for the plugin's integration tests: a throwaway "node" namespace in which the
//! built binaries run exactly as a runtime runs them, pod namespaces, configs, and probes of
//! the node's state (reservation files, host veths, nftables elements).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers fail loudly
#![allow(dead_code)] // each test binary uses a different subset

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tempfile::TempDir;
use weft_runtime::{Attachment, PluginOutput, Runtime, exec_in_netns};
use weft_testns::TestNs;

/// Where Debian installs the reference plugins.
pub const REF_DIR: &str = "/usr/lib/cni";

/// Directory holding the binaries under test.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_weft"))
        .parent()
        .expect("binary dir")
        .to_path_buf()
}

/// Makes a namespace or fails the test with a clear reason.
pub fn netns(tag: &str) -> TestNs {
    TestNs::new(tag).unwrap_or_else(|e| panic!("cannot create a test netns (need root): {e}"))
}

/// A simulated node: its own namespace, IPAM data dir and result cache.
pub struct Node {
    /// The node namespace; every plugin runs inside it.
    pub ns: TestNs,
    /// Temp dir for IPAM data.
    pub data: TempDir,
    /// Result cache and scratch files.
    pub scratch: TempDir,
    /// The runtime that drives plugins in `ns`.
    pub rt: Runtime,
}

impl Node {
    /// A node with CNI_PATH = [our binaries, the reference plugins].
    pub fn new(tag: &str) -> Node {
        Self::with_path(tag, vec![bin_dir(), PathBuf::from(REF_DIR)])
    }

    /// A node with a custom CNI_PATH.
    pub fn with_path(tag: &str, cni_path: Vec<PathBuf>) -> Node {
        require_tools();
        let ns = netns(tag);
        let data = tempfile::tempdir().expect("tempdir");
        let scratch = tempfile::tempdir().expect("tempdir");
        let rt = Runtime {
            cni_path,
            node_netns: Some(ns.path().to_path_buf()),
            cache_dir: scratch.path().join("cache"),
        };
        Node {
            ns,
            data,
            scratch,
            rt,
        }
    }

    /// IPAM data dir path as a string.
    pub fn data_dir(&self) -> String {
        self.data.path().to_string_lossy().into_owned()
    }

    /// Runs one binary with exactly `env` (plus PATH) and `stdin` in the node namespace.
    pub fn exec(&self, bin: &str, env: &[(&str, &str)], stdin: &[u8]) -> PluginOutput {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()));
        exec_in_netns(Some(self.ns.path()), Path::new(bin), &env, stdin).expect("exec plugin")
    }

    /// Runs `weft` (or another plugin in CNI_PATH) for one attachment.
    pub fn call(
        &self,
        plugin: &str,
        verb: &str,
        att: Option<&Attachment>,
        conf: &Value,
    ) -> PluginOutput {
        self.rt
            .exec_raw(plugin, verb, att, conf.to_string().as_bytes())
            .expect("exec plugin")
    }

    /// Runs a command (e.g. `ip`) in the node namespace; returns stdout, panics on failure.
    pub fn sh(&self, args: &[&str]) -> String {
        sh(&self.ns, args)
    }

    /// Waits until every host veth a DEL retired (alias `weft-del/...`, deleted by a detached
    /// child after DEL answered) is gone, with its pod end; fails after 5 s.
    pub fn settle_deletes(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let retired = retired_links(&self.ns);
            if retired.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "retired veths still present 5 s after DEL: {retired:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Host-side veths (weft's and the reference plugins', both named `veth…`) on the node,
    /// once deletes handed off by DEL have finished.
    pub fn host_veths(&self) -> Vec<String> {
        self.settle_deletes();
        links(&self.ns)
            .into_iter()
            .filter(|(n, kind)| kind == "veth" && n.starts_with("veth"))
            .map(|(n, _)| n)
            .collect()
    }

    /// Addresses reserved in `<dataDir>/<network>` (files named by an IP).
    pub fn reservations(&self, network: &str) -> Vec<(IpAddr, String)> {
        reservations(&self.data.path().join(network))
    }

    /// Elements of the masquerade sets in `table inet weft` (empty when the table is absent).
    pub fn masq_elements(&self) -> Vec<String> {
        let out = self
            .ns
            .exec(Command::new("nft").args(["-j", "list", "table", "inet", "weft"]))
            .expect("nft");
        if !out.status.success() {
            return Vec::new();
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("nft json");
        let mut elems = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            let Some(set) = item.get("set") else { continue };
            if !set["name"].as_str().unwrap_or("").starts_with("masq_pods") {
                continue;
            }
            for e in set["elem"].as_array().into_iter().flatten() {
                let val = e.pointer("/elem/val").unwrap_or(e);
                elems.push(val.as_str().map_or_else(|| val.to_string(), str::to_string));
            }
        }
        elems
    }
}

/// The programs the tests use to look at the kernel: fail loudly, never skip.
fn require_tools() {
    for tool in ["ip", "nft", "ping"] {
        let found = Command::new(tool).arg("-V").output().is_ok();
        assert!(
            found,
            "`{tool}` is required by the plugin tests (apt-get install iproute2 nftables iputils-ping)"
        );
    }
}

/// Fails with a clear message when the reference plugins are not installed.
pub fn require_reference_plugins() {
    for p in ["bridge", "host-local"] {
        let path = Path::new(REF_DIR).join(p);
        assert!(
            path.is_file(),
            "{} is missing: the delegation tests need the reference plugins (apt-get install containernetworking-plugins)",
            path.display()
        );
    }
}

/// Reservation files in one network directory.
pub fn reservations(dir: &Path) -> Vec<(IpAddr, String)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(IpAddr, String)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let ip: IpAddr = e.file_name().to_str()?.parse().ok()?;
            let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
            Some((ip, owner))
        })
        .collect();
    out.sort();
    out
}

/// Runs a program in a namespace; returns stdout; panics with stderr on failure.
pub fn sh(ns: &TestNs, args: &[&str]) -> String {
    let out = ns
        .exec(Command::new(args[0]).args(&args[1..]))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a program in a namespace; returns whether it succeeded.
pub fn sh_ok(ns: &TestNs, args: &[&str]) -> bool {
    ns.exec(Command::new(args[0]).args(&args[1..]))
        .is_ok_and(|o| o.status.success())
}

/// (name, kind) of every link in a namespace.
pub fn links(ns: &TestNs) -> Vec<(String, String)> {
    let v: Value =
        serde_json::from_str(&sh(ns, &["ip", "-j", "-d", "link", "show"])).expect("ip json");
    v.as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let name = l["ifname"].as_str().unwrap_or("").to_string();
            let kind = l
                .pointer("/linkinfo/info_kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (name, kind)
        })
        .collect()
}

/// Links of a namespace that a DEL retired (alias `weft-del/...`).
pub fn retired_links(ns: &TestNs) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&sh(ns, &["ip", "-j", "-d", "link", "show"])).expect("ip json");
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            l["ifalias"]
                .as_str()
                .is_some_and(|a| a.starts_with("weft-del/"))
        })
        .map(|l| l["ifname"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Whether a link exists in a namespace.
pub fn has_link(ns: &TestNs, name: &str) -> bool {
    links(ns).iter().any(|(n, _)| n == name)
}

/// Addresses (CIDR text) on a link in a namespace.
pub fn addrs(ns: &TestNs, dev: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&sh(ns, &["ip", "-j", "addr", "show", "dev", dev])).expect("ip json");
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// MTU of a link.
pub fn mtu(ns: &TestNs, dev: &str) -> u64 {
    let v: Value =
        serde_json::from_str(&sh(ns, &["ip", "-j", "link", "show", "dev", dev])).expect("ip json");
    v[0]["mtu"].as_u64().expect("mtu")
}

/// A network list with one `weft` plugin; `extra` is merged into the plugin object.
pub fn weft_list(version: &str, name: &str, data_dir: &str, ranges: Value, extra: Value) -> Value {
    let mut plugin = json!({
        "type": "weft",
        "ipam": {"type": "weft-ipam", "ranges": ranges, "dataDir": data_dir},
    });
    merge(&mut plugin, extra);
    json!({"cniVersion": version, "name": name, "plugins": [plugin]})
}

/// Dual-stack ranges used by most tests.
pub fn dual_ranges() -> Value {
    json!([[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd88::/64"}]])
}

/// IPv4-only ranges.
pub fn v4_ranges(subnet: &str) -> Value {
    json!([[{ "subnet": subnet }]])
}

/// Shallow-merges `extra` (an object) into `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// The request config for the first plugin of a list (what the plugin reads on stdin).
pub fn request(list: &Value, att: &Attachment, prev: Option<&Value>) -> Value {
    weft_runtime::request_conf(list, &list["plugins"][0], att, prev)
        .expect("request conf")
        .1
}

/// A pod attachment with Kubernetes CNI_ARGS.
pub fn pod_att(cid: &str, pod: &TestNs) -> Attachment {
    Attachment::kubernetes(cid, &pod.path().to_string_lossy(), "eth0", cid)
}

/// Parses a failure's stdout: exactly one JSON object with int `code` and string `msg`.
/// Returns (code, msg).
pub fn failure(out: &PluginOutput) -> (u64, String) {
    assert_ne!(
        out.status,
        0,
        "expected failure, got success: {}",
        text(&out.stdout)
    );
    let mut docs = serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>();
    let doc = docs
        .next()
        .unwrap_or_else(|| panic!("no JSON on stdout; stderr: {}", text(&out.stderr)))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)));
    assert!(
        docs.next().is_none(),
        "more than one JSON document: {}",
        text(&out.stdout)
    );
    let code = doc["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer code: {doc}"));
    let msg = doc["msg"]
        .as_str()
        .unwrap_or_else(|| panic!("no string msg: {doc}"));
    assert!(!msg.is_empty(), "empty msg: {doc}");
    assert!(
        doc["cniVersion"].is_string(),
        "error without cniVersion: {doc}"
    );
    if let Some(details) = doc.get("details") {
        assert!(
            details.as_str().is_some_and(|d| !d.is_empty()),
            "empty details: {doc}"
        );
    }
    (code, msg.to_string())
}

/// Asserts success and returns stdout parsed (Null when empty).
pub fn success(out: &PluginOutput) -> Value {
    assert_eq!(
        out.status,
        0,
        "plugin failed: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("stdout JSON")
    }
}

/// Lossy text of bytes.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Environment for a raw call of an attachment verb.
pub fn att_env<'a>(
    verb: &'a str,
    cid: &'a str,
    netns: &'a str,
    ifname: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", verb),
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", REF_DIR),
    ]
}

/// Pings `dst` from inside `ns` (one packet, short timeout).
pub fn ping(ns: &TestNs, dst: &str) -> bool {
    sh_ok(ns, &["ping", "-c", "1", "-W", "2", dst])
}

/// The address of `ips[i]` in a result, without prefix.
pub fn ip_of(result: &Value, i: usize) -> String {
    let a = result["ips"][i]["address"].as_str().expect("address");
    a.split('/').next().unwrap_or(a).to_string()
}
