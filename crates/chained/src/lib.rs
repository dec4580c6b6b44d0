//! Chained and auxiliary plugins that sit after the main plugin in a conflist:
//! `weft-loopback`, `weft-tuning` (and, as they land, `weft-portmap`, `weft-bandwidth`).

pub mod common;
pub mod loopback;
pub mod tuning;

pub use loopback::Loopback;
pub use tuning::Tuning;
