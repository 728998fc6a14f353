//! The `sql` adapter: a table read by watermark, a status table written back.

use crate::config::SqlConfig;
use crate::lifecycle::path;
use relais_connector_sdk::{Adapter, Pivot, Received, State, Write};
use relais_hub::domain::CaseStatus;
use relais_proto::v1 as pb;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::OnceCell;

/// What differs between the three databases for the few statements the adapter makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Dialect::Postgres)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Dialect::MySql)
        } else if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            anyhow::bail!("sql.url: use postgres://, mysql:// (MariaDB too) or sqlite://")
        }
    }

    /// The `n`th placeholder (1-based).
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            _ => "?".into(),
        }
    }

    fn text(self, column: &str) -> String {
        match self {
            // A bounded length keeps it a VARCHAR, which the `Any` driver reads as text (a bare
            // CHAR cast of a TEXT column comes back as a blob type).
            Dialect::MySql => format!("CAST({column} AS CHAR(4000))"),
            _ => format!("CAST({column} AS TEXT)"),
        }
    }

    fn integer(self, column: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST({column} AS SIGNED)"),
            Dialect::Postgres => format!("CAST({column} AS BIGINT)"),
            Dialect::Sqlite => format!("CAST({column} AS INTEGER)"),
        }
    }
}

/// A column name as written in the profile: letters, digits and `_` only (it goes into SQL).
fn identifier(name: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
        "`{name}` is not a plain SQL identifier"
    );
    Ok(name)
}

pub struct SqlAdapter {
    config: SqlConfig,
    dialect: Dialect,
    pool: OnceCell<AnyPool>,
    /// The mapped columns, in the order of the SELECT.
    columns: Vec<(&'static str, String)>,
    /// The columns the flags read, after them in the SELECT.
    flag_columns: Vec<String>,
}

impl SqlAdapter {
    pub fn new(config: SqlConfig) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(&config.url)?;
        identifier(&config.table)?;
        identifier(&config.status_table)?;
        identifier(&config.watermark_column)?;
        anyhow::ensure!(
            matches!(config.watermark_type.as_str(), "integer" | "text"),
            "sql.watermark_type is `integer` or `text`"
        );
        let c = &config.columns;
        let mut columns = vec![("local_id", identifier(&c.local_id)?.to_string())];
        for (key, col) in [
            ("family_name", &c.family_name),
            ("given_name", &c.given_name),
            ("birth_date", &c.birth_date),
            ("birth_place", &c.birth_place),
            ("case_ref", &c.case_ref),
            ("procedure", &c.procedure),
            ("theme", &c.theme),
            ("status", &c.status),
            ("missing_documents", &c.missing_documents),
        ] {
            if let Some(col) = col {
                columns.push((key, identifier(col)?.to_string()));
            }
        }
        let mut flag_columns: Vec<String> = Vec::new();
        for f in &config.flags {
            f.check()
                .map_err(|e| anyhow::anyhow!("[[sql.flags]]: {e}"))?;
            for col in f.columns() {
                identifier(col)?;
                if !flag_columns.contains(col) {
                    flag_columns.push(col.clone());
                }
            }
        }
        Ok(Self {
            config,
            dialect,
            pool: OnceCell::new(),
            columns,
            flag_columns,
        })
    }

    /// The pool, connected at first use (the partner's database may come up after the
    /// connector), with the status table created when missing.
    async fn pool(&self) -> anyhow::Result<&AnyPool> {
        self.pool
            .get_or_try_init(|| async {
                let pool = AnyPoolOptions::new()
                    .max_connections(2)
                    .connect(&self.config.url)
                    .await?;
                sqlx::query(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (item VARCHAR(200) PRIMARY KEY, local_ids TEXT NOT NULL, kind TEXT NOT NULL, reference TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL)",
                    self.config.status_table
                ))
                .execute(&pool)
                .await?;
                // Columns a table made by an earlier version lacks: asked first, added only
                // when missing; a connector that may not add them says so and stops (its
                // writes of statuses would all fail).
                for column in ["qualification", "due_on", "priority_rank", "priority_reason"] {
                    let there = sqlx::query(&format!(
                        "SELECT {column} FROM {} WHERE 1 = 0",
                        self.config.status_table
                    ))
                    .fetch_all(&pool)
                    .await
                    .is_ok();
                    if there {
                        continue;
                    }
                    sqlx::query(&format!(
                        "ALTER TABLE {} ADD COLUMN {column} TEXT",
                        self.config.status_table
                    ))
                    .execute(&pool)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "the status table {table} lacks the column `{column}` and the connector may not add it ({e}): run `ALTER TABLE {table} ADD COLUMN {column} TEXT` as its owner",
                            table = self.config.status_table
                        )
                    })?;
                }
                anyhow::Ok(pool)
            })
            .await
    }

    fn source(&self) -> String {
        format!("sql:{}", self.config.table)
    }

    /// The writes of one row, and the case status it brings, or why the row is skipped.
    async fn row_writes(
        &self,
        row: &std::collections::HashMap<&'static str, String>,
        flag_cells: &std::collections::HashMap<&str, String>,
        state: &State,
        planned: &std::collections::HashMap<String, String>,
    ) -> Result<(Vec<Write>, Option<(String, String)>), String> {
        let get = |key: &str| row.get(key).cloned().unwrap_or_default();
        let local_id = get("local_id");
        if local_id.is_empty() {
            return Err("empty local id".into());
        }
        let (family, given, born, place) = (
            get("family_name"),
            get("given_name"),
            get("birth_date"),
            get("birth_place"),
        );
        let pivot = (!family.is_empty() && !born.is_empty()).then(|| Pivot {
            family_name: family,
            first_given_name: given,
            birth_date: born.chars().take(10).collect(),
            birth_place_cog: place,
        });
        let mut writes = vec![Write::Link {
            local_id: local_id.clone(),
            pivot,
        }];
        for f in &self.config.flags {
            let cell = |col: &str| flag_cells.get(col).cloned().unwrap_or_default();
            let day = |d: &str| {
                let d: String = d.chars().take(10).collect();
                let ok = d.len() == 10
                    && d.bytes().enumerate().all(|(i, b)| match i {
                        4 | 7 => b == b'-',
                        _ => b.is_ascii_digit(),
                    });
                if ok {
                    Ok(d)
                } else {
                    Err(format!("`{d}` is not a date YYYY-MM-DD"))
                }
            };
            if let Some(write) = f.write(&local_id, cell, day)? {
                writes.push(write);
            }
        }
        let case_ref = get("case_ref");
        if case_ref.is_empty() {
            return Ok((writes, None));
        }
        let missing: Vec<String> = get("missing_documents")
            .split('|')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
        let known = match planned.get(&case_ref) {
            Some(s) => Some(s.clone()),
            None => state
                .source_status(&case_ref)
                .await
                .map_err(|e| e.to_string())?,
        };
        let from = match &known {
            Some(s) => {
                CaseStatus::parse(s).ok_or_else(|| format!("unknown stored status `{s}`"))?
            }
            None => {
                let procedure = get("procedure");
                if procedure.is_empty() {
                    return Err(format!("case `{case_ref}` without a procedure"));
                }
                writes.push(Write::OpenCase {
                    case_ref: case_ref.clone(),
                    local_id: local_id.clone(),
                    procedure,
                    theme: get("theme"),
                    missing_documents: missing.clone(),
                });
                CaseStatus::Draft
            }
        };
        let wanted = get("status");
        let to = if wanted.is_empty() {
            from
        } else {
            CaseStatus::parse(&wanted).ok_or_else(|| format!("`{wanted}` is not a case status"))?
        };
        let steps = path(from, to)
            .ok_or_else(|| format!("case `{case_ref}` cannot go from `{from}` to `{to}`"))?;
        let last = steps.len();
        for (i, step) in steps.into_iter().enumerate() {
            writes.push(Write::MoveCase {
                case_ref: case_ref.clone(),
                to: step.as_str().to_string(),
                reason: String::new(),
                missing_documents: (i + 1 == last && step == CaseStatus::WaitingDocuments)
                    .then(|| missing.clone()),
            });
        }
        Ok((writes, Some((case_ref, to.as_str().to_string()))))
    }

    /// Rewrites an item's row of the status table: local ids, kind, reference, state,
    /// detail, how a flag is known, and its day (a flag's review day, a case's due date, a
    /// referral's reply deadline).
    async fn upsert_status(&self, item: &str, values: [&str; 7]) -> anyhow::Result<()> {
        let pool = self.pool().await?;
        let d = self.dialect;
        let mut tx = pool.begin().await?;
        // The item's place in the work queue stays until the next reading of the queue.
        let kept: Option<AnyRow> = sqlx::query(&format!(
            "SELECT {}, {} FROM {} WHERE item = {}",
            d.text("priority_rank"),
            d.text("priority_reason"),
            self.config.status_table,
            d.param(1)
        ))
        .bind(item)
        .fetch_optional(&mut *tx)
        .await?;
        let (rank, reason) = kept.map_or((String::new(), String::new()), |r| {
            (text(&r, 0), text(&r, 1))
        });
        sqlx::query(&format!(
            "DELETE FROM {} WHERE item = {}",
            self.config.status_table,
            d.param(1)
        ))
        .bind(item)
        .execute(&mut *tx)
        .await?;
        let params: Vec<String> = (1..=10).map(|n| d.param(n)).collect();
        let sql = format!(
            "INSERT INTO {} (item, local_ids, kind, reference, state, detail, qualification, due_on, priority_rank, priority_reason) VALUES ({})",
            self.config.status_table,
            params.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(item);
        for v in values {
            query = query.bind(v);
        }
        query.bind(rank).bind(reason).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the work queue's rank and reason beside each open case's and awaiting
    /// referral's status, in one transaction; the others have none (empty). Only the rows
    /// whose rank or reason changes are written.
    async fn write_priorities(
        &self,
        queue: &[relais_connector_sdk::Priority],
    ) -> anyhow::Result<()> {
        let pool = self.pool().await?;
        let d = self.dialect;
        let table = &self.config.status_table;
        let wanted: std::collections::HashMap<&str, (String, &str)> = queue
            .iter()
            .map(|p| (p.key.as_str(), (p.rank.to_string(), p.explanation.as_str())))
            .collect();
        let mut tx = pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {}, {}, {} FROM {table} WHERE item LIKE 'case:%' OR item LIKE 'referral:%'",
            d.text("item"),
            d.text("priority_rank"),
            d.text("priority_reason"),
        ))
        .fetch_all(&mut *tx)
        .await?;
        let sql = format!(
            "UPDATE {table} SET priority_rank = {}, priority_reason = {} WHERE item = {}",
            d.param(1),
            d.param(2),
            d.param(3)
        );
        for row in rows {
            let (item, rank, reason) = (text(&row, 0), text(&row, 1), text(&row, 2));
            let (want_rank, want_reason) = wanted
                .get(item.as_str())
                .map_or((String::new(), ""), |(r, why)| (r.clone(), *why));
            if rank == want_rank && reason == want_reason {
                continue;
            }
            sqlx::query(&sql)
                .bind(want_rank)
                .bind(want_reason)
                .bind(&item)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn text(row: &AnyRow, i: usize) -> String {
    row.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[async_trait::async_trait]
impl Adapter for SqlAdapter {
    fn name(&self) -> &'static str {
        "sql"
    }

    async fn poll(&self, state: &State) -> anyhow::Result<u64> {
        let pool = self.pool().await?;
        let d = self.dialect;
        let source = self.source();
        let integer = self.config.watermark_type == "integer";
        let mark = state.watermark(&source).await?;
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|(_, c)| c)
            .chain(&self.flag_columns)
            .map(|c| d.text(c))
            .collect();
        let mark_at = select.len();
        let watermark = if integer {
            d.integer(&self.config.watermark_column)
        } else {
            d.text(&self.config.watermark_column)
        };
        let sql = format!(
            "SELECT {}, {} AS relais_watermark FROM {} WHERE {} > {} ORDER BY {} LIMIT {}",
            select.join(", "),
            d.text(&self.config.watermark_column),
            self.config.table,
            watermark,
            d.param(1),
            watermark,
            self.config.batch
        );
        let query = sqlx::query(&sql);
        let query = if integer {
            query.bind(mark.as_deref().unwrap_or("0").parse::<i64>().unwrap_or(0))
        } else {
            query.bind(mark.clone().unwrap_or_default())
        };
        let rows = query.fetch_all(pool).await?;
        let Some(last) = rows.last() else {
            return Ok(0);
        };
        let new_mark = text(last, mark_at);
        let mut writes = Vec::new();
        let mut statuses: std::collections::HashMap<String, String> =
            std::collections::HashMap::new();
        for row in &rows {
            let values: std::collections::HashMap<&'static str, String> = self
                .columns
                .iter()
                .enumerate()
                .map(|(i, (key, _))| (*key, text(row, i)))
                .collect();
            let flag_cells: std::collections::HashMap<&str, String> = self
                .flag_columns
                .iter()
                .enumerate()
                .map(|(i, col)| (col.as_str(), text(row, self.columns.len() + i)))
                .collect();
            let local_id = values.get("local_id").cloned().unwrap_or_default();
            match self
                .row_writes(&values, &flag_cells, state, &statuses)
                .await
            {
                Ok((w, status)) => {
                    writes.extend(w);
                    if let Some((case_ref, s)) = status {
                        statuses.insert(case_ref, s);
                    }
                }
                Err(reason) => {
                    tracing::warn!(table = %self.config.table, row = %local_id, watermark = %text(row, mark_at), %reason, "row skipped")
                }
            }
        }
        let statuses: Vec<(String, String)> = statuses.into_iter().collect();
        state
            .enqueue_from_source(&writes, &source, &new_mark, &statuses)
            .await?;
        tracing::info!(table = %self.config.table, rows = rows.len(), writes = writes.len(), "rows read");
        Ok(writes.len() as u64)
    }

    async fn apply(&self, event: &Received, local_ids: &[String]) -> anyhow::Result<()> {
        let ids = local_ids.join(" ");
        match event {
            Received::Flag(f) => {
                let state = if f.status == pb::FlagStatus::Retracted as i32 {
                    "retracted"
                } else if f.to_review {
                    "to_review"
                } else {
                    "active"
                };
                let q = f.qualification.clone().unwrap_or_default();
                let (how, _) = relais_connector_sdk::write::qualification_words(Some(&q));
                let how = if q.evidence.is_empty() {
                    how.to_string()
                } else {
                    format!("{how}: {}", q.evidence)
                };
                self.upsert_status(
                    &format!("flag:{}", f.id),
                    [&ids, "flag", &f.code, state, &f.label, &how, &f.review_on],
                )
                .await
            }
            Received::Case(c) => {
                let status = pb::CaseStatus::try_from(c.status)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("CASE_STATUS_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                self.upsert_status(
                    &format!("case:{}", c.id),
                    [
                        &ids,
                        "case",
                        &c.procedure,
                        &status,
                        &c.missing_documents.join("|"),
                        "",
                        &c.due_date,
                    ],
                )
                .await
            }
            Received::Referral(r) => {
                let state = pb::ReferralState::try_from(r.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("REFERRAL_STATE_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                let state = if r.overdue {
                    format!("{state}_overdue")
                } else {
                    state
                };
                let detail = if r.expiry_reason.is_empty() {
                    &r.answer
                } else {
                    &r.expiry_reason
                };
                self.upsert_status(
                    &format!("referral:{}", r.id),
                    [
                        &ids,
                        "referral",
                        &r.case_id,
                        &state,
                        detail,
                        "",
                        &r.due_date,
                    ],
                )
                .await
            }
        }
    }

    async fn prioritise(&self, queue: &[relais_connector_sdk::Priority]) -> anyhow::Result<()> {
        self.write_priorities(queue).await
    }

    async fn redact(&self, r: &pb::Redaction, local_ids: &[String]) -> anyhow::Result<()> {
        let pool = self.pool().await?;
        // The reasons beside the person's other rows may name what was redacted: blanked
        // until the next reading of the queue.
        if !local_ids.is_empty() {
            sqlx::query(&format!(
                "UPDATE {} SET priority_rank = '', priority_reason = '' WHERE local_ids = {}",
                self.config.status_table,
                self.dialect.param(1)
            ))
            .bind(local_ids.join(" "))
            .execute(pool)
            .await?;
        }
        let items = r
            .flag_ids
            .iter()
            .map(|id| format!("flag:{id}"))
            .chain(r.case_ids.iter().map(|id| format!("case:{id}")))
            .chain(r.referral_ids.iter().map(|id| format!("referral:{id}")));
        for item in items {
            sqlx::query(&format!(
                "DELETE FROM {} WHERE item = {}",
                self.config.status_table,
                self.dialect.param(1)
            ))
            .bind(item)
            .execute(pool)
            .await?;
        }
        Ok(())
    }
}
