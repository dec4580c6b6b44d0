//! `weft-tuning`: the reference `tuning` plugin's behaviour. Sets sysctls inside the pod
//! namespace (only under `net/`), and the pod interface's MAC, MTU, promiscuous and
//! all-multicast flags and transmit queue length. The values it replaces are saved under
//! `dataDir` before anything changes and put back on DEL.
//!
//! Differences from the reference: an explicit `promisc: false` / `allmulti: false` turns
//! the flag off (the reference only acts on `true`); originals of sysctls are saved and
//! restored too (the reference restores only link settings); GC removes backups of
//! attachments the runtime no longer lists.

pub mod backup;
pub mod conf;

use std::path::{Path, PathBuf};

use weft_datapath::NetnsFd;
use weft_datapath::netlink::{LinkExtra, LinkInfo, Netlink, format_mac};
use weft_datapath::sysctl::{read_sysctl, write_sysctl};
use weft_plugin::{Plugin, PluginError, Request};
use weft_proto::{CniError, CniResult, ValidAttachments, codes};

use crate::common::{open_pod_ns, open_pod_ns_if_any, required_prev_result};
use backup::Originals;
use conf::{Overrides, TuningConf};

/// The reference plugin's optional allowlist of sysctl patterns.
pub const DEFAULT_ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

/// The tuning plugin.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Allowlist file; when it exists every sysctl key must match one of its lines.
    pub allowlist: PathBuf,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            allowlist: PathBuf::from(DEFAULT_ALLOWLIST),
        }
    }
}

fn io_error(what: &str, e: &std::io::Error) -> PluginError {
    PluginError::Cni(CniError::new(codes::IO_FAILURE, format!("{what}: {e}")))
}

fn dp(context: &str) -> impl FnOnce(weft_datapath::DatapathError) -> PluginError + '_ {
    move |e| PluginError::datapath(context, e)
}

impl Tuning {
    fn conf(&self, req: &Request) -> Result<TuningConf, PluginError> {
        let over = Overrides {
            cni_args_mac: req.env.args.mac,
            runtime_mac: req.conf.runtime_config.mac_addr()?,
        };
        let conf =
            TuningConf::parse(&req.stdin, req.ifname(), &over).map_err(PluginError::config)?;
        if let Ok(text) = std::fs::read_to_string(&self.allowlist) {
            conf::check_allowlist(&conf.sysctls, &text).map_err(PluginError::config)?;
        }
        Ok(conf)
    }
}

/// `dataDir` alone, read leniently: DEL and GC must work even with an odd config.
fn data_dir(raw: &serde_json::Value) -> PathBuf {
    raw.get("dataDir")
        .and_then(|v| v.as_str())
        .map_or_else(|| PathBuf::from(conf::DEFAULT_DATA_DIR), PathBuf::from)
}

fn pod_link(nl: &mut Netlink, ifname: &str) -> Result<(LinkInfo, LinkExtra), PluginError> {
    let link = nl
        .link_by_name(ifname)
        .map_err(dp("look up pod interface"))?;
    let extra = nl
        .link_extra(link.index)
        .map_err(dp("read link settings"))?;
    Ok((link, extra))
}

/// Records the current value of everything `conf` is about to change.
fn capture(
    req: &Request,
    conf: &TuningConf,
    ns: &NetnsFd,
    link: &LinkInfo,
    extra: &LinkExtra,
) -> Result<Originals, PluginError> {
    let sysctls = conf
        .sysctls
        .iter()
        .map(|(key, _)| read_sysctl(Some(ns), key).map(|v| (key.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(dp("read sysctl"))?;
    Ok(Originals {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        mac: conf.mac.and(link.mac.as_ref().map(format_mac)),
        mtu: conf.mtu.map(|_| link.mtu),
        promisc: conf.promisc.map(|_| link.promisc),
        allmulti: conf.allmulti.map(|_| extra.allmulti),
        txqlen: conf.txqlen.map(|_| extra.txqlen),
        sysctls,
    })
}

fn apply(conf: &TuningConf, ns: &NetnsFd, nl: &mut Netlink, index: u32) -> Result<(), PluginError> {
    for (key, value) in &conf.sysctls {
        write_sysctl(Some(ns), key, value).map_err(dp("write sysctl"))?;
    }
    if let Some(on) = conf.promisc {
        nl.set_promisc(index, on).map_err(dp("set promisc"))?;
    }
    if let Some(mtu) = conf.mtu {
        nl.set_mtu(index, mtu).map_err(dp("set mtu"))?;
    }
    if let Some(mac) = conf.mac {
        nl.set_mac(index, mac.0).map_err(dp("set mac"))?;
    }
    if let Some(on) = conf.allmulti {
        nl.set_allmulti(index, on).map_err(dp("set allmulti"))?;
    }
    if let Some(len) = conf.txqlen {
        nl.set_txqlen(index, len).map_err(dp("set txqlen"))?;
    }
    Ok(())
}

/// Puts back what a backup recorded; keeps going and returns every failure.
fn restore(orig: &Originals, ns: &NetnsFd) -> Vec<String> {
    let mut errors = Vec::new();
    let mut note = |r: weft_datapath::Result<()>| {
        if let Err(e) = r {
            errors.push(e.to_string());
        }
    };
    for (key, value) in &orig.sysctls {
        note(write_sysctl(Some(ns), key, value));
    }
    let link = Netlink::open_in(ns).and_then(|mut nl| {
        let link = nl.link_by_name(&orig.ifname)?;
        Ok((nl, link.index))
    });
    let (mut nl, index) = match link {
        Ok(found) => found,
        // The interface is gone (main plugin already removed it): nothing left to restore.
        Err(e) if e.is_not_found() => return errors,
        Err(e) => {
            errors.push(e.to_string());
            return errors;
        }
    };
    if let Some(mac) = orig.mac.as_deref() {
        note(weft_datapath::netlink::parse_mac(mac).and_then(|m| nl.set_mac(index, m)));
    }
    if let Some(mtu) = orig.mtu {
        note(nl.set_mtu(index, mtu));
    }
    if let Some(on) = orig.promisc {
        note(nl.set_promisc(index, on));
    }
    if let Some(on) = orig.allmulti {
        note(nl.set_allmulti(index, on));
    }
    if let Some(len) = orig.txqlen {
        note(nl.set_txqlen(index, len));
    }
    errors
}

/// Compares live state with the configuration; the first difference is the error.
fn verify(
    conf: &TuningConf,
    ns: &NetnsFd,
    link: &LinkInfo,
    extra: &LinkExtra,
) -> Result<(), PluginError> {
    let mismatch = |what: String| Err(PluginError::Check(what));
    for (key, want) in &conf.sysctls {
        let have = read_sysctl(Some(ns), key).map_err(dp("read sysctl"))?;
        // Multi-value sysctls read back tab-separated.
        let same = have.split_whitespace().eq(want.split_whitespace());
        if !same {
            return mismatch(format!("sysctl {key} is {have:?}, want {want:?}"));
        }
    }
    if let Some(mac) = conf.mac
        && link.mac != Some(mac.0)
    {
        return mismatch(format!("{} MAC is not {mac}", link.name));
    }
    if conf.mtu.is_some_and(|m| m != link.mtu) {
        return mismatch(format!("{} MTU is {}", link.name, link.mtu));
    }
    if conf.promisc.is_some_and(|p| p != link.promisc) {
        return mismatch(format!("{} promisc is {}", link.name, link.promisc));
    }
    if conf.allmulti.is_some_and(|a| a != extra.allmulti) {
        return mismatch(format!("{} allmulti is {}", link.name, extra.allmulti));
    }
    if conf.txqlen.is_some_and(|q| q != extra.txqlen) {
        return mismatch(format!("{} txqlen is {}", link.name, extra.txqlen));
    }
    Ok(())
}

/// Writes the new MAC into the result entry of the pod interface.
fn amend_result(mut result: CniResult, ifname: &str, conf: &TuningConf) -> CniResult {
    if let Some(mac) = conf.mac {
        for iface in &mut result.interfaces {
            let in_pod = iface.sandbox.as_deref().is_none_or(|s| !s.is_empty());
            if iface.name == ifname && in_pod {
                iface.mac = Some(mac.to_string());
            }
        }
    }
    result
}

fn backup_file(req: &Request, dir: &Path) -> PathBuf {
    backup::backup_path(dir, req.container_id(), req.ifname())
}

impl Plugin for Tuning {
    fn add(&self, req: &Request) -> Result<CniResult, PluginError> {
        let prev = required_prev_result(req, "tuning")?;
        let conf = self.conf(req)?;
        if conf.sysctls.is_empty() && !conf.changes_link() {
            return Ok(prev);
        }
        let ns = open_pod_ns(req)?;
        let mut nl = Netlink::open_in(&ns).map_err(dp("open pod netlink"))?;
        let (link, extra) = pod_link(&mut nl, req.ifname())?;
        // Saved before the first change, so DEL can undo a half-applied ADD.
        let originals = capture(req, &conf, &ns, &link, &extra)?;
        backup::save_once(&backup_file(req, &conf.data_dir), &originals)
            .map_err(|e| io_error("save tuning originals", &e))?;
        apply(&conf, &ns, &mut nl, link.index)?;
        Ok(amend_result(prev, req.ifname(), &conf))
    }

    fn del(&self, req: &Request) -> Result<(), PluginError> {
        // DEL always succeeds (as the reference): leftovers are reported on stderr only.
        let path = backup_file(req, &data_dir(&req.raw));
        let originals = match backup::load(&path) {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(()),
            Err(e) => {
                eprintln!("weft-tuning: unreadable backup {}: {e}", path.display());
                let _ = backup::remove(&path);
                return Ok(());
            }
        };
        if let Some(ns) = open_pod_ns_if_any(req) {
            for e in restore(&originals, &ns) {
                eprintln!("weft-tuning: restoring {}: {e}", req.ifname());
            }
        }
        if let Err(e) = backup::remove(&path) {
            eprintln!("weft-tuning: removing {}: {e}", path.display());
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), PluginError> {
        required_prev_result(req, "tuning")?;
        let conf = self.conf(req)?;
        let ns = open_pod_ns(req)?;
        let mut nl = Netlink::open_in(&ns).map_err(dp("open pod netlink"))?;
        let (link, extra) = pod_link(&mut nl, req.ifname())?;
        verify(&conf, &ns, &link, &extra)
    }

    fn gc(&self, req: &Request) -> Result<(), PluginError> {
        let valid = ValidAttachments::from_config(&req.raw)?;
        if valid.source == weft_proto::gc::AttachmentsSource::Absent {
            return Ok(());
        }
        let mut errors = Vec::new();
        for (path, orig) in backup::list(&data_dir(&req.raw)) {
            if !valid.contains(&orig.container_id, &orig.ifname)
                && let Err(e) = backup::remove(&path)
            {
                errors.push(io_error("remove stale tuning backup", &e));
            }
        }
        PluginError::from_list(errors)
    }

    fn status(&self, _req: &Request) -> Result<(), PluginError> {
        Ok(())
    }
}
