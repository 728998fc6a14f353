//! Upgrades: a hub refuses, with a clear message, a database whose schema a newer Relais made —
//! before writing anything to it — and starts again once the newer migration is gone.

use relais_tests::*;

#[tokio::test]
async fn a_database_from_a_newer_relais_is_refused_with_a_clear_message() {
    let hub = TestHub::start().await;
    let config = hub.config.clone();
    let TestHub {
        hub: running, dir, ..
    } = hub;
    running.shutdown().await.expect("hub stops");
    // A newer version applied its migration 99.
    let url = config.database_url();
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (99, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    let error = match relais_hub::start(config.clone()).await {
        Ok(_) => panic!("a hub started on a newer schema"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("schema is version 99, made by a newer Relais")
            && error.contains("this one knows up to version"),
        "{error}"
    );
    // Back to a schema it knows (a restored backup): it starts.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 99")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let again = relais_hub::start(config).await.expect("hub starts");
    again.shutdown().await.unwrap();
    drop(dir);
}
