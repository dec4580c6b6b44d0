//! `weftctl lab`: fabric, nodes, agents and pods in network namespaces named `<prefix>-*`,
//! with state under a lab directory (default `/run/weft-lab`).
//!
//! Pure parts ([`state`], [`manifest`], [`matrix`], [`placement`]) are separate from the
//! side effects ([`fabric`], [`procs`], [`agents`], [`pods`], [`probe`], [`store`]); [`cmd`]
//! orchestrates them.

pub mod agents;
pub mod cmd;
pub mod fabric;
pub mod inspect;
pub mod manifest;
pub mod matrix;
pub mod objects;
pub mod placement;
pub mod pods;
pub mod probe;
pub mod procs;
pub mod responder;
pub mod state;
pub mod store;
pub mod trace;

pub use state::{LabPaths, LabState};
