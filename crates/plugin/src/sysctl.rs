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
