//! Chained and auxiliary plugins that sit after the main plugin in a conflist:
//! `weft-loopback`, `weft-tuning`, `weft-portmap` and `weft-bandwidth`.

pub mod bandwidth;
pub mod common;
pub mod loopback;
pub mod portmap;
pub mod tuning;

pub use bandwidth::Bandwidth;
pub use loopback::Loopback;
pub use portmap::Portmap;
pub use tuning::Tuning;
