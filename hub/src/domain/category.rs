//! Data categories: what consent and access rules speak of. Each flag category of the
//! taxonomy, plus case status, referrals and display identity.

use super::taxonomy::FlagCategory;
use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    Mobility,
    Digital,
    Language,
    Administrative,
    Social,
    Financial,
    Housing,
    /// Special category (GDPR art. 9).
    Health,
    CaseStatus,
    Referrals,
    /// Name, address, phone — and the mere fact that the hub knows the person.
    Identity,
    /// How to reach the person: the channels and accommodations they state.
    Accessibility,
}

impl DataCategory {
    pub const ALL: [DataCategory; 12] = [
        DataCategory::Mobility,
        DataCategory::Digital,
        DataCategory::Language,
        DataCategory::Administrative,
        DataCategory::Social,
        DataCategory::Financial,
        DataCategory::Housing,
        DataCategory::Health,
        DataCategory::CaseStatus,
        DataCategory::Referrals,
        DataCategory::Identity,
        DataCategory::Accessibility,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataCategory::Mobility => "mobility",
            DataCategory::Digital => "digital",
            DataCategory::Language => "language",
            DataCategory::Administrative => "administrative",
            DataCategory::Social => "social",
            DataCategory::Financial => "financial",
            DataCategory::Housing => "housing",
            DataCategory::Health => "health",
            DataCategory::CaseStatus => "case_status",
            DataCategory::Referrals => "referrals",
            DataCategory::Identity => "identity",
            DataCategory::Accessibility => "accessibility",
        }
    }

    /// French label, for receipts and reports.
    pub fn label_fr(self) -> &'static str {
        match self {
            DataCategory::Mobility => "mobilité",
            DataCategory::Digital => "numérique",
            DataCategory::Language => "langue",
            DataCategory::Administrative => "démarches administratives",
            DataCategory::Social => "situation sociale",
            DataCategory::Financial => "situation financière",
            DataCategory::Housing => "logement",
            DataCategory::Health => "santé et autonomie (donnée sensible)",
            DataCategory::CaseStatus => "état des démarches",
            DataCategory::Referrals => "fiches navettes",
            DataCategory::Identity => "identité et coordonnées",
            DataCategory::Accessibility => "façons de joindre la personne",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{}` is not a data category ({})",
                    super::ids::truncate(s),
                    Self::ALL.map(|c| c.as_str()).join(", ")
                ))
            })
    }

    /// Special categories of personal data (GDPR art. 9).
    pub fn special(self) -> bool {
        self == DataCategory::Health
    }
}

impl From<FlagCategory> for DataCategory {
    fn from(c: FlagCategory) -> Self {
        match c {
            FlagCategory::Mobility => DataCategory::Mobility,
            FlagCategory::Digital => DataCategory::Digital,
            FlagCategory::Language => DataCategory::Language,
            FlagCategory::Administrative => DataCategory::Administrative,
            FlagCategory::Social => DataCategory::Social,
            FlagCategory::Financial => DataCategory::Financial,
            FlagCategory::Housing => DataCategory::Housing,
            FlagCategory::Health => DataCategory::Health,
        }
    }
}

impl fmt::Display for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Procedure themes a mandate covers (after Aidants Connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Argent,
    Famille,
    Justice,
    Logement,
    Loisirs,
    Papiers,
    Social,
    Transports,
    Travail,
    Etranger,
}

impl Theme {
    pub const ALL: [Theme; 10] = [
        Theme::Argent,
        Theme::Famille,
        Theme::Justice,
        Theme::Logement,
        Theme::Loisirs,
        Theme::Papiers,
        Theme::Social,
        Theme::Transports,
        Theme::Travail,
        Theme::Etranger,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Argent => "argent",
            Theme::Famille => "famille",
            Theme::Justice => "justice",
            Theme::Logement => "logement",
            Theme::Loisirs => "loisirs",
            Theme::Papiers => "papiers",
            Theme::Social => "social",
            Theme::Transports => "transports",
            Theme::Travail => "travail",
            Theme::Etranger => "etranger",
        }
    }

    /// As service-public.fr names it.
    pub fn label_fr(self) -> &'static str {
        match self {
            Theme::Argent => "Argent",
            Theme::Famille => "Famille",
            Theme::Justice => "Justice",
            Theme::Logement => "Logement",
            Theme::Loisirs => "Loisirs",
            Theme::Papiers => "Papiers - Citoyenneté",
            Theme::Social => "Social - Santé",
            Theme::Transports => "Transports",
            Theme::Travail => "Travail",
            Theme::Etranger => "Étranger",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{}` is not a procedure theme ({})",
                    super::ids::truncate(s),
                    Self::ALL.map(|c| c.as_str()).join(", ")
                ))
            })
    }
}

impl fmt::Display for Theme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
