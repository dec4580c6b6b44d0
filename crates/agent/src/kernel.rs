//! The executor: reads and changes the kernel state of the namespace weftd runs in.
//!
//! Synchronous (netlink, `nft`); the agent calls it from a blocking thread. It never
//! changes namespace, and it never tears down on its own: only entries that the desired
//! state no longer wants are removed, and only entries weftd owns are looked at.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use weft_cluster::{MacAddr, NodePlan, PlanDiff, VXLAN_DEVICE, VxlanDevicePlan};
use weft_datapath::netlink::IpFamily;
use weft_datapath::nft::apply_nft;
use weft_datapath::sysctl::{read_sysctl, write_sysctl};
use weft_datapath::{LinkInfo, Netlink, RouteSpec, VxlanSpec};

use crate::actual::{
    owned_fdb, owned_neighbours, owned_routes, owned_routes_without_gateway, route_spec,
};
use crate::desired::{BRIDGE, LocalSetup, vxlan_identity};

/// How often the masquerade table's presence is verified when nothing changed.
const NFT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// RT_SCOPE_UNIVERSE: a global address.
const SCOPE_GLOBAL: u8 = 0;

/// The underlay interface as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// Interface index.
    pub index: u32,
    /// Its MTU.
    pub mtu: u32,
    /// First global address (IPv4 preferred) with prefix length.
    pub primary: IpNet,
    /// First global address of the other family, if any.
    pub secondary: Option<IpNet>,
}

/// What one convergence changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converged {
    /// MAC of the VXLAN device (vxlan backend).
    pub vxlan_mac: Option<MacAddr>,
    /// Number of route/neighbour/FDB entries added, replaced or removed.
    pub changes: usize,
    /// What could not be done (empty: the node matches the desired state).
    pub problems: Vec<String>,
}

/// A netlink socket in weftd's own namespace plus what was last applied to nftables.
#[derive(Debug)]
pub struct Kernel {
    nl: Netlink,
    applied_nft: Option<String>,
    nft_checked: Option<Instant>,
}

impl Kernel {
    /// Opens netlink in the namespace of the calling thread (weftd's namespace).
    pub fn open() -> Result<Kernel> {
        Ok(Kernel {
            nl: Netlink::open().context("open netlink")?,
            applied_nft: None,
            nft_checked: None,
        })
    }

    /// Finds the underlay interface and its addresses.
    pub fn underlay(&mut self, iface: &str) -> Result<Underlay> {
        let link = self
            .nl
            .link_by_name(iface)
            .with_context(|| format!("underlay interface {iface}"))?;
        let global: Vec<IpNet> = self
            .nl
            .addrs(Some(link.index), None)?
            .into_iter()
            .filter(|a| a.scope == SCOPE_GLOBAL && usable_underlay(a.addr.addr()))
            .map(|a| a.addr)
            .collect();
        let first = |v6: bool| global.iter().copied().find(|a| a.addr().is_ipv6() == v6);
        let (primary, secondary) = match (first(false), first(true)) {
            (Some(v4), v6) => (v4, v6),
            (None, Some(v6)) => (v6, None),
            (None, None) => bail!("underlay interface {iface} has no global address"),
        };
        Ok(Underlay {
            index: link.index,
            mtu: link.mtu,
            primary,
            secondary,
        })
    }

    /// Brings the node to `setup` and, when peers are known, to `plan`.
    ///
    /// `plan: None` (peers not read yet, e.g. right after a restart while the datastore is
    /// down) leaves every route, neighbour and FDB entry exactly as it is.
    pub fn converge(&mut self, setup: &LocalSetup, plan: Option<&NodePlan>) -> Converged {
        let mut done = Converged::default();
        enable_forwarding(setup.forward_v6);
        if let Err(e) = self.ensure_bridge(setup) {
            done.problems.push(format!("bridge {BRIDGE}: {e:#}"));
        }
        let vxlan = match &setup.vxlan {
            Some(dev) => match self.ensure_vxlan(dev, setup) {
                Ok(link) => Some(link),
                Err(e) => {
                    // Without the device no VXLAN entry can be checked: leave them alone.
                    done.problems.push(format!("{VXLAN_DEVICE}: {e:#}"));
                    return done;
                }
            },
            None => {
                match self.nl.delete_link_by_name(VXLAN_DEVICE) {
                    Ok(true) => tracing::info!("removed {VXLAN_DEVICE}: backend is not vxlan"),
                    Ok(false) => {}
                    Err(e) => done.problems.push(format!("remove {VXLAN_DEVICE}: {e}")),
                }
                None
            }
        };
        if let Err(e) = self.ensure_nft(&setup.masquerade_script) {
            done.problems.push(format!("{e:#}"));
        }
        done.vxlan_mac = vxlan.as_ref().and_then(|l| l.mac).map(MacAddr);
        if let Some(plan) = plan {
            let vxlan_index = vxlan.as_ref().map(|l| l.index);
            match self.reconcile_peers(plan, vxlan_index) {
                Ok((changes, failures)) => {
                    done.changes = changes;
                    done.problems.extend(failures);
                }
                Err(e) => done.problems.push(format!("read kernel state: {e:#}")),
            }
        }
        done
    }

    fn ensure_bridge(&mut self, setup: &LocalSetup) -> Result<()> {
        let link = match self.nl.find_link(BRIDGE)? {
            Some(link) if link.kind.as_deref() == Some("bridge") => link,
            Some(link) => bail!("{BRIDGE} exists but is a {:?} device", link.kind),
            None => {
                tracing::info!(mtu = setup.pod_mtu, "creating bridge {BRIDGE}");
                self.nl.create_bridge(BRIDGE, Some(setup.pod_mtu))?
            }
        };
        if !link.up {
            self.nl.set_up(link.index, true)?;
        }
        self.ensure_addresses(&link, &setup.bridge_addresses)
    }

    fn ensure_vxlan(&mut self, dev: &VxlanDevicePlan, setup: &LocalSetup) -> Result<LinkInfo> {
        let mtu = setup.pod_mtu;
        let wanted = vxlan_identity(dev);
        let mut link = match self.nl.find_link(&dev.name)? {
            Some(link) if link.kind.as_deref() != Some("vxlan") => {
                bail!("{} exists but is a {:?} device", dev.name, link.kind)
            }
            Some(link)
                if link.link != Some(setup.underlay_index)
                    || link.alias.as_deref() != Some(wanted.as_str()) =>
            {
                // VNI, port, local address and underlay are fixed at creation: recreate,
                // keeping the MAC peers know. Its entries are re-added below.
                tracing::warn!(name = %dev.name, was = ?link.alias, now = %wanted,
                    "VXLAN parameters changed, recreating the device");
                self.nl.delete_link(link.index)?;
                self.create_vxlan(dev, setup, link.mac)?
            }
            Some(link) => link,
            None => self.create_vxlan(dev, setup, None)?,
        };
        if link.mtu != mtu {
            self.nl.set_mtu(link.index, mtu)?;
            link.mtu = mtu;
        }
        if !link.up {
            self.nl.set_up(link.index, true)?;
        }
        self.ensure_addresses(&link, &dev.addresses)?;
        Ok(link)
    }

    fn create_vxlan(
        &mut self,
        dev: &VxlanDevicePlan,
        setup: &LocalSetup,
        mac: Option<[u8; 6]>,
    ) -> Result<LinkInfo> {
        tracing::info!(name = %dev.name, vni = dev.vni, port = dev.port, local = %dev.local, "creating VXLAN device");
        let spec = VxlanSpec {
            name: &dev.name,
            vni: dev.vni,
            local: Some(dev.local),
            port: dev.port,
            learning: false,
            underlay: Some(setup.underlay_index),
            mtu: Some(setup.pod_mtu),
            mac,
        };
        let link = self.nl.create_vxlan(&spec)?;
        // The kernel reads back none of these, so the alias records what was asked for.
        self.nl.set_alias(link.index, &vxlan_identity(dev))?;
        Ok(link)
    }

    /// Adds missing global addresses and removes global ones not wanted (an old subnet).
    fn ensure_addresses(&mut self, link: &LinkInfo, wanted: &[IpNet]) -> Result<()> {
        let present: Vec<IpNet> = self
            .nl
            .addrs(Some(link.index), None)?
            .into_iter()
            .filter(|a| a.scope == SCOPE_GLOBAL)
            .map(|a| a.addr)
            .collect();
        for addr in wanted.iter().filter(|a| !present.contains(a)) {
            tracing::info!(%addr, dev = %link.name, "adding address");
            // nodad: pods and peers must be able to use the address at once.
            self.nl.add_addr(link.index, *addr, addr.addr().is_ipv6())?;
        }
        for addr in present.iter().filter(|a| !wanted.contains(a)) {
            tracing::info!(%addr, dev = %link.name, "removing stale address");
            self.nl.delete_addr(link.index, *addr)?;
        }
        Ok(())
    }

    /// Applies the masquerade table when it changed, or when a (rate-limited) check finds
    /// it gone; checking spawns `nft`, so it is not done on every watch event.
    fn ensure_nft(&mut self, script: &str) -> Result<()> {
        let fresh = self
            .nft_checked
            .is_some_and(|at| at.elapsed() < NFT_CHECK_INTERVAL);
        if self.applied_nft.as_deref() == Some(script) && (fresh || self.nft_table_present()) {
            if !fresh {
                self.nft_checked = Some(Instant::now());
            }
            return Ok(());
        }
        apply_nft(script, None).context("apply masquerade table")?;
        self.applied_nft = Some(script.to_string());
        self.nft_checked = Some(Instant::now());
        Ok(())
    }

    fn nft_table_present(&self) -> bool {
        let args = ["list", "table", "inet", crate::desired::NFT_TABLE];
        weft_datapath::nft::nft_list_json(&args, None).is_ok()
    }

    /// Diffs the owned kernel entries against `plan` and applies the difference.
    fn reconcile_peers(
        &mut self,
        plan: &NodePlan,
        vxlan_index: Option<u32>,
    ) -> Result<(usize, Vec<String>)> {
        let mut routes = self.nl.routes(IpFamily::V4, None)?;
        routes.extend(self.nl.routes(IpFamily::V6, None)?);
        let mut actual = NodePlan {
            routes: owned_routes(&routes, vxlan_index),
            ..NodePlan::default()
        };
        if let Some(index) = vxlan_index {
            let mut neighbours = self.nl.neighbours(IpFamily::V4, Some(index))?;
            neighbours.extend(self.nl.neighbours(IpFamily::V6, Some(index))?);
            actual.neighbours = owned_neighbours(&neighbours);
            actual.fdb = owned_fdb(&self.nl.fdb(Some(index))?);
        }
        let diff = plan.diff(&actual);
        let (mut changes, mut failures) = self.apply_diff(&diff, vxlan_index);
        for dst in owned_routes_without_gateway(&routes) {
            match self.nl.delete_route(&RouteSpec::to(dst)) {
                Ok(_) => changes += 1,
                Err(e) => failures.push(format!("remove route {dst}: {e}")),
            }
        }
        Ok((changes, failures))
    }

    /// Order from [`PlanDiff`]: FDB, neighbours, routes up; routes, neighbours, FDB down.
    /// One failing entry does not stop the others; failures come back as text.
    fn apply_diff(&mut self, diff: &PlanDiff, vxlan_index: Option<u32>) -> (usize, Vec<String>) {
        let mut done = Outcome::default();
        if diff.is_empty() {
            return (0, Vec::new());
        }
        let missing_vx = || anyhow::anyhow!("VXLAN entries planned without a VXLAN device");
        for f in &diff.fdb.upsert {
            let what = format!("fdb {} dst {}", f.mac, f.dst);
            let r = vxlan_index
                .ok_or_else(missing_vx)
                .and_then(|vx| Ok(self.nl.replace_fdb(vx, f.mac.octets(), f.dst)?));
            done.record("upsert", &what, r);
        }
        for n in &diff.neighbours.upsert {
            let what = format!("neighbour {} lladdr {}", n.ip, n.mac);
            let r = vxlan_index
                .ok_or_else(missing_vx)
                .and_then(|vx| Ok(self.nl.replace_neighbour(vx, n.ip, n.mac.octets())?));
            done.record("upsert", &what, r);
        }
        for r in &diff.routes.upsert {
            let what = format!("route {} via {} onlink={}", r.dst, r.via, r.onlink);
            let res = self.nl.replace_route(&route_spec(r, vxlan_index));
            done.record("upsert", &what, res.map_err(Into::into));
        }
        for r in &diff.routes.remove {
            let what = format!("route {} via {}", r.dst, r.via);
            let res = self.nl.delete_route(&route_spec(r, vxlan_index));
            done.record("remove", &what, res.map(drop).map_err(Into::into));
        }
        for n in &diff.neighbours.remove {
            let what = format!("neighbour {}", n.ip);
            let r = vxlan_index
                .ok_or_else(missing_vx)
                .and_then(|vx| Ok(self.nl.delete_neighbour(vx, n.ip).map(drop)?));
            done.record("remove", &what, r);
        }
        for f in &diff.fdb.remove {
            let what = format!("fdb {} dst {}", f.mac, f.dst);
            let r = vxlan_index.ok_or_else(missing_vx).and_then(|vx| {
                Ok(self
                    .nl
                    .delete_fdb(vx, f.mac.octets(), Some(f.dst))
                    .map(drop)?)
            });
            done.record("remove", &what, r);
        }
        (done.changes, done.failures)
    }
}

/// Tally of one diff application.
#[derive(Debug, Default)]
struct Outcome {
    changes: usize,
    failures: Vec<String>,
}

impl Outcome {
    fn record(&mut self, action: &str, what: &str, result: Result<()>) {
        match result {
            Ok(()) => {
                tracing::info!("{action} {what}");
                self.changes += 1;
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "{action} {what} failed");
                self.failures.push(format!("{action} {what}: {e:#}"));
            }
        }
    }
}

/// Turns on IPv4 forwarding, and IPv6 forwarding for dual-stack/IPv6 clusters, where off.
/// Failures are logged: IPv6 may be disabled on the host, and a kernel that refuses shows
/// up as unreachable pods, which the status cannot fix either.
fn enable_forwarding(v6: bool) {
    let keys: &[&str] = if v6 {
        &["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"]
    } else {
        &["net/ipv4/ip_forward"]
    };
    for key in keys {
        if read_sysctl(None, key).is_ok_and(|v| v == "1") {
            continue;
        }
        match write_sysctl(None, key, "1") {
            Ok(()) => tracing::info!(key, "enabled forwarding"),
            Err(e) => tracing::warn!(key, error = %e, "cannot enable forwarding"),
        }
    }
}

/// Whether an address is usable as the underlay IP (not loopback, multicast, link-local).
fn usable_underlay(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_multicast() && !a.is_link_local(),
        IpAddr::V6(a) => !a.is_loopback() && !a.is_multicast() && !a.is_unicast_link_local(),
    }
}
