//! Change events: what the feed delivers. Every committed write appends one or more, in the same
//! transaction, with a global increasing position.

use super::case::Case;
use super::clock::Timestamp;
use super::flag::Flag;
use super::ids::{AgentId, PersonId};
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
}

impl ChangeResource {
    pub fn person(&self) -> PersonId {
        match self {
            ChangeResource::Flag(f) => f.person,
            ChangeResource::Case(c) => c.person,
            ChangeResource::Referral(r) => r.person,
        }
    }
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
    pub const ALL: [ChangeKind; 6] = [
        ChangeKind::FlagRaised,
        ChangeKind::FlagRetracted,
        ChangeKind::CaseOpened,
        ChangeKind::CaseTransitioned,
        ChangeKind::ReferralSent,
        ChangeKind::ReferralUpdated,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
