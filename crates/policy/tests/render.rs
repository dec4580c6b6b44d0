//! Rendered nft text: snapshot, kernel check in a throwaway network namespace, element delta.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test helpers may fail loudly

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use weft_policy::nft::{ElementOp, Ident, compile, compile_with_quarantine, element_delta};

const POLICIES: [&str; 3] = [
    "metadata: {name: web, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n      podSelector: {matchLabels: {pod: b}}\n    - ipBlock: {cidr: 172.16.0.0/12, except: [172.16.5.0/24]}\n    ports: [{port: serve-80-tcp}, {port: 81, endPort: 90, protocol: UDP}]",
    "metadata: {name: out, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{podSelector: {}}]\n    ports: [{port: serve-81-tcp}]\n  - ports: [{protocol: UDP}]",
    "metadata: {name: deny, namespace: y}\nspec: {podSelector: {}}",
];

fn snapshot_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/node-n1.nft")
}

#[test]
fn render_snapshot() {
    let text = compile(&with(&POLICIES), "n1").render();
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want =
        std::fs::read_to_string(&path).expect("snapshot missing: run with UPDATE_SNAPSHOTS=1");
    assert_eq!(
        text, want,
        "rendered ruleset changed; review and rerun with UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn compile_is_deterministic_and_shares_chains() {
    let c = with(&POLICIES);
    assert_eq!(compile(&c, "n2"), compile(&c, "n2"));
    // y/b and y/c (both on n2) have identical rules: one chain, two map entries.
    let rs = compile(&c, "n2");
    let ingress4 = rs
        .maps
        .iter()
        .find(|m| m.name.as_str() == "wp_ingress4")
        .unwrap();
    let chain_of = |ip| {
        ingress4
            .elements
            .iter()
            .find(|(k, _)| *k == ip)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(chain_of(pod_ip4("y", "b")), chain_of(pod_ip4("y", "c")));
}

#[test]
fn identifiers_are_validated() {
    assert!(Ident::new("wp_ok_1").is_ok());
    for bad in [
        "fwd",
        "wp_",
        "wp_UPPER",
        "wp_a b",
        "wp_a;flush",
        "wp_0123456789012345678901234567890",
    ] {
        assert!(Ident::new(bad).is_err(), "{bad}");
    }
    let rs = compile(&with(&POLICIES), "n1");
    let names = rs
        .sets
        .iter()
        .map(|s| &s.name)
        .chain(rs.chains.iter().map(|c| &c.name));
    for n in names {
        assert_eq!(Ident::new(n.as_str()).as_ref(), Ok(n));
    }
}

#[test]
fn label_change_is_an_element_only_delta() {
    let before = with(&POLICIES);
    let mut after = before.clone();
    // y/c becomes "pod: b": it joins the peer set of x/web.
    let yc = after
        .pods
        .iter_mut()
        .find(|p| p.namespace == "y" && p.name == "c")
        .unwrap();
    yc.labels.insert("pod".into(), "b".into());
    let (old, new) = (compile(&before, "n1"), compile(&after, "n1"));
    let delta = element_delta(&old, &new).expect("only elements changed");
    assert!(
        delta
            .ops
            .iter()
            .all(|op| matches!(op, ElementOp::AddRange(..))),
        "{:?}",
        delta.ops
    );
    assert!(
        delta
            .render()
            .contains(&format!("{{ {} }}", pod_ip4("y", "c")))
    );
    assert!(element_delta(&old, &old).unwrap().is_empty());
}

#[test]
fn new_pod_joining_a_group_is_an_element_only_delta() {
    let before = with(&POLICIES);
    let mut after = before.clone();
    let mut pod = after
        .pods
        .iter()
        .find(|p| p.namespace == "y" && p.name == "b")
        .unwrap()
        .clone();
    pod.name = "d".into();
    pod.ips = vec!["10.10.2.9".parse().unwrap(), "fd10::2:9".parse().unwrap()];
    after.pods.push(pod);
    let (old, new) = (compile(&before, "n2"), compile(&after, "n2"));
    let delta = element_delta(&old, &new).expect("same chains");
    let text = delta.render();
    assert!(
        text.contains("add element inet weft_policy wp_ingress4 { 10.10.2.9 : jump wp_c_"),
        "{text}"
    );
    // A new policy changes chains: full reload.
    let mut changed = after.clone();
    changed.policies.push(policy(
        "metadata: {name: more, namespace: y}\nspec: {podSelector: {}, ingress: [{}]}",
    ));
    assert_eq!(element_delta(&new, &compile(&changed, "n2")), None);
}

/// Runs `script` through `nft -f -` inside a fresh, anonymous network namespace
/// (`unshare --net`): the root namespace's ruleset is never touched, and the namespace
/// disappears with the process.
fn nft_in_throwaway_netns(scripts: &[String]) -> Result<String, String> {
    let mut shell = String::new();
    for (i, s) in scripts.iter().enumerate() {
        shell.push_str(&format!(
            "cat > \"$D/{i}.nft\" <<'WEFT_EOF'\n{s}WEFT_EOF\nnft -f \"$D/{i}.nft\" || exit 1\n"
        ));
    }
    shell.push_str("nft list table inet weft_policy\n");
    // One directory per call: tests run in parallel and each removes its own at the end.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("weft-policy-nft-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut child = Command::new("unshare")
        .args(["--net", "sh", "-s"])
        .env("D", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(shell.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn kernel_available() -> bool {
    let ok = |c: &str| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("nft")
        && ok("unshare")
        && Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n")
}

#[test]
fn kernel_accepts_full_ruleset_and_deltas() {
    assert!(
        kernel_available(),
        "this test needs root, nft and unshare (scripts/install-deps.sh)"
    );
    let before = with(&POLICIES);
    let mut after = before.clone();
    after
        .pods
        .iter_mut()
        .find(|p| p.namespace == "y" && p.name == "c")
        .unwrap()
        .labels
        .insert("pod".into(), "b".into());
    let mut xd = after.pods[0].clone();
    xd.name = "d".into();
    xd.ips = vec!["10.10.1.9".parse().unwrap(), "fd10::1:9".parse().unwrap()];
    after.pods.push(xd);
    let (old, new) = (compile(&before, "n1"), compile(&after, "n1"));
    let forward = element_delta(&old, &new).expect("elements only");
    let back = element_delta(&new, &old).expect("elements only");
    let listed = nft_in_throwaway_netns(&[old.render(), forward.render()])
        .unwrap_or_else(|e| panic!("nft rejected the ruleset or delta:\n{e}"));
    assert!(listed.contains("chain wp_forward"), "{listed}");
    assert!(listed.contains("10.10.1.9 : jump wp_c_"), "{listed}");
    let listed = nft_in_throwaway_netns(&[new.render(), back.render(), old.render(), new.render()])
        .unwrap_or_else(|e| panic!("nft rejected the ruleset or delta:\n{e}"));
    assert!(listed.contains("fd10::1:9 : jump wp_c_"), "{listed}");
    // An empty cluster renders a valid (empty) table too.
    nft_in_throwaway_netns(&[compile(&base_cluster(), "n1").render()]).unwrap();
}

#[test]
fn kernel_accepts_quarantine_and_its_lifting() {
    assert!(
        kernel_available(),
        "this test needs root, nft and unshare (scripts/install-deps.sh)"
    );
    let c = with(&POLICIES);
    let quarantined = ["10.10.1.77".parse().unwrap(), "fd10::1:77".parse().unwrap()];
    let plain = compile(&c, "n1");
    let q = compile_with_quarantine(&c, "n1", &quarantined);
    let on = element_delta(&plain, &q).expect("elements only");
    let listed = nft_in_throwaway_netns(&[plain.render(), on.render()])
        .unwrap_or_else(|e| panic!("nft rejected the quarantine:\n{e}"));
    assert!(listed.contains("ip saddr @wp_quarantine4 drop"), "{listed}");
    assert!(listed.contains("10.10.1.77"), "{listed}");
    let off = element_delta(&q, &plain).expect("elements only");
    let listed = nft_in_throwaway_netns(&[q.render(), off.render()])
        .unwrap_or_else(|e| panic!("nft rejected lifting the quarantine:\n{e}"));
    assert!(
        !listed.contains("10.10.1.77") && !listed.contains("fd10::1:77"),
        "{listed}"
    );
}
