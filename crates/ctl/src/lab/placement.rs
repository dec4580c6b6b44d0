//! Spreading pods without `spec.nodeName` evenly over the nodes.

use std::collections::BTreeMap;

/// For each request (`Some(node)` pinned, `None` free), the node it goes to: free pods go
/// to the node with the fewest pods so far (existing ones included), ties by node order.
pub fn place(nodes: &[String], existing: &[String], requests: &[Option<String>]) -> Vec<String> {
    let mut load: BTreeMap<&str, usize> = nodes.iter().map(|n| (n.as_str(), 0)).collect();
    for node in existing.iter().chain(requests.iter().flatten()) {
        if let Some(count) = load.get_mut(node.as_str()) {
            *count += 1;
        }
    }
    requests
        .iter()
        .map(|request| match request {
            Some(node) => node.clone(),
            None => {
                let chosen = nodes
                    .iter()
                    .min_by_key(|n| load.get(n.as_str()).copied().unwrap_or(0))
                    .cloned()
                    .unwrap_or_default();
                if let Some(count) = load.get_mut(chosen.as_str()) {
                    *count += 1;
                }
                chosen
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_around_pinned_and_existing_pods() {
        let nodes: Vec<String> = vec!["node1".into(), "node2".into(), "node3".into()];
        let existing = vec!["node1".to_string()];
        let requests = vec![None, Some("node2".to_string()), None, None];
        let placed = place(&nodes, &existing, &requests);
        assert_eq!(placed, vec!["node3", "node2", "node1", "node2"]);
    }
}
