//! Consent as data: which record, if any, covers a partner, a category and a purpose now.

use super::Subject;
use crate::domain::consent::{Consent, LegalBasis, Mandate, RecordState};
use crate::domain::{AgentId, DataCategory, Partner, Purpose, Timestamp};

/// What covers a read: a record's state and basis, and which record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coverage {
    /// `None` when no record concerns this grantee, category and purpose.
    pub state: Option<RecordState>,
    pub basis: Option<LegalBasis>,
    /// `consent:<id>` or `mandate:<id>`.
    pub record: Option<String>,
}

impl Coverage {
    pub const NONE: Coverage = Coverage {
        state: None,
        basis: None,
        record: None,
    };

    pub fn granted(&self) -> bool {
        self.state == Some(RecordState::Granted)
    }

    pub fn state_str(&self) -> &'static str {
        self.state.map_or("none", RecordState::as_str)
    }

    pub fn describe(&self) -> String {
        match &self.record {
            None => "no consent record".into(),
            Some(r) => format!(
                "{r} {} on {}",
                self.state_str(),
                super::basis_str(self.basis)
            ),
        }
    }
}

/// The best record covering `partner`/`agent` for `subject` and `purpose` at `now`: a granted
/// one if any (consent records first, then the agent's mandates for case status of the
/// mandate's themes), otherwise the most recent expired or withdrawn one, otherwise none.
pub fn coverage(
    consents: &[Consent],
    mandates: &[Mandate],
    partner: &Partner,
    agent: &AgentId,
    subject: &Subject,
    purpose: Purpose,
    now: Timestamp,
) -> Coverage {
    let mut lapsed: Option<(crate::domain::Timestamp, Coverage)> = None;
    let mut consider = |state: RecordState, since: Timestamp, c: Coverage| {
        if lapsed.as_ref().is_none_or(|(t, _)| since > *t) {
            lapsed = Some((
                since,
                Coverage {
                    state: Some(state),
                    ..c
                },
            ));
        }
    };
    for consent in consents
        .iter()
        .filter(|c| c.concerns(&partner.id, partner.kind, agent, subject.category, purpose))
    {
        let c = Coverage {
            state: None,
            basis: Some(consent.legal_basis),
            record: Some(format!("consent:{}", consent.id)),
        };
        match consent.state_at(now) {
            RecordState::Granted => {
                return Coverage {
                    state: Some(RecordState::Granted),
                    ..c
                };
            }
            state => consider(
                state,
                consent
                    .withdrawal
                    .as_ref()
                    .map_or(consent.granted_at, |w| w.at),
                c,
            ),
        }
    }
    // A mandate lets its agent follow the person's cases on the mandate's themes, to help
    // with them (Aidants Connect): it is the person's consent for that.
    if subject.category == DataCategory::CaseStatus && purpose == Purpose::Accompagnement {
        for mandate in mandates.iter().filter(|m| {
            m.partner == partner.id
                && &m.agent == agent
                && subject.theme.is_some_and(|t| m.themes.contains(&t))
        }) {
            let c = Coverage {
                state: None,
                basis: Some(LegalBasis::Consent),
                record: Some(format!("mandate:{}", mandate.id)),
            };
            match mandate.state_at(now) {
                RecordState::Granted => {
                    return Coverage {
                        state: Some(RecordState::Granted),
                        ..c
                    };
                }
                state => consider(state, mandate.granted_at, c),
            }
        }
    }
    lapsed.map_or(Coverage::NONE, |(_, c)| c)
}
