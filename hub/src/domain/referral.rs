//! Referrals (fiches navettes): one partner asks another to act on a case.
//! `sent → acknowledged → answered → closed`; the recipient acknowledges and answers (an
//! answer may come without an acknowledgement), the sender closes at any time.

use super::clock::{Day, Timestamp};
use super::ids::{AgentId, CaseId, PartnerId, PersonId, ReferralId};
use crate::error::Error;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralState {
    Sent,
    Acknowledged,
    Answered,
    Closed,
}

impl ReferralState {
    pub const ALL: [ReferralState; 4] = [
        ReferralState::Sent,
        ReferralState::Acknowledged,
        ReferralState::Answered,
        ReferralState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralState::Sent => "sent",
            ReferralState::Acknowledged => "acknowledged",
            ReferralState::Answered => "answered",
            ReferralState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a partner does to a referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferralAction {
    Acknowledge,
    Answer(String),
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralTransition {
    pub from: ReferralState,
    pub to: ReferralState,
    pub partner: PartnerId,
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub id: ReferralId,
    pub case: CaseId,
    pub person: PersonId,
    pub from: PartnerId,
    pub to: PartnerId,
    pub reason: String,
    pub requested_action: String,
    pub due_date: Option<Day>,
    pub state: ReferralState,
    pub answer: String,
    pub sent_at: Timestamp,
    pub updated_at: Timestamp,
    pub history: Vec<ReferralTransition>,
    pub version: i64,
}

impl Referral {
    pub fn apply(
        mut self,
        action: ReferralAction,
        partner: &PartnerId,
        agent: &AgentId,
        at: Timestamp,
    ) -> Result<Self, Error> {
        use ReferralState::*;
        let from = self.state;
        let (to, who_may) = match &action {
            ReferralAction::Acknowledge => (Acknowledged, &self.to),
            ReferralAction::Answer(_) => (Answered, &self.to),
            ReferralAction::Close => (Closed, &self.from),
        };
        if who_may != partner {
            return Err(Error::PermissionDenied(format!(
                "only {who_may} may {} referral {}",
                match action {
                    ReferralAction::Acknowledge => "acknowledge",
                    ReferralAction::Answer(_) => "answer",
                    ReferralAction::Close => "close",
                },
                self.id
            )));
        }
        let allowed: &[ReferralState] = match from {
            Sent => &[Acknowledged, Answered, Closed],
            Acknowledged => &[Answered, Closed],
            Answered => &[Closed],
            Closed => &[],
        };
        if !allowed.contains(&to) {
            let list = if allowed.is_empty() {
                "none: the referral is closed".to_string()
            } else {
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::FailedPrecondition(format!(
                "referral {} is `{}`: it cannot become `{}`; allowed: {list}",
                self.id,
                from.as_str(),
                to.as_str()
            )));
        }
        if let ReferralAction::Answer(answer) = action {
            if answer.is_empty() {
                return Err(Error::invalid(
                    "answer",
                    "required: the answer to the referral",
                ));
            }
            self.answer = answer;
        }
        self.history.push(ReferralTransition {
            from,
            to,
            partner: partner.clone(),
            agent: agent.clone(),
            at,
        });
        self.state = to;
        self.updated_at = at;
        self.version += 1;
        Ok(self)
    }
}
