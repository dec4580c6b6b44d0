//! `weft-ipam` as a standalone IPAM plugin, for other main plugins (the reference `bridge`,
//! `ptp`, ...): host-local's configuration and on-disk format, crash-safe.

use std::collections::HashSet;

use weft_ipam::IpamConfig;
use weft_proto::{CniResult, ValidAttachments};

use crate::error::PluginError;
use crate::ipam::{fits_result_version, ipam_result_to_cni, requested_ips};
use crate::skel::{Plugin, Request};

/// The standalone IPAM plugin.
#[derive(Debug, Default)]
pub struct WeftIpam;

fn config(req: &Request) -> Result<IpamConfig, PluginError> {
    Ok(IpamConfig::from_request(&req.raw)?)
}

impl Plugin for WeftIpam {
    fn add(&self, req: &Request) -> Result<CniResult, PluginError> {
        let cfg = config(req)?;
        fits_result_version(&cfg, req.version)?;
        let requested = requested_ips(req)?;
        let mut store = weft_ipam::open_store(&cfg)?;
        let r = weft_ipam::add(
            &cfg,
            &mut store,
            req.container_id(),
            req.ifname(),
            &requested,
        )?;
        Ok(ipam_result_to_cni(&r))
    }

    fn del(&self, req: &Request) -> Result<(), PluginError> {
        let cfg = config(req)?;
        let mut store = weft_ipam::open_store(&cfg)?;
        weft_ipam::del(&mut store, req.container_id(), req.ifname())?;
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), PluginError> {
        let cfg = config(req)?;
        let mut store = weft_ipam::open_store(&cfg)?;
        weft_ipam::check(&mut store, req.container_id(), req.ifname())?;
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), PluginError> {
        let cfg = config(req)?;
        let valid = ValidAttachments::from_config(&req.raw)?;
        let valid: HashSet<(String, String)> = valid
            .set
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        let mut store = weft_ipam::open_store(&cfg)?;
        let report = weft_ipam::gc(&mut store, &valid);
        if report.errors.is_empty() {
            Ok(())
        } else {
            Err(PluginError::Ipam(weft_ipam::IpamError::Unavailable(
                report.errors.join("; "),
            )))
        }
    }

    fn status(&self, req: &Request) -> Result<(), PluginError> {
        let cfg = config(req)?;
        // A store that cannot even be opened (data dir not creatable) is "not available"
        // too: STATUS speaks in codes 50/51 only.
        weft_ipam::open_store(&cfg)
            .and_then(|mut store| weft_ipam::status(&cfg, &mut store))
            .map_err(|e| {
                PluginError::Cni(weft_proto::CniError::new(
                    weft_proto::codes::NOT_AVAILABLE,
                    e.to_string(),
                ))
            })
    }
}
