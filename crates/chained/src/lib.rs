//! Chained and auxiliary plugins that sit next to `weft` in a conflist.

pub mod loopback;

pub use loopback::Loopback;
