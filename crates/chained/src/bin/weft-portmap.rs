//! `weft-portmap`: hostPort mappings in nftables, like the reference `portmap` plugin.

fn main() {
    weft_plugin::main_with(&weft_chained::Portmap)
}
