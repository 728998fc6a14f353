//! The context every call touching personal data carries: why (purpose) and who (agent).

use super::ids::AgentId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why personal data is touched. Closed list, from the territory's processing register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Accompagnement,
    Instruction,
    Orientation,
    AllerVers,
    PlanAlerte,
    Administration,
    Statistique,
}

impl Purpose {
    pub const ALL: [Purpose; 7] = [
        Purpose::Accompagnement,
        Purpose::Instruction,
        Purpose::Orientation,
        Purpose::AllerVers,
        Purpose::PlanAlerte,
        Purpose::Administration,
        Purpose::Statistique,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Accompagnement => "accompagnement",
            Purpose::Instruction => "instruction",
            Purpose::Orientation => "orientation",
            Purpose::AllerVers => "aller_vers",
            Purpose::PlanAlerte => "plan_alerte",
            Purpose::Administration => "administration",
            Purpose::Statistique => "statistique",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// `statistique` allows aggregates only: never a person-level read.
    pub fn allows_person_level_data(self) -> bool {
        !matches!(self, Purpose::Statistique)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Purpose and acting agent, both checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub purpose: Purpose,
    pub agent: AgentId,
}
