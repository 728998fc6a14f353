//! The embedded SQLite backend: one file in the data directory, WAL, `synchronous = FULL` so
//! that an acknowledged write survives a crash or a power cut. All writes go through one
//! connection (SQLite has one writer at a time; a single writer connection never meets
//! `SQLITE_BUSY` between its own transactions); reads use a separate read-only pool, which WAL
//! lets run beside the writer.

use super::{
    AlertPlan, CaseFilter, Direction, LinkOutcome, LinkResult, LinkTarget, Principal,
    ReferralFilter, Relation, RulesVersion, Store, Update, WriteMeta,
};
use crate::audit::{Anchor, AuditEntry, StoredEntry};
use crate::domain::case::Case;
use crate::domain::change::{ChangeKind, ChangeRecord, ChangeResource, Disclosure, Redaction};
use crate::domain::consent::{Consent, ConsentId, Mandate, MandateId, redactions};
use crate::domain::flag::Flag;
use crate::domain::ids::{AgentId, CaseId, FlagId, LocalId, PartnerId, PersonId, ReferralId};
use crate::domain::partner::{CertificateRecord, Partner, PartnerStatus};
use crate::domain::pivot::PivotKey;
use crate::domain::referral::Referral;
use crate::domain::{FlagStatus, Timestamp};
use crate::error::{Error, Result};
use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;

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
];

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
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

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    head: watch::Sender<u64>,
}

impl SqliteStore {
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn open(url: &str) -> anyhow::Result<Self> {
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
        Migrator::new(Embedded)
            .await
            .context("loading migrations")?
            .run(&writer)
            .await
            .context("applying migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening {url} for reading"))?;
        let (position,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
            .fetch_one(&reader)
            .await?;
        let (head, _) = watch::channel(position as u64);
        Ok(Self {
            writer,
            reader,
            head,
        })
    }

    fn committed(&self, position: Option<i64>) {
        if let Some(position) = position {
            let position = position as u64;
            self.head.send_if_modified(|head| {
                if position > *head {
                    *head = position;
                    true
                } else {
                    false
                }
            });
        }
    }
}

/// The first result of a write made with this request id, if any. A request id reused for a
/// different request is refused rather than silently answered with another write's result.
async fn replayed<T: DeserializeOwned>(
    conn: &mut SqliteConnection,
    meta: &WriteMeta,
) -> Result<Option<T>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT fingerprint, response FROM idempotency WHERE principal = ? AND request_id = ?",
    )
    .bind(&meta.principal)
    .bind(meta.request_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some((fingerprint, response)) if fingerprint == meta.fingerprint => {
            Ok(Some(serde_json::from_str(&response)?))
        }
        Some(_) => Err(Error::invalid(
            "request_id",
            "this request id was already used by the caller for a different request",
        )),
    }
}

/// Records the write's idempotency key with its result, and its audit entries.
async fn remember<T: Serialize>(
    conn: &mut SqliteConnection,
    meta: &WriteMeta,
    result: &T,
) -> Result<()> {
    append_audit(conn, &meta.audit).await?;
    sqlx::query(
        "INSERT INTO idempotency (principal, request_id, fingerprint, response, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&meta.principal)
    .bind(meta.request_id.as_str())
    .bind(&meta.fingerprint)
    .bind(serde_json::to_string(result)?)
    .bind(meta.at.micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends audit entries to the hash chain. The single writer connection serialises appends,
/// so each entry follows the one before it.
async fn append_audit(conn: &mut SqliteConnection, entries: &[AuditEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (mut seq, mut prev) = match last {
        Some((seq, hash)) => (seq as u64, hash),
        None => {
            let anchor: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                    .fetch_optional(&mut *conn)
                    .await?;
            anchor.map_or((0, crate::audit::GENESIS.to_string()), |(s, h)| {
                (s as u64, h)
            })
        }
    };
    for entry in entries {
        seq += 1;
        let doc = serde_json::to_string(entry)?;
        let hash = crate::audit::chain_hash(seq, &prev, &doc);
        sqlx::query(
            "INSERT INTO audit (seq, at, person_id, doc, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(seq as i64)
        .bind(entry.at.micros())
        .bind(entry.person.map(|p| p.to_string()))
        .bind(&doc)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
        prev = hash;
    }
    Ok(())
}

/// Appends the redaction events and forgets the redacted disclosures.
async fn apply_redactions(
    conn: &mut SqliteConnection,
    redactions: &[Redaction],
    meta: &WriteMeta,
) -> Result<Option<i64>> {
    let mut position = None;
    for r in redactions {
        for item in &r.items {
            sqlx::query("DELETE FROM disclosures WHERE partner_id = ? AND item = ?")
                .bind(r.partner.as_str())
                .bind(item.key())
                .execute(&mut *conn)
                .await?;
        }
        position = Some(
            append_change(
                conn,
                ChangeKind::Redacted,
                meta,
                ChangeResource::Redaction(r.clone()),
            )
            .await?,
        );
    }
    Ok(position)
}

/// What the partners received about a person, with each partner.
async fn received(
    conn: &mut SqliteConnection,
    person: PersonId,
) -> Result<Vec<(Partner, Disclosure)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.doc, p.doc FROM disclosures d JOIN partners p ON p.id = d.partner_id WHERE d.person_id = ?",
    )
    .bind(person.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(d, p)| Ok((serde_json::from_str(&p)?, serde_json::from_str(&d)?)))
        .collect()
}

async fn consents_in(conn: &mut SqliteConnection, person: PersonId) -> Result<Vec<Consent>> {
    let rows = sqlx::query_as("SELECT doc FROM consents WHERE person_id = ? ORDER BY id")
        .bind(person.to_string())
        .fetch_all(&mut *conn)
        .await?;
    docs(rows)
}

async fn append_change(
    conn: &mut SqliteConnection,
    kind: ChangeKind,
    meta: &WriteMeta,
    resource: ChangeResource,
) -> Result<i64> {
    let (position,): (i64,) = sqlx::query_as(
        "INSERT INTO changes (committed_at, kind, person_id, principal, agent, doc) VALUES (?, ?, ?, ?, ?, ?) RETURNING position",
    )
    .bind(meta.at.micros())
    .bind(kind.as_str())
    .bind(resource.person().to_string())
    .bind(&meta.principal)
    .bind(meta.agent.as_str())
    .bind(serde_json::to_string(&resource)?)
    .fetch_one(&mut *conn)
    .await?;
    Ok(position)
}

/// Reads `(version, doc)` of a row, checks the expected version, and parses the document.
async fn load_for_update<T: DeserializeOwned>(
    conn: &mut SqliteConnection,
    table: &'static str,
    what: &'static str,
    id: String,
    expected_version: i64,
) -> Result<T> {
    let sql = format!("SELECT version, doc FROM {table} WHERE id = ?");
    let row: Option<(i64, String)> = sqlx::query_as(&sql)
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((version, doc)) = row else {
        return Err(Error::not_found(what, id));
    };
    if version != expected_version {
        return Err(Error::StaleVersion {
            what,
            id,
            expected: expected_version,
            current: version,
        });
    }
    Ok(serde_json::from_str(&doc)?)
}

fn docs<T: DeserializeOwned>(rows: Vec<(String,)>) -> Result<Vec<T>> {
    rows.into_iter()
        .map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
        .collect()
}

async fn insert_case(conn: &mut SqliteConnection, case: &Case) -> Result<()> {
    sqlx::query(
        "INSERT INTO cases (id, person_id, owner, status, version, doc) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(case.id.to_string())
    .bind(case.person.to_string())
    .bind(case.owner.as_str())
    .bind(case.status.as_str())
    .bind(case.version)
    .bind(serde_json::to_string(case)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_person(conn: &mut SqliteConnection, at: Timestamp) -> Result<PersonId> {
    let person = PersonId::new();
    sqlx::query("INSERT INTO persons (id, created_at) VALUES (?, ?)")
        .bind(person.to_string())
        .bind(at.micros())
        .execute(&mut *conn)
        .await?;
    Ok(person)
}

async fn insert_link(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
    local_id: &LocalId,
    person: PersonId,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO person_links (partner_id, local_id, person_id, linked_at) VALUES (?, ?, ?, ?)",
    )
    .bind(partner.as_str())
    .bind(local_id.as_str())
    .bind(person.to_string())
    .bind(at.micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_pivot(conn: &mut SqliteConnection, key: &PivotKey, person: PersonId) -> Result<()> {
    sqlx::query("INSERT INTO person_pivots (pivot_key, person_id) VALUES (?, ?)")
        .bind(key.as_str())
        .bind(person.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn save_partner(conn: &mut SqliteConnection, partner: &Partner) -> Result<()> {
    sqlx::query(
        "INSERT INTO partners (id, kind, status, version, doc) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version, doc = excluded.doc",
    )
    .bind(partner.id.as_str())
    .bind(partner.kind.as_str())
    .bind(partner.status.as_str())
    .bind(partner.version)
    .bind(serde_json::to_string(partner)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_certificate(
    conn: &mut SqliteConnection,
    partner: Option<&PartnerId>,
    cert: &CertificateRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO certificates (fingerprint, partner_id, not_after, issued_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (fingerprint) DO NOTHING",
    )
    .bind(&cert.fingerprint)
    .bind(partner.map(PartnerId::as_str))
    .bind(cert.not_after.micros())
    .bind(cert.issued_at.micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn rules_version(
    (version, author, comment, created_at, restores): (i64, String, String, i64, Option<i64>),
) -> RulesVersion {
    RulesVersion {
        version,
        author,
        comment,
        created_at: Timestamp::from_micros(created_at),
        restores,
    }
}

fn after_key(after: Option<&str>) -> &str {
    after.unwrap_or("")
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_admin_certificate(&self, cert: &CertificateRecord) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        insert_certificate(&mut conn, None, cert).await
    }

    async fn principal_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Principal>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT partner_id FROM certificates WHERE fingerprint = ?")
                .bind(fingerprint)
                .fetch_optional(&self.reader)
                .await?;
        match row {
            None => Ok(None),
            Some((None,)) => Ok(Some(Principal::Admin)),
            Some((Some(id),)) => {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT doc FROM partners WHERE id = ?")
                        .bind(&id)
                        .fetch_optional(&self.reader)
                        .await?;
                match row {
                    Some((doc,)) => Ok(Some(Principal::Partner(serde_json::from_str(&doc)?))),
                    None => Ok(None),
                }
            }
        }
    }

    async fn add_partner(&self, partner: Partner, meta: &WriteMeta) -> Result<Partner> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM partners WHERE id = ?")
            .bind(partner.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(Error::AlreadyExists(format!(
                "partner `{}` already exists",
                partner.id
            )));
        }
        save_partner(&mut tx, &partner).await?;
        for cert in &partner.certificates {
            insert_certificate(&mut tx, Some(&partner.id), cert).await?;
        }
        remember(&mut tx, meta, &partner).await?;
        tx.commit().await?;
        Ok(partner)
    }

    async fn add_certificate(&self, id: &PartnerId, cert: CertificateRecord) -> Result<Partner> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM partners WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((doc,)) = row else {
            return Err(Error::not_found("partner", id));
        };
        let mut partner: Partner = serde_json::from_str(&doc)?;
        insert_certificate(&mut tx, Some(id), &cert).await?;
        partner.updated_at = cert.issued_at;
        partner.certificates.push(cert);
        partner.version += 1;
        save_partner(&mut tx, &partner).await?;
        tx.commit().await?;
        Ok(partner)
    }

    async fn set_partner_status(
        &self,
        id: &PartnerId,
        status: PartnerStatus,
        reason: String,
        meta: &WriteMeta,
    ) -> Result<Partner> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM partners WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((doc,)) = row else {
            return Err(Error::not_found("partner", id));
        };
        let mut partner: Partner = serde_json::from_str(&doc)?;
        if partner.status != status {
            partner.status = status;
            partner.status_reason = reason;
            partner.updated_at = meta.at;
            partner.version += 1;
            save_partner(&mut tx, &partner).await?;
        }
        remember(&mut tx, meta, &partner).await?;
        tx.commit().await?;
        Ok(partner)
    }

    async fn get_partner(&self, id: &PartnerId) -> Result<Option<Partner>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM partners WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            .transpose()
    }

    async fn list_partners(&self, after: Option<&str>, limit: u32) -> Result<Vec<Partner>> {
        let rows = sqlx::query_as("SELECT doc FROM partners WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after_key(after))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        docs(rows)
    }

    async fn link_person(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
        target: LinkTarget,
        meta: &WriteMeta,
    ) -> Result<LinkResult> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let existing: Option<(String,)> = sqlx::query_as(
            "SELECT person_id FROM person_links WHERE partner_id = ? AND local_id = ?",
        )
        .bind(partner.as_str())
        .bind(local_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let existing = existing
            .map(|(p,)| PersonId::parse(&p).map_err(|e| Error::Internal(e.to_string())))
            .transpose()?;
        let conflict = |linked: PersonId, other: PersonId| {
            Error::FailedPrecondition(format!(
                "local id `{local_id}` is already linked to person {linked}, not {other}: unlink it first"
            ))
        };
        let result = match target {
            LinkTarget::Person(person) => match existing {
                Some(linked) if linked == person => LinkResult {
                    person,
                    outcome: LinkOutcome::AlreadyLinked,
                },
                Some(linked) => return Err(conflict(linked, person)),
                None => {
                    let known: Option<(String,)> =
                        sqlx::query_as("SELECT id FROM persons WHERE id = ?")
                            .bind(person.to_string())
                            .fetch_optional(&mut *tx)
                            .await?;
                    if known.is_none() {
                        return Err(Error::not_found("person", person));
                    }
                    insert_link(&mut tx, partner, local_id, person, meta.at).await?;
                    LinkResult {
                        person,
                        outcome: LinkOutcome::LinkedById,
                    }
                }
            },
            LinkTarget::Pivot(key) => {
                let matched: Option<(String,)> =
                    sqlx::query_as("SELECT person_id FROM person_pivots WHERE pivot_key = ?")
                        .bind(key.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let matched = matched
                    .map(|(p,)| PersonId::parse(&p).map_err(|e| Error::Internal(e.to_string())))
                    .transpose()?;
                match (existing, matched) {
                    (Some(linked), Some(person)) if linked == person => LinkResult {
                        person,
                        outcome: LinkOutcome::AlreadyLinked,
                    },
                    (Some(linked), Some(person)) => return Err(conflict(linked, person)),
                    (Some(linked), None) => {
                        // The partner now knows the traits of a person it had linked without
                        // them: other partners can find the person from now on.
                        insert_pivot(&mut tx, &key, linked).await?;
                        LinkResult {
                            person: linked,
                            outcome: LinkOutcome::AlreadyLinked,
                        }
                    }
                    (None, Some(person)) => {
                        insert_link(&mut tx, partner, local_id, person, meta.at).await?;
                        LinkResult {
                            person,
                            outcome: LinkOutcome::MatchedByPivot,
                        }
                    }
                    (None, None) => {
                        let person = insert_person(&mut tx, meta.at).await?;
                        insert_pivot(&mut tx, &key, person).await?;
                        insert_link(&mut tx, partner, local_id, person, meta.at).await?;
                        LinkResult {
                            person,
                            outcome: LinkOutcome::Created,
                        }
                    }
                }
            }
            LinkTarget::New => match existing {
                Some(person) => LinkResult {
                    person,
                    outcome: LinkOutcome::AlreadyLinked,
                },
                None => {
                    let person = insert_person(&mut tx, meta.at).await?;
                    insert_link(&mut tx, partner, local_id, person, meta.at).await?;
                    LinkResult {
                        person,
                        outcome: LinkOutcome::Created,
                    }
                }
            },
        };
        remember(&mut tx, meta, &result).await?;
        tx.commit().await?;
        Ok(result)
    }

    async fn unlink_person(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
        meta: &WriteMeta,
    ) -> Result<PersonId> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let row: Option<(String,)> = sqlx::query_as(
            "DELETE FROM person_links WHERE partner_id = ? AND local_id = ? RETURNING person_id",
        )
        .bind(partner.as_str())
        .bind(local_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((person,)) = row else {
            return Err(Error::not_found("local id", local_id));
        };
        let person = PersonId::parse(&person).map_err(|e| Error::Internal(e.to_string()))?;
        remember(&mut tx, meta, &person).await?;
        tx.commit().await?;
        Ok(person)
    }

    async fn person_by_local_id(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
    ) -> Result<Option<PersonId>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT person_id FROM person_links WHERE partner_id = ? AND local_id = ?",
        )
        .bind(partner.as_str())
        .bind(local_id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(p,)| PersonId::parse(&p).map_err(|e| Error::Internal(e.to_string())))
            .transpose()
    }

    async fn person_by_pivot(&self, key: &PivotKey) -> Result<Option<PersonId>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT person_id FROM person_pivots WHERE pivot_key = ?")
                .bind(key.as_str())
                .fetch_optional(&self.reader)
                .await?;
        row.map(|(p,)| PersonId::parse(&p).map_err(|e| Error::Internal(e.to_string())))
            .transpose()
    }

    async fn local_ids(&self, partner: &PartnerId, person: PersonId) -> Result<Vec<LocalId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT local_id FROM person_links WHERE person_id = ? AND partner_id = ? ORDER BY local_id",
        )
        .bind(person.to_string())
        .bind(partner.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(l,)| LocalId::parse(&l).map_err(|e| Error::Internal(e.to_string())))
            .collect()
    }

    async fn relation(&self, partner: &PartnerId, person: PersonId) -> Result<Relation> {
        let (linked, owns_case, referral_party): (bool, bool, bool) = sqlx::query_as(
            "SELECT
                EXISTS (SELECT 1 FROM person_links WHERE person_id = ?1 AND partner_id = ?2),
                EXISTS (SELECT 1 FROM cases WHERE person_id = ?1 AND owner = ?2),
                EXISTS (SELECT 1 FROM referrals WHERE person_id = ?1 AND (from_partner = ?2 OR to_partner = ?2))",
        )
        .bind(person.to_string())
        .bind(partner.as_str())
        .fetch_one(&self.reader)
        .await?;
        Ok(Relation {
            linked,
            owns_case,
            referral_party,
        })
    }

    async fn raise_flag(&self, flag: Flag, meta: &WriteMeta) -> Result<(Flag, bool)> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let active: Option<(String,)> =
            sqlx::query_as("SELECT doc FROM flags WHERE person_id = ? AND code = ? AND active = 1")
                .bind(flag.person.to_string())
                .bind(flag.code.code())
                .fetch_optional(&mut *tx)
                .await?;
        let (result, position) = match active {
            Some((doc,)) => ((serde_json::from_str(&doc)?, false), None),
            None => {
                sqlx::query(
                    "INSERT INTO flags (id, person_id, code, active, version, doc) VALUES (?, ?, ?, 1, ?, ?)",
                )
                .bind(flag.id.to_string())
                .bind(flag.person.to_string())
                .bind(flag.code.code())
                .bind(flag.version)
                .bind(serde_json::to_string(&flag)?)
                .execute(&mut *tx)
                .await?;
                let position = append_change(
                    &mut tx,
                    ChangeKind::FlagRaised,
                    meta,
                    ChangeResource::Flag(flag.clone()),
                )
                .await?;
                ((flag, true), Some(position))
            }
        };
        remember(&mut tx, meta, &result).await?;
        tx.commit().await?;
        self.committed(position);
        Ok(result)
    }

    async fn update_flag(
        &self,
        id: FlagId,
        expected_version: i64,
        update: Update<Flag>,
        meta: &WriteMeta,
    ) -> Result<Flag> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let current: Flag =
            load_for_update(&mut tx, "flags", "flag", id.to_string(), expected_version).await?;
        let flag = update(current)?;
        let active = flag.status() == FlagStatus::Active;
        sqlx::query("UPDATE flags SET active = ?, version = ?, doc = ? WHERE id = ?")
            .bind(active)
            .bind(flag.version)
            .bind(serde_json::to_string(&flag)?)
            .bind(flag.id.to_string())
            .execute(&mut *tx)
            .await?;
        let kind = if active {
            ChangeKind::FlagRaised
        } else {
            ChangeKind::FlagRetracted
        };
        let position =
            append_change(&mut tx, kind, meta, ChangeResource::Flag(flag.clone())).await?;
        remember(&mut tx, meta, &flag).await?;
        tx.commit().await?;
        self.committed(Some(position));
        Ok(flag)
    }

    async fn get_flag(&self, id: FlagId) -> Result<Option<Flag>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM flags WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            .transpose()
    }

    async fn list_flags(
        &self,
        person: PersonId,
        include_retracted: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Flag>> {
        let rows = sqlx::query_as(
            "SELECT doc FROM flags WHERE person_id = ? AND (? OR active = 1) AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(person.to_string())
        .bind(include_retracted)
        .bind(after_key(after))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        docs(rows)
    }

    async fn open_case(&self, case: Case, meta: &WriteMeta) -> Result<Case> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        insert_case(&mut tx, &case).await?;
        let position = append_change(
            &mut tx,
            ChangeKind::CaseOpened,
            meta,
            ChangeResource::Case(case.clone()),
        )
        .await?;
        remember(&mut tx, meta, &case).await?;
        tx.commit().await?;
        self.committed(Some(position));
        Ok(case)
    }

    async fn update_case(
        &self,
        id: CaseId,
        expected_version: i64,
        update: Update<Case, (Case, Option<Case>)>,
        meta: &WriteMeta,
    ) -> Result<(Case, Option<Case>)> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let current: Case =
            load_for_update(&mut tx, "cases", "case", id.to_string(), expected_version).await?;
        let (case, child) = update(current)?;
        sqlx::query("UPDATE cases SET owner = ?, status = ?, version = ?, doc = ? WHERE id = ?")
            .bind(case.owner.as_str())
            .bind(case.status.as_str())
            .bind(case.version)
            .bind(serde_json::to_string(&case)?)
            .bind(case.id.to_string())
            .execute(&mut *tx)
            .await?;
        let mut position = append_change(
            &mut tx,
            ChangeKind::CaseTransitioned,
            meta,
            ChangeResource::Case(case.clone()),
        )
        .await?;
        if let Some(child) = &child {
            insert_case(&mut tx, child).await?;
            position = append_change(
                &mut tx,
                ChangeKind::CaseOpened,
                meta,
                ChangeResource::Case(child.clone()),
            )
            .await?;
        }
        let result = (case, child);
        remember(&mut tx, meta, &result).await?;
        tx.commit().await?;
        self.committed(Some(position));
        Ok(result)
    }

    async fn get_case(&self, id: CaseId) -> Result<Option<Case>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM cases WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            .transpose()
    }

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Case>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT doc FROM cases WHERE id > ");
        q.push_bind(after_key(after).to_string());
        if let Some(owner) = &filter.owner {
            q.push(" AND owner = ")
                .push_bind(owner.as_str().to_string());
        }
        if let Some(person) = filter.person {
            q.push(" AND person_id = ").push_bind(person.to_string());
        }
        if !filter.statuses.is_empty() {
            q.push(" AND status IN (");
            let mut list = q.separated(", ");
            for s in &filter.statuses {
                list.push_bind(s.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        let rows = q.build_query_as().fetch_all(&self.reader).await?;
        docs(rows)
    }

    async fn send_referral(&self, referral: Referral, meta: &WriteMeta) -> Result<Referral> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        sqlx::query(
            "INSERT INTO referrals (id, case_id, person_id, from_partner, to_partner, state, version, doc)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(referral.id.to_string())
        .bind(referral.case.to_string())
        .bind(referral.person.to_string())
        .bind(referral.from.as_str())
        .bind(referral.to.as_str())
        .bind(referral.state.as_str())
        .bind(referral.version)
        .bind(serde_json::to_string(&referral)?)
        .execute(&mut *tx)
        .await?;
        let position = append_change(
            &mut tx,
            ChangeKind::ReferralSent,
            meta,
            ChangeResource::Referral(referral.clone()),
        )
        .await?;
        remember(&mut tx, meta, &referral).await?;
        tx.commit().await?;
        self.committed(Some(position));
        Ok(referral)
    }

    async fn update_referral(
        &self,
        id: ReferralId,
        expected_version: i64,
        update: Update<Referral>,
        meta: &WriteMeta,
    ) -> Result<Referral> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let current: Referral = load_for_update(
            &mut tx,
            "referrals",
            "referral",
            id.to_string(),
            expected_version,
        )
        .await?;
        let referral = update(current)?;
        sqlx::query("UPDATE referrals SET state = ?, version = ?, doc = ? WHERE id = ?")
            .bind(referral.state.as_str())
            .bind(referral.version)
            .bind(serde_json::to_string(&referral)?)
            .bind(referral.id.to_string())
            .execute(&mut *tx)
            .await?;
        let position = append_change(
            &mut tx,
            ChangeKind::ReferralUpdated,
            meta,
            ChangeResource::Referral(referral.clone()),
        )
        .await?;
        remember(&mut tx, meta, &referral).await?;
        tx.commit().await?;
        self.committed(Some(position));
        Ok(referral)
    }

    async fn get_referral(&self, id: ReferralId) -> Result<Option<Referral>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM referrals WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            .transpose()
    }

    async fn referrals_of_person(&self, person: PersonId, limit: u32) -> Result<Vec<Referral>> {
        let rows =
            sqlx::query_as("SELECT doc FROM referrals WHERE person_id = ? ORDER BY id LIMIT ?")
                .bind(person.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?;
        docs(rows)
    }

    async fn list_referrals(
        &self,
        filter: &ReferralFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Referral>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT doc FROM referrals WHERE id > ");
        q.push_bind(after_key(after).to_string());
        let partner = filter.partner.as_str().to_string();
        match filter.direction {
            Some(Direction::Inbound) => {
                q.push(" AND to_partner = ").push_bind(partner);
            }
            Some(Direction::Outbound) => {
                q.push(" AND from_partner = ").push_bind(partner);
            }
            None => {
                q.push(" AND (to_partner = ")
                    .push_bind(partner.clone())
                    .push(" OR from_partner = ")
                    .push_bind(partner)
                    .push(")");
            }
        }
        if let Some(person) = filter.person {
            q.push(" AND person_id = ").push_bind(person.to_string());
        }
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut list = q.separated(", ");
            for s in &filter.states {
                list.push_bind(s.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        let rows = q.build_query_as().fetch_all(&self.reader).await?;
        docs(rows)
    }

    async fn grant_consent(&self, consent: Consent, meta: &WriteMeta) -> Result<Consent> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        sqlx::query("INSERT INTO consents (id, person_id, version, doc) VALUES (?, ?, ?, ?)")
            .bind(consent.id.to_string())
            .bind(consent.person.to_string())
            .bind(consent.version)
            .bind(serde_json::to_string(&consent)?)
            .execute(&mut *tx)
            .await?;
        remember(&mut tx, meta, &consent).await?;
        tx.commit().await?;
        Ok(consent)
    }

    async fn withdraw_consent(
        &self,
        id: ConsentId,
        update: Update<Consent>,
        meta: &WriteMeta,
    ) -> Result<(Consent, Vec<Redaction>)> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM consents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((doc,)) = row else {
            return Err(Error::not_found("consent", id));
        };
        let consent = update(serde_json::from_str(&doc)?)?;
        sqlx::query("UPDATE consents SET version = ?, doc = ? WHERE id = ?")
            .bind(consent.version)
            .bind(serde_json::to_string(&consent)?)
            .bind(consent.id.to_string())
            .execute(&mut *tx)
            .await?;
        let others: Vec<Consent> = consents_in(&mut tx, consent.person)
            .await?
            .into_iter()
            .filter(|c| c.id != consent.id)
            .collect();
        let received = received(&mut tx, consent.person).await?;
        let redactions = redactions(
            &format!("consent:{}", consent.id),
            &consent.grantee,
            &consent.categories,
            &others,
            &received,
            meta.at,
        );
        let position = apply_redactions(&mut tx, &redactions, meta).await?;
        let result = (consent, redactions);
        remember(&mut tx, meta, &result).await?;
        tx.commit().await?;
        self.committed(position);
        Ok(result)
    }

    async fn get_consent(&self, id: ConsentId) -> Result<Option<Consent>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM consents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            .transpose()
    }

    async fn consents_of(&self, person: PersonId) -> Result<Vec<Consent>> {
        let mut conn = self.reader.acquire().await?;
        consents_in(&mut conn, person).await
    }

    async fn grant_mandate(&self, mandate: Mandate, meta: &WriteMeta) -> Result<Mandate> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        sqlx::query("INSERT INTO mandates (id, person_id, version, doc) VALUES (?, ?, ?, ?)")
            .bind(mandate.id.to_string())
            .bind(mandate.person.to_string())
            .bind(mandate.version)
            .bind(serde_json::to_string(&mandate)?)
            .execute(&mut *tx)
            .await?;
        remember(&mut tx, meta, &mandate).await?;
        tx.commit().await?;
        Ok(mandate)
    }

    async fn revoke_mandate(
        &self,
        id: MandateId,
        update: Update<Mandate>,
        meta: &WriteMeta,
    ) -> Result<(Mandate, Vec<Redaction>)> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM mandates WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((doc,)) = row else {
            return Err(Error::not_found("mandate", id));
        };
        let mandate = update(serde_json::from_str(&doc)?)?;
        sqlx::query("UPDATE mandates SET version = ?, doc = ? WHERE id = ?")
            .bind(mandate.version)
            .bind(serde_json::to_string(&mandate)?)
            .bind(mandate.id.to_string())
            .execute(&mut *tx)
            .await?;
        let consents = consents_in(&mut tx, mandate.person).await?;
        let received = received(&mut tx, mandate.person).await?;
        let redactions = redactions(
            &format!("mandate:{}", mandate.id),
            &crate::domain::consent::Grantee::Agent {
                partner: mandate.partner.clone(),
                agent: mandate.agent.clone(),
            },
            &[crate::domain::DataCategory::CaseStatus],
            &consents,
            &received,
            meta.at,
        );
        let position = apply_redactions(&mut tx, &redactions, meta).await?;
        let result = (mandate, redactions);
        remember(&mut tx, meta, &result).await?;
        tx.commit().await?;
        self.committed(position);
        Ok(result)
    }

    async fn get_mandate(&self, id: MandateId) -> Result<Option<Mandate>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM mandates WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            .transpose()
    }

    async fn mandates_of(&self, person: PersonId) -> Result<Vec<Mandate>> {
        let rows = sqlx::query_as("SELECT doc FROM mandates WHERE person_id = ? ORDER BY id")
            .bind(person.to_string())
            .fetch_all(&self.reader)
            .await?;
        docs(rows)
    }

    async fn record_access(
        &self,
        entries: Vec<AuditEntry>,
        disclosures: Vec<Disclosure>,
    ) -> Result<()> {
        if entries.is_empty() && disclosures.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        append_audit(&mut tx, &entries).await?;
        for d in &disclosures {
            sqlx::query(
                "INSERT INTO disclosures (partner_id, item, person_id, category, first_at, last_at, doc)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (partner_id, item) DO UPDATE SET last_at = excluded.last_at",
            )
            .bind(d.partner.as_str())
            .bind(d.item.key())
            .bind(d.person.to_string())
            .bind(d.category.as_str())
            .bind(d.at.micros())
            .bind(d.at.micros())
            .bind(serde_json::to_string(d)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<StoredEntry>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, doc, prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after_seq as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, doc, prev_hash, hash)| StoredEntry {
                seq: seq as u64,
                doc,
                prev_hash,
                hash,
            })
            .collect())
    }

    async fn audit_anchor(&self) -> Result<Anchor> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map_or_else(Anchor::genesis, |(seq, hash)| Anchor {
            seq: seq as u64,
            hash,
        }))
    }

    async fn audit_of_person(&self, person: PersonId) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query_as("SELECT doc FROM audit WHERE person_id = ? ORDER BY seq")
            .bind(person.to_string())
            .fetch_all(&self.reader)
            .await?;
        docs(rows)
    }

    async fn purge_audit(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit WHERE at < ? ORDER BY seq DESC LIMIT 1")
                .bind(before.micros())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((seq, hash)) = last else {
            return Ok(0);
        };
        let removed = sqlx::query("DELETE FROM audit WHERE seq <= ?")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash, purged_at) VALUES (1, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, purged_at = excluded.purged_at",
        )
        .bind(seq)
        .bind(&hash)
        .bind(before.micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn rules_versions(&self) -> Result<Vec<RulesVersion>> {
        let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT version, author, comment, created_at, restores FROM rules ORDER BY version",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(rules_version).collect())
    }

    async fn rules_text(&self, version: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT text FROM rules WHERE version = ?")
            .bind(version)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|(t,)| t))
    }

    async fn active_rules(&self) -> Result<Option<(RulesVersion, String)>> {
        let row: Option<(i64, String, String, i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT version, author, comment, created_at, restores, text FROM rules ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(v, a, c, t, r, text)| (rules_version((v, a, c, t, r)), text)))
    }

    async fn add_rules(
        &self,
        text: &str,
        author: &str,
        comment: &str,
        restores: Option<i64>,
        meta: &WriteMeta,
    ) -> Result<RulesVersion> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        let (version,): (i64,) = sqlx::query_as(
            "INSERT INTO rules (version, text, author, comment, created_at, restores)
             VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM rules), ?, ?, ?, ?, ?) RETURNING version",
        )
        .bind(text)
        .bind(author)
        .bind(comment)
        .bind(meta.at.micros())
        .bind(restores)
        .fetch_one(&mut *tx)
        .await?;
        let result = RulesVersion {
            version,
            author: author.to_string(),
            comment: comment.to_string(),
            created_at: meta.at,
            restores,
        };
        remember(&mut tx, meta, &result).await?;
        tx.commit().await?;
        Ok(result)
    }

    async fn alert_plan(&self) -> Result<AlertPlan> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT doc FROM settings WHERE key = 'alert_plan'")
                .fetch_optional(&self.reader)
                .await?;
        row.map_or(Ok(AlertPlan::default()), |(doc,)| {
            serde_json::from_str(&doc).map_err(Error::from)
        })
    }

    async fn set_alert_plan(&self, plan: AlertPlan, meta: &WriteMeta) -> Result<AlertPlan> {
        let mut tx = self.writer.begin().await?;
        if let Some(done) = replayed(&mut tx, meta).await? {
            return Ok(done);
        }
        sqlx::query(
            "INSERT INTO settings (key, doc) VALUES ('alert_plan', ?)
             ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
        )
        .bind(serde_json::to_string(&plan)?)
        .execute(&mut *tx)
        .await?;
        remember(&mut tx, meta, &plan).await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn changes_after(&self, position: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        let rows: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
            "SELECT position, committed_at, kind, principal, agent, doc FROM changes
             WHERE position > ? ORDER BY position LIMIT ?",
        )
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(position, at, kind, principal, agent, doc)| {
                Ok(ChangeRecord {
                    position: position as u64,
                    committed_at: Timestamp::from_micros(at),
                    kind: ChangeKind::parse(&kind)
                        .ok_or_else(|| Error::Internal(format!("unknown change kind `{kind}`")))?,
                    principal,
                    agent: AgentId::parse(&agent).map_err(|e| Error::Internal(e.to_string()))?,
                    resource: serde_json::from_str(&doc)?,
                })
            })
            .collect()
    }

    async fn head_position(&self) -> Result<u64> {
        let (position,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
            .fetch_one(&self.reader)
            .await?;
        Ok(position as u64)
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}
