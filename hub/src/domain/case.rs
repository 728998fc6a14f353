//! Cases (démarches) and their lifecycle:
//!
//! ```text
//! draft → sent → acknowledged → in_progress
//! in_progress ⇄ waiting_person | waiting_documents | waiting_third_party | waiting_appointment
//! in_progress → accepted | refused | redirected | cancelled | abandoned → closed
//! any open state → duplicate (the case repeats another)
//! ```
//!
//! Any other transition is refused, naming the current state and the allowed ones.

use super::clock::{Day, Timestamp};
use super::ids::{AgentId, CaseId, PartnerId, PersonId};
use crate::error::{Error, Invalid};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Draft,
    Sent,
    Acknowledged,
    InProgress,
    WaitingPerson,
    WaitingDocuments,
    WaitingThirdParty,
    WaitingAppointment,
    Accepted,
    Refused,
    Redirected,
    Cancelled,
    Abandoned,
    Closed,
    Duplicate,
}

use CaseStatus::*;

impl CaseStatus {
    pub const ALL: [CaseStatus; 15] = [
        Draft,
        Sent,
        Acknowledged,
        InProgress,
        WaitingPerson,
        WaitingDocuments,
        WaitingThirdParty,
        WaitingAppointment,
        Accepted,
        Refused,
        Redirected,
        Cancelled,
        Abandoned,
        Closed,
        Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Draft => "draft",
            Sent => "sent",
            Acknowledged => "acknowledged",
            InProgress => "in_progress",
            WaitingPerson => "waiting_person",
            WaitingDocuments => "waiting_documents",
            WaitingThirdParty => "waiting_third_party",
            WaitingAppointment => "waiting_appointment",
            Accepted => "accepted",
            Refused => "refused",
            Redirected => "redirected",
            Cancelled => "cancelled",
            Abandoned => "abandoned",
            Closed => "closed",
            Duplicate => "duplicate",
        }
    }

    /// In plain French, for printed sheets.
    pub fn label_fr(self) -> &'static str {
        match self {
            Draft => "en préparation",
            Sent => "envoyée",
            Acknowledged => "reçue",
            InProgress => "en cours",
            WaitingPerson => "en attente de la personne",
            WaitingDocuments => "en attente de pièces",
            WaitingThirdParty => "en attente d'un autre service",
            WaitingAppointment => "rendez-vous à fixer",
            Accepted => "acceptée",
            Refused => "refusée",
            Redirected => "réorientée",
            Cancelled => "annulée",
            Abandoned => "abandonnée",
            Closed => "close",
            Duplicate => "doublon",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            WaitingPerson | WaitingDocuments | WaitingThirdParty | WaitingAppointment
        )
    }

    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            Accepted | Refused | Redirected | Cancelled | Abandoned
        )
    }

    /// `closed` and `duplicate` end a case; nothing leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Closed | Duplicate)
    }

    /// The states a case in this state may move to.
    pub fn allowed_next(self) -> Vec<CaseStatus> {
        let mut next: Vec<CaseStatus> = match self {
            Draft => vec![Sent],
            Sent => vec![Acknowledged],
            Acknowledged => vec![InProgress],
            InProgress => vec![
                WaitingPerson,
                WaitingDocuments,
                WaitingThirdParty,
                WaitingAppointment,
                Accepted,
                Refused,
                Redirected,
                Cancelled,
                Abandoned,
            ],
            s if s.is_waiting() => vec![InProgress],
            s if s.is_outcome() => vec![Closed],
            _ => vec![],
        };
        if !self.is_terminal() {
            next.push(Duplicate);
        }
        next
    }

    pub fn can_move_to(self, to: CaseStatus) -> bool {
        self.allowed_next().contains(&to)
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A procedure: a service-public.fr fiche id (`F1342`, `R12345`, `N360`) or a local code
/// (`local:apa-renouvellement`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Procedure(String);

impl Procedure {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new(
                "required: a service-public.fr fiche id (F1342) or a local code (local:…)",
            ));
        }
        let fiche = s.len() >= 2
            && s.len() <= 8
            && matches!(s.as_bytes()[0], b'F' | b'R' | b'N')
            && s[1..].bytes().all(|b| b.is_ascii_digit());
        let local = s.strip_prefix("local:").is_some_and(|code| {
            (1..=64).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if fiche || local {
            Ok(Self(s.to_string()))
        } else {
            Err(Invalid::new(format!(
                "`{}` is neither a service-public.fr fiche id (F1342) nor a local code (local:apa-renouvellement)",
                super::ids::truncate(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Document names a case is waiting for: each 1 to 200 characters, at most 50.
pub fn parse_documents(items: &[String]) -> Result<Vec<String>, Invalid> {
    if items.len() > 50 {
        return Err(Invalid::new("at most 50 documents"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item = super::ids::free_text(item, 200)?;
        if item.is_empty() {
            return Err(Invalid::new("a document name cannot be empty"));
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseTransition {
    pub from: CaseStatus,
    pub to: CaseStatus,
    pub partner: PartnerId,
    pub agent: AgentId,
    pub at: Timestamp,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub id: CaseId,
    pub person: PersonId,
    pub procedure: Procedure,
    pub owner: PartnerId,
    pub status: CaseStatus,
    pub missing_documents: Vec<String>,
    pub due_date: Option<Day>,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub parent: Option<CaseId>,
    pub duplicate_of: Option<CaseId>,
    pub outcome_reason: String,
    pub history: Vec<CaseTransition>,
    pub version: i64,
    /// What a mandate covers; none when the partner gave no theme.
    #[serde(default)]
    pub theme: Option<super::category::Theme>,
}

/// What a transition asks for, once parsed.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    pub to: CaseStatus,
    pub reason: String,
    pub missing_documents: Option<Vec<String>>,
    pub duplicate_of: Option<CaseId>,
    pub redirect: Option<(PartnerId, Option<Procedure>)>,
}

impl Case {
    /// Applies a transition made by `partner`/`agent` at `at`. Returns the case as it stands
    /// after it, and for `redirected` the child case to open with the other partner.
    pub fn transition(
        mut self,
        req: TransitionRequest,
        partner: &PartnerId,
        agent: &AgentId,
        at: Timestamp,
    ) -> Result<(Case, Option<Case>), Error> {
        let from = self.status;
        if !from.can_move_to(req.to) {
            let allowed = from.allowed_next();
            let allowed = if allowed.is_empty() {
                "none: the case is finished".to_string()
            } else {
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::FailedPrecondition(format!(
                "case {} is `{from}`: it cannot move to `{}`; allowed from `{from}`: {allowed}",
                self.id, req.to
            )));
        }
        if req.to == Refused && req.reason.is_empty() {
            return Err(Error::invalid(
                "reason",
                "required: a refusal states its reason",
            ));
        }
        let mut child = None;
        match req.to {
            Duplicate => match req.duplicate_of {
                Some(original) if original == self.id => {
                    return Err(Error::invalid(
                        "duplicate_of",
                        "a case cannot repeat itself",
                    ));
                }
                Some(original) => self.duplicate_of = Some(original),
                None => {
                    return Err(Error::invalid(
                        "duplicate_of",
                        "required: the id of the case this one repeats",
                    ));
                }
            },
            Redirected => {
                let Some((to_partner, procedure)) = req.redirect else {
                    return Err(Error::invalid(
                        "redirect_to_partner",
                        "required: the partner that takes the case over",
                    ));
                };
                if &to_partner == partner {
                    return Err(Error::invalid(
                        "redirect_to_partner",
                        "a case is redirected to another partner",
                    ));
                }
                child = Some(Case {
                    id: CaseId::new(),
                    person: self.person,
                    procedure: procedure.unwrap_or_else(|| self.procedure.clone()),
                    owner: to_partner.clone(),
                    status: Sent,
                    missing_documents: self.missing_documents.clone(),
                    due_date: self.due_date,
                    opened_at: at,
                    updated_at: at,
                    parent: Some(self.id),
                    duplicate_of: None,
                    outcome_reason: String::new(),
                    history: vec![CaseTransition {
                        from: Draft,
                        to: Sent,
                        partner: partner.clone(),
                        agent: agent.clone(),
                        at,
                        reason: format!("redirected from case {}", self.id),
                    }],
                    version: 1,
                    theme: self.theme,
                });
            }
            _ => {}
        }
        if let Some(docs) = req.missing_documents {
            self.missing_documents = docs;
        }
        if !req.reason.is_empty() {
            self.outcome_reason = req.reason.clone();
        }
        self.history.push(CaseTransition {
            from,
            to: req.to,
            partner: partner.clone(),
            agent: agent.clone(),
            at,
            reason: req.reason,
        });
        self.status = req.to;
        self.updated_at = at;
        self.version += 1;
        Ok((self, child))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_of_design_md() {
        assert_eq!(Draft.allowed_next(), vec![Sent, Duplicate]);
        assert!(InProgress.can_move_to(WaitingDocuments));
        assert!(WaitingDocuments.can_move_to(InProgress));
        assert!(!WaitingDocuments.can_move_to(Accepted));
        assert!(Refused.can_move_to(Closed));
        assert!(!Closed.can_move_to(InProgress));
        assert!(Closed.allowed_next().is_empty());
        assert!(Duplicate.allowed_next().is_empty());
        assert!(!Draft.can_move_to(InProgress));
        // Every outcome ends in closed, and only there.
        for s in CaseStatus::ALL.into_iter().filter(|s| s.is_outcome()) {
            assert_eq!(s.allowed_next(), vec![Closed, Duplicate]);
        }
    }

    #[test]
    fn procedures() {
        assert!(Procedure::parse("F1342").is_ok());
        assert!(Procedure::parse("local:apa-renouvellement").is_ok());
        assert!(Procedure::parse("f1342").is_err());
        assert!(Procedure::parse("local:").is_err());
        assert!(Procedure::parse("carte d'identité").is_err());
    }
}
