//! The store behaviour, written once for both SQL backends. `sql_store!` expands inside a
//! backend module (`sqlite`, `postgres`) into the helpers, the group committer and the
//! `Store` implementation, over that backend's concrete connection type. SQL here is portable:
//! numbered placeholders (`$1`, `$2`… in order of first use, which SQLite also reads), `ON
//! CONFLICT`, `RETURNING`. A backend module supplies `begin_batch` (what a write transaction
//! takes first) and `after_writes` (what it does before commit when it appended changes).
//!
//! Writes go through one committer task per hub process: it takes every write queued at that
//! moment (up to a bound), runs each in its own savepoint inside one transaction, and commits
//! once — group commit, so throughput does not collapse under fsync. A write is acknowledged
//! only after that commit; if the commit fails, no write of the batch is acknowledged.

macro_rules! sql_store {
    ($db:ty, $conn:ty) => {
        use crate::audit::{Anchor, AuditEntry, StoredEntry};
        use crate::domain::accessibility::Profile;
        use crate::domain::case::Case;
        use crate::domain::commune::{Commune, Residence};
        use crate::domain::change::{
            ChangeKind, ChangeRecord, ChangeResource, ConsentNotice, Disclosure, Item, Redaction,
        };
        use crate::domain::consent::{Consent, ConsentId, Mandate, MandateId, redactions};
        use crate::domain::flag::Flag;
        use crate::domain::ids::{
            AgentId, CaseId, FlagId, LocalId, PartnerId, PersonId, ReferralId,
        };
        use crate::domain::partner::{CertificateRecord, Partner, PartnerStatus};
        use crate::domain::pivot::PivotKey;
        use crate::domain::referral::Referral;
        use crate::domain::{FlagStatus, Timestamp};
        use crate::error::{Error, Result};
        use crate::store::{
            AlertPlan, CaseFilter, Direction, Expiries, LinkOutcome, LinkResult, LinkTarget, Principal,
            Audience, AuditQuery, ConsoleAccount, ConsoleSession, PrincipalCache, ReferralFilter, Relation, RulesVersion, Setting, Store, Update, WriteMeta,
        };
        use async_trait::async_trait;
        use futures::future::BoxFuture;
        use serde::Serialize;
        use serde::de::DeserializeOwned;
        use sqlx::{Pool, QueryBuilder};
        use std::any::Any;
        use std::collections::HashMap;
        use tokio::sync::{mpsc, oneshot, watch};

        type Conn = $conn;

        type ConsoleRow = (String, String, String, String, String, i64, Option<i64>, i64, i64, i64, Option<i64>);
        const CONSOLE_SELECT_ONE: &str = "SELECT name, role, full_name, password_hash, totp_secret, created_at, disabled_at, failures, locked_until, last_totp_step, last_login_at FROM console_accounts WHERE name = $1";
        const CONSOLE_SELECT_ALL: &str = "SELECT name, role, full_name, password_hash, totp_secret, created_at, disabled_at, failures, locked_until, last_totp_step, last_login_at FROM console_accounts ORDER BY name";

        fn console_account(r: ConsoleRow) -> ConsoleAccount {
            ConsoleAccount {
                name: r.0,
                role: r.1,
                full_name: r.2,
                password_hash: r.3,
                totp_secret: r.4,
                created_at: Timestamp::from_micros(r.5),
                disabled_at: r.6.map(Timestamp::from_micros),
                failures: r.7 as u32,
                locked_until: Timestamp::from_micros(r.8),
                last_totp_step: r.9,
                last_login_at: r.10.map(Timestamp::from_micros),
            }
        }
        type Value = Box<dyn Any + Send>;
        type Op = Box<
            dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<(Value, Option<i64>)>>
                + Send,
        >;

        /// A write waiting for the committer.
        struct Job {
            op: Op,
            reply: oneshot::Sender<Result<Value>>,
            /// It may narrow what partners may receive: the committer moves the decisions epoch
            /// around its commit (`run_batch`).
            narrows: bool,
        }

        tokio::task_local! {
            /// Set around a write that may narrow access (withdrawals, ends, unlinks, merges, rules,
            /// transitions, partner status).
            static NARROWS: bool;
            /// The audit chain's last `(seq, hash)` as this batch has written it: read once per
            /// batch, then carried from one entry to the next (`append_audit`).
            static AUDIT_HEAD: std::cell::RefCell<Option<(u64, String)>>;
        }

        /// How the committer batches.
        #[derive(Debug, Clone, Copy)]
        pub struct Batching {
            /// Writes committed together at most (1: no group commit).
            pub max_batch: usize,
            /// Testing only: a random sleep up to this many milliseconds inside each write
            /// transaction, before commit, to shake out ordering bugs.
            pub jitter_ms: u64,
        }

        pub struct SqlStore {
            read: Pool<$db>,
            /// The committer's pool, kept to close it at shutdown.
            write: Pool<$db>,
            /// The health check's connection.
            probe: Pool<$db>,
            jobs: mpsc::Sender<Job>,
            head: watch::Sender<u64>,
            audience: std::sync::Arc<Audience>,
            principals: std::sync::Arc<PrincipalCache>,
            rows_read: std::sync::atomic::AtomicU64,
            /// Moved around the commit of writes that may narrow or widen access, and on PostgreSQL
            /// every commit of another replica.
            epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
        }

        impl SqlStore {
            /// A store over `read` for reads and `write` for the committer.
            fn start(read: Pool<$db>, write: Pool<$db>, probe: Pool<$db>, head: u64, batching: Batching) -> Self {
                let (head, _) = watch::channel(head);
                let audience = std::sync::Arc::new(Audience::default());
                // Who the changes before this start concern is not known here.
                audience.everyone(head.borrow().to_owned());
                let (jobs, rx) = mpsc::channel(1024);
                let epoch: std::sync::Arc<std::sync::atomic::AtomicU64> = Default::default();
                tokio::spawn(committer(write.clone(), rx, batching, head.clone(), audience.clone(), epoch.clone()));
                Self { read, write, probe, jobs, head, audience, principals: Default::default(), rows_read: Default::default(), epoch }
            }

            /// The head position moved (a commit here, or a notification from another replica).
            fn advance(head: &watch::Sender<u64>, position: u64) {
                crate::telemetry::feed_head(position);
                head.send_if_modified(|h| {
                    if position > *h {
                        *h = position;
                        true
                    } else {
                        false
                    }
                });
            }

            /// Runs `op` in the next group commit; returns once it is committed.
            async fn write<T, F>(&self, op: F) -> Result<T>
            where
                T: Send + 'static,
                F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<(T, Option<i64>)>>
                    + Send
                    + 'static,
            {
                let (reply, answer) = oneshot::channel();
                let job = Job {
                    op: Box::new(move |c: &mut Conn| {
                        Box::pin(async move {
                            let (value, position) = op(c).await?;
                            Ok((Box::new(value) as Value, position))
                        })
                    }),
                    reply,
                    narrows: NARROWS.try_with(|n| *n).unwrap_or(false),
                };
                self.jobs
                    .send(job)
                    .await
                    .map_err(|_| Error::Unavailable("the hub is shutting down".into()))?;
                let value = answer
                    .await
                    .map_err(|_| Error::Unavailable("the write was abandoned".into()))??;
                value
                    .downcast::<T>()
                    .map(|b| *b)
                    .map_err(|_| Error::Internal("write returned another type".into()))
            }
        }

        impl SqlStore {
            /// The principal a certificate names, read from the database.
            async fn read_principal(&self, fingerprint: &str) -> Result<Option<(Principal, CertificateRecord)>> {
                let row: Option<(Option<String>, Option<String>, i64, i64, Option<i64>, String, i64)> = sqlx::query_as(
                    "SELECT c.partner_id, p.doc, c.not_after, c.issued_at, c.revoked_at, c.name, c.awaiting_approval FROM certificates c
                     LEFT JOIN partners p ON p.id = c.partner_id WHERE c.fingerprint = $1",
                )
                .bind(fingerprint)
                .fetch_optional(&self.read)
                .await?;
                let Some((partner, doc, not_after, issued_at, revoked_at, name, awaiting)) = row else {
                    return Ok(None);
                };
                let record = CertificateRecord {
                    fingerprint: fingerprint.to_string(),
                    serial: String::new(),
                    not_after: Timestamp::from_micros(not_after),
                    issued_at: Timestamp::from_micros(issued_at),
                    pem: String::new(),
                    revoked_at: revoked_at.map(Timestamp::from_micros),
                    revocation_reason: String::new(),
                    awaiting_approval: awaiting != 0,
                };
                match (partner, doc) {
                    (None, _) => Ok(Some((
                        Principal::Admin(if name.is_empty() { "admin".to_string() } else { name }),
                        record,
                    ))),
                    (Some(_), Some(doc)) => Ok(Some((Principal::Partner(serde_json::from_str(&doc)?), record))),
                    (Some(_), None) => Ok(None),
                }
            }

            /// After a write that changes a partner's status or certificates: clears the
            /// principal cache here (the write told the other replicas, `principals_changed`).
            fn cleared<T>(&self, done: Result<T>) -> Result<T> {
                self.principals.clear();
                done
            }

            /// A write with an idempotency key: a retry returns the first result and changes
            /// nothing; otherwise `op` runs and its result is remembered, with the write's audit
            /// entries, in the same transaction.
            async fn idempotent<T, F>(&self, meta: &WriteMeta, op: F) -> Result<T>
            where
                T: Serialize + DeserializeOwned + Send + Sync + 'static,
                F: for<'c> FnOnce(&'c mut Conn, &'c WriteMeta) -> BoxFuture<'c, Result<(T, Option<i64>)>>
                    + Send
                    + 'static,
            {
                let meta = meta.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        if let Some(done) = replayed(conn, &meta).await? {
                            return Ok((done, None));
                        }
                        let (result, position) = op(conn, &meta).await?;
                        remember(conn, &meta, &result).await?;
                        Ok((result, position))
                    })
                })
                .await
            }
        }

        async fn committer(
            pool: Pool<$db>,
            mut rx: mpsc::Receiver<Job>,
            batching: Batching,
            head: watch::Sender<u64>,
            audience: std::sync::Arc<Audience>,
            epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
        ) {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < batching.max_batch.max(1) {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                AUDIT_HEAD
                    .scope(Default::default(), run_batch(&pool, jobs, batching, &head, &audience, &epoch))
                    .await;
            }
        }

        fn fail(jobs: impl IntoIterator<Item = oneshot::Sender<Result<Value>>>, e: &Error) {
            for reply in jobs {
                let _ = reply.send(Err(match e {
                    Error::Unavailable(m) => Error::Unavailable(m.clone()),
                    other => Error::Unavailable(format!("write not committed: {other}")),
                }));
            }
        }

        #[tracing::instrument(skip_all, fields(writes = jobs.len()))]
        async fn run_batch(
            pool: &Pool<$db>,
            jobs: Vec<Job>,
            batching: Batching,
            head: &watch::Sender<u64>,
            audience: &Audience,
            epoch: &std::sync::atomic::AtomicU64,
        ) {
            let narrows = jobs.iter().any(|j| j.narrows);
            crate::telemetry::commit_batch(jobs.len());
            let mut tx = match pool.begin().await {
                Ok(tx) => tx,
                Err(e) => return fail(jobs.into_iter().map(|j| j.reply), &Error::from(e)),
            };
            if let Err(e) = begin_batch(&mut tx).await {
                return fail(jobs.into_iter().map(|j| j.reply), &e);
            }
            let mut done: Vec<(oneshot::Sender<Result<Value>>, Value)> = Vec::new();
            let mut position: Option<i64> = None;
            // Each write runs inside the savepoint `relais_write`, so a failed write alone is
            // undone. A savepoint survives `ROLLBACK TO`; after a write that succeeded it is
            // released and set again in the same round trip. The last one is committed with
            // the transaction.
            let mut savepoint = "SAVEPOINT relais_write";
            let mut jobs = jobs.into_iter();
            while let Some(job) = jobs.next() {
                if !savepoint.is_empty() {
                    let set = sqlx::Executor::execute(&mut *tx, savepoint).await;
                    if let Err(e) = set {
                        let e = Error::from(e);
                        let rest = jobs.map(|j| j.reply);
                        return fail(done.into_iter().map(|(r, _)| r).chain([job.reply]).chain(rest), &e);
                    }
                }
                let audit_head = AUDIT_HEAD.with(|h| h.borrow().clone());
                match (job.op)(&mut tx).await {
                    Ok((value, p)) => {
                        savepoint = "RELEASE SAVEPOINT relais_write; SAVEPOINT relais_write";
                        position = position.max(p);
                        done.push((job.reply, value));
                    }
                    Err(e) => {
                        // Only this write is undone; the batch goes on.
                        let undone = sqlx::query("ROLLBACK TO SAVEPOINT relais_write")
                            .execute(&mut *tx)
                            .await;
                        AUDIT_HEAD.with(|h| *h.borrow_mut() = audit_head);
                        savepoint = "";
                        let _ = job.reply.send(Err(e));
                        if let Err(e) = undone {
                            let e = Error::from(e);
                            let rest = jobs.map(|j| j.reply);
                            return fail(done.into_iter().map(|(r, _)| r).chain(rest), &e);
                        }
                    }
                }
            }
            if batching.jitter_ms > 0 {
                let mut bytes = [0u8; 8];
                let _ = getrandom::fill(&mut bytes);
                let ms = u64::from_le_bytes(bytes) % (batching.jitter_ms + 1);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            // The partners this batch's changes concern: told before the head moves (and to
            // the other replicas with it), so their subscribers alone read.
            // Partners newly tied to a person also have something to read: the person's
            // earlier changes, behind the head.
            let mut concerned = Vec::new();
            let since = *head.borrow();
            let told = async {
                let widened: Vec<(String,)> = sqlx::query_as("DELETE FROM audience_widened RETURNING partner_id")
                    .fetch_all(&mut *tx)
                    .await?;
                concerned = widened.into_iter().map(|(partner,)| partner).collect();
                if let Some(p) = position {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT DISTINCT partner_id FROM change_audience WHERE position > $1 AND position <= $2",
                    )
                    .bind(since as i64)
                    .bind(p)
                    .fetch_all(&mut *tx)
                    .await?;
                    concerned.extend(rows.into_iter().map(|(partner,)| partner));
                    concerned.sort();
                    concerned.dedup();
                }
                let at = position.map_or(since as i64, |p| p.max(since as i64));
                // A narrowing write without a change still tells the other replicas (their
                // shared decisions end with any notification).
                if position.is_some() || !concerned.is_empty() || narrows {
                    after_writes(&mut tx, at, &concerned).await?;
                }
                Ok::<_, Error>((at, !concerned.is_empty()))
            };
            let (at, widened) = match told.await {
                Ok((at, widened)) => (at as u64, widened),
                Err(e) => return fail(done.into_iter().map(|(r, _)| r), &e),
            };
            // Decisions shared between subscriptions end with a write that may narrow or
            // widen access: one bump before the commit (decisions made from now on may read
            // the old state), one after (they could not be shared past it).
            let shifts = narrows || widened;
            if shifts {
                epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            let committed = tx.commit().await;
            if shifts {
                epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            match committed {
                Ok(()) => {
                    if position.is_some() || !concerned.is_empty() {
                        audience.touch(concerned.iter().map(String::as_str), at);
                        SqlStore::advance(head, at);
                    }
                    for (reply, value) in done {
                        let _ = reply.send(Ok(value));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "group commit failed; its writes are not acknowledged");
                    fail(done.into_iter().map(|(r, _)| r), &Error::from(e))
                }
            }
        }

        /// The first result of a write made with this request id, if any. A request id reused
        /// for a different request is refused rather than answered with another write's result.
        async fn replayed<T: DeserializeOwned>(conn: &mut Conn, meta: &WriteMeta) -> Result<Option<T>> {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT fingerprint, response FROM idempotency WHERE principal = $1 AND request_id = $2",
            )
            .bind(&meta.principal)
            .bind(meta.request_id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => Ok(None),
                Some((fingerprint, response))
                    if fingerprint == meta.fingerprint
                        // Recorded before the method was part of it: the body's digest alone.
                        || meta.fingerprint.split_once(':').is_some_and(|(_, body)| body == fingerprint) =>
                {
                    Ok(Some(serde_json::from_str(&response)?))
                }
                Some(_) => Err(Error::invalid(
                    "request_id",
                    "this request id was already used by the caller for a different request",
                )),
            }
        }

        /// Records the write's idempotency key with its result, and its audit entries.
        async fn remember<T: Serialize>(conn: &mut Conn, meta: &WriteMeta, result: &T) -> Result<()> {
            append_audit(conn, &meta.audit).await?;
            sqlx::query(
                "INSERT INTO idempotency (principal, request_id, fingerprint, response, created_at) VALUES ($1, $2, $3, $4, $5)",
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

        /// Appends audit entries to the hash chain. Write transactions are serialised (one
        /// committer, and `begin_batch`), so each entry follows the one before it; the chain's
        /// head is read once per batch (`AUDIT_HEAD`) and the entries go in one statement.
        async fn append_audit(conn: &mut Conn, entries: &[AuditEntry]) -> Result<()> {
            if entries.is_empty() {
                return Ok(());
            }
            let known = AUDIT_HEAD.try_with(|h| h.borrow().clone()).ok().flatten();
            let (mut seq, mut prev) = match known {
                Some(head) => head,
                None => {
                    let last: Option<(i64, String)> =
                        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                            .fetch_optional(&mut *conn)
                            .await?;
                    match last {
                        Some((seq, hash)) => (seq as u64, hash),
                        None => {
                            let anchor: Option<(i64, String)> =
                                sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                                    .fetch_optional(&mut *conn)
                                    .await?;
                            anchor.map_or((0, crate::audit::GENESIS.to_string()), |(s, h)| (s as u64, h))
                        }
                    }
                }
            };
            let mut rows = Vec::with_capacity(entries.len());
            for entry in entries {
                seq += 1;
                let doc = serde_json::to_string(entry)?;
                let hash = crate::audit::chain_hash(seq, &prev, &doc);
                rows.push((seq, entry, doc, std::mem::replace(&mut prev, hash.clone()), hash));
            }
            // Six parameters a row, well under either backend's limit per statement.
            for chunk in rows.chunks(1_000) {
                QueryBuilder::<$db>::new("INSERT INTO audit (seq, at, person_id, doc, prev_hash, hash) ")
                    .push_values(chunk, |mut b, (seq, entry, doc, prev, hash)| {
                        b.push_bind(*seq as i64)
                            .push_bind(entry.at.micros())
                            .push_bind(entry.person.map(|p| p.to_string()))
                            .push_bind(doc.clone())
                            .push_bind(prev.clone())
                            .push_bind(hash.clone());
                    })
                    .build()
                    // One shape per row count: only the common one is kept prepared (the
                    // statement caches would fill with the others).
                    .persistent(chunk.len() == 1)
                    .execute(&mut *conn)
                    .await?;
            }
            crate::telemetry::audit_length(seq);
            let _ = AUDIT_HEAD.try_with(|h| *h.borrow_mut() = Some((seq, prev)));
            Ok(())
        }

        async fn append_change(
            conn: &mut Conn,
            kind: ChangeKind,
            meta: &WriteMeta,
            resource: ChangeResource,
        ) -> Result<i64> {
            let (position,): (i64,) = sqlx::query_as(
                "INSERT INTO changes (committed_at, kind, person_id, principal, agent, doc) VALUES ($1, $2, $3, $4, $5, $6) RETURNING position",
            )
            .bind(meta.at.micros())
            .bind(kind.as_str())
            .bind(resource.person().to_string())
            .bind(&meta.principal)
            .bind(meta.agent.as_str())
            .bind(serde_json::to_string(&resource)?)
            .fetch_one(&mut *conn)
            .await?;
            // Its audience: who it is for, or who is tied to its person now, and its writer.
            let named: Option<Vec<&PartnerId>> = match &resource {
                ChangeResource::Redaction(r) => Some(vec![&r.partner]),
                ChangeResource::ConsentNotice(n) => Some(n.partners.iter().collect()),
                resource => kind.reminds(resource).map(|p| vec![p]),
            };
            match named {
                Some(partners) => {
                    for partner in partners {
                        sqlx::query("INSERT INTO change_audience (partner_id, position) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                            .bind(partner.as_str())
                            .bind(position)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                None => {
                    // The partner the resource belongs to hears of it even when no longer
                    // tied (a flag retracted by the administrator after an unlink).
                    let holder = match &resource {
                        ChangeResource::Flag(f) => f.source_partner.as_str(),
                        ChangeResource::Case(c) => c.owner.as_str(),
                        ChangeResource::Referral(r) => r.from.as_str(),
                        _ => meta.principal.as_str(),
                    };
                    sqlx::query(
                        "INSERT INTO change_audience (partner_id, position)
                         SELECT partner_id, $1 FROM person_links WHERE person_id = $2
                         UNION SELECT owner, $1 FROM cases WHERE person_id = $2
                         UNION SELECT from_partner, $1 FROM referrals WHERE person_id = $2
                         UNION SELECT to_partner, $1 FROM referrals WHERE person_id = $2
                         UNION SELECT partner_id, $1 FROM person_ties WHERE person_id = $2
                         UNION SELECT $3, $1
                         UNION SELECT $4, $1",
                    )
                    .bind(position)
                    .bind(resource.person().to_string())
                    .bind(&meta.principal)
                    .bind(holder)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(position)
        }

        /// Appends the redaction events and forgets the redacted disclosures.
        async fn apply_redactions(
            conn: &mut Conn,
            redactions: &[Redaction],
            meta: &WriteMeta,
        ) -> Result<Option<i64>> {
            let mut position = None;
            for r in redactions {
                for item in &r.items {
                    sqlx::query("DELETE FROM disclosures WHERE partner_id = $1 AND item = $2")
                        .bind(r.partner.as_str())
                        .bind(item.key())
                        .execute(&mut *conn)
                        .await?;
                }
                position = Some(
                    append_change(conn, ChangeKind::Redacted, meta, ChangeResource::Redaction(r.clone()))
                        .await?,
                );
            }
            Ok(position)
        }

        /// What the partners received about a person, with each partner.
        async fn received(conn: &mut Conn, person: PersonId) -> Result<Vec<(Partner, Disclosure)>> {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT d.doc, p.doc FROM disclosures d JOIN partners p ON p.id = d.partner_id WHERE d.person_id = $1",
            )
            .bind(person.to_string())
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|(d, p)| Ok((serde_json::from_str(&p)?, serde_json::from_str(&d)?)))
                .collect()
        }

        /// Is the consent record or mandate named `record` (`consent:<id>`, `mandate:<id>`)
        /// still granted at `at`, as committed now?
        async fn record_in_force(conn: &mut Conn, record: &str, at: Timestamp) -> Result<bool> {
            use crate::domain::consent::RecordState;
            let (table, id) = match record.split_once(':') {
                Some(("consent", id)) => ("consents", id),
                Some(("mandate", id)) => ("mandates", id),
                _ => return Err(Error::Internal(format!("unknown record `{record}`"))),
            };
            let sql = format!("SELECT doc, ended FROM {table} WHERE id = $1");
            let row: Option<(String, bool)> = sqlx::query_as(&sql).bind(id).fetch_optional(&mut *conn).await?;
            // Ended (withdrawn, revoked, or expired and redacted by the scheduler) as committed
            // now, or past its expiry by now: what it covered does not leave.
            let Some((doc, ended)) = row else { return Ok(false) };
            if ended {
                return Ok(false);
            }
            Ok(if table == "consents" {
                serde_json::from_str::<Consent>(&doc)?.state_at(at) == RecordState::Granted
            } else {
                serde_json::from_str::<Mandate>(&doc)?.state_at(at) == RecordState::Granted
            })
        }

        /// Moves the records of `table` kept as documents from `merged` to `kept` (a merge of two
        /// records of one person); returns them as they now stand. `person` gives a record's
        /// person field and its id.
        async fn rehome<T: Serialize + DeserializeOwned>(
            conn: &mut Conn,
            table: &'static str,
            kept: PersonId,
            merged: PersonId,
            person: impl Fn(&mut T) -> (&mut PersonId, String),
        ) -> Result<Vec<T>> {
            let sql = format!("SELECT doc FROM {table} WHERE person_id = $1 ORDER BY id");
            let rows: Vec<(String,)> = sqlx::query_as(&sql).bind(merged.to_string()).fetch_all(&mut *conn).await?;
            let update = format!("UPDATE {table} SET person_id = $1, doc = $2 WHERE id = $3");
            let mut moved = Vec::new();
            for mut record in docs::<T>(rows)? {
                let (field, id) = person(&mut record);
                *field = kept;
                sqlx::query(&update)
                    .bind(kept.to_string())
                    .bind(serde_json::to_string(&record)?)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                moved.push(record);
            }
            Ok(moved)
        }

        /// Writes a referral back with its state, deadline and next reminder.
        async fn save_referral(conn: &mut Conn, referral: &Referral) -> Result<()> {
            sqlx::query("UPDATE referrals SET state = $1, version = $2, doc = $3, due_date = $4, next_reminder = $5 WHERE id = $6")
                .bind(referral.state.as_str())
                .bind(referral.version)
                .bind(serde_json::to_string(referral)?)
                .bind(referral.due_date.map(|d| d.to_string()))
                .bind(referral.next_reminder().map(|(day, _)| day.to_string()))
                .bind(referral.id.to_string())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// Consent records or mandates whose expiry has come and whose end is not applied yet.
        async fn due<T: Record + DeserializeOwned>(conn: &mut Conn, now: Timestamp, limit: u32) -> Result<Vec<T>> {
            let sql = format!(
                "SELECT doc FROM {} WHERE ended = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3",
                T::TABLE
            );
            let rows: Vec<(String,)> = sqlx::query_as(&sql)
                .bind(false)
                .bind(now.micros())
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            docs(rows)
        }

        /// Applies the end of a consent record — withdrawn, or expired — once: marks it ended
        /// and sends the redactions owed to the partners that received what it covered.
        async fn end_consent(conn: &mut Conn, consent: &Consent, meta: &WriteMeta) -> Result<(Vec<Redaction>, Option<i64>)> {
            save_record(conn, consent, true).await?;
            let others: Vec<Consent> = consents_in(conn, consent.person)
                .await?
                .into_iter()
                .filter(|c| c.id != consent.id)
                .collect();
            redact(conn, format!("consent:{}", consent.id), &consent.grantee, &consent.categories, consent.person, &others, meta).await
        }

        /// The same for a mandate — revoked, or expired.
        async fn end_mandate(conn: &mut Conn, mandate: &Mandate, meta: &WriteMeta) -> Result<(Vec<Redaction>, Option<i64>)> {
            save_record(conn, mandate, true).await?;
            let consents = consents_in(conn, mandate.person).await?;
            let grantee = crate::domain::consent::Grantee::Agent {
                partner: mandate.partner.clone(),
                agent: mandate.agent.clone(),
            };
            redact(conn, format!("mandate:{}", mandate.id), &grantee, &[crate::domain::DataCategory::CaseStatus], mandate.person, &consents, meta).await
        }

        async fn consents_in(conn: &mut Conn, person: PersonId) -> Result<Vec<Consent>> {
            let rows = sqlx::query_as("SELECT doc FROM consents WHERE person_id = $1 ORDER BY id")
                .bind(person.to_string())
                .fetch_all(&mut *conn)
                .await?;
            docs(rows)
        }

        /// Reads `(version, doc)` of a row, checks the expected version, parses the document.
        async fn load_for_update<T: DeserializeOwned>(
            conn: &mut Conn,
            table: &'static str,
            what: &'static str,
            id: String,
            expected_version: i64,
        ) -> Result<T> {
            let sql = format!("SELECT version, doc FROM {table} WHERE id = $1");
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

        /// Reads a JSON document by id.
        async fn load_doc<T: DeserializeOwned>(
            conn: &mut Conn,
            table: &'static str,
            what: &'static str,
            id: String,
        ) -> Result<T> {
            let sql = format!("SELECT doc FROM {table} WHERE id = $1");
            let row: Option<(String,)> = sqlx::query_as(&sql)
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await?;
            match row {
                Some((doc,)) => Ok(serde_json::from_str(&doc)?),
                None => Err(Error::not_found(what, id)),
            }
        }

        /// A record kept as a document by person (consents, mandates), with what the expiry
        /// scheduler looks for: when it expires, and whether its end was already applied.
        trait Record: Serialize {
            const TABLE: &'static str;
            fn key(&self) -> String;
            fn person(&self) -> PersonId;
            fn version(&self) -> i64;
            fn expires(&self) -> Option<Timestamp>;
            fn ended(&self) -> bool;
        }

        impl Record for Consent {
            const TABLE: &'static str = "consents";
            fn key(&self) -> String { self.id.to_string() }
            fn person(&self) -> PersonId { self.person }
            fn version(&self) -> i64 { self.version }
            fn expires(&self) -> Option<Timestamp> { self.expires_at }
            fn ended(&self) -> bool { self.withdrawal.is_some() }
        }

        impl Record for Mandate {
            const TABLE: &'static str = "mandates";
            fn key(&self) -> String { self.id.to_string() }
            fn person(&self) -> PersonId { self.person }
            fn version(&self) -> i64 { self.version }
            fn expires(&self) -> Option<Timestamp> { Some(self.expires_at) }
            fn ended(&self) -> bool { self.revocation.is_some() }
        }

        /// Inserts or updates a consent record or a mandate. `ended`: its end (withdrawal,
        /// revocation, expiry) has been applied, redactions included.
        async fn save_record<T: Record>(conn: &mut Conn, record: &T, ended: bool) -> Result<()> {
            let sql = format!(
                "INSERT INTO {} (id, person_id, version, doc, expires_at, ended) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc,
                 expires_at = excluded.expires_at, ended = excluded.ended",
                T::TABLE
            );
            sqlx::query(&sql)
                .bind(record.key())
                .bind(record.person().to_string())
                .bind(record.version())
                .bind(serde_json::to_string(record)?)
                .bind(record.expires().map(Timestamp::micros))
                .bind(ended || record.ended())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// After `record` stopped covering `grantee` for `categories`: the redactions owed to
        /// the partners that received such data, appended as change events.
        async fn redact(
            conn: &mut Conn,
            record: String,
            grantee: &crate::domain::consent::Grantee,
            categories: &[crate::domain::DataCategory],
            person: PersonId,
            still_granted: &[Consent],
            meta: &WriteMeta,
        ) -> Result<(Vec<Redaction>, Option<i64>)> {
            let received = received(conn, person).await?;
            let redactions = redactions(&record, grantee, categories, still_granted, &received, meta.at);
            let position = apply_redactions(conn, &redactions, meta).await?;
            Ok((redactions, position))
        }

        fn change_record(
            (position, at, kind, principal, agent, doc): (i64, i64, String, String, String, String),
        ) -> Result<ChangeRecord> {
            Ok(ChangeRecord {
                position: position as u64,
                committed_at: Timestamp::from_micros(at),
                kind: ChangeKind::parse(&kind)
                    .ok_or_else(|| Error::Internal(format!("unknown change kind `{kind}`")))?,
                principal,
                agent: AgentId::parse(&agent).map_err(|e| Error::Internal(e.to_string()))?,
                resource: serde_json::from_str(&doc)?,
            })
        }

        fn docs<T: DeserializeOwned>(rows: Vec<(String,)>) -> Result<Vec<T>> {
            rows.into_iter()
                .map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from))
                .collect()
        }

        fn person_id(s: &str) -> Result<PersonId> {
            PersonId::parse(s).map_err(|e| Error::Internal(format!("stored person id: {e}")))
        }

        async fn insert_case(conn: &mut Conn, case: &Case) -> Result<()> {
            sqlx::query(
                "INSERT INTO cases (id, person_id, owner, status, version, doc) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(case.id.to_string())
            .bind(case.person.to_string())
            .bind(case.owner.as_str())
            .bind(case.status.as_str())
            .bind(case.version)
            .bind(serde_json::to_string(case)?)
            .execute(&mut *conn)
            .await?;
            // An owner with another case for the person has been in the audience of all the
            // person's changes since that case (cases are never deleted): nothing to widen,
            // and no scan of the person's history at each new case.
            let added = sqlx::query(
                "INSERT INTO change_audience (partner_id, position)
                 SELECT $1, position FROM changes WHERE person_id = $2 AND kind NOT IN ('redacted', 'consent_recorded')
                 AND NOT EXISTS (SELECT 1 FROM cases WHERE person_id = $2 AND owner = $1 AND id <> $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(case.owner.as_str())
            .bind(case.person.to_string())
            .bind(case.id.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            widened(conn, &case.owner, added).await
        }

        /// A partner newly tied to a person joins the audience of the person's earlier changes
        /// too: a subscription whose cursor is before them reads them (and the decision at
        /// delivery says what it receives), as if it had been tied all along.
        async fn widen_audience(conn: &mut Conn, partner: &PartnerId, person: PersonId) -> Result<()> {
            let added = sqlx::query(
                "INSERT INTO change_audience (partner_id, position)
                 SELECT $1, position FROM changes WHERE person_id = $2 AND kind NOT IN ('redacted', 'consent_recorded')
                 ON CONFLICT DO NOTHING",
            )
            .bind(partner.as_str())
            .bind(person.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            widened(conn, partner, added).await
        }

        /// `added` earlier changes joined `partner`'s audience.
        async fn widened(conn: &mut Conn, partner: &PartnerId, added: u64) -> Result<()> {
            if added > 0 {
                // The committer tells this partner's subscriptions (here and on the other
                // replicas) that they have something to read behind their cursor.
                sqlx::query("INSERT INTO audience_widened (partner_id) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(partner.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// A consent or mandate names a partner (or a kind of partners): a tie to the person
        /// for the feed's audience (what it receives is decided at delivery).
        async fn tie(conn: &mut Conn, partner: &PartnerId, person: PersonId) -> Result<()> {
            sqlx::query("INSERT INTO person_ties (person_id, partner_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(person.to_string())
                .bind(partner.as_str())
                .execute(&mut *conn)
                .await?;
            widen_audience(conn, partner, person).await
        }

        /// Ties the partners a consent's grantee names.
        async fn tie_grantee(conn: &mut Conn, grantee: &crate::domain::consent::Grantee, person: PersonId) -> Result<()> {
            use crate::domain::consent::Grantee;
            let partners: Vec<PartnerId> = match grantee {
                Grantee::Partner { partner } | Grantee::Agent { partner, .. } => vec![partner.clone()],
                Grantee::Kind { kind } => {
                    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM partners WHERE kind = $1")
                        .bind(kind.as_str())
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.into_iter()
                        .filter_map(|(id,)| PartnerId::parse(&id).ok())
                        .collect()
                }
            };
            for partner in partners {
                tie(conn, &partner, person).await?;
            }
            Ok(())
        }

        async fn insert_person(conn: &mut Conn, at: Timestamp) -> Result<PersonId> {
            let person = PersonId::new();
            sqlx::query("INSERT INTO persons (id, created_at) VALUES ($1, $2)")
                .bind(person.to_string())
                .bind(at.micros())
                .execute(&mut *conn)
                .await?;
            Ok(person)
        }

        async fn insert_link(
            conn: &mut Conn,
            partner: &PartnerId,
            local_id: &LocalId,
            person: PersonId,
            at: Timestamp,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO person_links (partner_id, local_id, person_id, linked_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(partner.as_str())
            .bind(local_id.as_str())
            .bind(person.to_string())
            .bind(at.micros())
            .execute(&mut *conn)
            .await?;
            widen_audience(conn, partner, person).await
        }

        async fn insert_pivot(conn: &mut Conn, key: &PivotKey, person: PersonId) -> Result<()> {
            sqlx::query("INSERT INTO person_pivots (pivot_key, person_id) VALUES ($1, $2)")
                .bind(key.as_str())
                .bind(person.to_string())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn save_partner(conn: &mut Conn, partner: &Partner) -> Result<()> {
            sqlx::query(
                "INSERT INTO partners (id, kind, status, version, doc) VALUES ($1, $2, $3, $4, $5)
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
            conn: &mut Conn,
            partner: Option<&PartnerId>,
            cert: &CertificateRecord,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO certificates (fingerprint, partner_id, not_after, issued_at, awaiting_approval) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (fingerprint) DO NOTHING",
            )
            .bind(&cert.fingerprint)
            .bind(partner.map(PartnerId::as_str))
            .bind(cert.not_after.micros())
            .bind(cert.issued_at.micros())
            .bind(i64::from(cert.awaiting_approval))
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

        fn residence_row(commune: String, partner: String, at: i64) -> Result<Residence> {
            Ok(Residence {
                commune: Commune::parse(&commune).map_err(|e| Error::Internal(e.to_string()))?,
                partner: PartnerId::parse(&partner).map_err(|e| Error::Internal(e.to_string()))?,
                recorded_at: Timestamp::from_micros(at),
            })
        }

        fn after_key(after: Option<&str>) -> String {
            after.unwrap_or("").to_string()
        }

        #[async_trait]
        impl Store for SqlStore {
            async fn register_admin_certificate(&self, cert: &CertificateRecord) -> Result<()> {
                let _timer = crate::telemetry::StoreTimer::start();
                let cert = cert.clone();
                let done = NARROWS.scope(true, self.write(move |conn| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        insert_certificate(conn, None, &cert).await?;
                        Ok(((), None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn principal_by_fingerprint(&self, fingerprint: &str) -> Result<Option<(Principal, CertificateRecord)>> {
                let _timer = crate::telemetry::StoreTimer::start();
                // Another replica may have changed a partner: the cache is cleared first then.
                principals_current(&self.read, &self.principals).await?;
                if let Some(found) = self.principals.get(fingerprint) {
                    return Ok(Some(found));
                }
                let generation = self.principals.generation();
                let found = self.read_principal(fingerprint).await?;
                if let Some(found) = &found {
                    self.principals.put(fingerprint, found, generation);
                }
                Ok(found)
            }

            async fn add_administrator(&self, name: &str, cert: CertificateRecord, meta: &WriteMeta) -> Result<()> {
                let _timer = crate::telemetry::StoreTimer::start();
                let name = name.to_string();
                let done = NARROWS.scope(true, self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let taken: Option<(String,)> = sqlx::query_as(
                            "SELECT fingerprint FROM certificates WHERE partner_id IS NULL AND name = $1 AND revoked_at IS NULL",
                        )
                        .bind(&name)
                        .fetch_optional(&mut *conn)
                        .await?;
                        if taken.is_some() {
                            return Err(Error::AlreadyExists(format!(
                                "administrator `{name}` already has a certificate: revoke it first to issue another"
                            )));
                        }
                        insert_certificate(conn, None, &cert).await?;
                        sqlx::query("UPDATE certificates SET name = $1 WHERE fingerprint = $2")
                            .bind(&name)
                            .bind(&cert.fingerprint)
                            .execute(&mut *conn)
                            .await?;
                        Ok(((), None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn revoke_administrator(&self, name: &str, meta: &WriteMeta) -> Result<u32> {
                let _timer = crate::telemetry::StoreTimer::start();
                let name = name.to_string();
                let done = NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let revoked = sqlx::query(
                            "UPDATE certificates SET revoked_at = $1
                             WHERE partner_id IS NULL AND name = $2 AND (revoked_at IS NULL OR revoked_at > $1)",
                        )
                        .bind(meta.at.micros())
                        .bind(&name)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected() as u32;
                        if revoked == 0 {
                            return Err(Error::not_found("administrator", &name));
                        }
                        Ok((revoked, None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn administrators(&self) -> Result<Vec<(String, CertificateRecord)>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(String, String, i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT name, fingerprint, not_after, issued_at, revoked_at FROM certificates
                     WHERE partner_id IS NULL ORDER BY name, issued_at",
                )
                .fetch_all(&self.read)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(name, fingerprint, not_after, issued_at, revoked_at)| {
                        (
                            if name.is_empty() { "admin".to_string() } else { name },
                            CertificateRecord {
                                fingerprint,
                                serial: String::new(),
                                not_after: Timestamp::from_micros(not_after),
                                issued_at: Timestamp::from_micros(issued_at),
                                pem: String::new(),
                                revoked_at: revoked_at.map(Timestamp::from_micros),
                                revocation_reason: String::new(),
                                awaiting_approval: false,
                            },
                        )
                    })
                    .collect())
            }

            async fn revoke_certificate(&self, fingerprint: &str, reason: String, meta: &WriteMeta) -> Result<Option<PartnerId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let fingerprint = fingerprint.to_string();
                let done = NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let row: Option<(Option<String>, Option<i64>)> =
                            sqlx::query_as("SELECT partner_id, revoked_at FROM certificates WHERE fingerprint = $1")
                                .bind(&fingerprint)
                                .fetch_optional(&mut *conn)
                                .await?;
                        let Some((partner, revoked_at)) = row else {
                            return Err(Error::not_found("certificate", &fingerprint));
                        };
                        let at = revoked_at.map_or(meta.at, |r| Timestamp::from_micros(r).min(meta.at));
                        sqlx::query("UPDATE certificates SET revoked_at = $1 WHERE fingerprint = $2")
                            .bind(at.micros())
                            .bind(&fingerprint)
                            .execute(&mut *conn)
                            .await?;
                        let Some(partner) = partner else { return Ok((None, None)) };
                        let mut doc: Partner = load_doc(conn, "partners", "partner", partner.clone()).await?;
                        for c in doc.certificates.iter_mut().filter(|c| c.fingerprint == fingerprint) {
                            c.revoked_at = Some(at);
                            c.revocation_reason = reason.clone();
                        }
                        doc.version += 1;
                        doc.updated_at = meta.at;
                        save_partner(conn, &doc).await?;
                        Ok((Some(doc.id), None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn approve_certificate(&self, fingerprint: &str, meta: &WriteMeta) -> Result<Option<PartnerId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let fingerprint = fingerprint.to_string();
                let done = self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let row: Option<(Option<String>,)> =
                            sqlx::query_as("SELECT partner_id FROM certificates WHERE fingerprint = $1")
                                .bind(&fingerprint)
                                .fetch_optional(&mut *conn)
                                .await?;
                        let Some((partner,)) = row else {
                            return Err(Error::not_found("certificate", &fingerprint));
                        };
                        sqlx::query("UPDATE certificates SET awaiting_approval = 0 WHERE fingerprint = $1")
                            .bind(&fingerprint)
                            .execute(&mut *conn)
                            .await?;
                        let Some(partner) = partner else { return Ok((None, None)) };
                        let mut doc: Partner = load_doc(conn, "partners", "partner", partner.clone()).await?;
                        for c in doc.certificates.iter_mut().filter(|c| c.fingerprint == fingerprint) {
                            c.awaiting_approval = false;
                        }
                        doc.version += 1;
                        doc.updated_at = meta.at;
                        save_partner(conn, &doc).await?;
                        Ok((Some(doc.id), None))
                    })
                })
                .await;
                self.cleared(done)
            }

            async fn add_partner(&self, partner: Partner, meta: &WriteMeta) -> Result<Partner> {
                let _timer = crate::telemetry::StoreTimer::start();
                let done = NARROWS.scope(true, self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM partners WHERE id = $1")
                            .bind(partner.id.as_str())
                            .fetch_optional(&mut *conn)
                            .await?;
                        if exists.is_some() {
                            return Err(Error::AlreadyExists(format!("partner `{}` already exists", partner.id)));
                        }
                        save_partner(conn, &partner).await?;
                        for cert in &partner.certificates {
                            insert_certificate(conn, Some(&partner.id), cert).await?;
                        }
                        Ok((partner, None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn add_certificate(&self, id: &PartnerId, cert: CertificateRecord, retire_others_at: Option<Timestamp>) -> Result<Partner> {
                let _timer = crate::telemetry::StoreTimer::start();
                let id = id.clone();
                let done = NARROWS.scope(true, self.write(move |conn| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let mut partner: Partner = load_doc(conn, "partners", "partner", id.to_string()).await?;
                        insert_certificate(conn, Some(&id), &cert).await?;
                        if let Some(at) = retire_others_at {
                            sqlx::query(
                                "UPDATE certificates SET revoked_at = $1
                                 WHERE partner_id = $2 AND fingerprint <> $3 AND (revoked_at IS NULL OR revoked_at > $1)",
                            )
                            .bind(at.micros())
                            .bind(id.as_str())
                            .bind(&cert.fingerprint)
                            .execute(&mut *conn)
                            .await?;
                            for c in partner.certificates.iter_mut() {
                                if c.revoked_at.is_none_or(|r| r > at) {
                                    c.revoked_at = Some(at);
                                    c.revocation_reason = format!("retired: certificate {} replaces it", cert.fingerprint);
                                }
                            }
                        }
                        partner.updated_at = cert.issued_at;
                        partner.certificates.push(cert);
                        partner.version += 1;
                        save_partner(conn, &partner).await?;
                        Ok((partner, None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn set_partner_status(
                &self,
                id: &PartnerId,
                status: PartnerStatus,
                reason: String,
                meta: &WriteMeta,
            ) -> Result<Partner> {
                let _timer = crate::telemetry::StoreTimer::start();
                let id = id.clone();
                let done = NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        principals_changed(conn).await?;
                        let mut partner: Partner = load_doc(conn, "partners", "partner", id.to_string()).await?;
                        if partner.status != status {
                            partner.status = status;
                            partner.status_reason = reason;
                            partner.updated_at = meta.at;
                            partner.version += 1;
                            save_partner(conn, &partner).await?;
                        }
                        Ok((partner, None))
                    })
                })
                )
                .await;
                self.cleared(done)
            }

            async fn get_partner(&self, id: &PartnerId) -> Result<Option<Partner>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM partners WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn list_partners(&self, after: Option<&str>, limit: u32) -> Result<Vec<Partner>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as("SELECT doc FROM partners WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after_key(after))
                    .bind(i64::from(limit))
                    .fetch_all(&self.read)
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
                let _timer = crate::telemetry::StoreTimer::start();
                let (partner, local_id) = (partner.clone(), local_id.clone());
                self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let existing: Option<(String,)> = sqlx::query_as(
                            "SELECT person_id FROM person_links WHERE partner_id = $1 AND local_id = $2",
                        )
                        .bind(partner.as_str())
                        .bind(local_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                        let existing = existing.map(|(p,)| person_id(&p)).transpose()?;
                        let result = match target {
                            LinkTarget::Person(person) => match existing {
                                Some(linked) if linked == person => LinkResult {
                                    person,
                                    outcome: LinkOutcome::AlreadyLinked,
                                },
                                Some(_) => return Err(Error::link_conflict(&local_id)),
                                None => {
                                    let known: Option<(String,)> = sqlx::query_as("SELECT id FROM persons WHERE id = $1")
                                        .bind(person.to_string())
                                        .fetch_optional(&mut *conn)
                                        .await?;
                                    if known.is_none() {
                                        return Err(Error::not_found("person", person));
                                    }
                                    insert_link(conn, &partner, &local_id, person, meta.at).await?;
                                    LinkResult {
                                        person,
                                        outcome: LinkOutcome::LinkedById,
                                    }
                                }
                            },
                            LinkTarget::Pivot(key) => {
                                let matched: Option<(String,)> =
                                    sqlx::query_as("SELECT person_id FROM person_pivots WHERE pivot_key = $1")
                                        .bind(key.as_str())
                                        .fetch_optional(&mut *conn)
                                        .await?;
                                let matched = matched.map(|(p,)| person_id(&p)).transpose()?;
                                match (existing, matched) {
                                    (Some(linked), Some(person)) if linked == person => LinkResult {
                                        person,
                                        outcome: LinkOutcome::AlreadyLinked,
                                    },
                                    // One local id names one person: other traits — someone
                                    // else's or nobody's, even for a person linked without
                                    // traits — are refused alike and attach nothing (telling
                                    // the two apart would say whether the traits are known).
                                    (Some(_), _) => return Err(Error::link_conflict(&local_id)),
                                    (None, Some(person)) => {
                                        insert_link(conn, &partner, &local_id, person, meta.at).await?;
                                        LinkResult {
                                            person,
                                            outcome: LinkOutcome::MatchedByPivot,
                                        }
                                    }
                                    (None, None) => {
                                        let person = insert_person(conn, meta.at).await?;
                                        insert_pivot(conn, &key, person).await?;
                                        insert_link(conn, &partner, &local_id, person, meta.at).await?;
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
                                    let person = insert_person(conn, meta.at).await?;
                                    insert_link(conn, &partner, &local_id, person, meta.at).await?;
                                    LinkResult {
                                        person,
                                        outcome: LinkOutcome::Created,
                                    }
                                }
                            },
                        };
                        Ok((result, None))
                    })
                })
                .await
            }

            async fn unlink_person(&self, partner: &PartnerId, local_id: &LocalId, meta: &WriteMeta) -> Result<PersonId> {
                let _timer = crate::telemetry::StoreTimer::start();
                let (partner, local_id) = (partner.clone(), local_id.clone());
                NARROWS.scope(true, self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        let row: Option<(String,)> = sqlx::query_as(
                            "DELETE FROM person_links WHERE partner_id = $1 AND local_id = $2 RETURNING person_id",
                        )
                        .bind(partner.as_str())
                        .bind(local_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                        let Some((person,)) = row else {
                            return Err(Error::not_found("local id", &local_id));
                        };
                        let person = person_id(&person)?;
                        Ok((person, None))
                    })
                })
                )
                .await
            }

            async fn person_by_local_id(&self, partner: &PartnerId, local_id: &LocalId) -> Result<Option<PersonId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT person_id FROM person_links WHERE partner_id = $1 AND local_id = $2",
                )
                .bind(partner.as_str())
                .bind(local_id.as_str())
                .fetch_optional(&self.read)
                .await?;
                row.map(|(p,)| person_id(&p)).transpose()
            }

            async fn persons_by_reference(&self, prefix: &str, limit: u32) -> Result<Vec<PersonId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                // A range on the primary key, from the prefix to the next hexadecimal number
                // (digits and a–f sort alike in every collation).
                let Some(upper) = crate::documents::reference_successor(prefix) else {
                    return Ok(vec![]);
                };
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT id FROM persons WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3")
                        .bind(prefix)
                        .bind(upper)
                        .bind(i64::from(limit))
                        .fetch_all(&self.read)
                        .await?;
                rows.iter().map(|(p,)| person_id(p)).collect()
            }

            async fn person_by_pivot(&self, key: &PivotKey) -> Result<Option<PersonId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT person_id FROM person_pivots WHERE pivot_key = $1")
                    .bind(key.as_str())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(p,)| person_id(&p)).transpose()
            }

            async fn local_ids(&self, partner: &PartnerId, person: PersonId) -> Result<Vec<LocalId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT local_id FROM person_links WHERE person_id = $1 AND partner_id = $2 ORDER BY local_id",
                )
                .bind(person.to_string())
                .bind(partner.as_str())
                .fetch_all(&self.read)
                .await?;
                rows.into_iter()
                    .map(|(l,)| LocalId::parse(&l).map_err(|e| Error::Internal(e.to_string())))
                    .collect()
            }

            async fn set_residence(&self, person: PersonId, residence: Residence, meta: &WriteMeta) -> Result<Residence> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO residences (person_id, commune, partner_id, recorded_at) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (person_id) DO UPDATE
                             SET commune = excluded.commune, partner_id = excluded.partner_id, recorded_at = excluded.recorded_at",
                        )
                        .bind(person.to_string())
                        .bind(residence.commune.as_str())
                        .bind(residence.partner.as_str())
                        .bind(residence.recorded_at.micros())
                        .execute(&mut *conn)
                        .await?;
                        Ok((residence, None))
                    })
                })
                .await
            }

            async fn residence(&self, person: PersonId) -> Result<Option<Residence>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String, String, i64)> = sqlx::query_as(
                    "SELECT commune, partner_id, recorded_at FROM residences WHERE person_id = $1",
                )
                .bind(person.to_string())
                .fetch_optional(&self.read)
                .await?;
                row.map(|(c, p, at)| residence_row(c, p, at)).transpose()
            }

            async fn residences(&self, after: Option<PersonId>, limit: u32) -> Result<Vec<(PersonId, Residence)>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT person_id, commune, partner_id, recorded_at FROM residences WHERE person_id > $1
                     ORDER BY person_id LIMIT $2",
                )
                .bind(after.map(|p| p.to_string()).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                rows.into_iter()
                    .map(|(person, c, p, at)| {
                        let person = PersonId::parse(&person).map_err(|e| Error::Internal(e.to_string()))?;
                        Ok((person, residence_row(c, p, at)?))
                    })
                    .collect()
            }

            async fn set_accessibility(&self, person: PersonId, profile: Profile, meta: &WriteMeta) -> Result<Profile> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        let (version,): (i64,) = sqlx::query_as(
                            "SELECT COALESCE(MAX(version), 0) + 1 FROM accessibility_profiles WHERE person_id = $1",
                        )
                        .bind(person.to_string())
                        .fetch_one(&mut *conn)
                        .await?;
                        let profile = Profile { version, ..profile };
                        sqlx::query(
                            "INSERT INTO accessibility_profiles (person_id, version, doc, recorded_at) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (person_id) DO UPDATE SET version = excluded.version, doc = excluded.doc,
                             recorded_at = excluded.recorded_at",
                        )
                        .bind(person.to_string())
                        .bind(version)
                        .bind(serde_json::to_string(&profile)?)
                        .bind(profile.recorded_at.micros())
                        .execute(&mut *conn)
                        .await?;
                        Ok((profile, None))
                    })
                })
                .await
            }

            async fn accessibility(&self, person: PersonId) -> Result<Option<Profile>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM accessibility_profiles WHERE person_id = $1")
                    .bind(person.to_string())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn facts_of(&self, partner: &PartnerId, person: PersonId) -> Result<crate::store::FactRows> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                    "SELECT 'relation',
                        CASE WHEN EXISTS (SELECT 1 FROM person_links WHERE person_id = $1 AND partner_id = $2) THEN 'l' ELSE '-' END
                        || CASE WHEN EXISTS (SELECT 1 FROM cases WHERE person_id = $1 AND owner = $2) THEN 'c' ELSE '-' END
                        || CASE WHEN EXISTS (SELECT 1 FROM referrals WHERE person_id = $1 AND from_partner = $2) THEN 's' ELSE '-' END
                        || CASE WHEN EXISTS (SELECT 1 FROM referrals WHERE person_id = $1 AND to_partner = $2) THEN 'r' ELSE '-' END
                        || CASE WHEN EXISTS (SELECT 1 FROM cases WHERE person_id = $1 AND owner = $2
                                AND status IN ('sent', 'acknowledged', 'in_progress', 'waiting_person', 'waiting_documents', 'waiting_third_party', 'waiting_appointment'))
                           THEN 'o' ELSE '-' END
                     UNION ALL SELECT 'rules', CAST(COALESCE(MAX(version), 0) AS TEXT) FROM rules
                     UNION ALL SELECT 'alert', doc FROM settings WHERE key = 'alert_plan'
                     UNION ALL SELECT 'consent', doc FROM consents WHERE person_id = $1
                     UNION ALL SELECT 'mandate', doc FROM mandates WHERE person_id = $1
                     UNION ALL SELECT 'referral', doc FROM referrals WHERE person_id = $1 AND (from_partner = $2 OR to_partner = $2)",
                )
                .bind(person.to_string())
                .bind(partner.as_str())
                .fetch_all(&self.read)
                .await?;
                let mut facts = crate::store::FactRows::default();
                for (kind, doc) in rows {
                    let doc = doc.unwrap_or_default();
                    match kind.as_str() {
                        "relation" => {
                            let b = doc.as_bytes();
                            let at = |i: usize, c: u8| b.get(i) == Some(&c);
                            facts.relation = Relation {
                                linked: at(0, b'l'),
                                owns_case: at(1, b'c'),
                                open_case: at(4, b'o'),
                                referral_party: at(2, b's') || at(3, b'r'),
                                sent_referral: at(2, b's'),
                                received_referral: at(3, b'r'),
                            };
                        }
                        "rules" => {
                            facts.rules_version = doc
                                .parse()
                                .map_err(|_| Error::Internal(format!("rules version `{doc}`")))?;
                        }
                        "alert" => facts.alert_plan = serde_json::from_str(&doc)?,
                        "consent" => facts.consents.push(serde_json::from_str(&doc)?),
                        "mandate" => facts.mandates.push(serde_json::from_str(&doc)?),
                        "referral" => facts.referrals.push(serde_json::from_str(&doc)?),
                        other => return Err(Error::Internal(format!("unexpected fact `{other}`"))),
                    }
                }
                // As the separate reads gave them: by id.
                facts.consents.sort_by_key(|c| c.id.to_string());
                facts.mandates.sort_by_key(|m| m.id.to_string());
                facts.referrals.sort_by_key(|r| r.id.to_string());
                Ok(facts)
            }

            async fn merge_persons(&self, kept: PersonId, merged: PersonId, meta: &WriteMeta) -> Result<u32> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        for id in [kept, merged] {
                            let known: Option<(String,)> = sqlx::query_as("SELECT id FROM persons WHERE id = $1")
                                .bind(id.to_string())
                                .fetch_optional(&mut *conn)
                                .await?;
                            if known.is_none() {
                                return Err(Error::not_found("person", id));
                            }
                        }
                        let (k, m) = (kept.to_string(), merged.to_string());
                        let moved = sqlx::query("UPDATE person_links SET person_id = $1 WHERE person_id = $2")
                            .bind(&k)
                            .bind(&m)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected() as u32;
                        sqlx::query("UPDATE person_pivots SET person_id = $1 WHERE person_id = $2")
                            .bind(&k)
                            .bind(&m)
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("UPDATE disclosures SET person_id = $1 WHERE person_id = $2")
                            .bind(&k)
                            .bind(&m)
                            .execute(&mut *conn)
                            .await?;
                        let mut position = None;
                        // Flags: an active one that `kept` already has from the same partner is
                        // a duplicate, retracted with the reason.
                        let rows: Vec<(String,)> = sqlx::query_as("SELECT doc FROM flags WHERE person_id = $1 ORDER BY id")
                            .bind(&m)
                            .fetch_all(&mut *conn)
                            .await?;
                        for mut flag in docs::<Flag>(rows)? {
                            flag.person = kept;
                            if flag.retraction.is_none() {
                                let twin: Option<(String,)> = sqlx::query_as(
                                    "SELECT id FROM flags WHERE person_id = $1 AND code = $2 AND source = $3 AND active = $4",
                                )
                                .bind(&k)
                                .bind(flag.code.code())
                                .bind(flag.source_partner.as_str())
                                .bind(true)
                                .fetch_optional(&mut *conn)
                                .await?;
                                if twin.is_some() {
                                    let source = flag.source_partner.clone();
                                    flag = flag.retract(crate::domain::flag::Retraction {
                                        at: meta.at,
                                        partner: source,
                                        agent: AgentId::system(),
                                        reason: "duplicate after the administrator merged two records of the person".into(),
                                    })?;
                                }
                            }
                            let active = flag.retraction.is_none();
                            sqlx::query("UPDATE flags SET person_id = $1, active = $2, version = $3, doc = $4 WHERE id = $5")
                                .bind(&k)
                                .bind(active)
                                .bind(flag.version)
                                .bind(serde_json::to_string(&flag)?)
                                .bind(flag.id.to_string())
                                .execute(&mut *conn)
                                .await?;
                            let kind = if active { ChangeKind::FlagRaised } else { ChangeKind::FlagRetracted };
                            position = Some(append_change(conn, kind, meta, ChangeResource::Flag(flag)).await?);
                        }
                        for case in rehome::<Case>(conn, "cases", kept, merged, |c| (&mut c.person, c.id.to_string())).await? {
                            position = Some(append_change(conn, ChangeKind::CaseTransitioned, meta, ChangeResource::Case(case)).await?);
                        }
                        for referral in rehome::<Referral>(conn, "referrals", kept, merged, |r| (&mut r.person, r.id.to_string())).await? {
                            position = Some(append_change(conn, ChangeKind::ReferralUpdated, meta, ChangeResource::Referral(referral)).await?);
                        }
                        rehome::<Consent>(conn, "consents", kept, merged, |c| (&mut c.person, c.id.to_string())).await?;
                        rehome::<Mandate>(conn, "mandates", kept, merged, |m| (&mut m.person, m.id.to_string())).await?;
                        sqlx::query(
                            "INSERT INTO person_ties (person_id, partner_id) SELECT $1, partner_id FROM person_ties WHERE person_id = $2
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(&k)
                        .bind(&m)
                        .execute(&mut *conn)
                        .await?;
                        // Where the person lives and how to reach them: the newer of the two
                        // records' (the merged record's is gone either way).
                        for (table, columns) in [
                            ("residences", ["commune", "partner_id", "recorded_at"]),
                            ("accessibility_profiles", ["version", "doc", "recorded_at"]),
                        ] {
                            let list = columns.join(", ");
                            let set = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ");
                            sqlx::query(&format!(
                                "INSERT INTO {table} (person_id, {list}) SELECT $1, {list} FROM {table} WHERE person_id = $2
                                 ON CONFLICT (person_id) DO UPDATE SET {set} WHERE excluded.recorded_at > {table}.recorded_at"
                            ))
                            .bind(&k)
                            .bind(&m)
                            .execute(&mut *conn)
                            .await?;
                            sqlx::query(&format!("DELETE FROM {table} WHERE person_id = $1"))
                                .bind(&m)
                                .execute(&mut *conn)
                                .await?;
                        }
                        // Every partner now tied to the kept record hears of its earlier changes.
                        let tied: Vec<(String,)> = sqlx::query_as(
                            "SELECT partner_id FROM person_links WHERE person_id = $1
                             UNION SELECT owner FROM cases WHERE person_id = $1
                             UNION SELECT from_partner FROM referrals WHERE person_id = $1
                             UNION SELECT to_partner FROM referrals WHERE person_id = $1
                             UNION SELECT partner_id FROM person_ties WHERE person_id = $1",
                        )
                        .bind(&k)
                        .fetch_all(&mut *conn)
                        .await?;
                        for (partner,) in tied {
                            let partner = PartnerId::parse(&partner).map_err(|e| Error::Internal(e.to_string()))?;
                            widen_audience(conn, &partner, kept).await?;
                        }
                        Ok((moved, position))
                    })
                })
                )
                .await
            }

            async fn raise_flag(&self, flag: Flag, meta: &WriteMeta) -> Result<(Flag, crate::store::Raised)> {
                let _timer = crate::telemetry::StoreTimer::start();
                use crate::store::Raised;
                self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let active: Option<(String,)> = sqlx::query_as(
                            "SELECT doc FROM flags WHERE person_id = $1 AND code = $2 AND source = $3 AND active = $4",
                        )
                        .bind(flag.person.to_string())
                        .bind(flag.code.code())
                        .bind(flag.source_partner.as_str())
                        .bind(true)
                        .fetch_optional(&mut *conn)
                        .await?;
                        if let Some((doc,)) = active {
                            let held: Flag = serde_json::from_str(&doc)?;
                            let Some(requalified) = held.requalify(&flag, meta.at.day()) else {
                                return Ok(((held, Raised::Unchanged), None));
                            };
                            sqlx::query("UPDATE flags SET version = $1, doc = $2, valid_until = $3 WHERE id = $4 AND version = $5")
                                .bind(requalified.version)
                                .bind(serde_json::to_string(&requalified)?)
                                .bind(requalified.valid_until.map(|d| d.to_string()))
                                .bind(requalified.id.to_string())
                                .bind(held.version)
                                .execute(&mut *conn)
                                .await?;
                            let position = append_change(conn, ChangeKind::FlagRaised, meta, ChangeResource::Flag(requalified.clone())).await?;
                            return Ok(((requalified, Raised::Requalified), Some(position)));
                        }
                        sqlx::query(
                            "INSERT INTO flags (id, person_id, code, active, version, doc, source, valid_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(flag.id.to_string())
                        .bind(flag.person.to_string())
                        .bind(flag.code.code())
                        .bind(true)
                        .bind(flag.version)
                        .bind(serde_json::to_string(&flag)?)
                        .bind(flag.source_partner.as_str())
                        .bind(flag.valid_until.map(|d| d.to_string()))
                        .execute(&mut *conn)
                        .await?;
                        let position =
                            append_change(conn, ChangeKind::FlagRaised, meta, ChangeResource::Flag(flag.clone())).await?;
                        Ok(((flag, Raised::Created), Some(position)))
                    })
                })
                .await
            }

            async fn update_flag(&self, id: FlagId, expected_version: i64, update: Update<Flag>, meta: &WriteMeta) -> Result<Flag> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let current: Flag = load_for_update(conn, "flags", "flag", id.to_string(), expected_version).await?;
                        let flag = update(current)?;
                        let active = flag.status() == FlagStatus::Active;
                        sqlx::query("UPDATE flags SET active = $1, version = $2, doc = $3 WHERE id = $4")
                            .bind(active)
                            .bind(flag.version)
                            .bind(serde_json::to_string(&flag)?)
                            .bind(flag.id.to_string())
                            .execute(&mut *conn)
                            .await?;
                        let kind = if active { ChangeKind::FlagRaised } else { ChangeKind::FlagRetracted };
                        let position = append_change(conn, kind, meta, ChangeResource::Flag(flag.clone())).await?;
                        Ok((flag, Some(position)))
                    })
                })
                )
                .await
            }

            async fn get_flag(&self, id: FlagId) -> Result<Option<Flag>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM flags WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn list_flags(&self, person: PersonId, include_retracted: bool, after: Option<&str>, limit: u32) -> Result<Vec<Flag>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as(
                    "SELECT doc FROM flags WHERE person_id = $1 AND ($2 OR active = $3) AND id > $4 ORDER BY id LIMIT $5",
                )
                .bind(person.to_string())
                .bind(include_retracted)
                .bind(true)
                .bind(after_key(after))
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                docs(rows)
            }

            async fn open_case(&self, case: Case, meta: &WriteMeta) -> Result<Case> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        insert_case(conn, &case).await?;
                        let position = append_change(conn, ChangeKind::CaseOpened, meta, ChangeResource::Case(case.clone())).await?;
                        Ok((case, Some(position)))
                    })
                })
                .await
            }

            async fn update_case(
                &self,
                id: CaseId,
                expected_version: i64,
                update: Update<Case, (Case, Option<Case>)>,
                meta: &WriteMeta,
            ) -> Result<(Case, Option<Case>)> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let current: Case = load_for_update(conn, "cases", "case", id.to_string(), expected_version).await?;
                        let owner = current.owner.clone();
                        let (case, child) = update(current)?;
                        if case.owner != owner {
                            widen_audience(conn, &case.owner, case.person).await?;
                        }
                        sqlx::query("UPDATE cases SET owner = $1, status = $2, version = $3, doc = $4 WHERE id = $5")
                            .bind(case.owner.as_str())
                            .bind(case.status.as_str())
                            .bind(case.version)
                            .bind(serde_json::to_string(&case)?)
                            .bind(case.id.to_string())
                            .execute(&mut *conn)
                            .await?;
                        let mut position =
                            append_change(conn, ChangeKind::CaseTransitioned, meta, ChangeResource::Case(case.clone())).await?;
                        if let Some(child) = &child {
                            insert_case(conn, child).await?;
                            position = append_change(conn, ChangeKind::CaseOpened, meta, ChangeResource::Case(child.clone())).await?;
                        }
                        let result = (case, child);
                        Ok((result, Some(position)))
                    })
                })
                )
                .await
            }

            async fn get_case(&self, id: CaseId) -> Result<Option<Case>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM cases WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn list_cases(&self, filter: &CaseFilter, after: Option<&str>, limit: u32) -> Result<Vec<Case>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let mut q = QueryBuilder::<$db>::new("SELECT doc FROM cases WHERE id > ");
                q.push_bind(after_key(after));
                if let Some(owner) = &filter.owner {
                    q.push(" AND owner = ").push_bind(owner.as_str().to_string());
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
                let rows = q.build_query_as().fetch_all(&self.read).await?;
                docs(rows)
            }

            async fn send_referral(&self, referral: Referral, meta: &WriteMeta) -> Result<Referral> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO referrals (id, case_id, person_id, from_partner, to_partner, state, version, doc, due_date, next_reminder)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(referral.id.to_string())
                        .bind(referral.case.to_string())
                        .bind(referral.person.to_string())
                        .bind(referral.from.as_str())
                        .bind(referral.to.as_str())
                        .bind(referral.state.as_str())
                        .bind(referral.version)
                        .bind(serde_json::to_string(&referral)?)
                        .bind(referral.due_date.map(|d| d.to_string()))
                        .bind(referral.next_reminder().map(|(day, _)| day.to_string()))
                        .execute(&mut *conn)
                        .await?;
                        widen_audience(conn, &referral.from, referral.person).await?;
                        widen_audience(conn, &referral.to, referral.person).await?;
                        let position =
                            append_change(conn, ChangeKind::ReferralSent, meta, ChangeResource::Referral(referral.clone())).await?;
                        Ok((referral, Some(position)))
                    })
                })
                .await
            }

            async fn update_referral(
                &self,
                id: ReferralId,
                expected_version: i64,
                update: Update<Referral>,
                meta: &WriteMeta,
            ) -> Result<Referral> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let current: Referral =
                            load_for_update(conn, "referrals", "referral", id.to_string(), expected_version).await?;
                        let referral = update(current)?;
                        save_referral(conn, &referral).await?;
                        let position =
                            append_change(conn, ChangeKind::ReferralUpdated, meta, ChangeResource::Referral(referral.clone())).await?;
                        Ok((referral, Some(position)))
                    })
                })
                )
                .await
            }

            async fn get_referral(&self, id: ReferralId) -> Result<Option<Referral>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM referrals WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn referrals_of_person(&self, person: PersonId, limit: u32) -> Result<Vec<Referral>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as("SELECT doc FROM referrals WHERE person_id = $1 ORDER BY id LIMIT $2")
                    .bind(person.to_string())
                    .bind(i64::from(limit))
                    .fetch_all(&self.read)
                    .await?;
                docs(rows)
            }

            async fn list_referrals(&self, filter: &ReferralFilter, after: Option<&str>, limit: u32) -> Result<Vec<Referral>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let mut q = QueryBuilder::<$db>::new("SELECT doc FROM referrals WHERE id > ");
                q.push_bind(after_key(after));
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
                if let Some(today) = filter.overdue_on {
                    q.push(" AND state IN ('sent', 'acknowledged') AND due_date < ")
                        .push_bind(today.to_string());
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
                let rows = q.build_query_as().fetch_all(&self.read).await?;
                docs(rows)
            }

            async fn grant_consent(&self, consent: Consent, notice: ConsentNotice, meta: &WriteMeta) -> Result<Consent> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        save_record(conn, &consent, false).await?;
                        tie_grantee(conn, &consent.grantee, consent.person).await?;
                        let position =
                            append_change(conn, ChangeKind::ConsentRecorded, meta, ChangeResource::ConsentNotice(notice)).await?;
                        Ok((consent, Some(position)))
                    })
                })
                .await
            }

            async fn countersign_consent(&self, id: ConsentId, update: Update<Consent>, meta: &WriteMeta) -> Result<Consent> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        let current: Consent = load_doc(conn, "consents", "consent", id.to_string()).await?;
                        let consent = update(current)?;
                        save_record(conn, &consent, false).await?;
                        Ok((consent, None))
                    })
                })
                .await
            }

            async fn withdraw_consent(&self, id: ConsentId, update: Update<Consent>, meta: &WriteMeta) -> Result<(Consent, Vec<Redaction>)> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let current: Consent = load_doc(conn, "consents", "consent", id.to_string()).await?;
                        let consent = update(current)?;
                        let (redactions, position) = end_consent(conn, &consent, meta).await?;
                        let result = (consent, redactions);
                        Ok((result, position))
                    })
                })
                )
                .await
            }

            async fn get_consent(&self, id: ConsentId) -> Result<Option<Consent>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM consents WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn consents_of(&self, person: PersonId) -> Result<Vec<Consent>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as("SELECT doc FROM consents WHERE person_id = $1 ORDER BY id")
                    .bind(person.to_string())
                    .fetch_all(&self.read)
                    .await?;
                docs(rows)
            }

            async fn grant_mandate(&self, mandate: Mandate, meta: &WriteMeta) -> Result<Mandate> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        save_record(conn, &mandate, false).await?;
                        sqlx::query(
                            "INSERT INTO mandate_holders (mandate_id, partner_id, agent) VALUES ($1, $2, $3)
                             ON CONFLICT (mandate_id) DO NOTHING",
                        )
                        .bind(mandate.id.to_string())
                        .bind(mandate.partner.as_str())
                        .bind(mandate.agent.as_str())
                        .execute(&mut *conn)
                        .await?;
                        tie(conn, &mandate.partner, mandate.person).await?;
                        Ok((mandate, None))
                    })
                })
                .await
            }

            async fn revoke_mandate(&self, id: MandateId, update: Update<Mandate>, meta: &WriteMeta) -> Result<(Mandate, Vec<Redaction>)> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let current: Mandate = load_doc(conn, "mandates", "mandate", id.to_string()).await?;
                        let mandate = update(current)?;
                        let (redactions, position) = end_mandate(conn, &mandate, meta).await?;
                        let result = (mandate, redactions);
                        Ok((result, position))
                    })
                })
                )
                .await
            }

            async fn get_mandate(&self, id: MandateId) -> Result<Option<Mandate>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM mandates WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.read)
                    .await?;
                row.map(|(doc,)| serde_json::from_str(&doc).map_err(Error::from)).transpose()
            }

            async fn mandates_held(&self, partner: &PartnerId, agent: &AgentId) -> Result<Vec<Mandate>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as(
                    "SELECT m.doc FROM mandates m JOIN mandate_holders h ON h.mandate_id = m.id
                     WHERE h.partner_id = $1 AND h.agent = $2 AND m.ended = $3 ORDER BY m.id LIMIT 1000",
                )
                .bind(partner.as_str())
                .bind(agent.as_str())
                .bind(false)
                .fetch_all(&self.read)
                .await?;
                docs(rows)
            }

            async fn mandates_of(&self, person: PersonId) -> Result<Vec<Mandate>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as("SELECT doc FROM mandates WHERE person_id = $1 ORDER BY id")
                    .bind(person.to_string())
                    .fetch_all(&self.read)
                    .await?;
                docs(rows)
            }

            async fn apply_expiries(&self, now: Timestamp, limit: u32) -> Result<Expiries> {
                let _timer = crate::telemetry::StoreTimer::start();
                // Most runs find nothing: asked on the read pool first, so an idle run is no
                // write (a narrowing write would end every shared feed decision).
                let (anything,): (bool,) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM consents WHERE ended = $1 AND expires_at <= $2)
                         OR EXISTS (SELECT 1 FROM mandates WHERE ended = $1 AND expires_at <= $2)
                         OR EXISTS (SELECT 1 FROM flags WHERE active = $3 AND valid_until IS NOT NULL AND valid_until < $4)
                         OR EXISTS (SELECT 1 FROM referrals WHERE next_reminder IS NOT NULL AND next_reminder <= $4)",
                )
                .bind(false)
                .bind(now.micros())
                .bind(true)
                .bind(now.day().to_string())
                .fetch_one(&self.read)
                .await?;
                if !anything {
                    return Ok(Expiries::default());
                }
                NARROWS.scope(true, self.write(move |conn| {
                    Box::pin(async move {
                        let mut done = Expiries::default();
                        let mut position = None;
                        let meta = WriteMeta {
                            principal: "hub".into(),
                            agent: AgentId::system(),
                            request_id: crate::domain::RequestId::parse(&uuid::Uuid::now_v7().to_string())
                                .map_err(|e| Error::Internal(e.to_string()))?,
                            fingerprint: String::new(),
                            at: now,
                            audit: vec![],
                        };
                        let mut audit = Vec::new();
                        let mut note = |person: PersonId, record: String, redactions: &[Redaction]| {
                            let mut e = AuditEntry::new(now, "hub", "system", "end:expiry".to_string());
                            e.person = Some(person);
                            e.records = vec![record.clone()];
                            e.detail = format!(
                                "{record} expired; redactions sent to {}",
                                if redactions.is_empty() {
                                    "nobody".to_string()
                                } else {
                                    redactions.iter().map(|r| r.partner.to_string()).collect::<Vec<_>>().join(", ")
                                }
                            );
                            audit.push(e);
                        };
                        for consent in due::<Consent>(conn, now, limit).await? {
                            let (redactions, p) = end_consent(conn, &consent, &meta).await?;
                            position = position.max(p);
                            done.consents += 1;
                            done.redactions += redactions.len() as u32;
                            note(consent.person, format!("consent:{}", consent.id), &redactions);
                        }
                        for mandate in due::<Mandate>(conn, now, limit).await? {
                            let (redactions, p) = end_mandate(conn, &mandate, &meta).await?;
                            position = position.max(p);
                            done.mandates += 1;
                            done.redactions += redactions.len() as u32;
                            note(mandate.person, format!("mandate:{}", mandate.id), &redactions);
                        }
                        // A flag is valid through its valid_until day (UTC).
                        let rows: Vec<(String,)> = sqlx::query_as(
                            "SELECT doc FROM flags WHERE active = $1 AND valid_until IS NOT NULL AND valid_until < $2 ORDER BY valid_until LIMIT $3",
                        )
                        .bind(true)
                        .bind(now.day().to_string())
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await?;
                        for flag in docs::<Flag>(rows)? {
                            let until = flag.valid_until.map(|d| d.to_string()).unwrap_or_default();
                            let retraction = crate::domain::flag::Retraction {
                                at: now,
                                partner: flag.source_partner.clone(),
                                agent: AgentId::system(),
                                reason: format!("valid until {until}: expired"),
                            };
                            let flag = flag.retract(retraction)?;
                            sqlx::query("UPDATE flags SET active = $1, version = $2, doc = $3 WHERE id = $4")
                                .bind(false)
                                .bind(flag.version)
                                .bind(serde_json::to_string(&flag)?)
                                .bind(flag.id.to_string())
                                .execute(&mut *conn)
                                .await?;
                            position = position.max(Some(
                                append_change(conn, ChangeKind::FlagRetracted, &meta, ChangeResource::Flag(flag.clone())).await?,
                            ));
                            let item = Item::Flag(flag.id);
                            let rows: Vec<(String,)> = sqlx::query_as(
                                "SELECT partner_id FROM disclosures WHERE item = $1 ORDER BY partner_id",
                            )
                            .bind(item.key())
                            .fetch_all(&mut *conn)
                            .await?;
                            let record = format!("flag:{}", flag.id);
                            let mut redactions = Vec::new();
                            for (partner,) in rows {
                                redactions.push(Redaction {
                                    person: flag.person,
                                    partner: PartnerId::parse(&partner).map_err(|e| Error::Internal(e.to_string()))?,
                                    items: vec![item],
                                    categories: vec![flag.code.category().into()],
                                    reason: format!("the flag was valid until {until}"),
                                    record: record.clone(),
                                });
                            }
                            position = position.max(apply_redactions(conn, &redactions, &meta).await?);
                            done.flags += 1;
                            done.redactions += redactions.len() as u32;
                            note(flag.person, record, &redactions);
                        }
                        // Referrals whose reminder is due: each step once (the row's next
                        // reminder moves with it, in this transaction; replicas take turns at
                        // the write lock), in order when several fell while the hub was down.
                        let today = now.day();
                        let rows: Vec<(String,)> = sqlx::query_as(
                            "SELECT doc FROM referrals WHERE next_reminder IS NOT NULL AND next_reminder <= $1 ORDER BY next_reminder LIMIT $2",
                        )
                        .bind(today.to_string())
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await?;
                        for mut referral in docs::<Referral>(rows)? {
                            // Written back whatever happens: a row whose next reminder is stale
                            // (ended, or moved by an older replica) leaves the schedule.
                            save_referral(conn, &referral).await?;
                            while let Some((day, step)) = referral.next_reminder() {
                                if day > today {
                                    break;
                                }
                                referral = referral.remind(step, now);
                                let kind = match step {
                                    crate::domain::referral::Reminder::Due => ChangeKind::ReferralDue,
                                    crate::domain::referral::Reminder::Overdue => ChangeKind::ReferralOverdue,
                                    crate::domain::referral::Reminder::Expire => ChangeKind::ReferralUpdated,
                                };
                                save_referral(conn, &referral).await?;
                                position = position.max(Some(
                                    append_change(conn, kind, &meta, ChangeResource::Referral(referral.clone())).await?,
                                ));
                                done.referral_reminders += 1;
                                if step == crate::domain::referral::Reminder::Expire {
                                    let mut e = AuditEntry::new(now, "hub", "system", "end:expiry".to_string());
                                    e.person = Some(referral.person);
                                    e.records = vec![format!("referral:{}", referral.id)];
                                    e.detail = referral.expiry_reason.clone();
                                    audit.push(e);
                                }
                            }
                        }
                        append_audit(conn, &audit).await?;
                        Ok((done, position))
                    })
                })
                )
                .await
            }

            async fn record_access(&self, entries: Vec<AuditEntry>, disclosures: Vec<Disclosure>) -> Result<Vec<Item>> {
                let _timer = crate::telemetry::StoreTimer::start();
                if entries.is_empty() && disclosures.is_empty() {
                    return Ok(vec![]);
                }
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut ended: HashMap<String, bool> = HashMap::new();
                        let mut withheld = Vec::new();
                        // Checked as of now, the moment of commit, not of the decision.
                        let now = <crate::domain::SystemClock as crate::domain::Clock>::now(&crate::domain::SystemClock);
                        // A flag retracted (or past its valid_until) since the decision does not
                        // leave either: the flags are read again, in one statement.
                        let flags: std::collections::BTreeSet<String> = disclosures
                            .iter()
                            .filter_map(|d| match (d.item, d.current_flag) {
                                (Item::Flag(id), true) => Some(id.to_string()),
                                _ => None,
                            })
                            .collect();
                        let flags: Vec<String> = flags.into_iter().collect();
                        let mut current: HashMap<String, bool> = HashMap::new();
                        for chunk in flags.chunks(1_000) {
                            let mut q = QueryBuilder::<$db>::new("SELECT id, doc FROM flags WHERE id IN (");
                            let mut ids = q.separated(", ");
                            for id in chunk {
                                ids.push_bind(id.clone());
                            }
                            q.push(")");
                            let rows: Vec<(String, String)> =
                                q.build_query_as().persistent(chunk.len() == 1).fetch_all(&mut *conn).await?;
                            for (id, doc) in rows {
                                current.insert(id, serde_json::from_str::<Flag>(&doc)?.current(now.day()));
                            }
                        }
                        let mut given: Vec<(&Disclosure, Timestamp)> = Vec::new();
                        let mut at: HashMap<(&str, String), usize> = HashMap::new();
                        for d in &disclosures {
                            if let (Item::Flag(id), true) = (d.item, d.current_flag)
                                && !current.get(&id.to_string()).copied().unwrap_or(false)
                            {
                                withheld.push(d.item);
                                continue;
                            }
                            if let Some(record) = &d.record {
                                let over = match ended.get(record) {
                                    Some(over) => *over,
                                    None => {
                                        let over = !record_in_force(conn, record, now.max(d.at)).await?;
                                        ended.insert(record.clone(), over);
                                        over
                                    }
                                };
                                if over {
                                    withheld.push(d.item);
                                    continue;
                                }
                            }
                            // One row per partner and item, so one statement never updates a
                            // row twice: the first disclosure, with the time of the last.
                            match at.entry((d.partner.as_str(), d.item.key())) {
                                std::collections::hash_map::Entry::Occupied(i) => {
                                    let (first, last) = &mut given[*i.get()];
                                    if d.at < first.at {
                                        *first = d;
                                    }
                                    *last = (*last).max(d.at);
                                }
                                std::collections::hash_map::Entry::Vacant(v) => {
                                    v.insert(given.len());
                                    given.push((d, d.at));
                                }
                            }
                        }
                        for chunk in given.chunks(1_000) {
                            let mut rows = Vec::with_capacity(chunk.len());
                            for (d, last) in chunk {
                                rows.push((*d, *last, serde_json::to_string(d)?));
                            }
                            QueryBuilder::<$db>::new(
                                "INSERT INTO disclosures (partner_id, item, person_id, category, first_at, last_at, doc) ",
                            )
                            .push_values(rows, |mut b, (d, last, doc)| {
                                b.push_bind(d.partner.as_str().to_string())
                                    .push_bind(d.item.key())
                                    .push_bind(d.person.to_string())
                                    .push_bind(d.category.as_str().to_string())
                                    .push_bind(d.at.micros())
                                    .push_bind(last.micros())
                                    .push_bind(doc);
                            })
                            .push(" ON CONFLICT (partner_id, item) DO UPDATE SET last_at = excluded.last_at")
                            .build()
                            .persistent(chunk.len() == 1)
                            .execute(&mut *conn)
                            .await?;
                        }
                        append_audit(conn, &entries).await?;
                        Ok((withheld, None))
                    })
                })
                .await
            }

            async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<StoredEntry>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
                    "SELECT seq, doc, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after_seq as i64)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
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

            async fn audit_search(&self, query: &AuditQuery) -> Result<Vec<StoredEntry>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let mut q = QueryBuilder::<$db>::new("SELECT seq, doc, prev_hash, hash FROM audit WHERE 1 = 1");
                if let Some(from) = query.from {
                    q.push(" AND at >= ").push_bind(from.micros());
                }
                if let Some(to) = query.to {
                    q.push(" AND at < ").push_bind(to.micros());
                }
                if let Some(person) = query.person {
                    q.push(" AND person_id = ").push_bind(person.to_string());
                }
                if let Some(before) = query.before_seq {
                    q.push(" AND seq < ").push_bind(before as i64);
                }
                q.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(query.limit));
                let rows: Vec<(i64, String, String, String)> =
                    q.build_query_as().fetch_all(&self.read).await?;
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

            async fn add_console_account(&self, account: ConsoleAccount, meta: &WriteMeta) -> Result<()> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        let taken: Option<(String,)> =
                            sqlx::query_as("SELECT name FROM console_accounts WHERE name = $1")
                                .bind(&account.name)
                                .fetch_optional(&mut *conn)
                                .await?;
                        if taken.is_some() {
                            return Err(Error::AlreadyExists(format!(
                                "there is already a console account `{}`",
                                account.name
                            )));
                        }
                        sqlx::query(
                            "INSERT INTO console_accounts
                             (name, role, full_name, password_hash, totp_secret, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(&account.name)
                        .bind(&account.role)
                        .bind(&account.full_name)
                        .bind(&account.password_hash)
                        .bind(&account.totp_secret)
                        .bind(account.created_at.micros())
                        .execute(&mut *conn)
                        .await?;
                        Ok(((), None))
                    })
                })
                .await
            }

            async fn console_account(&self, name: &str) -> Result<Option<ConsoleAccount>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<ConsoleRow> = sqlx::query_as(CONSOLE_SELECT_ONE)
                    .bind(name)
                    .fetch_optional(&self.read)
                    .await?;
                Ok(row.map(console_account))
            }

            async fn console_accounts(&self) -> Result<Vec<ConsoleAccount>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<ConsoleRow> = sqlx::query_as(CONSOLE_SELECT_ALL)
                    .fetch_all(&self.read)
                    .await?;
                Ok(rows.into_iter().map(console_account).collect())
            }

            async fn set_console_account_disabled(&self, name: &str, disabled: bool, meta: &WriteMeta) -> Result<bool> {
                let _timer = crate::telemetry::StoreTimer::start();
                let name = name.to_string();
                self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let changed = sqlx::query(
                            "UPDATE console_accounts SET disabled_at = $1, failures = 0, locked_until = 0 WHERE name = $2",
                        )
                        .bind(disabled.then_some(meta.at.micros()))
                        .bind(&name)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        if disabled {
                            sqlx::query("DELETE FROM console_sessions WHERE account = $1")
                                .bind(&name)
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok((changed > 0, None))
                    })
                })
                .await
            }

            async fn console_login_failed(&self, name: &str, max_failures: u32, lock_until: Timestamp, now: Timestamp) -> Result<(u32, Timestamp)> {
                let _timer = crate::telemetry::StoreTimer::start();
                let name = name.to_string();
                self.write(move |conn| {
                    Box::pin(async move {
                        // (Every expression reads the row as it was: a lock that has ended
                        // counts this failure as the first of a new run.)
                        let row: Option<(i64, i64)> = sqlx::query_as(
                            "UPDATE console_accounts SET
                               failures = CASE WHEN locked_until > 0 AND locked_until <= $4 THEN 1 ELSE failures + 1 END,
                               locked_until = CASE
                                 WHEN (CASE WHEN locked_until > 0 AND locked_until <= $4 THEN 1 ELSE failures + 1 END) >= $2 THEN $3
                                 WHEN locked_until > 0 AND locked_until <= $4 THEN 0
                                 ELSE locked_until END
                             WHERE name = $1 RETURNING failures, locked_until",
                        )
                        .bind(&name)
                        .bind(i64::from(max_failures))
                        .bind(lock_until.micros())
                        .bind(now.micros())
                        .fetch_optional(&mut *conn)
                        .await?;
                        let (failures, until) = row.unwrap_or((0, 0));
                        Ok(((failures as u32, Timestamp::from_micros(until)), None))
                    })
                })
                .await
            }

            async fn console_login_succeeded(&self, name: &str, totp_step: i64, at: Timestamp) -> Result<bool> {
                let _timer = crate::telemetry::StoreTimer::start();
                let name = name.to_string();
                self.write(move |conn| {
                    Box::pin(async move {
                        let changed = sqlx::query(
                            "UPDATE console_accounts SET failures = 0, locked_until = 0,
                               last_totp_step = $2, last_login_at = $3
                             WHERE name = $1 AND last_totp_step < $2 AND locked_until <= $3",
                        )
                        .bind(&name)
                        .bind(totp_step)
                        .bind(at.micros())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        Ok((changed > 0, None))
                    })
                })
                .await
            }

            async fn put_console_session(&self, token_hash: &str, session: &ConsoleSession) -> Result<()> {
                let _timer = crate::telemetry::StoreTimer::start();
                let token_hash = token_hash.to_string();
                let session = session.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO console_sessions (token_hash, account, csrf, created_at, seen_at)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&token_hash)
                        .bind(&session.account)
                        .bind(&session.csrf)
                        .bind(session.created_at.micros())
                        .bind(session.seen_at.micros())
                        .execute(&mut *conn)
                        .await?;
                        Ok(((), None))
                    })
                })
                .await
            }

            async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT account, csrf, created_at, seen_at FROM console_sessions WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.read)
                .await?;
                Ok(row.map(|(account, csrf, created_at, seen_at)| ConsoleSession {
                    account,
                    csrf,
                    created_at: Timestamp::from_micros(created_at),
                    seen_at: Timestamp::from_micros(seen_at),
                }))
            }

            async fn touch_console_session(&self, token_hash: &str, at: Timestamp) -> Result<()> {
                let _timer = crate::telemetry::StoreTimer::start();
                let token_hash = token_hash.to_string();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query("UPDATE console_sessions SET seen_at = $1 WHERE token_hash = $2")
                            .bind(at.micros())
                            .bind(&token_hash)
                            .execute(&mut *conn)
                            .await?;
                        Ok(((), None))
                    })
                })
                .await
            }

            async fn end_console_sessions(&self, token_hash: Option<&str>, idle_before: Timestamp, opened_before: Timestamp) -> Result<u64> {
                let _timer = crate::telemetry::StoreTimer::start();
                let token_hash = token_hash.map(str::to_string);
                self.write(move |conn| {
                    Box::pin(async move {
                        let ended = match token_hash {
                            Some(hash) => sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
                                .bind(&hash)
                                .execute(&mut *conn)
                                .await?,
                            None => sqlx::query("DELETE FROM console_sessions WHERE seen_at < $1 OR created_at < $2")
                                .bind(idle_before.micros())
                                .bind(opened_before.micros())
                                .execute(&mut *conn)
                                .await?,
                        };
                        Ok((ended.rows_affected(), None))
                    })
                })
                .await
            }

            async fn pending_countersignatures(&self, limit: u32) -> Result<Vec<Consent>> {
                let _timer = crate::telemetry::StoreTimer::start();
                // The record's JSON holds `"countersignature":{"at":null,...}` while it waits.
                let rows = sqlx::query_as(
                    "SELECT doc FROM consents WHERE doc LIKE '%\"countersignature\":{\"at\":null%' ORDER BY id LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                let consents: Vec<Consent> = docs(rows)?;
                Ok(consents
                    .into_iter()
                    .filter(|c| c.withdrawal.is_none() && c.countersignature.as_ref().is_some_and(|s| s.at.is_none()))
                    .collect())
            }

            async fn persons_linked_to(&self, partner: &PartnerId, limit: u32) -> Result<Vec<PersonId>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT person_id FROM person_links WHERE partner_id = $1 ORDER BY person_id LIMIT $2",
                )
                .bind(partner.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                rows.into_iter()
                    .map(|(id,)| PersonId::parse(&id).map_err(|e| Error::Internal(format!("stored person id: {e}"))))
                    .collect()
            }

            async fn audit_anchor(&self) -> Result<Anchor> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(i64, String)> = sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                    .fetch_optional(&self.read)
                    .await?;
                Ok(row.map_or_else(Anchor::genesis, |(seq, hash)| Anchor { seq: seq as u64, hash }))
            }

            async fn audit_of_person(&self, person: PersonId) -> Result<Vec<AuditEntry>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows = sqlx::query_as("SELECT doc FROM audit WHERE person_id = $1 ORDER BY seq")
                    .bind(person.to_string())
                    .fetch_all(&self.read)
                    .await?;
                docs(rows)
            }

            async fn purge_audit(&self, before: Timestamp) -> Result<u64> {
                let _timer = crate::telemetry::StoreTimer::start();
                self.write(move |conn| {
                    Box::pin(async move {
                        let last: Option<(i64, String)> =
                            sqlx::query_as("SELECT seq, hash FROM audit WHERE at < $1 ORDER BY seq DESC LIMIT 1")
                                .bind(before.micros())
                                .fetch_optional(&mut *conn)
                                .await?;
                        let Some((seq, hash)) = last else {
                            return Ok((0, None));
                        };
                        let removed = sqlx::query("DELETE FROM audit WHERE seq <= $1")
                            .bind(seq)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        sqlx::query(
                            "INSERT INTO audit_anchor (id, seq, hash, purged_at) VALUES (1, $1, $2, $3)
                             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, purged_at = excluded.purged_at",
                        )
                        .bind(seq)
                        .bind(&hash)
                        .bind(before.micros())
                        .execute(&mut *conn)
                        .await?;
                        Ok((removed, None))
                    })
                })
                .await
            }

            async fn setting_versions(&self, setting: Setting) -> Result<Vec<RulesVersion>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(&format!(
                    "SELECT version, author, comment, created_at, restores FROM {} ORDER BY version",
                    setting.table()
                ))
                .fetch_all(&self.read)
                .await?;
                Ok(rows.into_iter().map(rules_version).collect())
            }

            async fn setting_text(&self, setting: Setting, version: i64) -> Result<Option<String>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as(&format!("SELECT text FROM {} WHERE version = $1", setting.table()))
                    .bind(version)
                    .fetch_optional(&self.read)
                    .await?;
                Ok(row.map(|(t,)| t))
            }

            async fn active_setting(&self, setting: Setting) -> Result<Option<(RulesVersion, String)>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(i64, String, String, i64, Option<i64>, String)> = sqlx::query_as(&format!(
                    "SELECT version, author, comment, created_at, restores, text FROM {} ORDER BY version DESC LIMIT 1",
                    setting.table()
                ))
                .fetch_optional(&self.read)
                .await?;
                Ok(row.map(|(v, a, c, t, r, text)| (rules_version((v, a, c, t, r)), text)))
            }

            async fn add_setting(&self, setting: Setting, text: &str, author: &str, comment: &str, restores: Option<i64>, meta: &WriteMeta) -> Result<RulesVersion> {
                let _timer = crate::telemetry::StoreTimer::start();
                let (text, author, comment) = (text.to_string(), author.to_string(), comment.to_string());
                let table = setting.table();
                NARROWS.scope(setting == Setting::Rules, self.idempotent(meta, move |conn, meta| {
                    Box::pin(async move {
                        let (version,): (i64,) = sqlx::query_as(&format!(
                            "INSERT INTO {table} (version, text, author, comment, created_at, restores)
                             VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM {table}), $1, $2, $3, $4, $5) RETURNING version",
                        ))
                        .bind(&text)
                        .bind(&author)
                        .bind(&comment)
                        .bind(meta.at.micros())
                        .bind(restores)
                        .fetch_one(&mut *conn)
                        .await?;
                        let result = RulesVersion {
                            version,
                            author,
                            comment,
                            created_at: meta.at,
                            restores,
                        };
                        Ok((result, None))
                    })
                })
                )
                .await
            }

            async fn alert_plan(&self) -> Result<AlertPlan> {
                let _timer = crate::telemetry::StoreTimer::start();
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM settings WHERE key = 'alert_plan'")
                    .fetch_optional(&self.read)
                    .await?;
                row.map_or(Ok(AlertPlan::default()), |(doc,)| serde_json::from_str(&doc).map_err(Error::from))
            }

            async fn set_alert_plan(&self, plan: AlertPlan, meta: &WriteMeta) -> Result<AlertPlan> {
                let _timer = crate::telemetry::StoreTimer::start();
                NARROWS.scope(true, self.idempotent(meta, move |conn, _meta| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO settings (key, doc) VALUES ('alert_plan', $1)
                             ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
                        )
                        .bind(serde_json::to_string(&plan)?)
                        .execute(&mut *conn)
                        .await?;
                        Ok((plan, None))
                    })
                })
                )
                .await
            }

            async fn changes_after(&self, position: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
                    "SELECT position, committed_at, kind, principal, agent, doc FROM changes
                     WHERE position > $1 ORDER BY position LIMIT $2",
                )
                .bind(i64::try_from(position).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                rows.into_iter().map(change_record).collect()
            }

            async fn changes_for(&self, partner: &PartnerId, after: u64, upto: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
                let _timer = crate::telemetry::StoreTimer::start();
                let rows: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
                    "SELECT c.position, c.committed_at, c.kind, c.principal, c.agent, c.doc
                     FROM change_audience a JOIN changes c ON c.position = a.position
                     WHERE a.partner_id = $1 AND a.position > $2 AND a.position <= $3
                     ORDER BY a.position LIMIT $4",
                )
                .bind(partner.as_str())
                .bind(after as i64)
                .bind(upto as i64)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                self.rows_read.fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
                rows.into_iter().map(change_record).collect()
            }

            fn decisions_epoch(&self) -> u64 {
                self.epoch.load(std::sync::atomic::Ordering::Acquire)
            }

            fn feed_rows_read(&self) -> u64 {
                self.rows_read.load(std::sync::atomic::Ordering::Relaxed)
            }

            fn latest_for(&self, partner: &PartnerId) -> u64 {
                self.audience.latest(partner.as_str())
            }

            async fn head_position(&self) -> Result<u64> {
                let _timer = crate::telemetry::StoreTimer::start();
                let (position,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM changes")
                    .fetch_one(&self.read)
                    .await?;
                Ok(position as u64)
            }

            async fn close(&self) {
                let close = async {
                    self.read.close().await;
                    self.write.close().await;
                    self.probe.close().await;
                };
                if tokio::time::timeout(std::time::Duration::from_secs(1), close).await.is_err() {
                    tracing::warn!("database connections still busy at shutdown");
                }
            }

            async fn ping(&self) -> Result<()> {
                // A table of the database, not a constant: the query reaches its files.
                sqlx::query("SELECT COUNT(*) FROM audit_anchor").execute(&self.probe).await?;
                Ok(())
            }

            fn watch_head(&self) -> watch::Receiver<u64> {
                self.head.subscribe()
            }
        }
    };
}

pub(crate) use sql_store;
