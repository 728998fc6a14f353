//! Decides who may see or write what, with the reasons. The facts — how a partner is tied to a
//! person, which consent records and mandates the person gave — come from the store; the
//! decision is made here and nowhere else: access rules are Cedar policies checked against a
//! Cedar schema (`engine`), and consent is the floor under them (`coverage`).

pub mod access;
pub mod coverage;
pub mod engine;
pub mod gate;

pub use access::{Access, AsItem, Viewer, Withheld};
pub use coverage::{Coverage, coverage};
pub use engine::{Engine, RuleError};
pub use gate::{Facts, Gate};

use crate::domain::consent::LegalBasis;
use crate::domain::{AgentId, DataCategory, FlagCode, Partner, Purpose, Theme};
use crate::store::Relation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
    /// Recording a consent: a forbid rule on it means the record waits for an administrator's
    /// countersignature before it covers anything.
    RecordConsent,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::RecordConsent => "record_consent",
        }
    }
}

/// The piece of a person's data a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subject {
    pub category: DataCategory,
    /// A flag's code (flags only).
    pub code: Option<FlagCode>,
    /// A case's theme (cases only).
    pub theme: Option<Theme>,
}

impl Subject {
    pub fn category(category: DataCategory) -> Self {
        Self {
            category,
            code: None,
            theme: None,
        }
    }

    pub fn flag(code: FlagCode) -> Self {
        Self {
            category: code.category().into(),
            code: Some(code),
            theme: None,
        }
    }

    pub fn case(theme: Option<Theme>) -> Self {
        Self {
            category: DataCategory::CaseStatus,
            code: None,
            theme,
        }
    }
}

/// Everything a decision rests on.
#[derive(Debug, Clone)]
pub struct DecisionRequest<'a> {
    pub partner: &'a Partner,
    pub agent: &'a AgentId,
    pub action: Action,
    pub subject: Subject,
    pub purpose: Purpose,
    pub relation: Relation,
    pub coverage: Coverage,
    pub alert_plan: bool,
    /// Recording a consent whose grantee includes the recording partner itself.
    pub self_grant: bool,
}

/// Allow or deny, and why: the deciding rules, their stated reasons, and the consent behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the rules that decided (permits for an allow, forbids for a deny).
    pub policies: Vec<String>,
    /// Their `@reason`, or the hub's own reason when no rule applied.
    pub reasons: Vec<String>,
    pub coverage: Coverage,
    /// The legal basis a permitting rule names, when no consent covers the read.
    pub legal_basis: Option<String>,
    /// The version of the rules that decided.
    pub rules_version: i64,
}

impl Decision {
    /// A one-line account, for logs and the audit.
    pub fn summary(&self) -> String {
        format!(
            "{} by {} ({})",
            if self.allowed { "allowed" } else { "denied" },
            if self.policies.is_empty() {
                "no rule".to_string()
            } else {
                self.policies.join(", ")
            },
            self.coverage.describe()
        )
    }
}

/// The legal bases a rule may name, as the context spells them.
pub fn basis_str(basis: Option<LegalBasis>) -> &'static str {
    basis.map_or("none", LegalBasis::as_str)
}
