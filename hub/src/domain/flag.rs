//! Difficulty flags (difficultés taguées).

use super::clock::{Day, Timestamp};
use super::ids::{AgentId, FlagId, PartnerId, PersonId};
use super::taxonomy::FlagCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    Active,
    Retracted,
}

/// Who retracted a flag, when and why. Retraction keeps the flag and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retraction {
    pub at: Timestamp,
    pub partner: PartnerId,
    pub agent: AgentId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub id: FlagId,
    pub person: PersonId,
    pub code: FlagCode,
    pub source_partner: PartnerId,
    pub source_agent: AgentId,
    pub raised_at: Timestamp,
    pub note: String,
    pub valid_until: Option<Day>,
    pub retraction: Option<Retraction>,
    pub version: i64,
}

impl Flag {
    pub fn status(&self) -> FlagStatus {
        if self.retraction.is_some() {
            FlagStatus::Retracted
        } else {
            FlagStatus::Active
        }
    }

    /// Is the flag past its `valid_until` on `today`? Such a flag is no longer shared, and
    /// the expiry scheduler retracts it.
    pub fn lapsed(&self, today: Day) -> bool {
        self.valid_until.is_some_and(|until| until < today)
    }

    /// Active and not lapsed.
    pub fn current(&self, today: Day) -> bool {
        self.retraction.is_none() && !self.lapsed(today)
    }

    /// Retracts an active flag. A retracted flag stays retracted.
    pub fn retract(mut self, by: Retraction) -> Result<Self, crate::error::Error> {
        if self.retraction.is_some() {
            return Err(crate::error::Error::FailedPrecondition(format!(
                "flag {} is already retracted",
                self.id
            )));
        }
        self.retraction = Some(by);
        self.version += 1;
        Ok(self)
    }
}
