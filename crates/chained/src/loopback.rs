//! `weft-loopback`: the reference `loopback` plugin's behaviour. It ignores `CNI_IFNAME`
//! (always `lo`); ADD sets `lo` up and, without a `prevResult`, reports `lo` with its
//! addresses; DEL sets it down and succeeds when the namespace is already gone.

use weft_datapath::NetnsFd;

use crate::common::{open_pod_ns, open_pod_ns_if_any};
use weft_datapath::netlink::Netlink;
use weft_plugin::{Plugin, PluginError, Request};
use weft_proto::{CniResult, Interface, IpConfig};

/// The loopback plugin.
#[derive(Debug, Default)]
pub struct Loopback;

fn lo_up(ns: &NetnsFd, up: bool) -> Result<Netlink, PluginError> {
    let mut nl = Netlink::open_in(ns).map_err(|e| PluginError::datapath("open pod netlink", e))?;
    let lo = nl
        .link_by_name("lo")
        .map_err(|e| PluginError::datapath("look up lo", e))?;
    if lo.up != up {
        nl.set_up(lo.index, up)
            .map_err(|e| PluginError::datapath("set lo state", e))?;
    }
    Ok(nl)
}

impl Plugin for Loopback {
    fn add(&self, req: &Request) -> Result<CniResult, PluginError> {
        let ns = open_pod_ns(req)?;
        let mut nl = lo_up(&ns, true)?;
        // A chained plugin passes the previous result through unchanged.
        if let Some(prev) = req.conf.prev_result(req.version)? {
            return Ok(prev);
        }
        let lo = nl
            .link_by_name("lo")
            .map_err(|e| PluginError::datapath("look up lo", e))?;
        let addrs = nl
            .addrs(Some(lo.index), None)
            .map_err(|e| PluginError::datapath("list lo addresses", e))?;
        Ok(CniResult {
            interfaces: vec![Interface {
                name: "lo".into(),
                mac: Some("00:00:00:00:00:00".into()),
                sandbox: req
                    .env
                    .netns
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                mtu: None,
                socket_path: None,
                pci_id: None,
            }],
            ips: addrs
                .iter()
                .map(|a| IpConfig {
                    address: a.addr,
                    gateway: None,
                    interface: Some(0),
                })
                .collect(),
            routes: Vec::new(),
            dns: Default::default(),
        })
    }

    fn del(&self, req: &Request) -> Result<(), PluginError> {
        // An empty or vanished namespace has no loopback left to take down.
        let Some(ns) = open_pod_ns_if_any(req) else {
            return Ok(());
        };
        lo_up(&ns, false).map(|_| ())
    }

    fn check(&self, req: &Request) -> Result<(), PluginError> {
        let ns = open_pod_ns(req)?;
        let mut nl =
            Netlink::open_in(&ns).map_err(|e| PluginError::datapath("open pod netlink", e))?;
        let lo = nl
            .link_by_name("lo")
            .map_err(|e| PluginError::datapath("look up lo", e))?;
        if lo.up {
            Ok(())
        } else {
            Err(PluginError::Check("lo is down".into()))
        }
    }

    fn gc(&self, _req: &Request) -> Result<(), PluginError> {
        Ok(())
    }

    fn status(&self, _req: &Request) -> Result<(), PluginError> {
        Ok(())
    }
}
