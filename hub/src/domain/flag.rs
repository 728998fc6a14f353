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

/// How a difficulty is known, from the weakest to the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualification {
    /// The person says so (déclarée).
    Declared,
    /// An agent saw it (constatée): the person could not use the online form at the counter.
    Observed,
    /// A document seen, or a decision of another service (attestée): APA notified by the
    /// département, RQTH.
    Attested,
}

impl Qualification {
    /// The French word, as a counter agent reads it.
    pub fn label(self) -> &'static str {
        match self {
            Qualification::Declared => "déclarée",
            Qualification::Observed => "constatée",
            Qualification::Attested => "attestée",
        }
    }
}

/// One qualification of a flag: how it is known, who said so, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualified {
    pub how: Qualification,
    pub partner: PartnerId,
    pub agent: AgentId,
    pub at: Timestamp,
    /// For an attested flag, what attests it ("notification APA du département"), never the
    /// document itself.
    #[serde(default)]
    pub evidence: String,
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
    /// How the difficulty is known now. Flags raised before qualifications existed read as
    /// declared by their source (the weakest claim; see the README's upgrade note).
    #[serde(default)]
    pub qualification: Option<Qualified>,
    /// Earlier qualifications, oldest first.
    #[serde(default)]
    pub qualification_history: Vec<Qualified>,
    /// The day after which the flag is to be checked again with the person ("à revoir"); it is
    /// still shared after it, never dropped for that.
    #[serde(default)]
    pub review_on: Option<Day>,
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

    /// The qualification in force (declared by the source, at raising, for older flags).
    pub fn qualified(&self) -> Qualified {
        self.qualification.clone().unwrap_or_else(|| Qualified {
            how: Qualification::Declared,
            partner: self.source_partner.clone(),
            agent: self.source_agent.clone(),
            at: self.raised_at,
            evidence: String::new(),
        })
    }

    /// Past its review day on `today`: shown as "à revoir".
    pub fn to_review(&self, today: Day) -> bool {
        self.review_on.is_some_and(|day| day < today)
    }

    /// The same code raised again by its source (`raised`: the new flag as asked): a stronger
    /// qualification upgrades the flag, and the same one confirms it when it is due for review
    /// or past its `valid_until` (a new review day). The qualification it replaces goes to the
    /// history; the flag takes the new note (when one is given) and the later `valid_until`
    /// (none: open-ended). Anything else changes nothing (`None`).
    pub fn requalify(&self, raised: &Flag, today: Day) -> Option<Flag> {
        let current = self.qualified();
        let by = raised.qualified();
        let stronger = by.how > current.how;
        let confirmed = by.how == current.how && (self.to_review(today) || self.lapsed(today));
        if self.retraction.is_some() || !(stronger || confirmed) {
            return None;
        }
        let mut flag = self.clone();
        flag.qualification_history.push(current);
        flag.qualification = Some(by);
        flag.review_on = raised.review_on;
        if !raised.note.is_empty() {
            flag.note = raised.note.clone();
        }
        flag.valid_until = match (self.valid_until, raised.valid_until) {
            (Some(old), Some(new)) => Some(old.max(new)),
            _ => None,
        };
        flag.version += 1;
        Some(flag)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AgentId, FlagId, PartnerId, PersonId};

    fn day(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    fn by(how: Qualification) -> Qualified {
        Qualified {
            how,
            partner: PartnerId::parse("cc-comminges").unwrap(),
            agent: AgentId::parse("bus-agent-1").unwrap(),
            at: Timestamp::from_micros(1_800_000_000_000_000),
            evidence: String::new(),
        }
    }

    /// A flag stored before qualifications existed.
    fn older() -> Flag {
        serde_json::from_value(serde_json::json!({
            "id": FlagId::new().to_string(),
            "person": PersonId::new().to_string(),
            "code": "SANS_INTERNET",
            "source_partner": "cc-comminges",
            "source_agent": "bus-agent-1",
            "raised_at": 1_700_000_000_000_000i64,
            "note": "",
            "valid_until": null,
            "retraction": null,
            "version": 1
        }))
        .unwrap()
    }

    #[test]
    fn an_older_flag_reads_as_declared_by_its_source_without_review_day() {
        let f = older();
        let q = f.qualified();
        assert_eq!(q.how, Qualification::Declared);
        assert_eq!(q.at, f.raised_at);
        assert!(!f.to_review(day("2100-01-01")));
    }

    #[test]
    fn only_stronger_or_a_due_confirmation_requalifies() {
        let today = day("2027-06-01");
        let f = older();
        let raise = |how, review: Option<Day>| Flag {
            qualification: Some(by(how)),
            review_on: review,
            note: "vu au bus".into(),
            ..older()
        };
        assert!(
            f.requalify(&raise(Qualification::Declared, None), today)
                .is_none()
        );
        let up = f
            .requalify(
                &raise(Qualification::Attested, Some(day("2029-06-01"))),
                today,
            )
            .unwrap();
        assert_eq!(up.version, 2);
        assert_eq!(up.note, "vu au bus");
        assert_eq!(up.qualification_history, [f.qualified()]);
        assert!(
            up.requalify(&raise(Qualification::Observed, None), today)
                .is_none()
        );
        // Not due: the same qualification changes nothing; due: it confirms.
        assert!(
            up.requalify(&raise(Qualification::Attested, None), today)
                .is_none()
        );
        let due = Flag {
            review_on: Some(day("2027-05-31")),
            ..up.clone()
        };
        assert!(due.to_review(today));
        let confirmed = due
            .requalify(
                &raise(Qualification::Attested, Some(day("2029-06-01"))),
                today,
            )
            .unwrap();
        assert_eq!(confirmed.qualification_history.len(), 2);
        assert!(!confirmed.to_review(today));
        // Past its valid_until, the same qualification renews it, until the later day.
        let lapsed = Flag {
            valid_until: Some(day("2027-05-01")),
            ..up.clone()
        };
        let renewed = lapsed
            .requalify(
                &Flag {
                    valid_until: Some(day("2028-05-01")),
                    ..raise(Qualification::Attested, None)
                },
                today,
            )
            .unwrap();
        assert_eq!(renewed.valid_until, Some(day("2028-05-01")));
        assert!(renewed.current(today));
        let retracted = Flag {
            retraction: Some(Retraction {
                at: Timestamp::from_micros(0),
                partner: PartnerId::parse("cc-comminges").unwrap(),
                agent: AgentId::parse("bus-agent-1").unwrap(),
                reason: String::new(),
            }),
            ..due
        };
        assert!(
            retracted
                .requalify(&raise(Qualification::Attested, None), today)
                .is_none()
        );
    }
}
