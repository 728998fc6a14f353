//! The `http` adapter, for partner software that speaks HTTP (the sous-préfecture's case
//! management, a département's web application):
//!
//! - **inbound**: `POST /v1/writes` with `{"writes": [...]}` (the SDK's `Write`, tagged by
//!   `"write"`), authenticated by `Authorization: Bearer <token>`; answered `202` only once the
//!   writes are in the connector's durable outbox. `GET /v1/status` tells the outbox and dead
//!   letters.
//! - **outbound**: each event the hub shares is POSTed as JSON to the partner's webhook, signed
//!   with HMAC-SHA-256 (`X-Relais-Signature: sha256=<hex>` over `<timestamp>.<body>`, timestamp
//!   in `X-Relais-Timestamp`), retried with backoff, and dead-lettered after `max_attempts`.

pub mod adapter;
pub mod config;

pub use adapter::{HttpAdapter, sign};
pub use config::HttpConfig;
