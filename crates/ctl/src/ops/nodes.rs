//! `weftctl nodes`: the node records weftd agents published in the datastore.

use anyhow::Result;
use weft_cluster::NodeRecord;
use weft_store::subnets::list_nodes;

use super::table::Table;
use super::{OutputArgs, OutputFormat, StoreArgs, print_json, runtime};

/// `weftctl nodes` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct NodesArgs {
    /// Datastore.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The table: name, underlay, subnets, VXLAN MAC.
pub fn render(nodes: &[NodeRecord]) -> String {
    let mut t = Table::new(&["NAME", "UNDERLAY", "SUBNETS", "VXLAN-MAC"]);
    for n in nodes {
        let mut underlay = match n.underlay_prefix_len {
            Some(len) => format!("{}/{len}", n.underlay_ip),
            None => n.underlay_ip.to_string(),
        };
        if let Some(secondary) = n.underlay_secondary {
            underlay.push_str(&format!(",{secondary}"));
        }
        let subnets: Vec<String> = n.subnets.iter().map(ToString::to_string).collect();
        t.row(vec![
            n.name.clone(),
            underlay,
            if subnets.is_empty() {
                "-".into()
            } else {
                subnets.join(",")
            },
            n.vxlan_mac
                .as_ref()
                .map_or_else(|| "-".into(), |m| m.to_string()),
        ]);
    }
    t.render()
}

/// Reads the records, sorted by name.
pub fn load(store: &StoreArgs) -> Result<Vec<NodeRecord>> {
    let rt = runtime()?;
    let mut nodes = rt.block_on(async {
        let store = store.open().await?;
        Ok::<_, anyhow::Error>(list_nodes(store.as_ref()).await?)
    })?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// Runs the command; always true.
pub fn run(args: &NodesArgs) -> Result<bool> {
    let nodes = load(&args.store)?;
    match args.out.output {
        OutputFormat::Json => print_json(&nodes)?,
        OutputFormat::Table => print!("{}", render(&nodes)),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_underlay_subnets_and_mac() {
        let mut a = NodeRecord::new("n1", "198.18.0.11".parse().unwrap());
        a.underlay_prefix_len = Some(24);
        a.subnets = vec!["10.244.1.0/24".parse().unwrap()];
        let b = NodeRecord::new("n2", "198.18.0.12".parse().unwrap());
        let text = render(&[a, b]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("198.18.0.11/24") && lines[1].contains("10.244.1.0/24"));
        assert!(lines[2].starts_with("n2") && lines[2].ends_with('-'));
    }
}
