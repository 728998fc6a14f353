//! The connector's local state, in SQLite in its state directory (WAL, `synchronous = FULL`:
//! what the connector recorded survives a crash or the bus's battery running out).

use crate::write::Write;
use anyhow::Context;
use futures::future::BoxFuture;
use sqlx::SqlitePool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(vec![
                Migration::new(
                    1,
                    "state".into(),
                    MigrationType::Simple,
                    include_str!("../migrations/0001_state.sql").into(),
                    false,
                ),
                Migration::new(
                    2,
                    "outbound".into(),
                    MigrationType::Simple,
                    include_str!("../migrations/0002_outbound.sql").into(),
                    false,
                ),
                Migration::new(
                    3,
                    "sources".into(),
                    MigrationType::Simple,
                    include_str!("../migrations/0003_sources.sql").into(),
                    false,
                ),
                Migration::new(
                    4,
                    "rows".into(),
                    MigrationType::Simple,
                    include_str!("../migrations/0004_rows.sql").into(),
                    false,
                ),
            ])
        })
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A write waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: i64,
    pub request_id: String,
    pub write: Write,
    pub source: String,
    pub attempts: i64,
    /// The line of the source file it came from, when it came from a file.
    pub line: Option<i64>,
}

/// A write the hub refused, with its reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub seq: i64,
    pub write: Write,
    pub source: String,
    pub code: String,
    pub reason: String,
    pub failed_at: i64,
    /// The line of the source file it came from, when it came from a file.
    pub line: Option<i64>,
    /// When and why a person set it aside (`dlq discard`).
    pub discarded: Option<(i64, String)>,
}

/// The code of a dead letter that was not sent: the person or case it is about was refused.
pub const DEPENDENT: &str = "Dependent";

/// An import in progress: its writes go in the outbox all together when it is committed, or
/// not at all (a file rejected whole half-way leaves nothing behind). They are staged in small
/// transactions meanwhile, so the outbox and the feed go on during a long import.
pub struct Import {
    state: State,
    source: String,
    id: String,
    buffer: Vec<(u64, String)>,
    writes: u64,
}

/// Writes staged per transaction.
const STAGE: usize = 4096;

impl Import {
    /// Adds a write read at `line` of the source.
    pub async fn push(&mut self, line: u64, w: &Write) -> anyhow::Result<()> {
        self.buffer.push((line, serde_json::to_string(w)?));
        self.writes += 1;
        if self.buffer.len() >= STAGE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut tx = self.state.db.begin().await?;
        for (line, write) in self.buffer.drain(..) {
            sqlx::query("INSERT INTO staged (import, write, line) VALUES (?, ?, ?)")
                .bind(&self.id)
                .bind(write)
                .bind(line as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts the writes in the outbox, in order, each with its own request id, and marks the
    /// source imported — in one transaction. Returns how many writes; `None` if the source
    /// was imported meanwhile.
    pub async fn commit(mut self) -> anyhow::Result<Option<u64>> {
        self.flush().await?;
        let mut tx = self.state.db.begin().await?;
        let done: Option<(String,)> =
            sqlx::query_as("SELECT source FROM imported WHERE source = ?")
                .bind(&self.source)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_none() {
            sqlx::query("INSERT INTO imported (source, at) VALUES (?, ?)")
                .bind(&self.source)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            // One statement, in order: memory does not grow with the file, and the move takes
            // seconds for a file of hundreds of thousands of rows. Each write gets a request id
            // of its own (128 random bits), which the hub uses to recognise a retry.
            sqlx::query(
                "INSERT INTO outbox (request_id, write, source, created_at, line) \
                 SELECT lower(hex(randomblob(16))), write, ?, ?, line FROM staged WHERE import = ? ORDER BY seq",
            )
            .bind(&self.source)
            .bind(now_micros())
            .bind(&self.id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM staged WHERE import = ?")
            .bind(&self.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.is_none().then_some(self.writes))
    }

    /// Drops what was staged: the source is not imported.
    pub async fn abort(self) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM staged WHERE import = ?")
            .bind(&self.id)
            .execute(&self.state.db)
            .await?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct State {
    db: SqlitePool,
}

impl State {
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        crate::private::create_private_dir(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        // The database holds pivot traits (outbox, dead letters) and local copies of what the
        // hub shared. SQLite would create it with the umask's mode (0644, often), and it gives
        // its `-wal` and `-shm` files the mode of the database itself: a database created 0600
        // here first keeps all three private. Files an earlier version left wider are
        // tightened before SQLite opens them.
        let path = dir.join("connector.db");
        crate::private::ensure_private_file(&path)
            .with_context(|| format!("protecting {}", path.display()))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            let side = std::path::PathBuf::from(side);
            crate::private::restrict(&side)
                .with_context(|| format!("protecting {}", side.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // One connection: the connector's own writes never contend with each other.
        let db = SqlitePoolOptions::new()
            .max_connections(1)
            // Waiting behind a long import's staging or a feed batch is expected, not a warning
            // nor an error.
            .acquire_slow_threshold(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(300))
            .connect_with(options)
            .await
            .context("opening the connector state")?;
        Migrator::new(Embedded)
            .await?
            .run(&db)
            .await
            .context("state migrations")?;
        // Imports a crash interrupted: their files were not marked imported, and are read
        // again.
        sqlx::query("DELETE FROM staged").execute(&db).await?;
        Ok(Self { db })
    }

    /// The position of the last feed event applied (0 before any).
    pub async fn cursor(&self) -> anyhow::Result<u64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT position FROM cursor WHERE id = 1")
            .fetch_optional(&self.db)
            .await?;
        Ok(row.map_or(0, |(p,)| p as u64))
    }

    /// Records that the event at `position` was applied, with the local copy of its item (or
    /// the deletion of the redacted items), in one transaction.
    pub async fn applied(
        &self,
        position: u64,
        copy: Option<(&str, &str, &str)>,
        deleted: &[String],
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        if let Some((item, person, doc)) = copy {
            sqlx::query(
                "INSERT INTO copies (item, person_id, position, doc) VALUES (?, ?, ?, ?)
                 ON CONFLICT (item) DO UPDATE SET position = excluded.position, doc = excluded.doc",
            )
            .bind(item)
            .bind(person)
            .bind(position as i64)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
        }
        for item in deleted {
            sqlx::query("DELETE FROM copies WHERE item = ?")
                .bind(item)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO cursor (id, position) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET position = excluded.position",
        )
        .bind(position as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The local copy of an item, if the connector holds one.
    pub async fn copy(&self, item: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM copies WHERE item = ?")
            .bind(item)
            .fetch_optional(&self.db)
            .await?;
        Ok(row.map(|(d,)| d))
    }

    pub async fn copies(&self) -> anyhow::Result<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM copies")
            .fetch_one(&self.db)
            .await?;
        Ok(n as u64)
    }

    /// Puts writes in the outbox, in order, each with its own request id. With `source`
    /// already imported, does nothing and returns false: a file is imported once, even if the
    /// connector stopped between the import and moving the file aside.
    pub async fn enqueue(
        &self,
        writes: &[Write],
        source: &str,
        once: bool,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.begin().await?;
        if once {
            let done: Option<(String,)> =
                sqlx::query_as("SELECT source FROM imported WHERE source = ?")
                    .bind(source)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                return Ok(false);
            }
            sqlx::query("INSERT INTO imported (source, at) VALUES (?, ?)")
                .bind(source)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
        }
        for w in writes {
            sqlx::query(
                "INSERT INTO outbox (request_id, write, source, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(serde_json::to_string(w)?)
            .bind(source)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Starts importing `source` (a file, by name and content): `None` when it was imported
    /// already. Nothing is in the outbox until [`Import::commit`].
    pub async fn begin_import(&self, source: &str) -> anyhow::Result<Option<Import>> {
        let done: Option<(String,)> =
            sqlx::query_as("SELECT source FROM imported WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.db)
                .await?;
        if done.is_some() {
            return Ok(None);
        }
        Ok(Some(Import {
            state: self.clone(),
            source: source.to_string(),
            id: uuid::Uuid::now_v7().to_string(),
            buffer: Vec::new(),
            writes: 0,
        }))
    }

    /// Puts writes in the outbox together with the new watermark of `source` and the statuses
    /// they bring the partner's cases to — all or nothing, so a row is read into writes once.
    pub async fn enqueue_from_source(
        &self,
        writes: &[Write],
        source: &str,
        watermark: &str,
        statuses: &[(String, String)],
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        for w in writes {
            sqlx::query(
                "INSERT INTO outbox (request_id, write, source, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(serde_json::to_string(w)?)
            .bind(source)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO watermarks (source, value) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET value = excluded.value",
        )
        .bind(source)
        .bind(watermark)
        .execute(&mut *tx)
        .await?;
        for (case_ref, status) in statuses {
            sqlx::query(
                "INSERT INTO source_statuses (case_ref, status) VALUES (?, ?) ON CONFLICT (case_ref) DO UPDATE SET status = excluded.status",
            )
            .bind(case_ref)
            .bind(status)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn watermark(&self, source: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT value FROM watermarks WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    /// The last status queued for the partner's case `case_ref`, if it was queued here.
    pub async fn source_status(&self, case_ref: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT status FROM source_statuses WHERE case_ref = ?")
                .bind(case_ref)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    /// The oldest writes waiting, in order.
    pub async fn pending(&self, limit: u32) -> anyhow::Result<Vec<Pending>> {
        let rows: Vec<(i64, String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT seq, request_id, write, source, attempts, line FROM outbox ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(|(seq, request_id, write, source, attempts, line)| {
                Ok(Pending {
                    seq,
                    request_id,
                    write: serde_json::from_str(&write)?,
                    source,
                    attempts,
                    line,
                })
            })
            .collect()
    }

    pub async fn sent(&self, seq: i64) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM outbox WHERE seq = ?")
            .bind(seq)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    pub async fn attempt_failed(&self, seq: i64, error: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?")
            .bind(error)
            .bind(seq)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Moves a write the hub refused to the dead-letter store, with the hub's reason.
    pub async fn dead_letter(&self, p: &Pending, code: &str, reason: &str) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO dead_letters (seq, request_id, write, source, code, reason, failed_at, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.seq)
        .bind(&p.request_id)
        .bind(serde_json::to_string(&p.write)?)
        .bind(&p.source)
        .bind(code)
        .bind(reason)
        .bind(now_micros())
        .bind(p.line)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM outbox WHERE seq = ?")
            .bind(p.seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The dead letters waiting for a person's decision (replay or discard), in order.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.letters("discarded_at IS NULL").await
    }

    /// The dead letters a person discarded, with their reasons.
    pub async fn discarded(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.letters("discarded_at IS NOT NULL").await
    }

    /// The dead letters not yet reported to the adapter (its errors file).
    pub async fn unreported(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.letters("reported = 0 AND discarded_at IS NULL").await
    }

    /// Marks dead letters reported to the adapter.
    pub async fn reported(&self, seqs: &[i64]) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        for seq in seqs {
            sqlx::query("UPDATE dead_letters SET reported = 1 WHERE seq = ?")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn letters(&self, filter: &'static str) -> anyhow::Result<Vec<DeadLetter>> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT seq, write, source, code, reason, failed_at, line, discarded_at, discard_reason \
             FROM dead_letters WHERE {filter} ORDER BY seq"
        ))
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(
                |(seq, write, source, code, reason, failed_at, line, discarded_at, why)| {
                    Ok(DeadLetter {
                        seq,
                        write: serde_json::from_str(&write)?,
                        source,
                        code,
                        reason,
                        failed_at,
                        line,
                        discarded: discarded_at.map(|at| (at, why.unwrap_or_default())),
                    })
                },
            )
            .collect()
    }

    /// Sets a dead letter aside for good, with a person's reason (kept, listed by
    /// `dlq list --discarded`); false when there is no such dead letter waiting.
    pub async fn discard(&self, seq: i64, reason: &str) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE dead_letters SET discarded_at = ?, discard_reason = ? WHERE seq = ? AND discarded_at IS NULL",
        )
        .bind(now_micros())
        .bind(reason)
        .bind(seq)
        .execute(&self.db)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts dead letters back at the end of the outbox (after the data was corrected at the
    /// hub, or the rules changed), with new request ids. Returns how many.
    pub async fn replay(&self, seq: Option<i64>) -> anyhow::Result<u64> {
        let mut tx = self.db.begin().await?;
        let rows: Vec<(i64, String, String, Option<i64>)> = match seq {
            Some(s) => {
                sqlx::query_as(
                    "SELECT seq, write, source, line FROM dead_letters WHERE seq = ? AND discarded_at IS NULL",
                )
                .bind(s)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT seq, write, source, line FROM dead_letters WHERE discarded_at IS NULL ORDER BY seq",
                )
                .fetch_all(&mut *tx)
                .await?
            }
        };
        for (seq, write, source, line) in &rows {
            sqlx::query(
                "INSERT INTO outbox (request_id, write, source, created_at, line) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(write)
            .bind(if source.ends_with(" (replayed)") {
                source.clone()
            } else {
                format!("{source} (replayed)")
            })
            .bind(now_micros())
            .bind(line)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM dead_letters WHERE seq = ?")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    pub async fn counts(&self) -> anyhow::Result<(u64, u64)> {
        let (outbox,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.db)
            .await?;
        let (dead,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM dead_letters WHERE discarded_at IS NULL")
                .fetch_one(&self.db)
                .await?;
        Ok((outbox as u64, dead as u64))
    }

    /// Records a delivery to the partner's system that failed every attempt.
    pub async fn outbound_failed(
        &self,
        target: &str,
        event: &str,
        reason: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO outbound_failures (target, event, reason, attempts, failed_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(target)
        .bind(event)
        .bind(reason)
        .bind(i64::from(attempts))
        .bind(now_micros())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Failed deliveries to the partner's system: (target, event, reason, attempts).
    pub async fn outbound_failures(&self) -> anyhow::Result<Vec<(String, String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT target, event, reason, attempts FROM outbound_failures ORDER BY seq",
        )
        .fetch_all(&self.db)
        .await?)
    }

    pub async fn case_ref(&self, case_ref: &str) -> anyhow::Result<Option<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT case_id, version FROM case_refs WHERE case_ref = ?")
                .bind(case_ref)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    pub async fn set_case_ref(
        &self,
        case_ref: &str,
        case_id: &str,
        version: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO case_refs (case_ref, case_id, version) VALUES (?, ?, ?)
             ON CONFLICT (case_ref) DO UPDATE SET case_id = excluded.case_id, version = excluded.version",
        )
        .bind(case_ref)
        .bind(case_id)
        .bind(version)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(n: u32) -> Write {
        Write::RaiseFlag {
            local_id: format!("L{n}"),
            code: "ISOLEMENT".into(),
            note: String::new(),
            qualification: String::new(),
            evidence: String::new(),
            review_on: String::new(),
        }
    }

    #[tokio::test]
    async fn the_outbox_keeps_order_across_restarts_and_imports_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).await.unwrap();
        assert!(
            state
                .enqueue(&[flag(1), flag(2)], "export-1.csv", true)
                .await
                .unwrap()
        );
        assert!(
            !state
                .enqueue(&[flag(1), flag(2)], "export-1.csv", true)
                .await
                .unwrap()
        );
        drop(state);
        let state = State::open(dir.path()).await.unwrap();
        let pending = state.pending(10).await.unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].write, flag(1));
        assert_ne!(pending[0].request_id, pending[1].request_id);
        state
            .dead_letter(&pending[0], "InvalidArgument", "code: unknown")
            .await
            .unwrap();
        assert_eq!(state.counts().await.unwrap(), (1, 1));
        assert_eq!(state.replay(None).await.unwrap(), 1);
        let again = state.pending(10).await.unwrap();
        assert_eq!(again.last().unwrap().write, flag(1), "replayed at the end");
    }

    /// The database names persons (pivot traits in the outbox and dead letters): it and its
    /// WAL files are readable by the connector's account only, in a directory of its own.
    #[tokio::test]
    async fn the_state_is_private_to_the_connector_s_account() {
        use std::os::unix::fs::PermissionsExt;
        fn mode(p: &Path) -> u32 {
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etat");
        let state = State::open(&dir).await.unwrap();
        assert!(
            state
                .enqueue(&[flag(1)], "export-1.csv", true)
                .await
                .unwrap()
        );
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("connector.db");
        assert_eq!(mode(&db), 0o600);
        for side in ["connector.db-wal", "connector.db-shm"] {
            let side = dir.join(side);
            if side.exists() {
                assert_eq!(mode(&side), 0o600, "{}", side.display());
            }
        }
        drop(state);

        // A database an earlier version left world-readable is tightened on the next start.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = State::open(&dir).await.unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(
            state.counts().await.unwrap(),
            (1, 0),
            "and its content kept"
        );
    }
}
