//! `weft`, the main plugin: wires a pod with a veth pair, into a bridge or routed (ptp).

mod add;
mod check;
mod del;
mod gc;

use weft_datapath::NetnsFd;
use weft_datapath::netlink::Mac;
use weft_proto::{CniResult, codes};

use crate::conf::MainConf;
use crate::error::PluginError;
use crate::ipam::IpamBackend;
use crate::node_config;
use crate::plan::Who;
use crate::skel::{Plugin, Request};

/// The main plugin.
#[derive(Debug, Default)]
pub struct Weft;

impl Plugin for Weft {
    fn add(&self, req: &Request) -> Result<CniResult, PluginError> {
        add::add(&*node_config::resolve(req)?)
    }

    fn del(&self, req: &Request) -> Result<(), PluginError> {
        del::del(&*node_config::resolve(req)?)
    }

    fn check(&self, req: &Request) -> Result<(), PluginError> {
        check::check(&*node_config::resolve(req)?)
    }

    fn gc(&self, req: &Request) -> Result<(), PluginError> {
        gc::gc(&*node_config::resolve(req)?)
    }

    fn status(&self, req: &Request) -> Result<(), PluginError> {
        let req = &*node_config::resolve(req)?;
        MainConf::from_value(&req.raw)?;
        IpamBackend::from_request(req)?.status(req).map_err(|e| {
            // STATUS speaks in its own two codes: 50 = cannot take ADDs now.
            PluginError::Cni(weft_proto::CniError::new(
                codes::NOT_AVAILABLE,
                e.to_string(),
            ))
        })
    }
}

/// The attachment's identity from the request.
fn who(req: &Request) -> Who<'_> {
    Who {
        network: &req.conf.name,
        container_id: req.container_id(),
        ifname: req.ifname(),
    }
}

/// Opens `CNI_NETNS`, refusing anything that is not a network namespace or that is the
/// plugin's own namespace (libcni's rule, unless `CNI_NETNS_OVERRIDE`).
fn open_pod_netns(req: &Request) -> Result<NetnsFd, PluginError> {
    let path = req.env.netns.as_ref().ok_or_else(|| {
        PluginError::Cni(weft_proto::CniError::invalid_env("CNI_NETNS is required"))
    })?;
    let ns = NetnsFd::open(path).map_err(|e| {
        PluginError::Cni(weft_proto::CniError::new(
            codes::INVALID_NETNS,
            format!("CNI_NETNS {}: {e}", path.display()),
        ))
    })?;
    if !req.env.netns_override {
        let own = NetnsFd::current().map_err(|e| PluginError::datapath("open own netns", e))?;
        if ns
            .same_as(&own)
            .map_err(|e| PluginError::datapath("compare netns", e))?
        {
            return Err(PluginError::Cni(weft_proto::CniError::new(
                codes::INVALID_NETNS,
                format!(
                    "CNI_NETNS {} is the plugin's own network namespace",
                    path.display()
                ),
            )));
        }
    }
    Ok(ns)
}

/// The MAC the runtime asked for: `CNI_ARGS` `MAC`, then `args.cni.mac`, then
/// `runtimeConfig.mac` (later wins, as in the reference bridge plugin).
fn requested_mac(req: &Request) -> Result<Option<Mac>, PluginError> {
    let mut mac = req.env.args.mac;
    if let Some(m) = req.conf.args_cni_mac()? {
        mac = Some(m);
    }
    if let Some(m) = req.conf.runtime_config.mac_addr()? {
        mac = Some(m);
    }
    Ok(mac.map(|m| m.0))
}
