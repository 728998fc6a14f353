//! The gate every piece of personal data passes: it gathers the facts a decision rests on
//! (relation, consent records, mandates, the alert plan) once per person, then decides item by
//! item with the engine.

use super::{Action, Decision, DecisionRequest, Engine, Subject, coverage};
use crate::domain::consent::{Consent, Mandate};
use crate::domain::{AgentId, CaseId, Clock, DataCategory, Partner, PersonId, Purpose, Timestamp};
use crate::error::Result;
use crate::store::{DynStore, Relation};
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
    /// Cases of the person on which the partner sent a referral: it shows them.
    pub sent_cases: HashSet<CaseId>,
    /// Cases of the person on which the partner received a referral, while the person's
    /// consent (or a rule) still lets referrals reach it: the referral shows them.
    pub received_cases: HashSet<CaseId>,
    /// Received referrals still reach the partner (the decision made at sending, made again
    /// now), and the consent record that lets them, if one does.
    pub receipt: Option<Option<String>>,
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
        // One query: the relation, consents, mandates, referrals, alert plan, rules version.
        let rows = self.store.facts_of(&partner.id, person).await?;
        self.follow_rules(rows.rules_version).await?;
        let relation = rows.relation;
        let referrals = rows.referrals;
        let mut facts = Facts {
            person,
            relation,
            consents: rows.consents,
            mandates: rows.mandates,
            alert_plan: rows.alert_plan.active,
            now: self.clock.now(),
            sent_cases: HashSet::new(),
            received_cases: HashSet::new(),
            receipt: None,
        };
        // What a consent opened, its end closes: a referral received is a tie to the person,
        // and shows its case, only while referrals may still go to this partner.
        if relation.received_referral {
            let d = self.decide(
                &facts,
                partner,
                &AgentId::system(),
                Action::Read,
                Subject::category(DataCategory::Referrals),
                Purpose::Orientation,
            );
            if d.allowed {
                facts.receipt = Some(d.coverage.granted().then_some(d.coverage.record).flatten());
            }
        }
        facts.relation.referral_party =
            relation.sent_referral || (relation.received_referral && facts.receipt.is_some());
        for r in referrals {
            if r.from == partner.id {
                facts.sent_cases.insert(r.case);
            } else if facts.receipt.is_some() {
                facts.received_cases.insert(r.case);
            }
        }
        Ok(facts)
    }

    /// The time decisions are made at.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Another replica may have activated new rules: the newest stored version is the one in
    /// force everywhere, checked before each person's decisions.
    async fn follow_rules(&self, stored: i64) -> Result<()> {
        if stored != self.engine.active().version
            && let Some((version, text)) = self
                .store
                .active_setting(crate::store::Setting::Rules)
                .await?
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
            self_grant: false,
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
