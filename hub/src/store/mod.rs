//! Storage: one behaviour (`Store`) behind which each backend sits. SQL lives only in the
//! backends. Every write runs in one transaction that also records its idempotency key and
//! appends its change events, so a write is whole or absent, and retried writes return the
//! first result.

pub mod sqlite;

use crate::domain::case::Case;
use crate::domain::change::ChangeRecord;
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
}

/// An authenticated caller, found from its certificate fingerprint.
#[derive(Debug, Clone)]
pub enum Principal {
    Admin,
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

/// What ties a partner to a person: the facts the access decision rests on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    pub linked: bool,
    pub owns_case: bool,
    pub referral_party: bool,
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
}

/// A change to an existing aggregate, decided by the domain once the current value is read
/// inside the write transaction.
pub type Update<T, R = T> = Box<dyn FnOnce(T) -> Result<R> + Send>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Principals and partners.
    async fn register_admin_certificate(&self, cert: &CertificateRecord) -> Result<()>;
    async fn principal_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Principal>>;
    async fn add_partner(&self, partner: Partner, meta: &WriteMeta) -> Result<Partner>;
    async fn add_certificate(
        &self,
        partner: &PartnerId,
        cert: CertificateRecord,
    ) -> Result<Partner>;
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
    async fn person_by_local_id(
        &self,
        partner: &PartnerId,
        local_id: &LocalId,
    ) -> Result<Option<PersonId>>;
    async fn person_by_pivot(&self, key: &PivotKey) -> Result<Option<PersonId>>;
    async fn local_ids(&self, partner: &PartnerId, person: PersonId) -> Result<Vec<LocalId>>;
    async fn relation(&self, partner: &PartnerId, person: PersonId) -> Result<Relation>;

    // Flags.
    /// Raises a flag, or returns the active flag of the same code (`false`: not created).
    async fn raise_flag(&self, flag: Flag, meta: &WriteMeta) -> Result<(Flag, bool)>;
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
    async fn list_referrals(
        &self,
        filter: &ReferralFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Referral>>;

    // Change log.
    /// Committed changes after `position`, in position order, at most `limit`.
    async fn changes_after(&self, position: u64, limit: u32) -> Result<Vec<ChangeRecord>>;
    /// The position of the newest committed change (0 when none).
    async fn head_position(&self) -> Result<u64>;
    /// Follows the head position: changes each time a write commits.
    fn watch_head(&self) -> watch::Receiver<u64>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by a database URL (`sqlite://…`).
pub async fn open(url: &str) -> anyhow::Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else {
        anyhow::bail!(
            "unsupported database url `{url}`: this version speaks `sqlite://` (PostgreSQL comes with the next backend)"
        )
    }
}
