//! weftd's window for operators: `/healthz`, `/readyz` and Prometheus `/metrics` over HTTP.
//!
//! The agent updates [`Metrics`] and [`Health`] as it works; [`serve`] answers scrapes from
//! those values only, so a slow or stuck scraper never blocks the agent.

mod health;
mod metrics;
mod server;

pub use health::Health;
pub use metrics::{ApplyMode, ClaimResult, Metrics, RangeUsage};
pub use server::{Observe, serve};
