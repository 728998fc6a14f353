//! One access to a person's data — a read or a delivery — decided item by item, and recorded:
//! what was given and refused goes to the audit log, what a partner received from others goes
//! to the disclosures (what a withdrawal will redact), both before the data leaves the hub.

use super::{Action, Facts, Gate, Subject};
use crate::audit::AuditEntry;
use crate::domain::accessibility::Profile;
use crate::domain::case::Case;
use crate::domain::change::{Disclosure, Item};
use crate::domain::commune::Residence;
use crate::domain::flag::Flag;
use crate::domain::referral::Referral;
use crate::domain::{AgentId, DataCategory, Partner, Purpose};
use crate::error::Result;
use crate::store::DynStore;
use std::collections::{BTreeSet, HashSet};

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
    /// Given from the viewer's own records…
    own: BTreeSet<&'static str>,
    /// …and from others' (or as the rules decide).
    shared: BTreeSet<&'static str>,
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
            own: BTreeSet::new(),
            shared: BTreeSet::new(),
            denied: BTreeSet::new(),
            policies: BTreeSet::new(),
            records: BTreeSet::new(),
            disclosures: Vec::new(),
        }
    }

    fn decide(&mut self, subject: Subject, item: Item) -> bool {
        self.decide_for(subject, Some(item))
    }

    /// Decides a read; what is given is disclosed when it is an item the partner keeps (a
    /// flag, a case, a referral), and only audited otherwise (a filter it applies).
    fn decide_for(&mut self, subject: Subject, item: Option<Item>) -> bool {
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
            let record = d
                .coverage
                .granted()
                .then(|| d.coverage.record.clone())
                .flatten();
            match item {
                Some(item) => self.disclose(subject.category, item, record, self.viewer.purpose),
                None => {
                    self.given.insert(category);
                    self.shared.insert(category);
                    self.records.extend(record);
                }
            }
        } else {
            self.denied.insert(category);
        }
        d.allowed
    }

    /// Gives an item another partner wrote: audited, and remembered as received so that the
    /// end of `record` redacts it.
    fn disclose(
        &mut self,
        category: DataCategory,
        item: Item,
        record: Option<String>,
        purpose: Purpose,
    ) {
        self.given.insert(category.as_str());
        self.shared.insert(category.as_str());
        if let Some(r) = &record {
            self.records.insert(r.clone());
        }
        self.disclosures.push(Disclosure {
            partner: self.viewer.partner.id.clone(),
            person: self.facts.person,
            item,
            category,
            at: self.facts.now,
            record,
            purpose: Some(purpose),
            current_flag: false,
        });
    }

    /// A referral received (or the case it names), while referrals may reach the viewer: given
    /// under the record that lets them, so that its end redacts them.
    fn received(&mut self, item: Item) -> bool {
        match self.facts.receipt.clone() {
            Some(record) => {
                // Decided as at sending: referrals reaching the partner, for orientation.
                self.disclose(DataCategory::Referrals, item, record, Purpose::Orientation);
                true
            }
            None => false,
        }
    }

    fn own(&mut self, category: DataCategory) -> bool {
        self.given.insert(category.as_str());
        self.own.insert(category.as_str());
        true
    }

    /// May the viewer see this flag? Its own flags always.
    pub fn flag(&mut self, f: &Flag) -> bool {
        if f.source_partner == self.viewer.partner.id {
            return self.own(f.code.category().into());
        }
        // Past its valid_until a flag is no longer shared, even before the expiry scheduler
        // retracts it.
        if f.lapsed(self.facts.now.day()) {
            return false;
        }
        let given = self.decide(Subject::flag(f.code), Item::Flag(f.id));
        if given
            && f.current(self.facts.now.day())
            && let Some(d) = self.disclosures.last_mut()
        {
            d.current_flag = true;
        }
        given
    }

    /// May the viewer see this case? The cases it holds and those a referral it sent is
    /// about, always; those a referral it received is about, while referrals may reach it;
    /// others as the rules and consent decide.
    pub fn case(&mut self, c: &Case) -> bool {
        if c.owner == self.viewer.partner.id || self.facts.sent_cases.contains(&c.id) {
            return self.own(DataCategory::CaseStatus);
        }
        if self.facts.received_cases.contains(&c.id) && self.received(Item::Case(c.id)) {
            return true;
        }
        self.decide(Subject::case(c.theme), Item::Case(c.id))
    }

    /// May the viewer see this referral? Its sender always; its recipient while referrals may
    /// reach it; others as the rules and consent decide.
    pub fn referral(&mut self, r: &Referral) -> bool {
        if r.from == self.viewer.partner.id {
            return self.own(DataCategory::Referrals);
        }
        if r.to == self.viewer.partner.id && self.received(Item::Referral(r.id)) {
            return true;
        }
        self.decide(
            Subject::category(DataCategory::Referrals),
            Item::Referral(r.id),
        )
    }

    /// May the viewer use where the person lives (to filter on it)? Where it recorded it
    /// itself, always; otherwise as the rules and consent decide for identity data.
    pub fn residence(&mut self, r: &Residence) -> bool {
        if r.partner == self.viewer.partner.id {
            return self.own(DataCategory::Identity);
        }
        self.decide_for(Subject::category(DataCategory::Identity), None)
    }

    /// May the viewer read how to reach the person? The profile it recorded itself, always;
    /// otherwise as the rules and consent decide for accessibility data.
    pub fn accessibility(&mut self, p: &Profile) -> bool {
        if p.recorded_by == self.viewer.partner.id {
            return self.own(DataCategory::Accessibility);
        }
        self.decide_for(Subject::category(DataCategory::Accessibility), None)
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
            own: self
                .own
                .difference(&self.shared)
                .map(|c| c.to_string())
                .collect(),
            denied: self.denied.iter().map(|c| c.to_string()).collect(),
            purpose: Some(self.viewer.purpose.as_str().to_string()),
            decision: decision.into(),
            policies: self.policies.into_iter().collect(),
            records: self.records.into_iter().collect(),
            detail,
            certificate: crate::audit::current_certificate(),
        };
        (entry, self.disclosures)
    }

    /// Records this access (audit entry and disclosures) in the store. What a consent ended
    /// meanwhile no longer covers is withheld: leave it out of the answer.
    pub async fn record(
        self,
        store: &DynStore,
        action: String,
        detail: String,
    ) -> Result<Withheld> {
        let (entry, disclosures) = self.finish(action, detail);
        let refused = store.record_access(vec![entry], disclosures).await?;
        Ok(Withheld(refused.into_iter().collect()))
    }
}

/// Items decided as shareable but withheld when the disclosure was recorded, because the
/// record that allowed them had ended in between.
#[derive(Debug, Default, Clone)]
pub struct Withheld(pub HashSet<Item>);

impl Withheld {
    pub fn keeps(&self, item: &impl AsItem) -> bool {
        !self.0.contains(&item.as_item())
    }
}

/// A resource that is one item of a person's data.
pub trait AsItem {
    fn as_item(&self) -> Item;
}

impl AsItem for Flag {
    fn as_item(&self) -> Item {
        Item::Flag(self.id)
    }
}

impl AsItem for Case {
    fn as_item(&self) -> Item {
        Item::Case(self.id)
    }
}

impl AsItem for Referral {
    fn as_item(&self) -> Item {
        Item::Referral(self.id)
    }
}
