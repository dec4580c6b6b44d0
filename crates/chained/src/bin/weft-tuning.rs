//! `weft-tuning`: sysctls and link settings in the pod, like the reference `tuning` plugin.

fn main() {
    weft_plugin::main_with(&weft_chained::Tuning::default())
}
