//! The connector SDK: what every adapter gets.
//!
//! - [`Hub`]: the gRPC + mTLS client, with the partner's identity bundle;
//! - [`State`]: the connector's own SQLite database — the durable feed cursor, the **outbox**
//!   of writes made while the hub is unreachable (the bus in a valley without coverage), the
//!   dead-letter store with the hub's reason for each refused write, local copies of what was
//!   received;
//! - [`outbox::drain`]: sends the outbox in order, retrying what can succeed later with
//!   backoff and jitter, dead-lettering the rest;
//! - [`feed::follow`]: applies the hub's change feed through the adapter, storing the cursor
//!   only after the event is applied, and handling redactions (local copy deleted, adapter told);
//! - [`private`]: files holding personal data written 0600 (directories 0700), and spreadsheet
//!   cells made safe from formulas.

pub mod adapter;
pub mod feed;
pub mod hub;
pub mod outbox;
pub mod private;
pub mod retry;
pub mod state;
pub mod telemetry;
pub mod write;

pub use adapter::{Adapter, Priority, Received};
pub use hub::Hub;
pub use state::State;
pub use write::{Pivot, Write};
