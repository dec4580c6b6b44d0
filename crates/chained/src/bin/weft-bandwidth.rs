//! `weft-bandwidth`: pod rate limits with tc through netlink, like the reference `bandwidth`.

fn main() {
    weft_plugin::main_with(&weft_chained::Bandwidth)
}
