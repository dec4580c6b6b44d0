//! Datastores for weft's cluster state behind one small async trait, [`Datastore`]:
//!
//! - [`EmbeddedStore`]: a directory of JSON files guarded by a lock file, for one machine
//!   and the lab (several agents on one host share it safely);
//! - [`EtcdStore`]: etcd's v3 API with leases, compare-and-swap and prefix watches.
//!
//! On top of the trait, [`subnets`] implements what the node agent needs: claiming per-node
//! pod subnets without overlaps, publishing node records, listing and watching them.

mod config;
mod datastore;
mod embedded;
mod error;
mod etcd;
mod keeper;
pub mod subnets;
mod types;

pub use config::StoreConfig;
pub use datastore::{Datastore, StoreFuture};
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::StoreError;
pub use etcd::{EtcdOptions, EtcdStore, MIN_KEEP_ALIVE};
pub use keeper::{LeaseKeeper, LeaseState};
pub use types::{
    Condition, Entry, LeaseId, Listing, PutOptions, PutOutcome, WatchEvent, WatchStream,
    validate_key, validate_kind,
};
