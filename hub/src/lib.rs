//! Relais hub: a gRPC hub through which the public services of a territory share, under the
//! person's consent, difficulty flags and the status of procedures.
//!
//! Layers, one direction: `api` → `domain` → `policy` → `store` → `feed`.

pub mod api;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod config;
pub mod console;
pub mod documents;
pub mod domain;
pub mod error;
pub mod feed;
pub mod frontdoor;
pub mod lifecycle;
pub mod limits;
pub mod pki;
pub mod policy;
pub mod server;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use server::{RunningHub, start, start_with_clock};
