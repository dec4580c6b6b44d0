//! `weftctl`: the weft command line.
fn main() {}
