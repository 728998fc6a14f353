//! The connector's telemetry, exported over OTLP like the hub's when its profile has a
//! `[telemetry]` section: the trace context of each write sent (so the hub's span joins it),
//! and gauges of the outbox, the dead letters and the cursor's lag behind the hub. Counts only:
//! no local id, no agent, no person.

use opentelemetry::KeyValue;
use std::sync::atomic::{AtomicU64, Ordering};

pub use relais_hub::telemetry::{enabled, inject};

static OUTBOX: AtomicU64 = AtomicU64::new(0);
static DEAD_LETTERS: AtomicU64 = AtomicU64::new(0);
static CURSOR_LAG: AtomicU64 = AtomicU64::new(0);

/// Records the connector's state, read by the gauges at each export.
pub fn record(outbox: u64, dead_letters: u64, cursor_lag: Option<u64>) {
    OUTBOX.store(outbox, Ordering::Relaxed);
    DEAD_LETTERS.store(dead_letters, Ordering::Relaxed);
    if let Some(lag) = cursor_lag {
        CURSOR_LAG.store(lag, Ordering::Relaxed);
    }
}

/// Registers the connector's gauges (once, after the exporters are set up), named by partner.
pub fn register(partner: &str) {
    let meter = opentelemetry::global::meter("relais-connector");
    let attributes = [KeyValue::new("relais.partner", partner.to_string())];
    let a = attributes.clone();
    let _outbox = meter
        .u64_observable_gauge("relais.connector.outbox")
        .with_description("Writes waiting in the connector's outbox")
        .with_callback(move |o| o.observe(OUTBOX.load(Ordering::Relaxed), &a))
        .build();
    let a = attributes.clone();
    let _dead = meter
        .u64_observable_gauge("relais.connector.dead_letters")
        .with_description("Writes the hub refused, waiting for a person to look at them")
        .with_callback(move |o| o.observe(DEAD_LETTERS.load(Ordering::Relaxed), &a))
        .build();
    let _lag = meter
        .u64_observable_gauge("relais.connector.cursor_lag")
        .with_description("Feed positions the connector is behind the hub's head")
        .with_callback(move |o| o.observe(CURSOR_LAG.load(Ordering::Relaxed), &attributes))
        .build();
}
