//! The embedded SQLite backend: one file in the data directory, WAL, `synchronous = FULL` so
//! that an acknowledged write survives a crash or a power cut. The committer owns the one
//! write connection (SQLite has one writer at a time, and a single writer never meets
//! `SQLITE_BUSY` between its own transactions); reads use a read-only pool beside it.

use super::sql::sql_store;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

sql_store!(sqlx::Sqlite, sqlx::SqliteConnection);

/// SQLite needs nothing more: the single write connection serialises write transactions.
async fn begin_batch(_conn: &mut Conn) -> Result<()> {
    Ok(())
}

/// Subscribers in this process are woken by the committer after the commit.
async fn after_writes(_conn: &mut Conn, _position: i64, _partners: &[String]) -> Result<()> {
    Ok(())
}

/// One process: the writer's own clear of the principal cache is enough.
async fn principals_changed(_conn: &mut Conn) -> Result<()> {
    Ok(())
}

async fn principals_current(_pool: &Pool<sqlx::Sqlite>, _cache: &PrincipalCache) -> Result<()> {
    Ok(())
}

/// Migrations compiled into the binary, applied on start.
#[derive(Debug)]
struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        "consent rules audit",
        include_str!("../../migrations/sqlite/0002_consent_rules_audit.sql"),
    ),
    (
        3,
        "privacy",
        include_str!("../../migrations/sqlite/0003_privacy.sql"),
    ),
    (
        4,
        "feed audience",
        include_str!("../../migrations/sqlite/0004_feed_audience.sql"),
    ),
    (
        5,
        "referral deadlines",
        include_str!("../../migrations/sqlite/0005_referral_deadlines.sql"),
    ),
    (
        6,
        "priorities and residence",
        include_str!("../../migrations/sqlite/0006_priorities_residence.sql"),
    ),
    (
        7,
        "mandate holders",
        include_str!("../../migrations/sqlite/0007_mandate_holders.sql"),
    ),
    (
        8,
        "console accounts",
        include_str!("../../migrations/sqlite/0008_console_accounts.sql"),
    ),
];

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, std::result::Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        (*description).into(),
                        MigrationType::Simple,
                        (*sql).into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[tracing::instrument(skip_all, fields(url = %url))]
pub async fn open(url: &str, batching: Batching) -> anyhow::Result<SqlStore> {
    use anyhow::Context;
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("parsing database url `{url}`"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .with_context(|| format!("opening {url}"))?;
    // Personal data: the database and its journal files are the hub's alone, whatever the
    // umask it was started with.
    {
        use std::os::unix::fs::PermissionsExt;
        let db = options.get_filename().to_path_buf();
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.clone().into_os_string();
            path.push(suffix);
            let path = std::path::PathBuf::from(path);
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", path.display()))?;
            }
        }
    }
    // A database a newer version upgraded is refused before anything is written to it.
    let applied: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_optional(&writer)
            .await
            .ok()
            .flatten();
    super::check_schema(
        applied.and_then(|(v,)| v),
        MIGRATIONS.last().map_or(0, |(v, _, _)| *v),
    )?;
    Migrator::new(Embedded)
        .await
        .context("loading migrations")?
        .run(&writer)
        .await
        .context("applying migrations")?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone().read_only(true))
        .await
        .with_context(|| format!("opening {url} for reading"))?;
    // The health check's own connection: it never waits behind calls.
    let probe = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(750))
        .connect_with(options.read_only(true))
        .await
        .with_context(|| format!("opening {url} for the health check"))?;
    let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
        .fetch_one(&reader)
        .await?;
    Ok(SqlStore::start(
        reader,
        writer,
        probe,
        head as u64,
        batching,
    ))
}
