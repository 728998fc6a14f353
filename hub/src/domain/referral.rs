//! Referrals (fiches navettes): one partner asks another to act on a case.
//! `sent → acknowledged → answered → closed`; the recipient acknowledges and answers (an
//! answer may come without an acknowledgement), the sender closes at any time. A referral
//! carries a reply deadline (`due_date`): on that day the recipient is reminded, the day after
//! the sender is told it is overdue (and may escalate: a new deadline), and past `expires_on`
//! an unanswered referral expires, with its reason.

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
    /// Unanswered past `expires_on`: ended by the hub, with `expiry_reason`.
    Expired,
}

impl ReferralState {
    pub const ALL: [ReferralState; 5] = [
        ReferralState::Sent,
        ReferralState::Acknowledged,
        ReferralState::Answered,
        ReferralState::Closed,
        ReferralState::Expired,
    ];

    /// Still waiting for the recipient's answer.
    pub fn awaiting_answer(self) -> bool {
        matches!(self, ReferralState::Sent | ReferralState::Acknowledged)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralState::Sent => "sent",
            ReferralState::Acknowledged => "acknowledged",
            ReferralState::Answered => "answered",
            ReferralState::Closed => "closed",
            ReferralState::Expired => "expired",
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
    /// The sender asks again, with a new deadline (and a new expiry day): the reminders start
    /// over.
    Escalate {
        due: Day,
        expires: Day,
    },
}

/// What the reminder scheduler does next to a referral awaiting its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reminder {
    /// Its deadline is today: the recipient is reminded (`REFERRAL_DUE` on its feed).
    Due,
    /// Its deadline has passed: the sender is told (`REFERRAL_OVERDUE`).
    Overdue,
    /// Past its expiry day: it expires.
    Expire,
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
    /// The day an unanswered referral expires (its deadline plus the territory's delay).
    #[serde(default)]
    pub expires_on: Option<Day>,
    /// When the recipient was reminded of the deadline, and the sender told it had passed.
    #[serde(default)]
    pub due_reminded_at: Option<Timestamp>,
    #[serde(default)]
    pub overdue_notified_at: Option<Timestamp>,
    /// Why it expired.
    #[serde(default)]
    pub expiry_reason: String,
    /// How many times the sender escalated it.
    #[serde(default)]
    pub escalations: u32,
}

impl Referral {
    /// Past its deadline on `today`, still awaiting its answer.
    pub fn overdue(&self, today: Day) -> bool {
        self.state.awaiting_answer() && self.due_date.is_some_and(|due| due < today)
    }

    /// The next reminder and the day it falls, if any: kept in the store beside the referral
    /// (`next_reminder`) so the scheduler finds what is due with one indexed query.
    pub fn next_reminder(&self) -> Option<(Day, Reminder)> {
        if !self.state.awaiting_answer() {
            return None;
        }
        let due = self.due_date?;
        if self.due_reminded_at.is_none() {
            return Some((due, Reminder::Due));
        }
        if self.overdue_notified_at.is_none() {
            return Some((due.plus_days(1), Reminder::Overdue));
        }
        self.expires_on
            .map(|day| (day.plus_days(1), Reminder::Expire))
    }

    /// Applies the reminder `step` at `at` (the scheduler's own act).
    pub fn remind(mut self, step: Reminder, at: Timestamp) -> Self {
        match step {
            Reminder::Due => self.due_reminded_at = Some(at),
            Reminder::Overdue => self.overdue_notified_at = Some(at),
            Reminder::Expire => {
                let due = self.due_date.map(|d| d.to_string()).unwrap_or_default();
                self.expiry_reason =
                    format!("sans réponse à l'échéance du {due} ni dans le délai qui a suivi");
                // The hub's own act: its name, not the recipient's (the name is reserved, no
                // partner can hold it).
                let hub = PartnerId::parse("hub").unwrap_or_else(|_| self.from.clone());
                self.history.push(ReferralTransition {
                    from: self.state,
                    to: ReferralState::Expired,
                    partner: hub,
                    agent: AgentId::system(),
                    at,
                });
                self.state = ReferralState::Expired;
                self.updated_at = at;
            }
        }
        self.version += 1;
        self
    }

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
            ReferralAction::Escalate { .. } => (from, &self.from),
        };
        if who_may != partner {
            return Err(Error::PermissionDenied(format!(
                "only {who_may} may {} referral {}",
                match action {
                    ReferralAction::Acknowledge => "acknowledge",
                    ReferralAction::Answer(_) => "answer",
                    ReferralAction::Close => "close",
                    ReferralAction::Escalate { .. } => "escalate",
                },
                self.id
            )));
        }
        let allowed: &[ReferralState] = match (&action, from) {
            // Escalating keeps the state: only while the answer is awaited.
            (ReferralAction::Escalate { .. }, Sent) => &[Sent],
            (ReferralAction::Escalate { .. }, Acknowledged) => &[Acknowledged],
            (ReferralAction::Escalate { .. }, _) => &[],
            (_, Sent) => &[Acknowledged, Answered, Closed],
            (_, Acknowledged) => &[Answered, Closed],
            (_, Answered) => &[Closed],
            (_, Closed | Expired) => &[],
        };
        if matches!(action, ReferralAction::Escalate { .. }) && allowed.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "referral {} is `{}`: only a referral awaiting its answer can be escalated",
                self.id,
                from.as_str()
            )));
        }
        if !allowed.contains(&to) {
            let list = if allowed.is_empty() {
                format!("none: the referral is {}", from.as_str())
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
        match action {
            ReferralAction::Answer(answer) => {
                if answer.is_empty() {
                    return Err(Error::invalid(
                        "answer",
                        "required: the answer to the referral",
                    ));
                }
                self.answer = answer;
            }
            ReferralAction::Escalate { due, expires } => {
                self.due_date = Some(due);
                self.expires_on = Some(expires);
                self.due_reminded_at = None;
                self.overdue_notified_at = None;
                self.escalations += 1;
            }
            ReferralAction::Acknowledge | ReferralAction::Close => {}
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
