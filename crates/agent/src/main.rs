//! `weftd`: the weft node agent.

fn main() {}
