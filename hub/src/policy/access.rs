//! One access to a person's data — a read or a delivery — decided item by item, and recorded:
//! what was given and refused goes to the audit log, what a partner received from others goes
//! to the disclosures (what a withdrawal will redact), both before the data leaves the hub.

use super::{Action, Facts, Gate, Subject};
use crate::audit::AuditEntry;
use crate::domain::case::Case;
use crate::domain::change::{Disclosure, Item};
use crate::domain::flag::Flag;
use crate::domain::referral::Referral;
use crate::domain::{AgentId, DataCategory, Partner, Purpose};
use crate::error::Result;
use crate::store::DynStore;
use std::collections::BTreeSet;

/// Who looks, and why.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub partner: &'a Partner,
    pub agent: &'a AgentId,
    pub purpose: Purpose,
}

pub struct Access<'a> {
    gate: &'a Gate,
    viewer: Viewer<'a>,
    pub facts: Facts,
    given: BTreeSet<&'static str>,
    denied: BTreeSet<&'static str>,
    policies: BTreeSet<String>,
    records: BTreeSet<String>,
    disclosures: Vec<Disclosure>,
}

impl<'a> Access<'a> {
    pub fn new(gate: &'a Gate, viewer: Viewer<'a>, facts: Facts) -> Self {
        Self {
            gate,
            viewer,
            facts,
            given: BTreeSet::new(),
            denied: BTreeSet::new(),
            policies: BTreeSet::new(),
            records: BTreeSet::new(),
            disclosures: Vec::new(),
        }
    }

    fn decide(&mut self, subject: Subject, item: Item) -> bool {
        let d = self.gate.decide(
            &self.facts,
            self.viewer.partner,
            self.viewer.agent,
            Action::Read,
            subject,
            self.viewer.purpose,
        );
        let category = subject.category.as_str();
        self.policies.extend(d.policies.iter().cloned());
        if let Some(record) = &d.coverage.record {
            self.records.insert(record.clone());
        }
        if d.allowed {
            self.given.insert(category);
            self.disclosures.push(Disclosure {
                partner: self.viewer.partner.id.clone(),
                person: self.facts.person,
                item,
                category: subject.category,
                at: self.facts.now,
            });
        } else {
            self.denied.insert(category);
        }
        d.allowed
    }

    fn own(&mut self, category: DataCategory) -> bool {
        self.given.insert(category.as_str());
        true
    }

    /// May the viewer see this flag? Its own flags always.
    pub fn flag(&mut self, f: &Flag) -> bool {
        if f.source_partner == self.viewer.partner.id {
            return self.own(f.code.category().into());
        }
        self.decide(Subject::flag(f.code), Item::Flag(f.id))
    }

    /// May the viewer see this case? The cases it holds, and those a referral it sends or
    /// receives is about, always.
    pub fn case(&mut self, c: &Case) -> bool {
        if c.owner == self.viewer.partner.id || self.facts.referral_cases.contains(&c.id) {
            return self.own(DataCategory::CaseStatus);
        }
        self.decide(Subject::case(c.theme), Item::Case(c.id))
    }

    /// May the viewer see this referral? Its two parties always.
    pub fn referral(&mut self, r: &Referral) -> bool {
        if r.from == self.viewer.partner.id || r.to == self.viewer.partner.id {
            return self.own(DataCategory::Referrals);
        }
        self.decide(
            Subject::category(DataCategory::Referrals),
            Item::Referral(r.id),
        )
    }

    /// The audit entry of this access and the disclosures it made, to record before the data
    /// leaves the hub.
    pub fn finish(self, action: String, detail: String) -> (AuditEntry, Vec<Disclosure>) {
        let decision = match (self.given.is_empty(), self.denied.is_empty()) {
            (_, true) => "allow",
            (true, false) => "deny",
            (false, false) => "partial",
        };
        let entry = AuditEntry {
            at: self.facts.now,
            principal: self.viewer.partner.id.to_string(),
            agent: self.viewer.agent.to_string(),
            action,
            person: Some(self.facts.person),
            categories: self.given.iter().map(|c| c.to_string()).collect(),
            denied: self.denied.iter().map(|c| c.to_string()).collect(),
            purpose: Some(self.viewer.purpose.as_str().to_string()),
            decision: decision.into(),
            policies: self.policies.into_iter().collect(),
            records: self.records.into_iter().collect(),
            detail,
        };
        (entry, self.disclosures)
    }

    /// Records this access (audit entry and disclosures) in the store.
    pub async fn record(self, store: &DynStore, action: String, detail: String) -> Result<()> {
        let (entry, disclosures) = self.finish(action, detail);
        store.record_access(vec![entry], disclosures).await
    }
}
