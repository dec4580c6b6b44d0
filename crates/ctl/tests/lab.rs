//! End-to-end: `weftctl lab` builds a real cluster in network namespaces (needs root and the
//! `weftd`, `weft`, `weft-ipam` binaries next to `weftctl`, i.e. built into the same target
//! dir: `cargo build -p weft-agent -p weft-plugin --bins`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WEFTCTL: &str = env!("CARGO_BIN_EXE_weftctl");

/// A lab with its own directory and namespace prefix; `down` on drop, also on panic.
struct Lab {
    dir: tempfile::TempDir,
    prefix: String,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        // A lab test that cannot run fails loudly: it never passes by skipping.
        assert!(
            nix::unistd::geteuid().is_root(),
            "the lab tests need root (network namespaces)"
        );
        let bin_dir = Path::new(WEFTCTL).parent().unwrap();
        for bin in ["weftd", "weft", "weft-ipam"] {
            assert!(
                bin_dir.join(bin).is_file(),
                "{} missing; run `cargo build -p weft-agent -p weft-plugin --bins` with the same CARGO_TARGET_DIR (cargo test --workspace builds them)",
                bin_dir.join(bin).display()
            );
        }
        Lab {
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("wlt{tag}{}", std::process::id()),
        }
    }

    fn lab_dir(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(WEFTCTL)
            .arg("lab")
            .args(args)
            .env("WEFT_LAB_DIR", self.lab_dir())
            .env("WEFT_LAB_PREFIX", &self.prefix)
            .output()
            .unwrap();
        eprintln!(
            "$ weftctl lab {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "weftctl lab {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    fn namespaces_left(&self) -> Vec<String> {
        let prefix = format!("{}-", self.prefix);
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Link names in the root network namespace (the test runs there).
fn root_links() -> Vec<String> {
    std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
        .collect()
}

#[test]
fn two_nodes_full_matrix_apply_and_crash_safe_down() {
    let lab = Lab::new("a");
    let before = root_links();
    lab.ok(&["up", "--nodes", "2"]);
    let ours =
        |n: &&String| n.starts_with("v-node") || n.starts_with("weft") || n.as_str() == "br0";
    let added: Vec<String> = root_links()
        .into_iter()
        .filter(|n| !before.contains(n))
        .filter(|n| ours(&n))
        .collect();
    assert!(
        added.is_empty(),
        "the lab touched the root namespace: {added:?}"
    );
    let status = lab.ok(&["status"]);
    assert!(status.contains("default/pod-node2-1"), "{status}");

    // Every pod and node reaches every pod, and every receiver saw the sender's own address.
    let json: serde_json::Value = serde_json::from_str(&lab.ok(&["matrix", "--json"])).unwrap();
    assert_eq!(json["total"], 24);
    assert_eq!(json["allowed"], 24);
    assert_eq!(json["natSeen"], 0);
    for row in json["rows"].as_array().unwrap() {
        for cell in row["results"].as_array().unwrap() {
            assert_eq!(cell["noNat"], true, "{cell}");
        }
    }
    let udp = lab.ok(&["matrix", "--protocol", "UDP"]);
    assert!(udp.contains("24/24 allowed"), "{udp}");

    // An invalid file changes nothing, and the error names object and field.
    let yaml = lab.dir.path().join("objs.yaml");
    let good = "kind: Namespace\nmetadata: {name: shop}\n---\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec:\n  containers: [{name: c, ports: [{containerPort: 8080}, {containerPort: 53, protocol: UDP}]}]\n";
    std::fs::write(&yaml, good.replace("protocol: UDP", "protocol: SCTP")).unwrap();
    let out = lab.run(&["apply", "-f", yaml.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Pod \"shop/web\": spec.containers[0].ports[1].protocol"),
        "{err}"
    );
    assert!(!lab.ok(&["status"]).contains("shop/web"));
    assert!(lab.namespaces_left().iter().all(|n| !n.contains("shop")));

    std::fs::write(&yaml, good).unwrap();
    lab.ok(&["apply", "-f", yaml.to_str().unwrap()]);
    let probe = lab.ok(&["probe", "default/pod-node1-0", "shop/web"]);
    assert!(
        probe.contains("allowed") && probe.contains(":8080/TCP"),
        "{probe}"
    );
    assert!(probe.contains("no NAT"), "{probe}");
    lab.ok(&["probe", "node/node2", "shop/web", "--port", "53"]);
    let denied = lab.run(&["probe", "shop/web", "default/pod-node2-0", "--port", "81"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stdout).contains("denied"));
    lab.ok(&["delete", "-f", yaml.to_str().unwrap()]);
    assert!(!lab.ok(&["status"]).contains("shop/web"));

    // A pod that cannot be wired (its namespace name is taken) rolls back the whole file.
    let blocker = format!("{}-pod-default-zz", lab.prefix);
    assert!(
        Command::new("ip")
            .args(["netns", "add", &blocker])
            .status()
            .unwrap()
            .success()
    );
    let pair = "kind: Pod\nmetadata: {name: aa}\n---\nkind: Pod\nmetadata: {name: zz}\n";
    std::fs::write(&yaml, pair).unwrap();
    let out = lab.run(&["apply", "-f", yaml.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was applied"));
    assert!(!lab.ok(&["status"]).contains("default/aa"));
    // Its object, written before CNI ADD, was removed from the store again.
    let trace = lab.run(&["trace", "default/aa", "default/pod-node1-0", "--port", "80"]);
    assert_eq!(trace.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&trace.stderr).contains("unknown pod default/aa"));
    assert!(
        !lab.namespaces_left()
            .iter()
            .any(|n| n.ends_with("-pod-default-aa"))
    );

    // Crash recovery: down works from the namespaces alone.
    std::fs::write(lab.lab_dir().join("state.json"), "{corrupt").unwrap();
    lab.ok(&["down"]);
    assert_eq!(lab.namespaces_left(), Vec::<String>::new());
    assert!(!lab.lab_dir().exists());
}

#[test]
fn etcd_host_gw_dual_stack() {
    assert!(
        Path::new("/usr/bin/etcd").is_file(),
        "/usr/bin/etcd missing: apt-get install etcd-server"
    );
    let lab = Lab::new("e");
    lab.ok(&[
        "up",
        "--nodes",
        "2",
        "--pods-per-node",
        "1",
        "--store",
        "etcd",
        "--backend",
        "host-gw",
        "--ipv6",
    ]);
    assert!(lab.ok(&["matrix"]).contains("8/8 allowed"));
    assert!(lab.ok(&["matrix", "--ipv6"]).contains("8/8 allowed"));
    lab.ok(&["down"]);
    assert_eq!(lab.namespaces_left(), Vec::<String>::new());
}
