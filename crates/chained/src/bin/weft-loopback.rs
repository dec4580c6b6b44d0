//! `weft-loopback`: brings `lo` up in the pod, like the reference `loopback` plugin.

fn main() {
    weft_plugin::main_with(&weft_chained::Loopback)
}
