//! The `sql` adapter against real partner databases — PostgreSQL, MariaDB and SQLite: the
//! département's APA file, read by watermark from its table, reaches the hub as a case moved
//! through the lifecycle to the row's status, and the status comes back into its table.

use relais_connector_sdk::{Adapter, State, outbox};
use relais_tests::proto::{self as pb, PartnerKind};
use relais_tests::*;
use sqlx::any::AnyPoolOptions;

const MARIADB_ENV: &str = "RELAIS_TEST_MARIADB_URL";

/// The partner's table, in this database's words.
fn create_table(url: &str, table: &str) -> String {
    let seq = if url.starts_with("postgres") {
        "BIGINT"
    } else {
        "INTEGER"
    };
    format!(
        "CREATE TABLE {table} (seq {seq} PRIMARY KEY, numero_usager TEXT, nom_naissance TEXT, prenom TEXT, \
         date_naissance TEXT, insee_naissance TEXT, numero_dossier TEXT, demarche TEXT, theme TEXT, etat TEXT, pieces_manquantes TEXT)"
    )
}

fn insert(table: &str, seq: i64, etat: &str, pieces: &str) -> String {
    format!(
        "INSERT INTO {table} VALUES ({seq}, 'U-7781', 'CASTET', 'Rose', '1943-02-17', '31021', 'APA-2026-7781', \
         'local:apa-renouvellement', 'social', '{etat}', '{pieces}')"
    )
}

async fn the_apa_file_goes_to_the_hub_and_its_status_comes_back(partner_db: String) {
    sqlx::any::install_default_drivers();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let (table, statuses) = (
        format!("apa_{}", &id[20..]),
        format!("statuts_{}", &id[20..]),
    );
    let db = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&partner_db)
        .await
        .unwrap();
    sqlx::query(&create_table(&partner_db, &table))
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(&insert(&table, 1, "in_progress", ""))
        .execute(&db)
        .await
        .unwrap();

    let hub = TestHub::start().await;
    let cd31 = hub.partner("cd31", PartnerKind::Departement).await;
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(dir.path()).await.unwrap();
    let hub_client = relais_connector_sdk::Hub::new(
        &hub.url(),
        cd31.bundle.clone(),
        "connecteur-apa",
        pb::Purpose::Instruction,
    );
    let config: relais_adapter_sql::SqlConfig = toml::from_str(&format!(
        "url = \"{partner_db}\"\ntable = \"{table}\"\nwatermark_column = \"seq\"\nstatus_table = \"{statuses}\"\n\
         [columns]\nlocal_id = \"numero_usager\"\nfamily_name = \"nom_naissance\"\ngiven_name = \"prenom\"\n\
         birth_date = \"date_naissance\"\nbirth_place = \"insee_naissance\"\ncase_ref = \"numero_dossier\"\n\
         procedure = \"demarche\"\ntheme = \"theme\"\nstatus = \"etat\"\nmissing_documents = \"pieces_manquantes\"\n"
    ))
    .unwrap();
    let adapter = relais_adapter_sql::SqlAdapter::new(config).unwrap();

    // Link, open, and the three moves from draft to in_progress.
    assert_eq!(adapter.poll(&state).await.unwrap(), 5);
    let pass = outbox::drain_once(&hub_client, &state).await.unwrap();
    assert_eq!((pass.sent, pass.dead_lettered), (5, 0));
    let cases = |cd31: Partner| async move {
        cd31.cases
            .clone()
            .list_cases(pb::ListCasesRequest {
                context: ctx(),
                person: None,
                statuses: vec![],
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .cases
    };
    let now = cases(cd31.clone()).await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].status, pb::CaseStatus::InProgress as i32);
    assert_eq!(now[0].theme, "social");

    // The file now waits for the tax notice.
    sqlx::query(&insert(
        &table,
        2,
        "waiting_documents",
        "avis d''imposition 2025",
    ))
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(
        adapter.poll(&state).await.unwrap(),
        2,
        "link again, one move"
    );
    assert_eq!(
        adapter.poll(&state).await.unwrap(),
        0,
        "nothing new past the watermark"
    );
    outbox::drain_once(&hub_client, &state).await.unwrap();
    let now = cases(cd31.clone()).await;
    assert_eq!(now[0].status, pb::CaseStatus::WaitingDocuments as i32);
    assert_eq!(now[0].missing_documents, ["avis d'imposition 2025"]);

    // The hub's events come back into the status table.
    relais_connector_sdk::feed::follow(&hub_client, &state, &adapter, true)
        .await
        .unwrap();
    let (columns, param) = match partner_db.split(':').next() {
        Some("postgres") => ("state, detail", "$1"),
        // MariaDB's TEXT comes back to the `Any` driver as a blob unless cast to a VARCHAR.
        Some("mysql") => ("CAST(state AS CHAR(200)), CAST(detail AS CHAR(4000))", "?"),
        _ => ("state, detail", "?"),
    };
    let row: (String, String) = sqlx::query_as(&format!(
        "SELECT {columns} FROM {statuses} WHERE item = {param}"
    ))
    .bind(format!("case:{}", now[0].id))
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "waiting_documents".to_string(),
            "avis d'imposition 2025".to_string()
        )
    );
    // The work queue's rank and reason go beside the status, and stay when the row is
    // rewritten by an event.
    let queue = hub_client.work_queue(100).await.unwrap();
    assert_eq!(queue.len(), 1);
    adapter.prioritise(&queue).await.unwrap();
    let priority_columns = match partner_db.split(':').next() {
        Some("mysql") => "CAST(priority_rank AS CHAR(20)), CAST(priority_reason AS CHAR(4000))",
        _ => "priority_rank, priority_reason",
    };
    let priority = |db: sqlx::AnyPool| {
        let sql = format!("SELECT {priority_columns} FROM {statuses} WHERE item = {param}");
        let item = format!("case:{}", now[0].id);
        async move {
            sqlx::query_as::<_, (String, String)>(&sql)
                .bind(item)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        priority(db.clone()).await,
        ("1".to_string(), "1 pièce manquante".to_string())
    );
    // An event rewrites the row (on every database, MariaDB's TEXT included): the rank stays.
    sqlx::query(&insert(&table, 3, "in_progress", ""))
        .execute(&db)
        .await
        .unwrap();
    adapter.poll(&state).await.unwrap();
    outbox::drain_once(&hub_client, &state).await.unwrap();
    relais_connector_sdk::feed::follow(&hub_client, &state, &adapter, true)
        .await
        .unwrap();
    assert_eq!(
        priority(db.clone()).await,
        ("1".to_string(), "1 pièce manquante".to_string()),
        "kept until the next reading of the queue"
    );
    adapter.prioritise(&[]).await.unwrap();
    assert_eq!(
        priority(db.clone()).await,
        (String::new(), String::new()),
        "out of the queue: no rank"
    );
    for t in [&table, &statuses] {
        sqlx::query(&format!("DROP TABLE {t}"))
            .execute(&db)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("action_sociale.db").display()
    );
    the_apa_file_goes_to_the_hub_and_its_status_comes_back(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql() {
    let Some(Backend::Postgres(server)) = Backend::postgres("sql adapter on PostgreSQL") else {
        return;
    };
    let db = TestDatabase::create(&server).await;
    the_apa_file_goes_to_the_hub_and_its_status_comes_back(db.url.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb() {
    match std::env::var(MARIADB_ENV) {
        Ok(url) if !url.is_empty() => {
            the_apa_file_goes_to_the_hub_and_its_status_comes_back(url).await
        }
        _ => eprintln!(
            "NOT RUN on MariaDB: set {MARIADB_ENV}, e.g. mysql://root@127.0.0.1:3306/test"
        ),
    }
}
