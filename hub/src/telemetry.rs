//! OpenTelemetry: a span per call and the hub's metrics, exported over OTLP/gRPC when
//! `[telemetry] otlp_endpoint` is set. Otherwise nothing is exported and each hook below
//! returns after one relaxed atomic load.
//!
//! What leaves the hub: method names, partner ids (pseudonymous: a service, never a person),
//! purposes, status codes, durations and counts. Never an agent, a person, a local id or an
//! error message (messages can quote what a caller sent). The span exporter only sees spans of
//! the target `relais::rpc`, built in `api` with those fields alone; every other span and
//! every log event stays in the local log.

use crate::config::TelemetryConfig;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The target of the spans exported (one per call).
pub const RPC_TARGET: &str = "relais::rpc";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Is telemetry exported?
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The providers to flush at shutdown.
pub struct Telemetry {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    meter: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

/// The tracing layer that exports the call spans, to add to the subscriber.
pub type SpanLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

impl Telemetry {
    /// Nothing exported.
    pub fn off() -> Self {
        Self {
            tracer: None,
            meter: None,
        }
    }

    /// The hub's telemetry: the exporters, its instruments and gauges.
    pub fn start(config: &TelemetryConfig) -> anyhow::Result<(Self, Option<SpanLayer>)> {
        let started = Self::export(config)?;
        if started.1.is_some() {
            let _ = INSTRUMENTS.set(Instruments::new());
            register_gauges();
        }
        Ok(started)
    }

    /// Sets up the exporters (inside a Tokio runtime: the OTLP client is tonic), the global
    /// meter provider and the W3C trace-context propagator, and returns the span layer for the
    /// subscriber (spans of the target `relais::rpc` only). With no endpoint, nothing. Used by
    /// the hub and by the connectors.
    pub fn export(config: &TelemetryConfig) -> anyhow::Result<(Self, Option<SpanLayer>)> {
        use anyhow::Context;
        use opentelemetry::trace::TracerProvider as _;
        use opentelemetry_otlp::WithExportConfig;
        use tracing_subscriber::Layer;
        if config.otlp_endpoint.is_empty() {
            return Ok((Self::off(), None));
        }
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION").to_string(),
            ))
            .build();
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .build()
            .context("the OTLP span exporter")?;
        let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            // By trace id alone: a caller's `sampled` flag does not decide what the hub
            // exports (a partner cannot make it export every call); with the same ratio on
            // the connectors, a trace is kept on both sides or on neither.
            .with_sampler(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))
            .with_resource(resource.clone())
            .build();
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .build()
            .context("the OTLP metric exporter")?;
        let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metrics)
            .with_interval(Duration::from_secs(config.metrics_seconds))
            .build();
        let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_meter_provider(meter_provider.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let tracer = tracer_provider.tracer(config.service_name.clone());
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target() == RPC_TARGET
            }));
        ENABLED.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %config.otlp_endpoint, "exporting telemetry over OTLP");
        Ok((
            Self {
                tracer: Some(tracer_provider),
                meter: Some(meter_provider),
            },
            Some(Box::new(layer)),
        ))
    }

    /// Exports what is pending and stops the exporters (at shutdown).
    pub async fn flush(self) {
        let Self { tracer, meter } = self;
        if tracer.is_none() && meter.is_none() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            if let Some(t) = tracer
                && let Err(e) = t.shutdown()
            {
                eprintln!("relais: telemetry: spans not flushed: {e}");
            }
            if let Some(m) = meter
                && let Err(e) = m.shutdown()
            {
                eprintln!("relais: telemetry: metrics not flushed: {e}");
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(3), done).await;
    }
}

struct Instruments {
    calls: Counter<u64>,
    duration: Histogram<f64>,
    commit_batch: Histogram<u64>,
    decisions: Counter<u64>,
    decision_cache: Counter<u64>,
    connections_refused: Counter<u64>,
    rate_limited: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

impl Instruments {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("relais-hub");
        Self {
            calls: meter
                .u64_counter("relais.rpc.calls")
                .with_description("Calls answered, by method, partner and gRPC code")
                .build(),
            duration: meter
                .f64_histogram("relais.rpc.duration")
                .with_unit("s")
                .with_description("Time to answer a call, by method and partner")
                .with_boundaries(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .build(),
            commit_batch: meter
                .u64_histogram("relais.store.commit_batch")
                .with_description("Writes committed together in one transaction (group commit)")
                .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
                .build(),
            decisions: meter
                .u64_counter("relais.policy.decisions")
                .with_description("Access decisions, by outcome")
                .build(),
            decision_cache: meter
                .u64_counter("relais.policy.cache")
                .with_description("Rule evaluations served from the decision cache, or not")
                .build(),
            connections_refused: meter
                .u64_counter("relais.connections.refused")
                .with_description(
                    "Connections closed before serving: cap reached, handshake failed, too slow or evicted",
                )
                .build(),
            rate_limited: meter
                .u64_counter("relais.rpc.rate_limited")
                .with_description("Calls refused because the partner was over its rate")
                .build(),
        }
    }
}

fn instruments() -> Option<&'static Instruments> {
    if enabled() { INSTRUMENTS.get() } else { None }
}

/// A call answered.
pub fn call_done(method: &str, partner: &str, code: tonic::Code, took: Duration) {
    let Some(i) = instruments() else { return };
    let code = format!("{code:?}");
    i.calls.add(
        1,
        &[
            KeyValue::new("rpc.method", method.to_string()),
            KeyValue::new("relais.partner", partner.to_string()),
            KeyValue::new("rpc.grpc.status_code", code),
        ],
    );
    i.duration.record(
        took.as_secs_f64(),
        &[
            KeyValue::new("rpc.method", method.to_string()),
            KeyValue::new("relais.partner", partner.to_string()),
        ],
    );
}

/// A call refused by the rate limiter.
pub fn rate_limited(partner: &crate::domain::ids::PartnerId) {
    let Some(i) = instruments() else { return };
    i.rate_limited.add(
        1,
        &[KeyValue::new(
            "relais.partner",
            partner.as_str().to_string(),
        )],
    );
}

/// A connection closed before it was served, and why.
pub fn connection_refused(reason: &'static str) {
    let Some(i) = instruments() else { return };
    i.connections_refused
        .add(1, &[KeyValue::new("reason", reason)]);
}

/// A group commit of `writes` writes.
pub fn commit_batch(writes: usize) {
    let Some(i) = instruments() else { return };
    i.commit_batch.record(writes as u64, &[]);
}

/// An access decision, and whether the rules' evaluation came from the cache.
pub fn decision(allowed: bool, cached: Option<bool>) {
    let Some(i) = instruments() else { return };
    i.decisions.add(
        1,
        &[KeyValue::new(
            "outcome",
            if allowed { "allow" } else { "deny" },
        )],
    );
    if let Some(hit) = cached {
        i.decision_cache.add(
            1,
            &[KeyValue::new("result", if hit { "hit" } else { "miss" })],
        );
    }
}

static HEAD: AtomicU64 = AtomicU64::new(0);
static AUDIT_LENGTH: AtomicU64 = AtomicU64::new(0);

/// The feed's head moved (the lag of each subscription is measured from it).
pub fn feed_head(position: u64) {
    HEAD.fetch_max(position, Ordering::Relaxed);
}

/// The audit chain's last entry.
pub fn audit_length(last_sequence: u64) {
    AUDIT_LENGTH.fetch_max(last_sequence, Ordering::Relaxed);
}

/// Subscriptions open, with where each has delivered up to.
static SUBSCRIPTIONS: OnceLock<Mutex<HashMap<u64, Lag>>> = OnceLock::new();
static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

struct Lag {
    partner: String,
    purpose: &'static str,
    cursor: Arc<AtomicU64>,
}

/// One subscription's place in the feed, reported as `relais.feed.lag` while it lives.
pub struct FeedCursor {
    id: u64,
    cursor: Arc<AtomicU64>,
}

impl FeedCursor {
    pub fn new(partner: &str, purpose: &'static str, after: u64) -> Self {
        let cursor = Arc::new(AtomicU64::new(after));
        let id = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        // Kept with or without telemetry: the console shows each partner's lag too.
        {
            SUBSCRIPTIONS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id,
                    Lag {
                        partner: partner.to_string(),
                        purpose,
                        cursor: cursor.clone(),
                    },
                );
        }
        Self { id, cursor }
    }

    /// Everything up to `position` was handed to the subscriber.
    pub fn delivered(&self, position: u64) {
        self.cursor.fetch_max(position, Ordering::Relaxed);
    }
}

impl Drop for FeedCursor {
    fn drop(&mut self) {
        if let Some(subs) = SUBSCRIPTIONS.get() {
            subs.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.id);
        }
    }
}

/// Each open subscription's partner and the position it has delivered up to (this replica's).
pub fn feed_cursors() -> Vec<(String, u64)> {
    SUBSCRIPTIONS.get().map_or_else(Vec::new, |subs| {
        subs.lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|lag| (lag.partner.clone(), lag.cursor.load(Ordering::Relaxed)))
            .collect()
    })
}

fn register_gauges() {
    let meter = opentelemetry::global::meter("relais-hub");
    let _lag = meter
        .u64_observable_gauge("relais.feed.lag")
        .with_description(
            "Positions the furthest-behind subscription of a partner, for a purpose, is behind the feed's head",
        )
        .with_callback(|observer| {
            let head = HEAD.load(Ordering::Relaxed);
            let Some(subs) = SUBSCRIPTIONS.get() else {
                return;
            };
            // The furthest behind of each partner's subscriptions for a purpose: one series per
            // partner and purpose, however many connections come and go.
            let mut worst: HashMap<(String, &'static str), u64> = HashMap::new();
            let subs = subs.lock().unwrap_or_else(|e| e.into_inner());
            for lag in subs.values() {
                let behind = head.saturating_sub(lag.cursor.load(Ordering::Relaxed));
                let entry = worst.entry((lag.partner.clone(), lag.purpose)).or_default();
                *entry = (*entry).max(behind);
            }
            for ((partner, purpose), behind) in worst {
                observer.observe(
                    behind,
                    &[
                        KeyValue::new("relais.partner", partner),
                        KeyValue::new("relais.purpose", purpose),
                    ],
                );
            }
        })
        .build();
    let _subscriptions = meter
        .u64_observable_gauge("relais.feed.subscriptions")
        .with_description("Feed subscriptions open on this replica")
        .with_callback(|observer| {
            let open = SUBSCRIPTIONS.get().map_or(0, |s| {
                s.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
            });
            observer.observe(open, &[]);
        })
        .build();
    let _audit = meter
        .u64_observable_gauge("relais.audit.chain_length")
        .with_description("Sequence number of the last audit entry written by this replica")
        .with_callback(|observer| observer.observe(AUDIT_LENGTH.load(Ordering::Relaxed), &[]))
        .build();
    let _head = meter
        .u64_observable_gauge("relais.feed.head")
        .with_description("Position of the last change committed")
        .with_callback(|observer| observer.observe(HEAD.load(Ordering::Relaxed), &[]))
        .build();
}

tokio::task_local! {
    static TIMES: Times;
}

#[derive(Default)]
struct Times {
    store: Cell<Duration>,
    policy: Cell<Duration>,
}

/// Runs a call's handler, measuring the time it spends in the store and in the access rules.
pub async fn timed<F: Future>(f: F) -> (F::Output, Duration, Duration) {
    TIMES
        .scope(Times::default(), async {
            let out = f.await;
            let (store, policy) = TIMES.with(|t| (t.store.get(), t.policy.get()));
            (out, store, policy)
        })
        .await
}

/// Counts the time until it is dropped as time in the store (a store method holds one).
pub struct StoreTimer(Instant);

impl StoreTimer {
    pub fn start() -> Self {
        Self(Instant::now())
    }
}

impl Drop for StoreTimer {
    fn drop(&mut self) {
        let took = self.0.elapsed();
        let _ = TIMES.try_with(|t| t.store.set(t.store.get() + took));
    }
}

/// Runs `f` as time in the access rules.
pub fn in_policy<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    let _ = TIMES.try_with(|t| t.policy.set(t.policy.get() + took));
    out
}

/// Adds the current span's trace context (`traceparent`) to a call's metadata (connectors).
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if !enabled() {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    struct Inject<'a>(&'a mut tonic::metadata::MetadataMap);
    impl opentelemetry::propagation::Injector for Inject<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                value.parse(),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Inject(metadata))
    });
}

/// The trace context a caller (a connector) sent in its `traceparent` metadata.
pub fn parent_context(metadata: &tonic::metadata::MetadataMap) -> Option<opentelemetry::Context> {
    if !enabled() || metadata.get("traceparent").is_none() {
        return None;
    }
    struct Extract<'a>(&'a tonic::metadata::MetadataMap);
    impl opentelemetry::propagation::Extractor for Extract<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .filter_map(|k| match k {
                    tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                    tonic::metadata::KeyRef::Binary(_) => None,
                })
                .collect()
        }
    }
    Some(opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&Extract(metadata))
    }))
}
