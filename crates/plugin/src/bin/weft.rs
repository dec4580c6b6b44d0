//! `weft`: the main CNI plugin (bridge or ptp wiring).

fn main() {
    weft_plugin::main_with(&weft_plugin::Weft)
}
