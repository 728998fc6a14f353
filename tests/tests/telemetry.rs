//! OpenTelemetry: the hub process exports its call spans and its metrics over OTLP/gRPC to a
//! real receiver started here (the collector's own services, from `opentelemetry-proto`); the
//! span of a call carries the connector's trace context; and nothing exported names a person,
//! an agent or a local id.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got.
#[derive(Default, Clone)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| text(&a.value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_a_collector_and_name_nobody() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut hub = spawn_hub_process(
        dir.path(),
        "",
        &format!(
            "[telemetry]\notlp_endpoint = \"http://{collector}\"\nmetrics_seconds = 1\nservice_name = \"relais-test\"\n"
        ),
        &[],
    );
    let bus = hub
        .partner(
            dir.path(),
            "cc-comminges",
            PartnerKind::CommunauteDeCommunes,
        )
        .await;

    // A connector's call, in its own trace, by a named agent about a named person.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let agent = "agent-marie-dupont";
    let mut request = tonic::Request::new(pb::LinkPersonRequest {
        context: Some(pb::RequestContext {
            purpose: pb::Purpose::Accompagnement as i32,
            agent: agent.into(),
        }),
        local_id: "DOSSIER-4711".into(),
        pivot: Some(pivot("Castet", "Rose", "1943-02-17", "31021")),
        person_id: String::new(),
        request_id: new_request_id(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span}-01").parse().unwrap(),
    );
    let linked = bus
        .persons
        .clone()
        .link_person(request)
        .await
        .expect("linked")
        .into_inner();
    bus.raise("DOSSIER-4711", "ISOLEMENT").await;
    let refused = bus
        .flags
        .clone()
        .raise_flag(pb::RaiseFlagRequest {
            context: ctx(),
            person: Some(local("INCONNU-99")),
            code: "PAS_UN_CODE".into(),
            request_id: new_request_id(),
            ..Default::default()
        })
        .await
        .expect_err("bad input");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    // A subscription, open for a metric export or two (its lag is measured).
    let mut feed = bus.subscribe(0).await.unwrap();
    let _ = feed.message().await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = [
        "relais.rpc.calls",
        "relais.rpc.duration",
        "relais.store.commit_batch",
        "relais.policy.decisions",
        "relais.policy.cache",
        "relais.feed.lag",
        "relais.feed.subscriptions",
        "relais.audit.chain_length",
    ];
    let names = loop {
        let names: Vec<String> = received
            .metrics
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| m.name.clone())
            .collect();
        if wanted.iter().all(|w| names.iter().any(|n| n == w)) || Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for w in wanted {
        assert!(
            names.iter().any(|n| n == w),
            "metric {w} not exported: {names:?}"
        );
    }
    drop(feed);

    // SIGTERM flushes the spans still batched.
    hub.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = tokio::task::spawn_blocking(move || hub.exit_within(Duration::from_secs(20)));
    assert!(exit.await.unwrap().is_some_and(|s| s.success()));

    let traces = received.traces.lock().unwrap().clone();
    let resource_names: Vec<String> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .filter_map(|r| r.resource.as_ref())
        .filter_map(|r| attribute(&r.attributes, "service.name"))
        .collect();
    assert!(
        resource_names.iter().all(|n| n == "relais-test"),
        "{resource_names:?}"
    );
    let spans: Vec<_> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .cloned()
        .collect();
    let link = spans
        .iter()
        .find(|s| s.name == "LinkPerson")
        .unwrap_or_else(|| {
            panic!(
                "no LinkPerson span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(hex(&link.trace_id), trace_id, "the connector's trace");
    assert_eq!(
        hex(&link.parent_span_id),
        parent_span,
        "the connector's span"
    );
    assert_eq!(
        attribute(&link.attributes, "relais.partner").as_deref(),
        Some("cc-comminges")
    );
    assert_eq!(
        attribute(&link.attributes, "relais.purpose").as_deref(),
        Some("accompagnement")
    );
    assert_eq!(
        attribute(&link.attributes, "relais.outcome").as_deref(),
        Some("ok")
    );
    assert_eq!(
        attribute(&link.attributes, "rpc.method").as_deref(),
        Some("LinkPerson")
    );
    for timing in ["relais.store_ms", "relais.policy_ms"] {
        let ms: f64 = attribute(&link.attributes, timing)
            .unwrap_or_else(|| panic!("{timing} missing"))
            .parse()
            .unwrap();
        assert!(ms >= 0.0, "{timing} = {ms}");
    }
    let store_ms: f64 = attribute(&link.attributes, "relais.store_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        store_ms > 0.0,
        "a link writes: time in the store is measured"
    );
    let bad = spans
        .iter()
        .find(|s| {
            s.name == "RaiseFlag"
                && attribute(&s.attributes, "relais.outcome").as_deref() == Some("refused")
        })
        .expect("the refused call's span");
    assert_eq!(
        attribute(&bad.attributes, "rpc.grpc.status_code").as_deref(),
        Some("3")
    );
    assert!(
        spans.iter().all(|s| s.events.is_empty()),
        "no log event is exported"
    );

    // Nothing exported names the person, the agent or a local id.
    let everything = format!("{traces:?}{:?}", received.metrics.lock().unwrap());
    for secret in [
        "Castet",
        "Rose",
        "1943",
        "DOSSIER-4711",
        "INCONNU-99",
        agent,
        "agent-1",
        linked.person_id.as_str(),
        "PAS_UN_CODE",
    ] {
        assert!(
            !everything.contains(secret),
            "telemetry exported `{secret}`"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
