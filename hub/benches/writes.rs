//! Write throughput of the store, with and without group commit, on SQLite and (when
//! `RELAIS_TEST_POSTGRES_URL` is set) PostgreSQL: 32 concurrent writers open cases, each
//! write a durable transaction with its change event, idempotency key and audit entry.
//! Run with `cargo bench -p relais-hub --bench writes`. Reports medians of rounds and ratios.

use relais_hub::domain::case::{Case, Procedure};
use relais_hub::domain::partner::PartnerStatus;
use relais_hub::domain::{
    AgentId, CaseId, CaseStatus, Partner, PartnerId, PartnerKind, RequestId, Timestamp,
};
use relais_hub::store::{DynStore, LinkTarget, StoreConfig, WriteMeta};
use std::time::Instant;

const WRITERS: usize = 32;
const WRITES_PER_WRITER: usize = 40;
const ROUNDS: usize = 3;

fn meta(at: i64) -> WriteMeta {
    WriteMeta {
        principal: "bench".into(),
        agent: AgentId::parse("bench").unwrap(),
        request_id: RequestId::parse(&uuid::Uuid::now_v7().to_string()).unwrap(),
        fingerprint: String::new(),
        at: Timestamp::from_micros(at),
        audit: vec![],
    }
}

async fn setup(store: &DynStore) -> Vec<relais_hub::domain::PersonId> {
    let partner = Partner {
        id: PartnerId::parse("bench").unwrap(),
        kind: PartnerKind::Mairie,
        name: "Bench".into(),
        territory: vec!["31483".into()],
        cog_vintage: 2026,
        status: PartnerStatus::Active,
        status_reason: String::new(),
        certificates: vec![],
        created_at: Timestamp::from_micros(0),
        updated_at: Timestamp::from_micros(0),
        version: 1,
    };
    store.add_partner(partner.clone(), &meta(0)).await.unwrap();
    let mut persons = Vec::new();
    for w in 0..WRITERS {
        let local = relais_hub::domain::LocalId::parse(&format!("P{w}")).unwrap();
        let linked = store
            .link_person(&partner.id, &local, LinkTarget::New, &meta(0))
            .await
            .unwrap();
        persons.push(linked.person);
    }
    persons
}

/// Writes per second for one round.
async fn round(store: &DynStore, persons: &[relais_hub::domain::PersonId]) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for person in persons.iter().copied() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..WRITES_PER_WRITER {
                let case = Case {
                    id: CaseId::new(),
                    person,
                    procedure: Procedure::parse("F1342").unwrap(),
                    owner: PartnerId::parse("bench").unwrap(),
                    status: CaseStatus::Draft,
                    missing_documents: vec![],
                    due_date: None,
                    opened_at: Timestamp::from_micros(1),
                    updated_at: Timestamp::from_micros(1),
                    parent: None,
                    duplicate_of: None,
                    outcome_reason: String::new(),
                    history: vec![],
                    version: 1,
                    theme: None,
                };
                store.open_case(case, &meta(1)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (WRITERS * WRITES_PER_WRITER) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures without, then with group commit, each on its own empty database.
async fn measure(name: &str, urls: [String; 2]) {
    let mut results = Vec::new();
    for (group_commit, url) in [false, true].into_iter().zip(urls) {
        let config = StoreConfig {
            group_commit,
            ..StoreConfig::default()
        };
        let store = relais_hub::store::open(&url, &config).await.unwrap();
        let persons = setup(&store).await;
        let mut rates = Vec::new();
        for _ in 0..ROUNDS {
            rates.push(round(&store, &persons).await);
        }
        let m = median(rates.clone());
        println!(
            "{name:<10} group commit {:<3}  median {m:>8.0} writes/s  (rounds: {})",
            if group_commit { "on" } else { "off" },
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        results.push(m);
    }
    println!(
        "{name:<10} group commit speed-up: {:.1}x",
        results[1] / results[0]
    );
}

async fn postgres_database(server: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    format!("{base}/{name}")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "{WRITERS} concurrent writers x {WRITES_PER_WRITER} writes, {ROUNDS} rounds, durable commits"
        );
        let dir = tempfile::tempdir().unwrap();
        let sqlite = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
        measure("SQLite", [sqlite("off.db"), sqlite("on.db")]).await;
        match std::env::var("RELAIS_TEST_POSTGRES_URL") {
            Ok(server) if !server.is_empty() => {
                let urls = [
                    postgres_database(&server, "relais_bench_off").await,
                    postgres_database(&server, "relais_bench_on").await,
                ];
                measure("PostgreSQL", urls).await;
            }
            _ => println!("PostgreSQL: not measured (set RELAIS_TEST_POSTGRES_URL)"),
        }
    });
}
