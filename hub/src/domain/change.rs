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

    /// The one partner an event is for (redactions), or none (everyone the rules allow).
    pub fn target(&self) -> Option<&PartnerId> {
        match self {
            ChangeResource::Redaction(r) => Some(&r.partner),
            ChangeResource::ConsentNotice(n) => Some(&n.partner),
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

/// Tells `partner`, which wrote data about the person, that a consent recorded by another
/// partner (the collector) opens that data to the collector. Names no data of the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentNotice {
    pub person: PersonId,
    /// Who is told.
    pub partner: PartnerId,
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
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::FlagRaised,
        ChangeKind::FlagRetracted,
        ChangeKind::CaseOpened,
        ChangeKind::CaseTransitioned,
        ChangeKind::ReferralSent,
        ChangeKind::ReferralUpdated,
        ChangeKind::Redacted,
        ChangeKind::ConsentRecorded,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
