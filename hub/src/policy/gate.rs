//! The gate every piece of personal data passes: it gathers the facts a decision rests on
//! (relation, consent records, mandates, the alert plan) once per person, then decides item by
//! item with the engine.

use super::{Action, Decision, DecisionRequest, Engine, Subject, coverage};
use crate::domain::consent::{Consent, Mandate};
use crate::domain::{AgentId, CaseId, Clock, DataCategory, Partner, PersonId, Purpose, Timestamp};
use crate::error::Result;
use crate::store::{DynStore, ReferralFilter, Relation};
use std::collections::HashSet;
use std::sync::Arc;

/// What decisions about one person's data rest on, read from the store at decision time.
#[derive(Debug, Clone)]
pub struct Facts {
    pub person: PersonId,
    pub relation: Relation,
    pub consents: Vec<Consent>,
    pub mandates: Vec<Mandate>,
    pub alert_plan: bool,
    pub now: Timestamp,
    /// Cases of the person on which the partner sends or receives a referral: the referral
    /// names them, so its parties see them.
    pub referral_cases: HashSet<CaseId>,
}

pub struct Gate {
    pub engine: Arc<Engine>,
    store: DynStore,
    clock: Arc<dyn Clock>,
}

impl Gate {
    pub fn new(engine: Arc<Engine>, store: DynStore, clock: Arc<dyn Clock>) -> Self {
        Self {
            engine,
            store,
            clock,
        }
    }

    #[tracing::instrument(skip(self), fields(partner = %partner.id, person = %person))]
    pub async fn facts(&self, partner: &Partner, person: PersonId) -> Result<Facts> {
        self.follow_rules().await?;
        let relation = self.store.relation(&partner.id, person).await?;
        let referral_cases = if relation.referral_party {
            self.store
                .list_referrals(
                    &ReferralFilter {
                        partner: partner.id.clone(),
                        direction: None,
                        person: Some(person),
                        states: vec![],
                    },
                    None,
                    10_000,
                )
                .await?
                .into_iter()
                .map(|r| r.case)
                .collect()
        } else {
            HashSet::new()
        };
        Ok(Facts {
            person,
            relation,
            referral_cases,
            consents: self.store.consents_of(person).await?,
            mandates: self.store.mandates_of(person).await?,
            alert_plan: self.store.alert_plan().await?.active,
            now: self.clock.now(),
        })
    }

    /// Another replica may have activated new rules: the newest stored version is the one in
    /// force everywhere, checked before each person's decisions.
    async fn follow_rules(&self) -> Result<()> {
        let stored = self.store.rules_version_in_force().await?;
        if stored != self.engine.active().version
            && let Some((version, text)) = self.store.active_rules().await?
        {
            self.engine.activate(version.version, &text).map_err(|e| {
                crate::error::Error::Internal(format!(
                    "rules version {} does not compile: {}",
                    version.version,
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?;
            tracing::info!(
                version = version.version,
                "access rules activated by another replica"
            );
        }
        Ok(())
    }

    pub fn decide(
        &self,
        facts: &Facts,
        partner: &Partner,
        agent: &AgentId,
        action: Action,
        subject: Subject,
        purpose: Purpose,
    ) -> Decision {
        let coverage = coverage(
            &facts.consents,
            &facts.mandates,
            partner,
            agent,
            &subject,
            purpose,
            facts.now,
        );
        self.engine.decide(&DecisionRequest {
            partner,
            agent,
            action,
            subject,
            purpose,
            relation: facts.relation,
            coverage,
            alert_plan: facts.alert_plan,
        })
    }

    /// May the partner learn that the hub knows this person? Yes when it is already tied to
    /// the person (it linked them, holds a case, is party to a referral); otherwise only when
    /// reading the person's identity is allowed.
    pub fn may_know(
        &self,
        facts: &Facts,
        partner: &Partner,
        agent: &AgentId,
        purpose: Purpose,
    ) -> bool {
        if !purpose.allows_person_level_data() {
            return false;
        }
        facts.relation.any()
            || self
                .decide(
                    facts,
                    partner,
                    agent,
                    Action::Read,
                    Subject::category(DataCategory::Identity),
                    purpose,
                )
                .allowed
    }
}
