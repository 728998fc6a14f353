//! The PostgreSQL backend, for several hub replicas on one database.
//!
//! The change feed must never skip an event: positions come from a sequence, handed out
//! before commit, so a later position could become visible before an earlier one and a
//! `position > cursor` reader would pass the earlier one for ever. Every write transaction
//! therefore first takes one transaction-scoped advisory lock (`begin_batch`): write
//! transactions commit one after the other, across replicas, so positions become visible in
//! order. Group commit keeps this cheap: one lock, one transaction, one fsync for all the
//! writes queued at that moment. The same order keeps the audit hash chain linear.
//!
//! Subscribers are woken without polling: each write transaction that appended changes sends
//! `NOTIFY relais_feed` with its last position, delivered at commit to every replica.

use super::sql::sql_store;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgListener, PgPoolOptions};
use std::time::Duration;

sql_store!(sqlx::Postgres, sqlx::PgConnection);

/// The advisory lock that orders write transactions ("RELAIS" in ASCII).
const WRITE_LOCK: i64 = 0x0000_5245_4c41_4953;
const CHANNEL: &str = "relais_feed";
/// A notification's payload must stay under 8,000 bytes.
const NOTIFY_ROOM: usize = 7_000;

async fn begin_batch(conn: &mut Conn) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Tells every replica the new head and the partners the changes concern (`<position>
/// <partner>,<partner>…`); past the size a notification may carry, the position alone (the
/// changes may then concern anyone).
async fn after_writes(conn: &mut Conn, position: i64, partners: &[String]) -> Result<()> {
    let mut payload = position.to_string();
    let named = partners.iter().map(|p| p.len() + 1).sum::<usize>();
    if named < NOTIFY_ROOM {
        payload.push(' ');
        payload.push_str(&partners.join(","));
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A partner's status or certificates change: every replica clears its principal cache at
/// its next lookup after this commits.
async fn principals_changed(conn: &mut Conn) -> Result<()> {
    sqlx::query("UPDATE principal_epoch SET value = value + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Clears this replica's principal cache if a partner changed on any replica since it was
/// filled.
async fn principals_current(pool: &Pool<sqlx::Postgres>, cache: &PrincipalCache) -> Result<()> {
    let (epoch,): (i64,) = sqlx::query_as("SELECT value FROM principal_epoch WHERE id = 1")
        .fetch_one(pool)
        .await?;
    cache.observe(epoch as u64);
    Ok(())
}

#[derive(Debug)]
struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "consent rules audit",
        include_str!("../../migrations/postgres/0002_consent_rules_audit.sql"),
    ),
    (
        3,
        "privacy",
        include_str!("../../migrations/postgres/0003_privacy.sql"),
    ),
    (
        4,
        "feed audience",
        include_str!("../../migrations/postgres/0004_feed_audience.sql"),
    ),
    (
        5,
        "referral deadlines",
        include_str!("../../migrations/postgres/0005_referral_deadlines.sql"),
    ),
    (
        6,
        "priorities and residence",
        include_str!("../../migrations/postgres/0006_priorities_residence.sql"),
    ),
    (
        7,
        "mandate holders",
        include_str!("../../migrations/postgres/0007_mandate_holders.sql"),
    ),
    (
        8,
        "console accounts",
        include_str!("../../migrations/postgres/0008_console_accounts.sql"),
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

/// Opens the pool, applies the migrations (under sqlx's migration lock, so replicas starting
/// together do not race) and starts following the other replicas' commits.
#[tracing::instrument(skip_all)]
pub async fn open(url: &str, batching: Batching, pool_size: u32) -> anyhow::Result<SqlStore> {
    use anyhow::Context;
    let pool = PgPoolOptions::new()
        .max_connections(pool_size.max(2))
        // Short: while PostgreSQL is down a call fails within a second instead of hanging
        // (the health check marks the replica NOT_SERVING meanwhile).
        .acquire_timeout(Duration::from_millis(750))
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    // A database a newer version upgraded is refused before anything is written to it.
    let applied: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_optional(&pool)
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
        .run(&pool)
        .await
        .context("applying migrations")?;
    let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
        .fetch_one(&pool)
        .await?;
    // The health check's own connection: it never waits behind calls.
    let probe = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(750))
        .connect_lazy(url)
        .context("the health check's connection to PostgreSQL")?;
    let store = SqlStore::start(pool.clone(), pool.clone(), probe, head as u64, batching);
    tokio::spawn(follow(
        pool,
        store.head.clone(),
        store.audience.clone(),
        store.epoch.clone(),
    ));
    Ok(store)
}

/// Wakes this replica's subscribers when any replica commits changes. After a lost
/// connection (PostgreSQL restarting), notifications sent meanwhile are lost: the head is
/// read again once the listener is back.
async fn follow(
    pool: Pool<sqlx::Postgres>,
    head: watch::Sender<u64>,
    audience: std::sync::Arc<Audience>,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            let (position,): (i64,) =
                sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
                    .fetch_one(&pool)
                    .await?;
            // Whom the changes committed meanwhile concern is not known, nor what they
            // changed.
            audience.everyone(position as u64);
            epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            SqlStore::advance(&head, position as u64);
            loop {
                // `recv` would reconnect silently after a lost connection; the notifications
                // sent meanwhile are lost, so the audience and the head are read again then.
                let Some(n) = listener.try_recv().await? else {
                    let (position,): (i64,) =
                        sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
                            .fetch_one(&pool)
                            .await?;
                    audience.everyone(position as u64);
                    epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    SqlStore::advance(&head, position as u64);
                    continue;
                };
                let (p, partners) = match n.payload().split_once(' ') {
                    Some((p, partners)) => (p, Some(partners)),
                    None => (n.payload(), None),
                };
                // A commit on any replica may have narrowed access: decisions are not
                // shared across it (this replica's own commits included, to keep it simple).
                epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                if let Ok(p) = p.parse::<u64>() {
                    match partners {
                        Some(partners) => {
                            audience.touch(partners.split(',').filter(|s| !s.is_empty()), p)
                        }
                        None => audience.everyone(p),
                    }
                    SqlStore::advance(&head, p);
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        if let Err(e) = listening.await {
            tracing::warn!(error = %e, "feed notifications lost; reconnecting");
        }
        if head.is_closed() && head.receiver_count() == 0 && pool.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
