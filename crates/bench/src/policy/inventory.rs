//! The generated objects kept as an agent keeps them: parsed once, re-parsed one object at a
//! time when it changes, assembled into a [`Cluster`] for each compile.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Result, bail};
use weft_policy::inventory::{Cluster, Namespace, Node, Pod};
use weft_policy::k8s::{namespace_from_object, pod_from_object, policy_from_object};
use weft_policy::validate::ValidatedPolicy;

use super::generate::{NAMESPACES, Object, PODS, POLICIES};

/// The measured node's own address (kubelet probes come from it).
pub const NODE_IP: &str = "198.18.0.11";

/// Parsed objects by store key.
#[derive(Default)]
pub struct Inventory {
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<String, Pod>,
    policies: BTreeMap<String, ValidatedPolicy>,
    nodes: Vec<Node>,
}

impl Inventory {
    /// Parses every object (as weftd does on its first snapshot).
    pub fn new(objects: &[Object], nodes: usize) -> Result<Inventory> {
        let mut inv = Inventory::default();
        for o in objects {
            inv.upsert(o)?;
        }
        let node_ip: IpAddr = NODE_IP.parse()?;
        inv.nodes = (1..=nodes.max(1))
            .map(|i| Node {
                name: format!("node{i}"),
                ips: if i == 1 { vec![node_ip] } else { Vec::new() },
            })
            .collect();
        Ok(inv)
    }

    /// Re-parses one changed object.
    pub fn upsert(&mut self, o: &Object) -> Result<()> {
        match o.kind {
            NAMESPACES => {
                self.namespaces
                    .insert(o.key.clone(), namespace_from_object(&o.key, &o.value)?);
            }
            PODS => {
                self.pods
                    .insert(o.key.clone(), pod_from_object(&o.key, &o.value)?);
            }
            POLICIES => {
                self.policies
                    .insert(o.key.clone(), policy_from_object(&o.key, &o.value)?);
            }
            other => bail!("unknown kind {other}"),
        }
        Ok(())
    }

    /// The compiler's input.
    pub fn cluster(&self) -> Cluster {
        Cluster {
            namespaces: self.namespaces.values().cloned().collect(),
            pods: self.pods.values().cloned().collect(),
            nodes: self.nodes.clone(),
            policies: self.policies.values().cloned().collect(),
        }
    }
}
