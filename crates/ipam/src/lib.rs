//! host-local compatible IPAM for weft.
//!
//! - [`config`]: parse and validate the `ipam` object of a request ([`IpamConfig`]).
//! - [`range`]: pure range and round-robin math.
//! - [`allocator`]: the allocation decision over a [`Store`].
//! - [`store`]: the [`Store`] trait, an in-memory fake and the crash-safe [`DiskStore`]
//!   using host-local's on-disk layout.
//! - [`ops`]: the operations the plugin calls: [`add`], [`del`], [`check`], [`gc`],
//!   [`status`], [`usage`].
//!
//! Error codes for the plugin: see [`IpamError::cni_code`].
//!
//! Differences from host-local, on purpose:
//! - a repeated ADD of the same (container id, ifname) returns the addresses it already
//!   holds instead of failing (our idempotency rule);
//! - reservations are written crash-safely (temp file + `hard_link`), and a holder index
//!   in `.weft-holders/` (ignored by host-local) keeps ADD fast on nearly full pools.

pub mod allocator;
pub mod config;
pub mod dns;
pub mod error;
pub mod names;
pub mod ops;
pub mod range;
pub mod store;

pub use allocator::{Allocation, allocate};
pub use config::{DEFAULT_DATA_DIR, IpamConfig, Route, requested_ips};
pub use dns::Dns;
pub use error::{IpamError, StoreError};
pub use ops::{
    GcReport, IpamResult, RangeUsage, add, check, del, gc, open_store, status, usage, with_lock,
};
pub use range::{Range, RangeSet};
pub use store::disk::DiskStore;
pub use store::mem::MemStore;
pub use store::{Holder, Reservation, Store};
