//! Decides who may see what, with the reason. The facts (how a partner is related to a person)
//! come from the store; the decision is made here and nowhere else.
//!
//! Foundation rule, until consent records and Cedar access rules take over: a registered,
//! active partner sees a person's flags, cases and referrals when it has linked the person,
//! holds one of the person's cases, or sends or receives a referral about the person; a
//! referral is seen by its two parties only; no person-level data is given for the
//! `statistique` purpose.

use crate::domain::Purpose;
use crate::domain::change::{ChangeRecord, ChangeResource};
use crate::domain::ids::PartnerId;
use crate::store::Relation;

/// Allow or deny, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(&'static str),
    Deny(&'static str),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) => r,
        }
    }
}

/// May a partner, for this purpose, read or write about a person it is related to this way?
pub fn person_access(relation: Relation, purpose: Purpose) -> Decision {
    if !purpose.allows_person_level_data() {
        return Decision::Deny(
            "the statistique purpose gives aggregates only, never person-level data",
        );
    }
    if relation.linked {
        Decision::Allow("the partner has linked the person")
    } else if relation.owns_case {
        Decision::Allow("the partner holds a case of the person")
    } else if relation.referral_party {
        Decision::Allow("the partner sends or receives a referral about the person")
    } else {
        Decision::Deny("the partner has no link, case or referral with the person")
    }
}

/// May this change be delivered to `partner` on its feed?
pub fn change_delivery(
    partner: &PartnerId,
    change: &ChangeRecord,
    relation: Relation,
    purpose: Purpose,
) -> Decision {
    match &change.resource {
        _ if !purpose.allows_person_level_data() => {
            Decision::Deny("the statistique purpose gives aggregates only, never person-level data")
        }
        ChangeResource::Referral(r) if &r.from == partner || &r.to == partner => {
            Decision::Allow("the partner is a party to the referral")
        }
        ChangeResource::Referral(_) => Decision::Deny("referrals go to their two parties only"),
        _ => person_access(relation, purpose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrelated_partners_and_statistics_see_nothing() {
        assert!(!person_access(Relation::default(), Purpose::Accompagnement).allowed());
        let linked = Relation {
            linked: true,
            ..Relation::default()
        };
        assert!(person_access(linked, Purpose::Instruction).allowed());
        assert!(!person_access(linked, Purpose::Statistique).allowed());
    }
}
