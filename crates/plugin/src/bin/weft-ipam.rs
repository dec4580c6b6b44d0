//! `weft-ipam`: host-local compatible, crash-safe IPAM plugin.

fn main() {
    weft_plugin::main_with(&weft_plugin::WeftIpam)
}
