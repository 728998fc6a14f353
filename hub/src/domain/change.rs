//! Change events: what the feed delivers. Every committed write appends one or more, in the same
//! transaction, with a global increasing position.

use super::case::Case;
use super::category::DataCategory;
use super::clock::Timestamp;
use super::flag::Flag;
use super::ids::{AgentId, CaseId, FlagId, PartnerId, PersonId, ReferralId};
use super::referral::Referral;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    FlagRaised,
    FlagRetracted,
    CaseOpened,
    CaseTransitioned,
    ReferralSent,
    ReferralUpdated,
    /// Data a partner received is no longer shared with it: delete the local copy.
    Redacted,
    /// A consent recorded by another partner opens to that partner data this one wrote.
    ConsentRecorded,
    /// A referral's reply deadline is today: for its recipient only.
    ReferralDue,
    /// A referral's reply deadline has passed without an answer: for its sender only.
    ReferralOverdue,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::FlagRaised => "flag_raised",
            ChangeKind::FlagRetracted => "flag_retracted",
            ChangeKind::CaseOpened => "case_opened",
            ChangeKind::CaseTransitioned => "case_transitioned",
            ChangeKind::ReferralSent => "referral_sent",
            ChangeKind::ReferralUpdated => "referral_updated",
            ChangeKind::Redacted => "redacted",
            ChangeKind::ConsentRecorded => "consent_recorded",
            ChangeKind::ReferralDue => "referral_due",
            ChangeKind::ReferralOverdue => "referral_overdue",
        }
    }
}

/// The resource as it stood after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ChangeResource {
    Flag(Flag),
    Case(Case),
    Referral(Referral),
    Redaction(Redaction),
    ConsentNotice(ConsentNotice),
}

impl ChangeResource {
    pub fn person(&self) -> PersonId {
        match self {
            ChangeResource::Flag(f) => f.person,
            ChangeResource::Case(c) => c.person,
            ChangeResource::Referral(r) => r.person,
            ChangeResource::Redaction(r) => r.person,
            ChangeResource::ConsentNotice(n) => n.person,
        }
    }

    /// The item of the person's data the event carries (none for a redaction).
    pub fn item(&self) -> Option<Item> {
        match self {
            ChangeResource::Flag(f) => Some(Item::Flag(f.id)),
            ChangeResource::Case(c) => Some(Item::Case(c.id)),
            ChangeResource::Referral(r) => Some(Item::Referral(r.id)),
            ChangeResource::Redaction(_) | ChangeResource::ConsentNotice(_) => None,
        }
    }

    /// For events meant for named partners only (redactions, consent notices): whether it is
    /// for `partner`. `None` for data events, which the rules decide.
    pub fn is_for(&self, partner: &PartnerId) -> Option<bool> {
        match self {
            ChangeResource::Redaction(r) => Some(&r.partner == partner),
            ChangeResource::ConsentNotice(n) => Some(n.partners.contains(partner)),
            _ => None,
        }
    }
}

/// What one partner must delete after a withdrawal, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    pub person: PersonId,
    pub partner: PartnerId,
    pub items: Vec<Item>,
    pub categories: Vec<DataCategory>,
    pub reason: String,
    /// `consent:<id>` or `mandate:<id>`.
    pub record: String,
}

/// Tells the partners that wrote data about the person that a consent recorded by another
/// partner (the collector) opens that data to its grantee. Names no data of the person. One
/// event per consent recorded, whoever is told (possibly nobody), so that the feed's position
/// does not count the partners that hold data about the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentNotice {
    pub person: PersonId,
    /// Who is told: the partners whose data the consent opens.
    pub partners: Vec<PartnerId>,
    pub consent: String,
    pub collected_by: PartnerId,
    pub collected_by_agent: AgentId,
    pub categories: Vec<DataCategory>,
    pub evidence_ref: String,
    pub method: String,
    pub countersignature_required: bool,
}

/// A piece of a person's data, as a partner received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Item {
    Flag(FlagId),
    Case(CaseId),
    Referral(ReferralId),
}

impl Item {
    pub fn key(&self) -> String {
        match self {
            Item::Flag(id) => format!("flag:{id}"),
            Item::Case(id) => format!("case:{id}"),
            Item::Referral(id) => format!("referral:{id}"),
        }
    }
}

/// A piece of data delivered to a partner that did not write it: what a withdrawal redacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    pub partner: PartnerId,
    pub person: PersonId,
    pub item: Item,
    pub category: DataCategory,
    pub at: Timestamp,
    /// The consent record or mandate (`consent:<id>`, `mandate:<id>`) the decision rested on,
    /// checked again in the transaction that records the disclosure: a record ended meanwhile
    /// withholds the item (decision and disclosure are one step).
    #[serde(default)]
    pub record: Option<String>,
    /// The purpose it was given for: when its record ends, only another record covering the
    /// same category *for this purpose* keeps it (none recorded before: any purpose).
    #[serde(default)]
    pub purpose: Option<super::context::Purpose>,
    /// A flag given as current (active, within its valid_until): if it is no longer current
    /// when the disclosure is recorded, it does not leave. (A retraction event is given as
    /// not current, and goes.)
    #[serde(default)]
    pub current_flag: bool,
}

/// A committed change, as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub position: u64,
    pub committed_at: Timestamp,
    pub kind: ChangeKind,
    /// Partner id, or `admin`.
    pub principal: String,
    pub agent: AgentId,
    pub resource: ChangeResource,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 10] = [
        ChangeKind::FlagRaised,
        ChangeKind::FlagRetracted,
        ChangeKind::CaseOpened,
        ChangeKind::CaseTransitioned,
        ChangeKind::ReferralSent,
        ChangeKind::ReferralUpdated,
        ChangeKind::Redacted,
        ChangeKind::ConsentRecorded,
        ChangeKind::ReferralDue,
        ChangeKind::ReferralOverdue,
    ];

    /// The one partner a reminder is for, when the change is one.
    pub fn reminds(self, resource: &ChangeResource) -> Option<&PartnerId> {
        match (self, resource) {
            (ChangeKind::ReferralDue, ChangeResource::Referral(r)) => Some(&r.to),
            (ChangeKind::ReferralOverdue, ChangeResource::Referral(r)) => Some(&r.from),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
