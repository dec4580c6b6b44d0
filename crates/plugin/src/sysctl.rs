//! Node sysctls the plugin relies on. The plugin runs in the node's namespace, so these
//! apply there (in tests and the lab: the simulated node's namespace).

use crate::error::PluginError;

/// Enables forwarding for the families a gateway serves. Written only when not already on,
/// so an unchanged node sees reads, not writes.
pub fn enable_forwarding(v4: bool, v6: bool) -> Result<(), PluginError> {
    let mut keys = Vec::new();
    if v4 {
        keys.push("net/ipv4/ip_forward");
    }
    if v6 {
        keys.push("net/ipv6/conf/all/forwarding");
    }
    for key in keys {
        let current = weft_datapath::sysctl::read_sysctl(None, key)
            .map_err(|e| PluginError::datapath("read sysctl", e))?;
        if current.trim() != "1" {
            weft_datapath::sysctl::write_sysctl(None, key, "1")
                .map_err(|e| PluginError::datapath("enable forwarding", e))?;
        }
    }
    Ok(())
}

/// Turns off duplicate address detection on a node-side link before it comes up.
///
/// The kernel sends a neighbour solicitation for a forwarded packet from the outgoing
/// link's link-local address and stays silent while that address is still tentative
/// (`ndisc_send_ns`), so a routed (ptp) pod would be unreachable over IPv6 for the first
/// second or two after ADD. The host end of a pod veth has exactly one neighbour, the pod:
/// DAD there can find nothing.
pub fn disable_dad(ifname: &str) -> Result<(), PluginError> {
    let key = format!("net/ipv6/conf/{ifname}/accept_dad");
    match weft_datapath::sysctl::read_sysctl(None, &key) {
        Ok(v) if v.trim() == "0" => Ok(()),
        // IPv6 disabled on the node: there is no DAD to turn off.
        Err(_) if !std::path::Path::new("/proc/sys/net/ipv6/conf").exists() => Ok(()),
        _ => weft_datapath::sysctl::write_sysctl(None, &key, "0")
            .map_err(|e| PluginError::datapath(format!("disable DAD on {ifname}"), e)),
    }
}
