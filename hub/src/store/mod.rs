//! Storage: one behaviour (`Store`) behind which each backend sits. SQL lives only in the
//! backends. Every write runs in one transaction that also records its idempotency key and
//! appends its change events, so a write is whole or absent, and retried writes return the
//! first result.

pub mod postgres;
mod sql;
pub mod sqlite;

use crate::audit::{Anchor, AuditEntry, StoredEntry};
use crate::domain::accessibility::Profile;
use crate::domain::case::Case;
use crate::domain::change::{ChangeRecord, Disclosure, Redaction};
use crate::domain::commune::Residence;
use crate::domain::consent::{Consent, ConsentId, Mandate, MandateId};
use crate::domain::flag::Flag;
use crate::domain::ids::{
    AgentId, CaseId, FlagId, LocalId, PartnerId, PersonId, ReferralId, RequestId,
};
use crate::domain::partner::{CertificateRecord, Partner, PartnerStatus};
use crate::domain::pivot::PivotKey;
use crate::domain::referral::{Referral, ReferralState};
use crate::domain::{CaseStatus, Timestamp};
use crate::error::Result;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::watch;

/// Who is writing, under which idempotency key, and when.
#[derive(Debug, Clone)]
pub struct WriteMeta {
    /// The partner id, or `admin`.
    pub principal: String,
    pub agent: AgentId,
    pub request_id: RequestId,
    /// Digest of the request: a key reused for a different request is refused.
    pub fingerprint: String,
    pub at: Timestamp,
    /// Audit entries written in the same transaction as the write.
    pub audit: Vec<AuditEntry>,
}

impl WriteMeta {
    /// Adds the audit entry of this write.
    pub fn audited(mut self, entry: AuditEntry) -> Self {
        self.audit.push(entry);
        self
    }
}

/// What one run of the expiry scheduler ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expiries {
    pub consents: u32,
    pub mandates: u32,
    pub flags: u32,
    pub redactions: u32,
    /// Referral reminders sent (due, overdue) and referrals expired.
    #[serde(default)]
    pub referral_reminders: u32,
}

impl Expiries {
    pub fn total(&self) -> u32 {
        self.consents + self.mandates + self.flags + self.referral_reminders
    }
}

/// A versioned territory setting, managed the same way: validated, activated with a comment,
/// kept in a history, rolled back by activating an older text again (a new version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The Cedar access rules.
    Rules,
    /// The work queue's weights and procedure catalogue (`domain::priority`).
    Priorities,
}

impl Setting {
    pub(crate) fn table(self) -> &'static str {
        match self {
            Setting::Rules => "rules",
            Setting::Priorities => "priorities",
        }
    }
}

/// One version of a setting (the access rules, the priorities).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RulesVersion {
    pub version: i64,
    pub author: String,
    pub comment: String,
    pub created_at: Timestamp,
    pub restores: Option<i64>,
}

/// The préfet's alert plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct AlertPlan {
    pub active: bool,
    pub reason: String,
    pub since: Option<Timestamp>,
}

/// An authenticated caller, found from its certificate fingerprint.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A named administrator (`admin` for the identity made at the first start).
    Admin(String),
    Partner(Partner),
}

/// How a local id is to be linked.
#[derive(Debug, Clone)]
pub enum LinkTarget {
    /// To a person the caller already knows by hub id.
    Person(PersonId),
    /// To the person with this pivot key, or to a new person carrying it.
    Pivot(PivotKey),
    /// To a new person, matched by nothing.
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkOutcome {
    AlreadyLinked,
    LinkedById,
    MatchedByPivot,
    Created,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkResult {
    pub person: PersonId,
    pub outcome: LinkOutcome,
}

/// What raising a flag did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Raised {
    Created,
    /// The source's flag of that code was upgraded or confirmed.
    Requalified,
    /// The source already held the code, as strongly qualified and not due for review.
    Unchanged,
}

/// Read back from an idempotency record, including those written as `created: bool` before
/// flags were qualified.
impl<'de> serde::Deserialize<'de> for Raised {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Named {
            Created,
            Requalified,
            Unchanged,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Created(bool),
            Named(Named),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Created(true) | Stored::Named(Named::Created) => Raised::Created,
            Stored::Created(false) | Stored::Named(Named::Unchanged) => Raised::Unchanged,
            Stored::Named(Named::Requalified) => Raised::Requalified,
        })
    }
}

/// What ties a partner to a person: the facts the access decision rests on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    pub linked: bool,
    pub owns_case: bool,
    /// It holds one of the person's cases in progress: sent, and not yet at an outcome.
    pub open_case: bool,
    /// Party to a referral about the person that counts: one it sent, or one it received
    /// while the person's consent (or a rule) still lets referrals reach it (`policy::Gate`).
    pub referral_party: bool,
    /// It sent a referral about the person.
    pub sent_referral: bool,
    /// It received a referral about the person (whether that still counts is decided).
    pub received_referral: bool,
}

/// What `Store::facts_of` reads.
#[derive(Debug, Clone, Default)]
pub struct FactRows {
    pub relation: Relation,
    pub consents: Vec<Consent>,
    pub mandates: Vec<Mandate>,
    /// Referrals about the person the partner sent or received.
    pub referrals: Vec<Referral>,
    pub alert_plan: AlertPlan,
    pub rules_version: i64,
}

impl Relation {
    pub fn any(self) -> bool {
        self.linked || self.owns_case || self.referral_party
    }
}

#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub owner: Option<PartnerId>,
    pub person: Option<PersonId>,
    pub statuses: Vec<CaseStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone)]
pub struct ReferralFilter {
    pub partner: PartnerId,
    pub direction: Option<Direction>,
    pub person: Option<PersonId>,
    pub states: Vec<ReferralState>,
    /// Only those past their deadline on this day, still awaiting their answer.
    pub overdue_on: Option<crate::domain::Day>,
}

/// An account of the administrators' console: a named person, their role, an argon2 hash of
/// their password and their TOTP secret (base32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAccount {
    pub name: String,
    pub role: String,
    pub full_name: String,
    pub password_hash: String,
    pub totp_secret: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    /// Failed log-ins in a row.
    pub failures: u32,
    /// Refused until then after too many failures.
    pub locked_until: Timestamp,
    /// The TOTP time step last used: a code is accepted once.
    pub last_totp_step: i64,
    pub last_login_at: Option<Timestamp>,
}

/// A console session (the cookie holds the token; the store only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub account: String,
    /// The CSRF token every form of the session carries.
    pub csrf: String,
    pub created_at: Timestamp,
    pub seen_at: Timestamp,
}

/// A search in the audit log, newest first: by time, by person (indexed), then page by page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub person: Option<PersonId>,
    /// Entries before this sequence number (the next page).
    pub before_seq: Option<u64>,
    pub limit: u32,
}

/// A change to an existing aggregate, decided by the domain once the current value is read
/// inside the write transaction.
pub type Update<T, R = T> = Box<dyn FnOnce(T) -> Result<R> + Send>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Principals and partners.
    async fn register_admin_certificate(&self, cert: &CertificateRecord) -> Result<()>;
    /// The principal a certificate names, with the certificate's own record (revocation,
    /// expiry), or `None` for a certificate this hub never registered.
    async fn principal_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<(Principal, CertificateRecord)>>;
    async fn add_partner(&self, partner: Partner, meta: &WriteMeta) -> Result<Partner>;
    /// Adds a certificate; with `retire_others_at`, the partner's other certificates are
    /// refused from that time on.
    async fn add_certificate(
        &self,
        partner: &PartnerId,
        cert: CertificateRecord,
        retire_others_at: Option<Timestamp>,
    ) -> Result<Partner>;
    /// Registers a named administrator's certificate.
    async fn add_administrator(
        &self,
        name: &str,
        cert: CertificateRecord,
        meta: &WriteMeta,
    ) -> Result<()>;
    /// Revokes every certificate of a named administrator; returns how many.
    async fn revoke_administrator(&self, name: &str, meta: &WriteMeta) -> Result<u32>;
    /// Administrators' certificates: (name, record).
    async fn administrators(&self) -> Result<Vec<(String, CertificateRecord)>>;
    /// Revokes one certificate at `meta.at`; returns the partner it belonged to (`None`: an
    /// administrator's).
    /// Approves a certificate an opérateur had issued: accepted from now on.
    async fn approve_certificate(
        &self,
        fingerprint: &str,
        meta: &WriteMeta,
    ) -> Result<Option<PartnerId>>;
    async fn revoke_certificate(
        &self,
        fingerprint: &str,
        reason: String,
        meta: &WriteMeta,
    ) -> Result<Option<PartnerId>>;
    async fn set_partner_status(
        &self,
        partner: &PartnerId,
        status: PartnerStatus,
        reason: String,
        meta: &WriteMeta,
    ) -> Result<Partner>;
    async fn get_partner(&self, partner: &PartnerId) -> Result<Option<Partner>>;
    async fn list_partners(&self, after: Option<&str>, limit: u32) -> Result<Vec<Partner>>;

    // Persons.
    async fn link_person(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
        target: LinkTarget,
        meta: &WriteMeta,
    ) -> Result<LinkResult>;
    async fn unlink_person(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
        meta: &WriteMeta,
    ) -> Result<PersonId>;
    /// The persons whose id starts with `prefix` (eight lowercase hex digits: the short
    /// reference the person's documents print), at most `limit`.
    async fn persons_by_reference(&self, prefix: &str, limit: u32) -> Result<Vec<PersonId>>;
    async fn person_by_local_id(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
    ) -> Result<Option<PersonId>>;
    async fn person_by_pivot(&self, key: &PivotKey) -> Result<Option<PersonId>>;
    async fn local_ids(&self, partner: &PartnerId, person: PersonId) -> Result<Vec<LocalId>>;
    /// Records where the person lives (replacing what was recorded).
    async fn set_residence(
        &self,
        person: PersonId,
        residence: Residence,
        meta: &WriteMeta,
    ) -> Result<Residence>;
    async fn residence(&self, person: PersonId) -> Result<Option<Residence>>;
    /// Where the persons live, by person id after `after`, at most `limit`.
    async fn residences(
        &self,
        after: Option<PersonId>,
        limit: u32,
    ) -> Result<Vec<(PersonId, Residence)>>;
    /// Records how to reach the person (a new version of their profile).
    async fn set_accessibility(
        &self,
        person: PersonId,
        profile: Profile,
        meta: &WriteMeta,
    ) -> Result<Profile>;
    async fn accessibility(&self, person: PersonId) -> Result<Option<Profile>>;
    /// Everything an access decision about `person` for `partner` rests on, in one query:
    /// the relation, the person's consents and mandates, the referrals about the person the
    /// partner sent or received, the alert plan and the rules version in force.
    async fn facts_of(&self, partner: &PartnerId, person: PersonId) -> Result<FactRows>;
    /// Merges `merged` into `kept` (two records of one person): links, pivots, flags, cases,
    /// referrals, consents, mandates and disclosures move; an active flag that `kept` already
    /// has from the same partner is retracted as a duplicate. Returns the links moved.
    async fn merge_persons(
        &self,
        kept: PersonId,
        merged: PersonId,
        meta: &WriteMeta,
    ) -> Result<u32>;

    // Flags.
    /// Raises a flag; when its source already holds the code active for the person, the
    /// qualification of `flag` upgrades or confirms that flag (`Flag::requalify`), or changes
    /// nothing.
    async fn raise_flag(&self, flag: Flag, meta: &WriteMeta) -> Result<(Flag, Raised)>;
    async fn update_flag(
        &self,
        id: FlagId,
        expected_version: i64,
        update: Update<Flag>,
        meta: &WriteMeta,
    ) -> Result<Flag>;
    async fn get_flag(&self, id: FlagId) -> Result<Option<Flag>>;
    async fn list_flags(
        &self,
        person: PersonId,
        include_retracted: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Flag>>;

    // Cases.
    async fn open_case(&self, case: Case, meta: &WriteMeta) -> Result<Case>;
    /// Transitions a case; a returned child case (a redirection) is opened in the same
    /// transaction.
    async fn update_case(
        &self,
        id: CaseId,
        expected_version: i64,
        update: Update<Case, (Case, Option<Case>)>,
        meta: &WriteMeta,
    ) -> Result<(Case, Option<Case>)>;
    async fn get_case(&self, id: CaseId) -> Result<Option<Case>>;
    async fn list_cases(
        &self,
        filter: &CaseFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Case>>;

    // Referrals.
    async fn send_referral(&self, referral: Referral, meta: &WriteMeta) -> Result<Referral>;
    async fn update_referral(
        &self,
        id: ReferralId,
        expected_version: i64,
        update: Update<Referral>,
        meta: &WriteMeta,
    ) -> Result<Referral>;
    async fn get_referral(&self, id: ReferralId) -> Result<Option<Referral>>;
    /// Every referral about a person, whoever sent it, oldest first.
    async fn referrals_of_person(&self, person: PersonId, limit: u32) -> Result<Vec<Referral>>;
    async fn list_referrals(
        &self,
        filter: &ReferralFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Referral>>;

    // Consent records and mandates.
    /// Records a consent and, in the same transaction, its notice to the partners whose data
    /// it opens (one `CONSENT_RECORDED` event).
    async fn grant_consent(
        &self,
        consent: Consent,
        notice: crate::domain::change::ConsentNotice,
        meta: &WriteMeta,
    ) -> Result<Consent>;
    /// An administrator countersigns a pending consent.
    async fn countersign_consent(
        &self,
        id: ConsentId,
        update: Update<Consent>,
        meta: &WriteMeta,
    ) -> Result<Consent>;
    /// Withdraws a consent and, in the same transaction, appends a redaction event for each
    /// partner that received data the consent covered and no other record still covers.
    async fn withdraw_consent(
        &self,
        id: ConsentId,
        update: Update<Consent>,
        meta: &WriteMeta,
    ) -> Result<(Consent, Vec<Redaction>)>;
    async fn get_consent(&self, id: ConsentId) -> Result<Option<Consent>>;
    async fn consents_of(&self, person: PersonId) -> Result<Vec<Consent>>;
    async fn grant_mandate(&self, mandate: Mandate, meta: &WriteMeta) -> Result<Mandate>;
    /// Revokes a mandate; redactions as for a withdrawn consent.
    async fn revoke_mandate(
        &self,
        id: MandateId,
        update: Update<Mandate>,
        meta: &WriteMeta,
    ) -> Result<(Mandate, Vec<Redaction>)>;
    async fn get_mandate(&self, id: MandateId) -> Result<Option<Mandate>>;
    async fn mandates_of(&self, person: PersonId) -> Result<Vec<Mandate>>;
    /// The mandates an agent of `partner` holds whose end was not applied (at most 1,000).
    async fn mandates_held(&self, partner: &PartnerId, agent: &AgentId) -> Result<Vec<Mandate>>;

    /// Applies the ends that came with time, as of `now`: consents and mandates past their
    /// expiry, flags past their `valid_until` (retracted by the hub). Each end sends the same
    /// redactions as a withdrawal, in the same transaction that marks it applied, so that it
    /// is applied once, whichever replica runs it. At most `limit` records per call.
    async fn apply_expiries(&self, now: Timestamp, limit: u32) -> Result<Expiries>;

    // Reads: audit and disclosures.
    /// Records reads or deliveries: their audit entries and what was disclosed, in one
    /// transaction, before the data leaves the hub. A disclosure whose consent record or
    /// mandate has ended by then (a withdrawal committed after the decision) is not recorded
    /// and its item is returned: the caller withholds it. Writes are serialised, so a
    /// withdrawal either sees the disclosure (and redacts it) or the disclosure sees the
    /// withdrawal.
    async fn record_access(
        &self,
        entries: Vec<AuditEntry>,
        disclosures: Vec<Disclosure>,
    ) -> Result<Vec<crate::domain::change::Item>>;
    /// Audit entries after `after_seq`, in order, at most `limit`.
    async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<StoredEntry>>;
    async fn audit_anchor(&self) -> Result<Anchor>;
    async fn audit_of_person(&self, person: PersonId) -> Result<Vec<AuditEntry>>;
    /// Removes entries older than `before`, keeping the chain verifiable from the last one
    /// removed. Returns how many were removed.
    async fn purge_audit(&self, before: Timestamp) -> Result<u64>;

    /// Audit entries matching `query`, newest first.
    async fn audit_search(&self, query: &AuditQuery) -> Result<Vec<StoredEntry>>;

    // The administrators' console.
    /// Adds an account (audited); `AlreadyExists` when the name is taken.
    async fn add_console_account(&self, account: ConsoleAccount, meta: &WriteMeta) -> Result<()>;
    async fn console_account(&self, name: &str) -> Result<Option<ConsoleAccount>>;
    async fn console_accounts(&self) -> Result<Vec<ConsoleAccount>>;
    /// Disables (or enables again) an account, ending its sessions; false when there is none.
    async fn set_console_account_disabled(
        &self,
        name: &str,
        disabled: bool,
        meta: &WriteMeta,
    ) -> Result<bool>;
    /// Counts a failed log-in, atomically; locks the account until `lock_until` at
    /// `max_failures`. A lock that ended before `now` starts the count again. Returns the
    /// failures in a row and the lock's end.
    async fn console_login_failed(
        &self,
        name: &str,
        max_failures: u32,
        lock_until: Timestamp,
        now: Timestamp,
    ) -> Result<(u32, Timestamp)>;
    /// Records a successful log-in with the TOTP step it used; false (and nothing changed)
    /// when that step, or a later one, was already used (a code works once), or when the
    /// account is locked at `at`.
    async fn console_login_succeeded(
        &self,
        name: &str,
        totp_step: i64,
        at: Timestamp,
    ) -> Result<bool>;
    async fn put_console_session(&self, token_hash: &str, session: &ConsoleSession) -> Result<()>;
    async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>>;
    async fn touch_console_session(&self, token_hash: &str, at: Timestamp) -> Result<()>;
    /// Ends one session, or with `None` every session that was idle since before `idle_before`
    /// or opened before `opened_before`.
    async fn end_console_sessions(
        &self,
        token_hash: Option<&str>,
        idle_before: Timestamp,
        opened_before: Timestamp,
    ) -> Result<u64>;
    /// Consent records awaiting an administrator's countersignature, at most `limit`.
    async fn pending_countersignatures(&self, limit: u32) -> Result<Vec<Consent>>;
    /// Persons a partner has linked (for dry runs over the current data), at most `limit`.
    async fn persons_linked_to(&self, partner: &PartnerId, limit: u32) -> Result<Vec<PersonId>>;

    // Access rules and settings.
    async fn setting_versions(&self, setting: Setting) -> Result<Vec<RulesVersion>>;
    async fn setting_text(&self, setting: Setting, version: i64) -> Result<Option<String>>;
    /// The version in force: the newest.
    async fn active_setting(&self, setting: Setting) -> Result<Option<(RulesVersion, String)>>;
    /// Stores a new version, which is then in force (for the rules, a write that may narrow
    /// access).
    async fn add_setting(
        &self,
        setting: Setting,
        text: &str,
        author: &str,
        comment: &str,
        restores: Option<i64>,
        meta: &WriteMeta,
    ) -> Result<RulesVersion>;
    async fn alert_plan(&self) -> Result<AlertPlan>;
    async fn set_alert_plan(&self, plan: AlertPlan, meta: &WriteMeta) -> Result<AlertPlan>;

    // Change log.
    /// Committed changes after `position`, in position order, at most `limit`.
    async fn changes_after(&self, position: u64, limit: u32) -> Result<Vec<ChangeRecord>>;
    /// The committed changes in `(after, upto]` that may concern `partner` (its audience,
    /// fixed when each change was committed: the partners tied to the person then, the writer,
    /// the partner a redaction or notice is for), in position order, at most `limit`. What
    /// the partner receives of them is still decided at delivery.
    async fn changes_for(
        &self,
        partner: &PartnerId,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>>;
    /// The newest position that may concern `partner`, as far as this replica knows (never
    /// less than the true one): a subscriber with a cursor at or past it has nothing to read.
    fn latest_for(&self, partner: &PartnerId) -> u64;
    /// How many change rows `changes_for` has returned since the store opened (what the feed
    /// costs: it should follow what the subscribers' partners are entitled to).
    fn feed_rows_read(&self) -> u64;
    /// Changes whenever a write may have narrowed what a partner may receive (withdrawals,
    /// ends, unlinks, merges, rules, transitions, partner status), here or — PostgreSQL — on
    /// another replica (any of its commits). Decisions shared between subscriptions are
    /// reused only while it stays the same.
    fn decisions_epoch(&self) -> u64;
    /// The position of the newest committed change (0 when none).
    async fn head_position(&self) -> Result<u64>;
    /// Does the database answer? One trivial query (the health check).
    async fn ping(&self) -> Result<()>;
    /// Closes the connections (at shutdown, after the last call); later calls fail.
    async fn close(&self);
    /// Follows the head position: changes each time a write commits.
    fn watch_head(&self) -> watch::Receiver<u64>;
}

pub type DynStore = Arc<dyn Store>;

/// Refuses a database whose schema a newer Relais made: this version would not know its
/// tables (and must not write to them). `applied` is the newest migration the database has.
pub(crate) fn check_schema(applied: Option<i64>, known: i64) -> anyhow::Result<()> {
    match applied {
        Some(v) if v > known => anyhow::bail!(
            "the database's schema is version {v}, made by a newer Relais; this one knows up to version {known}. \
             Run the newer version (or restore a backup taken before the upgrade): see the README, \"Upgrades\""
        ),
        _ => Ok(()),
    }
}

/// The principals behind certificates, kept in memory: every call looks its caller up, and the
/// answer changes only when a partner's status or certificates change. Those writes clear it
/// on this replica once committed; with several replicas (PostgreSQL) they also count up an
/// epoch in the database, which each lookup reads first (one primary-key read, no join, no
/// document) so that a suspension or revocation made on one replica holds on the next call on
/// every other. An entry is read again after `TTL` whatever happens. A lookup that started
/// before a clear does not refill the cache with what it read.
#[derive(Debug, Default)]
pub struct PrincipalCache {
    generation: std::sync::atomic::AtomicU64,
    entries: std::sync::Mutex<
        std::collections::HashMap<String, (Principal, CertificateRecord, std::time::Instant)>,
    >,
    /// Several replicas: the count of partner changes the entries were read under.
    epoch: std::sync::atomic::AtomicU64,
}

impl PrincipalCache {
    /// How long an entry is trusted without a notification.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(30);
    /// Beyond this many certificates the cache starts over (a bound on memory).
    const CAPACITY: usize = 10_000;

    pub fn get(&self, fingerprint: &str) -> Option<(Principal, CertificateRecord)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(fingerprint)
            .filter(|(_, _, at)| at.elapsed() < Self::TTL)
            .map(|(p, c, _)| (p.clone(), c.clone()))
    }

    /// The generation to pass to `put` after reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn put(&self, fingerprint: &str, found: &(Principal, CertificateRecord), generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation() != generation {
            return;
        }
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(
            fingerprint.to_string(),
            (found.0.clone(), found.1.clone(), std::time::Instant::now()),
        );
    }

    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.clear();
    }

    /// Several replicas: the store's count of partner changes is `epoch`; a change since the
    /// cache was filled clears it.
    pub fn observe(&self, epoch: u64) {
        if self.epoch.swap(epoch, std::sync::atomic::Ordering::AcqRel) != epoch {
            self.clear();
        }
    }
}

/// Which partners the newest changes concern, as far as this replica knows: updated before
/// the head position moves, so that a subscriber that reads the head and then this sees every
/// change up to that head that may concern its partner. A change committed by another replica
/// whose audience was not told is taken to concern everyone.
#[derive(Debug, Default)]
pub struct Audience {
    inner: std::sync::Mutex<AudienceInner>,
}

#[derive(Debug, Default)]
struct AudienceInner {
    partners: std::collections::HashMap<String, u64>,
    everyone: u64,
}

impl Audience {
    /// Changes up to `position` concern these partners.
    pub fn touch<'a>(&self, partners: impl IntoIterator<Item = &'a str>, position: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for p in partners {
            match inner.partners.get_mut(p) {
                Some(at) => *at = (*at).max(position),
                None => {
                    inner.partners.insert(p.to_string(), position);
                }
            }
        }
    }

    /// Changes up to `position` may concern anyone (their audience is unknown here).
    pub fn everyone(&self, position: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.everyone = inner.everyone.max(position);
    }

    pub fn latest(&self, partner: &str) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .partners
            .get(partner)
            .copied()
            .unwrap_or(0)
            .max(inner.everyone)
    }
}

/// How the store is opened (the `[store]` section of the configuration).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Commit the writes queued at the same moment in one transaction (one fsync).
    pub group_commit: bool,
    /// At most this many writes per group commit.
    pub max_batch: usize,
    /// PostgreSQL connections per replica.
    pub pool_size: u32,
    /// Testing only: sleep up to this many milliseconds inside each write transaction before
    /// it commits, to shake out ordering bugs. Keep 0 in production.
    pub commit_jitter_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            group_commit: true,
            max_batch: 256,
            pool_size: 8,
            commit_jitter_ms: 0,
        }
    }
}

/// Opens the store named by a database URL: `sqlite://…` (embedded) or `postgres://…`.
pub async fn open(url: &str, config: &StoreConfig) -> anyhow::Result<DynStore> {
    let max_batch = if config.group_commit {
        config.max_batch.max(1)
    } else {
        1
    };
    if url.starts_with("sqlite:") {
        let batching = sqlite::Batching {
            max_batch,
            jitter_ms: config.commit_jitter_ms,
        };
        Ok(Arc::new(sqlite::open(url, batching).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let batching = postgres::Batching {
            max_batch,
            jitter_ms: config.commit_jitter_ms,
        };
        Ok(Arc::new(
            postgres::open(url, batching, config.pool_size).await?,
        ))
    } else {
        anyhow::bail!("unsupported database url `{url}`: use sqlite://… or postgres://…")
    }
}
