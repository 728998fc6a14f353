//! The hub against its peers, in one run, on loopback, with the same mTLS:
//!
//! * a bare tonic server (the gRPC health service: no work per call) with the hub's own server
//!   certificate and client CA, and the hub, under the same shapes (connections × calls in
//!   flight), rounds alternating, medians of the rounds: a durable write (`OpenCase`), a person
//!   summary (`GetPersonSummary`, a person with 2 flags another partner raised, no case) and a
//!   list call (`ListCases`);
//! * the change feed's fan-out — a backlog read by 50 subscribers entitled to every event, and
//!   live delivery with writes paced at 1,000/s — against NATS JetStream (durable consumers,
//!   explicit acks, the same event count and subscriber count, messages of the hub's event
//!   size), when a NATS server answers at `RELAIS_BENCH_NATS_URL` (default
//!   `nats://127.0.0.1:4222`);
//! * write throughput with 1,000 live subscribers attached against none, and what the feed
//!   costs in audit rows and database bytes per change.
//!
//! Run: `cargo bench -p relais-bench` (SQLite, the default store). Settings by environment:
//! `RELAIS_BENCH_SECONDS` (per measurement, default 2), `RELAIS_BENCH_ROUNDS` (3),
//! `RELAIS_BENCH_EVENTS` (backlog events, 20000), `RELAIS_BENCH_SUBSCRIBERS` (50),
//! `RELAIS_BENCH_RATE` (paced writes/s, 1000), `RELAIS_BENCH_LIVE_SECONDS` (5),
//! `RELAIS_BENCH_MANY` (attached subscribers, 1000), `RELAIS_BENCH_NATS_URL`.
//! The synthetic territory runs when `RELAIS_BENCH_PERSONS` is set (77000 for the Comminges;
//! `RELAIS_BENCH_PARTNERS`, default 600; also on PostgreSQL with `RELAIS_BENCH_POSTGRES_URL`;
//! `RELAIS_BENCH_ONLY_TERRITORY=1` skips the rest; `RELAIS_BENCH_ONLY_CALLS=1` stops after the
//! request/response rows, e.g. under `perf record`).
//!
//! It prints one Markdown table; the README keeps the latest with its date and machine.

use futures::StreamExt;
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::{Certificate, Channel, Identity, Server, ServerTlsConfig};

fn setting<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Settings {
    seconds: f64,
    rounds: usize,
    events: usize,
    subscribers: usize,
    rate: u64,
    live_seconds: u64,
    many: usize,
    nats: String,
    /// Synthetic territory: persons (0: not run), partners, and a PostgreSQL server to run it
    /// on as well.
    persons: usize,
    partners: usize,
    postgres: Option<String>,
}

/// One line of the table.
struct Row {
    what: String,
    hub: String,
    peer: String,
    ratio: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Calls per second and median latency (ms) of `call`, run by `in_flight` tasks on each of
/// `clients` for `seconds`.
async fn drive<C, F, Fut>(clients: &[C], in_flight: usize, seconds: f64, call: F) -> (f64, f64)
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..in_flight {
            let (client, call, counter) = (client.clone(), call.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    call(client.clone(), n).await;
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                }
                latencies
            }));
        }
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    (latencies.len() as f64 / elapsed, median(latencies))
}

/// A bare tonic server with the hub's server certificate and client CA: the transport's cost.
async fn start_echo(hub: &TestHub) -> String {
    let tls = &hub.hub.tls;
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            std::fs::read(&tls.server_cert).unwrap(),
            std::fs::read(&tls.server_key).unwrap(),
        ))
        .client_ca_root(Certificate::from_pem(std::fs::read(&tls.ca_cert).unwrap()));
    let (_reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .tls_config(config)
            .unwrap()
            .add_service(service)
            .serve_with_incoming(tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |conn| {
                    conn.inspect(|c| {
                        let _ = c.set_nodelay(true);
                    })
                },
            )),
    );
    format!("https://{addr}")
}

type Health = tonic_health::pb::health_client::HealthClient<Channel>;

async fn echo_call(mut c: Health, _n: usize) {
    c.check(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    })
    .await
    .expect("echo");
}

fn open_case(local_id: String) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        context: ctx(),
        person: Some(local(&local_id)),
        procedure: "F1342".into(),
        missing_documents: vec![],
        due_date: String::new(),
        initial_status: 0,
        request_id: new_request_id(),
        theme: String::new(),
    }
}

async fn write_call(p: Partner, n: usize) {
    p.cases
        .clone()
        .open_case(open_case(format!("W{}", n % 64)))
        .await
        .expect("open case");
}

async fn summary_call(p: Partner, _n: usize) {
    let s = p
        .persons
        .clone()
        .get_person_summary(pb::GetPersonSummaryRequest {
            context: ctx(),
            person: Some(local("S1")),
            include_history: false,
        })
        .await
        .expect("summary")
        .into_inner();
    assert_eq!(s.flags.len(), 2, "the summary shows the two flags");
}

async fn list_call(p: Partner, _n: usize) {
    p.cases
        .clone()
        .list_cases(pb::ListCasesRequest {
            context: ctx(),
            person: None,
            statuses: vec![],
            page_size: 20,
            page_token: String::new(),
        })
        .await
        .expect("list cases");
}

fn who(prefix: &str, i: usize) -> pb::PivotIdentity {
    pivot(prefix, &format!("N{i}"), "1950-01-01", "31483")
}

/// Writes `count` cases about the persons `F0..F{persons}` with 4 connections × 32 in flight.
async fn write_cases(writers: &[Partner], count: usize, persons: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in writers {
        for _ in 0..32 {
            let (w, next) = (w.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    w.cases
                        .clone()
                        .open_case(open_case(format!("F{}", n % persons)))
                        .await
                        .expect("open case");
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Subscribes from `after`; returns the stream once the backlog is delivered (after `expect`
/// events), with the size of the last event.
async fn subscribe(p: &Partner, after: u64) -> tonic::Streaming<pb::SubscribeResponse> {
    p.sync
        .clone()
        .subscribe(pb::SubscribeRequest {
            context: ctx(),
            after_position: after,
        })
        .await
        .expect("subscribe")
        .into_inner()
}

/// Reads until caught up; returns the events read and the encoded size of the last.
async fn read_backlog(mut s: tonic::Streaming<pb::SubscribeResponse>) -> (usize, usize) {
    use prost::Message;
    let (mut n, mut size) = (0, 0);
    while let Some(m) = s.message().await.expect("feed") {
        match m.payload {
            Some(pb::subscribe_response::Payload::Event(e)) => {
                n += 1;
                size = e.encoded_len();
            }
            Some(pb::subscribe_response::Payload::CaughtUp(_)) => break,
            None => {}
        }
    }
    (n, size)
}

/// Waits for the first `CaughtUp`.
async fn caught_up(s: &mut tonic::Streaming<pb::SubscribeResponse>) {
    while let Some(m) = s.message().await.expect("feed") {
        if let Some(pb::subscribe_response::Payload::CaughtUp(_)) = m.payload {
            return;
        }
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct DbFacts {
    audit_rows: i64,
    changes: i64,
    bytes: i64,
}

async fn db_facts(hub: &TestHub) -> DbFacts {
    use sqlx::Connection;
    if let Some(db) = &hub.database {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let (audit_rows, changes, bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM audit), (SELECT count(*) FROM changes), pg_database_size(current_database())",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        return DbFacts {
            audit_rows,
            changes,
            bytes,
        };
    }
    let url = format!(
        "sqlite://{}?mode=ro",
        hub.hub.data_dir.join("relais.db").display()
    );
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (audit_rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let (changes,): (i64,) = sqlx::query_as("SELECT count(*) FROM changes")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let (page_size,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let wal =
        std::fs::metadata(hub.hub.data_dir.join("relais.db-wal")).map_or(0, |m| m.len() as i64);
    DbFacts {
        audit_rows,
        changes,
        bytes: pages * page_size + wal,
    }
}

/// The hub's live delivery: `subs` subscribers caught up, writes paced at `rate`/s for
/// `seconds`. Returns (writes/s reached, latencies in ms, deliveries).
async fn hub_live(
    from: u64,
    readers: &[Partner],
    writer: &[Partner],
    persons: usize,
    rate: u64,
    seconds: u64,
) -> (f64, Vec<f64>, usize) {
    let total = (rate * seconds) as usize;
    let mut readers_tasks = Vec::new();
    for r in readers {
        let mut s = subscribe(r, from).await;
        caught_up(&mut s).await;
        readers_tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(seconds + 30);
            while latencies.len() < total {
                let Ok(Some(m)) = tokio::time::timeout_at(deadline.into(), s.message())
                    .await
                    .unwrap_or(Ok(None))
                else {
                    break;
                };
                if let Some(pb::subscribe_response::Payload::Event(e)) = m.payload {
                    let at = e.committed_at.unwrap();
                    let committed = at.seconds * 1_000_000 + i64::from(at.nanos) / 1_000;
                    latencies.push((now_micros() - committed) as f64 / 1e3);
                }
            }
            latencies
        }));
    }
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::new();
    for n in 0..total {
        ticks.tick().await;
        let (w, done) = (writer[n % writer.len()].clone(), done.clone());
        writes.push(tokio::spawn(async move {
            w.cases
                .clone()
                .open_case(open_case(format!("F{}", n % persons)))
                .await
                .expect("open case");
            done.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let reached = total as f64 / start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for t in readers_tasks {
        latencies.extend(t.await.unwrap());
    }
    let delivered = latencies.len();
    (reached, latencies, delivered)
}

struct Nats {
    js: async_nats::jetstream::Context,
}

impl Nats {
    async fn connect(url: &str) -> Option<Nats> {
        let client = tokio::time::timeout(Duration::from_secs(3), async_nats::connect(url))
            .await
            .ok()?
            .ok()?;
        Some(Nats {
            js: async_nats::jetstream::new(client),
        })
    }

    async fn fresh_stream(&self, name: &str) -> async_nats::jetstream::stream::Stream {
        let _ = self.js.delete_stream(name).await;
        self.js
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.to_string(),
                subjects: vec![format!("{name}.>")],
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .expect("create stream")
    }

    /// Publishes `count` messages of `size` bytes, each acknowledged by the server (durable),
    /// up to 256 awaiting their ack.
    async fn publish(&self, subject: &str, count: usize, size: usize) -> f64 {
        let start = Instant::now();
        let mut pending = std::collections::VecDeque::new();
        for _ in 0..count {
            let mut payload = vec![b'x'; size.max(8)];
            payload[..8].copy_from_slice(&now_micros().to_le_bytes());
            pending.push_back(
                self.js
                    .publish(subject.to_string(), payload.into())
                    .await
                    .expect("publish"),
            );
            if pending.len() >= 256 {
                pending.pop_front().unwrap().await.expect("ack");
            }
        }
        for p in pending {
            p.await.expect("ack");
        }
        count as f64 / start.elapsed().as_secs_f64()
    }

    async fn consumers(
        &self,
        stream: &async_nats::jetstream::stream::Stream,
        n: usize,
    ) -> Vec<async_nats::jetstream::consumer::Consumer<async_nats::jetstream::consumer::pull::Config>>
    {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(
                stream
                    .create_consumer(async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some(format!("sub{i}")),
                        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                        ..Default::default()
                    })
                    .await
                    .expect("consumer"),
            );
        }
        out
    }
}

/// Each consumer reads and acks `count` messages; returns the latencies (ms) from the
/// timestamp in each message.
async fn consume(
    consumers: Vec<
        async_nats::jetstream::consumer::Consumer<async_nats::jetstream::consumer::pull::Config>,
    >,
    count: usize,
) -> Vec<f64> {
    let mut tasks = Vec::new();
    for c in consumers {
        tasks.push(tokio::spawn(async move {
            let mut messages = c.messages().await.expect("messages");
            let mut latencies = Vec::with_capacity(count);
            while latencies.len() < count {
                let m = messages.next().await.expect("a message").expect("message");
                let mut at = [0u8; 8];
                at.copy_from_slice(&m.payload[..8]);
                latencies.push((now_micros() - i64::from_le_bytes(at)) as f64 / 1e3);
                m.ack().await.expect("ack");
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn run(s: &Settings) -> Vec<Row> {
    let mut rows = Vec::new();
    let hub = TestHub::start().await;
    let echo_url = start_echo(&hub).await;
    let bus = hub
        .partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    let mairie = hub.partner("mairie-aspet", PartnerKind::Mairie).await;
    for i in 0..64 {
        bus.link(&format!("W{i}"), who("Ecrit", i)).await;
    }
    // The summary's person: two flags the bus raised, that the mairie may read.
    bus.link("S1", who("Resume", 1)).await;
    mairie.link("S1", who("Resume", 1)).await;
    bus.grant(
        "S1",
        partner("mairie-aspet"),
        &["digital", "mobility"],
        &[pb::Purpose::Accompagnement],
    )
    .await;
    bus.raise("S1", "SANS_INTERNET").await;
    bus.raise("S1", "SANS_TRANSPORT").await;

    // Request/response against the echo, same shapes, rounds alternating.
    for (connections, in_flight) in [(1usize, 16usize), (4, 32)] {
        let mut echo_clients = Vec::new();
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..connections {
            let channel = relais_hub::cli::connect::channel(&echo_url, &bus.bundle)
                .await
                .unwrap();
            echo_clients.push(Health::new(channel));
            writers.push(Partner::connect("cc-comminges", &hub.url(), bus.bundle.clone()).await);
            readers.push(Partner::connect("mairie-aspet", &hub.url(), mairie.bundle.clone()).await);
        }
        let mut results: Vec<[Vec<f64>; 4]> = vec![Default::default(); 3];
        for _ in 0..s.rounds {
            for (op, r) in results.iter_mut().enumerate() {
                let (echo, echo_ms) = drive(&echo_clients, in_flight, s.seconds, echo_call).await;
                let (hub_rate, hub_ms) = match op {
                    0 => drive(&writers, in_flight, s.seconds, write_call).await,
                    1 => drive(&readers, in_flight, s.seconds, summary_call).await,
                    _ => drive(&writers, in_flight, s.seconds, list_call).await,
                };
                r[0].push(hub_rate);
                r[1].push(echo);
                r[2].push(hub_ms);
                r[3].push(echo_ms);
            }
        }
        for (op, r) in results.into_iter().enumerate() {
            let [hub_rate, echo, hub_ms, echo_ms] = r;
            let (hub_rate, echo, hub_ms, echo_ms) = (
                median(hub_rate),
                median(echo),
                median(hub_ms),
                median(echo_ms),
            );
            let name = [
                "`OpenCase` (durable write)",
                "`GetPersonSummary` (2 flags of another partner)",
                "`ListCases` (20 of the caller's)",
            ][op];
            rows.push(Row {
                what: format!("{name}, {connections} conn × {in_flight} in flight"),
                hub: format!("{hub_rate:.0} req/s, p50 {hub_ms:.1} ms"),
                peer: format!("echo {echo:.0} req/s, p50 {echo_ms:.1} ms"),
                ratio: format!("{:.2}", hub_rate / echo),
            });
        }
    }

    // `RELAIS_BENCH_ONLY_CALLS=1`: the request/response rows alone (to profile them).
    if std::env::var("RELAIS_BENCH_ONLY_CALLS").is_ok() {
        return rows;
    }

    // The feed: persons both partners know, a consent letting the mairie follow their cases.
    let persons = 100;
    for i in 0..persons {
        bus.link(&format!("F{i}"), who("Suivi", i)).await;
        mairie.link(&format!("F{i}"), who("Suivi", i)).await;
        bus.grant(
            &format!("F{i}"),
            partner("mairie-aspet"),
            &["case_status"],
            &[pb::Purpose::Accompagnement],
        )
        .await;
    }
    let mut writers = Vec::new();
    for _ in 0..4 {
        writers.push(Partner::connect("cc-comminges", &hub.url(), bus.bundle.clone()).await);
    }
    let start_position = hub.hub.store.head_position().await.unwrap();
    let write_rate = write_cases(&writers, s.events, persons).await;
    let before = db_facts(&hub).await;
    let mut subscribers = Vec::new();
    for _ in 0..s.subscribers {
        subscribers.push(Partner::connect("mairie-aspet", &hub.url(), mairie.bundle.clone()).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in &subscribers {
        let stream = subscribe(p, start_position).await;
        tasks.push(tokio::spawn(read_backlog(stream)));
    }
    let mut event_size = 0;
    for t in tasks {
        let (n, size) = t.await.unwrap();
        assert_eq!(n, s.events, "every subscriber gets every event");
        event_size = size;
    }
    let hub_backlog = (s.subscribers * s.events) as f64 / started.elapsed().as_secs_f64();
    let after = db_facts(&hub).await;
    let backlog_audit = (after.audit_rows - before.audit_rows) as f64 / s.events as f64;

    let nats = Nats::connect(&s.nats).await;
    let (js_backlog, js_publish) = match &nats {
        Some(n) => {
            let stream = n.fresh_stream("RELAIS_BENCH").await;
            let published = n.publish("RELAIS_BENCH.case", s.events, event_size).await;
            let consumers = n.consumers(&stream, s.subscribers).await;
            let started = Instant::now();
            let got = consume(consumers, s.events).await;
            let rate = got.len() as f64 / started.elapsed().as_secs_f64();
            (Some(rate), Some(published))
        }
        None => (None, None),
    };
    rows.push(Row {
        what: format!(
            "durable writes to fill the backlog (4 conn × 32), {}-byte events",
            event_size
        ),
        hub: format!("{write_rate:.0} writes/s"),
        peer: js_publish.map_or("JetStream not reachable".into(), |r| {
            format!("JetStream publish with ack {r:.0} msg/s")
        }),
        ratio: js_publish.map_or("—".into(), |r| format!("{:.2}", write_rate / r)),
    });
    rows.push(Row {
        what: format!(
            "feed backlog, {} subscribers entitled to every event ({} events)",
            s.subscribers, s.events
        ),
        hub: format!("{hub_backlog:.0} deliveries/s; {backlog_audit:.1} audit rows per event"),
        peer: js_backlog.map_or("JetStream not reachable".into(), |r| {
            format!("JetStream, acks: {r:.0}/s")
        }),
        ratio: js_backlog.map_or("—".into(), |r| format!("{:.2}", hub_backlog / r)),
    });

    // Live: subscribers caught up, writes paced.
    let before = db_facts(&hub).await;
    let (reached, mut latencies, delivered) = hub_live(
        hub.hub.store.head_position().await.unwrap(),
        &subscribers,
        &writers,
        persons,
        s.rate,
        s.live_seconds,
    )
    .await;
    let after = db_facts(&hub).await;
    let changes = (after.changes - before.changes).max(1) as f64;
    let audit_per_change = (after.audit_rows - before.audit_rows) as f64 / changes;
    let bytes_per_change = (after.bytes - before.bytes) as f64 / changes;
    let (p50, p99) = (
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99),
    );
    let js_live = match &nats {
        Some(n) => {
            let stream = n.fresh_stream("RELAIS_LIVE").await;
            let consumers = n.consumers(&stream, s.subscribers).await;
            let total = (s.rate * s.live_seconds) as usize;
            let readers = tokio::spawn(consume(consumers, total));
            let start = Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / s.rate));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut acks = Vec::new();
            for _ in 0..total {
                ticks.tick().await;
                let mut payload = vec![b'x'; event_size.max(8)];
                payload[..8].copy_from_slice(&now_micros().to_le_bytes());
                let ack =
                    n.js.publish("RELAIS_LIVE.case", payload.into())
                        .await
                        .expect("publish");
                acks.push(tokio::spawn(async move { ack.await.expect("ack") }));
            }
            for a in acks {
                a.await.unwrap();
            }
            let reached = total as f64 / start.elapsed().as_secs_f64();
            let mut l = readers.await.unwrap();
            Some((reached, percentile(&mut l, 0.5), percentile(&mut l, 0.99)))
        }
        None => None,
    };
    rows.push(Row {
        what: format!(
            "live: commit → delivery, {} subscribers, writes paced at {}/s for {} s",
            s.subscribers, s.rate, s.live_seconds
        ),
        hub: format!(
            "writes {reached:.0}/s; p50 {p50:.1} ms, p99 {p99:.1} ms ({delivered} deliveries)"
        ),
        peer: js_live.map_or("JetStream not reachable".into(), |(r, p50, p99)| {
            format!("JetStream at {r:.0}/s: p50 {p50:.1} ms, p99 {p99:.1} ms")
        }),
        ratio: js_live.map_or("—".into(), |(_, _, jp99)| {
            format!("p99 {:.2}×", p99 / jp99)
        }),
    });
    rows.push(Row {
        what: format!(
            "audit rows and database bytes per change ({} subscribers)",
            s.subscribers
        ),
        hub: format!("{audit_per_change:.1} audit rows, {bytes_per_change:.0} bytes per change"),
        peer: "—".into(),
        ratio: "—".into(),
    });

    // Writes with many live subscribers attached (of the entitled partner) against none.
    let (idle, _) = drive(&writers, 32, s.seconds, write_call).await;
    let mut many = Vec::new();
    let channels: Vec<Partner> = {
        let mut v = Vec::new();
        for _ in 0..20 {
            v.push(Partner::connect("mairie-aspet", &hub.url(), mairie.bundle.clone()).await);
        }
        v
    };
    for i in 0..s.many {
        let head = hub.hub.store.head_position().await.unwrap();
        let mut stream = subscribe(&channels[i % channels.len()], head).await;
        caught_up(&mut stream).await;
        many.push(tokio::spawn(async move {
            let mut n = 0usize;
            while let Ok(Some(_)) = stream.message().await {
                n += 1;
            }
            n
        }));
    }
    let before = db_facts(&hub).await;
    let writers_f: Vec<Partner> = writers.clone();
    let (loaded, _) = drive(&writers_f, 32, s.seconds, |p: Partner, n| async move {
        p.cases
            .clone()
            .open_case(open_case(format!("F{}", n % 100)))
            .await
            .expect("open case");
    })
    .await;
    let after = db_facts(&hub).await;
    let rss = rss_mb();
    rows.push(Row {
        what: format!(
            "durable writes with {} live subscribers attached (entitled to every write)",
            s.many
        ),
        hub: format!(
            "{loaded:.0} writes/s against {idle:.0} with none; {:.0} audit rows per change; process RSS {rss:.0} MB",
            (after.audit_rows - before.audit_rows) as f64
                / (after.changes - before.changes).max(1) as f64
        ),
        peer: "—".into(),
        ratio: format!("{:.2} of none", loaded / idle),
    });
    for m in many {
        m.abort();
    }

    // A partner's connector sending one export: each person linked, a flag, a case.
    let dir = tempfile::tempdir().unwrap();
    let state = relais_connector_sdk::State::open(dir.path()).await.unwrap();
    let exported = s.events / 10;
    let mut writes = Vec::new();
    for i in 0..exported {
        let local_id = format!("X{i}");
        writes.push(relais_connector_sdk::Write::Link {
            local_id: local_id.clone(),
            pivot: Some(relais_connector_sdk::write::Pivot {
                family_name: "Export".into(),
                first_given_name: format!("N{i}"),
                birth_date: "1950-01-01".into(),
                birth_place_cog: "31483".into(),
            }),
        });
        writes.push(relais_connector_sdk::Write::RaiseFlag {
            local_id: local_id.clone(),
            code: "SANS_INTERNET".into(),
            note: String::new(),
            qualification: "observed".into(),
            evidence: String::new(),
            review_on: String::new(),
        });
        writes.push(relais_connector_sdk::Write::OpenCase {
            case_ref: format!("D{i}"),
            local_id,
            procedure: "F1342".into(),
            theme: String::new(),
            missing_documents: vec![],
        });
    }
    state.enqueue(&writes, "export.csv", true).await.unwrap();
    let client = relais_connector_sdk::hub::Hub::new(
        &hub.url(),
        bus.bundle.clone(),
        "connecteur",
        pb::Purpose::Accompagnement,
    );
    let started = Instant::now();
    let drained = relais_connector_sdk::outbox::drain_once(&client, &state)
        .await
        .unwrap();
    assert_eq!(drained.sent as usize, writes.len(), "{drained:?}");
    let outbox_rate = writes.len() as f64 / started.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!(
            "connector outbox: one export of {exported} persons (link, flag, case: {} writes), pipelined by person",
            writes.len()
        ),
        hub: format!("{outbox_rate:.0} writes/s"),
        peer: "—".into(),
        ratio: "—".into(),
    });
    rows
}

fn main() {
    let s = Settings {
        seconds: setting("RELAIS_BENCH_SECONDS", 2.0),
        rounds: setting("RELAIS_BENCH_ROUNDS", 3),
        events: setting("RELAIS_BENCH_EVENTS", 20_000),
        subscribers: setting("RELAIS_BENCH_SUBSCRIBERS", 50),
        rate: setting("RELAIS_BENCH_RATE", 1_000),
        live_seconds: setting("RELAIS_BENCH_LIVE_SECONDS", 5),
        many: setting("RELAIS_BENCH_MANY", 1_000),
        nats: std::env::var("RELAIS_BENCH_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        persons: setting("RELAIS_BENCH_PERSONS", 0),
        partners: setting("RELAIS_BENCH_PARTNERS", 600),
        postgres: std::env::var("RELAIS_BENCH_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty()),
    };
    // `RUST_LOG=sqlx::query=debug` shows every statement with its time (to find a slow one).
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo bench` passes `--bench`; a `cargo test` run of benches (`--test`) only checks it
    // builds.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        if std::env::var("RELAIS_BENCH_ONLY_TERRITORY").is_err() {
            rows.extend(run(&s).await);
        }
        if s.persons > 0 {
            rows.extend(territory(&s, Backend::Sqlite, "SQLite").await);
            if let Some(url) = &s.postgres {
                rows.extend(territory(&s, Backend::Postgres(url.clone()), "PostgreSQL").await);
            }
        }
        rows
    });
    println!("| what | hub | peer in the same run | ratio |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.what, r.hub, r.peer, r.ratio);
    }
}

/// A difficulty code a mairie may raise, by person.
const CODES: [&str; 6] = [
    "SANS_INTERNET",
    "ELOIGNEMENT",
    "SANS_TRANSPORT",
    "ISOLEMENT",
    "ILLECTRONISME",
    "SANS_PERMIS",
];

/// A synthetic territory: one mairie per commune (the other partners: the communauté de
/// communes, the département, the sous-préfecture, two associations), each person linked by
/// the mairie of their commune, 60% with a flag it raised, 30% also followed by the
/// département (linked, a case, and the person's consent that it sees the mairie's digital and
/// mobility flags). Generated through the API, pipelined (64 persons at once).
async fn territory(s: &Settings, backend: Backend, name: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let hub = TestHub::start_on(backend).await;
    let communes = s.partners.saturating_sub(5).max(1);
    let dep = hub
        .partner("departement-31", PartnerKind::Departement)
        .await;
    hub.partner("cc-comminges", PartnerKind::CommunauteDeCommunes)
        .await;
    hub.partner("sp-saint-gaudens", PartnerKind::SousPrefecture)
        .await;
    hub.partner("asso-1", PartnerKind::Association).await;
    hub.partner("asso-2", PartnerKind::Association).await;
    let mut mairies = Vec::new();
    for c in 0..communes {
        mairies.push(
            hub.partner(&format!("mairie-{c:04}"), PartnerKind::Mairie)
                .await,
        );
    }
    let mairies = Arc::new(mairies);
    let before = db_facts(&hub).await;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (mairies, dep, next) = (mairies.clone(), dep.clone(), next.clone());
        let persons = s.persons;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= persons {
                    return;
                }
                let m = &mairies[i % mairies.len()];
                let local = format!("P{i}");
                let traits = pivot("Habitant", &format!("N{i}"), "1950-01-01", "31483");
                m.link(&local, traits.clone()).await;
                if i % 10 < 6 {
                    m.raise(&local, CODES[i % CODES.len()]).await;
                }
                if i % 10 < 3 {
                    dep.link(&local, traits).await;
                    m.grant(
                        &local,
                        partner("departement-31"),
                        &["digital", "mobility"],
                        &[pb::Purpose::Accompagnement],
                    )
                    .await;
                    dep.open_case(&local, "F1342").await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let generated = started.elapsed().as_secs_f64();
    let after = db_facts(&hub).await;
    let changes = (after.changes - before.changes).max(1);
    rows.push(Row {
        what: format!(
            "{name} territory: {} persons, {} partners generated through the API",
            s.persons,
            communes + 5
        ),
        hub: format!(
            "{generated:.0} s; {:.0} bytes per person, {:.0} per change",
            (after.bytes - before.bytes) as f64 / s.persons as f64,
            (after.bytes - before.bytes) as f64 / changes as f64
        ),
        peer: "—".into(),
        ratio: "—".into(),
    });

    // The département reads the summaries of the persons it follows.
    let followed: Vec<usize> = (0..s.persons).filter(|i| i % 10 < 3).collect();
    let followed = Arc::new(followed);
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(Partner::connect("departement-31", &hub.url(), dep.bundle.clone()).await);
    }
    let (rate, _) = drive(&readers, 16, s.seconds * 2.0, {
        let followed = followed.clone();
        move |p: Partner, n: usize| {
            let followed = followed.clone();
            async move {
                let i = followed[(n * 7919) % followed.len()];
                p.persons
                    .clone()
                    .get_person_summary(pb::GetPersonSummaryRequest {
                        context: ctx(),
                        person: Some(local(&format!("P{i}"))),
                        include_history: false,
                    })
                    .await
                    .expect("summary");
            }
        }
    })
    .await;
    // Latency without queueing: one call at a time.
    let mut one = Vec::new();
    for n in 0..500 {
        let i = followed[(n * 7919) % followed.len()];
        let t = Instant::now();
        dep.persons
            .clone()
            .get_person_summary(pb::GetPersonSummaryRequest {
                context: ctx(),
                person: Some(local(&format!("P{i}"))),
                include_history: false,
            })
            .await
            .expect("summary");
        one.push(t.elapsed().as_secs_f64() * 1e3);
    }
    rows.push(Row {
        what: format!(
            "{name} territory: `GetPersonSummary` of the persons the département follows"
        ),
        hub: format!(
            "one at a time p50 {:.2} ms, p99 {:.2} ms; 4 conn × 16: {rate:.0} req/s",
            percentile(&mut one, 0.5),
            percentile(&mut one, 0.99)
        ),
        peer: "—".into(),
        ratio: "—".into(),
    });

    // Feed fan-out: each mairie's subscription reads its own persons' changes from 0.
    for subscribers in [10usize, 100, 600] {
        let n = subscribers.min(mairies.len());
        let rows_before = hub.hub.store.feed_rows_read();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for m in mairies.iter().take(n) {
            let stream = subscribe(m, 0).await;
            tasks.push(tokio::spawn(read_backlog(stream)));
        }
        let mut delivered = 0;
        for t in tasks {
            delivered += t.await.unwrap().0;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let read = hub.hub.store.feed_rows_read() - rows_before;
        rows.push(Row {
            what: format!(
                "{name} territory: feed backlog, {n} mairies each entitled to its commune's persons"
            ),
            hub: format!(
                "{delivered} deliveries in {elapsed:.1} s ({:.0}/s); {read} change rows read of {} in the log",
                delivered as f64 / elapsed,
                after.changes
            ),
            peer: "—".into(),
            ratio: "—".into(),
        });
    }
    rows.push(Row {
        what: format!(
            "{name} territory: process RSS (hub, clients and {} connections)",
            mairies.len() + 5
        ),
        hub: format!("{:.0} MB", rss_mb()),
        peer: "—".into(),
        ratio: "—".into(),
    });
    rows
}
