//! Getting a compiled ruleset into the kernel: the whole table (one atomic transaction
//! replacing the old one) when chains or set names changed, else only the elements.

use anyhow::{Context, Result, anyhow};
use weft_datapath::nft::{apply_nft, nft_list_json};
use weft_policy::nft::{Ruleset, TABLE, element_delta};

/// What has to be sent to nft to get from the applied ruleset to the wanted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The kernel has it already.
    Unchanged,
    /// Element changes only (`add/delete element` lines).
    Elements(String),
    /// The whole table (`add table; delete table; table {...}`).
    Table(String),
}

/// The step from `applied` (what the kernel has, if known) to `wanted`.
pub fn next_step(applied: Option<&Ruleset>, wanted: &Ruleset) -> Step {
    match applied.map(|old| element_delta(old, wanted)) {
        Some(Some(delta)) if delta.is_empty() => Step::Unchanged,
        Some(Some(delta)) => Step::Elements(delta.render()),
        _ => Step::Table(wanted.render()),
    }
}

/// How an apply went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to do.
    Unchanged,
    /// Elements added or removed.
    Elements,
    /// The table was (re)loaded.
    Table,
}

/// The table in weftd's namespace and what was last applied to it.
#[derive(Debug, Default)]
pub struct PolicyTable {
    applied: Option<Ruleset>,
}

impl PolicyTable {
    /// Brings the kernel to `wanted`, off the async thread (diffing and rendering a big
    /// ruleset takes milliseconds). An element transaction that fails (someone removed the
    /// table, or the kernel disagrees with what we think it has) falls back to the whole
    /// table. On failure the kernel keeps its previous ruleset (nft transactions are
    /// atomic) and the next call loads the whole table.
    pub async fn apply(&mut self, wanted: Ruleset) -> Result<Applied> {
        let applied = self.applied.take();
        let (outcome, wanted) = tokio::task::spawn_blocking(move || {
            let outcome = apply_blocking(applied.as_ref(), &wanted);
            (outcome, wanted)
        })
        .await
        .map_err(|e| anyhow!("nft task: {e}"))?;
        let outcome = outcome?;
        self.applied = Some(wanted);
        Ok(outcome)
    }

    /// Makes the next apply load the whole table (used when the table went missing).
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// Whether anything was applied.
    pub fn is_applied(&self) -> bool {
        self.applied.is_some()
    }
}

fn apply_blocking(applied: Option<&Ruleset>, wanted: &Ruleset) -> Result<Applied> {
    let load = |script: &str| apply_nft(script, None).context("apply policy table");
    match next_step(applied, wanted) {
        Step::Unchanged => Ok(Applied::Unchanged),
        Step::Elements(script) => match apply_nft(&script, None) {
            Ok(()) => Ok(Applied::Elements),
            Err(e) => {
                tracing::warn!(error = %e, "element update failed, reloading the table");
                load(&wanted.render())?;
                Ok(Applied::Table)
            }
        },
        Step::Table(script) => {
            load(&script)?;
            Ok(Applied::Table)
        }
    }
}

/// Whether table `inet weft_policy` exists in weftd's namespace. Lists table names only:
/// listing the table itself would dump every set element. An error counts as present, so
/// a failing `nft` does not cause a reload every period.
pub async fn table_present() -> bool {
    let listed =
        tokio::task::spawn_blocking(|| nft_list_json(&["list", "tables", "inet"], None)).await;
    match listed {
        Ok(Ok(json)) => lists_policy_table(&json),
        _ => true,
    }
}

fn lists_policy_table(json: &serde_json::Value) -> bool {
    json.get("nftables")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("table"))
        .any(|t| t.get("family") == Some(&"inet".into()) && t.get("name") == Some(&TABLE.into()))
}

/// Removes table `inet weft_policy` if present (`--network-policy false`).
pub async fn delete_table() -> Result<()> {
    run_nft(format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\n"
    ))
    .await
    .context("delete policy table")
}

async fn run_nft(script: String) -> Result<()> {
    tokio::task::spawn_blocking(move || apply_nft(&script, None))
        .await
        .map_err(|e| anyhow!("nft task: {e}"))?
        .map_err(anyhow::Error::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_table_in_a_listing() {
        let json = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "weft_cluster", "handle": 1}},
            {"table": {"family": "inet", "name": "weft_policy", "handle": 2}}]});
        assert!(super::lists_policy_table(&json));
        let other = serde_json::json!({"nftables": [
            {"table": {"family": "ip", "name": "weft_policy", "handle": 1}}]});
        assert!(!super::lists_policy_table(&other));
    }

    use weft_policy::nft::{compile, compile_with_quarantine};
    use weft_policy::{Cluster, Pod};

    use super::*;

    #[test]
    fn first_apply_and_structure_changes_load_the_table() {
        let empty = compile(&Cluster::default(), "n1");
        let Step::Table(text) = next_step(None, &empty) else {
            panic!("first apply must load the table");
        };
        assert!(text.starts_with("add table inet weft_policy\ndelete table inet weft_policy\n"));
        assert_eq!(next_step(Some(&empty), &empty), Step::Unchanged);
        let q =
            compile_with_quarantine(&Cluster::default(), "n1", &["10.244.1.9".parse().unwrap()]);
        let Step::Elements(delta) = next_step(Some(&empty), &q) else {
            panic!("quarantine is elements only");
        };
        assert_eq!(
            delta,
            "add element inet weft_policy wp_quarantine4 { 10.244.1.9 }\n"
        );
        let policy: weft_policy::NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}
        }))
        .unwrap();
        let cluster = Cluster {
            pods: vec![Pod {
                namespace: "x".into(),
                name: "a".into(),
                ips: vec!["10.244.1.5".parse().unwrap()],
                node: "n1".into(),
                ..Pod::default()
            }],
            policies: vec![policy.validate().unwrap()],
            ..Cluster::default()
        };
        assert!(matches!(
            next_step(Some(&q), &compile(&cluster, "n1")),
            Step::Table(_)
        ));
    }
}
