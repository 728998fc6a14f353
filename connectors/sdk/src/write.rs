//! The writes an adapter makes, as they wait in the outbox. Persons are named by the
//! partner's own local ids, cases by the partner's own case references.

use serde::{Deserialize, Serialize};

/// Pivot identity traits, as the partner's software holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pivot {
    pub family_name: String,
    pub first_given_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    pub birth_place_cog: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
pub enum Write {
    /// Links the partner's local id to the person (by pivot identity when given).
    Link {
        local_id: String,
        pivot: Option<Pivot>,
    },
    RaiseFlag {
        local_id: String,
        code: String,
        note: String,
    },
    /// Opens a case known to the partner as `case_ref`.
    OpenCase {
        case_ref: String,
        local_id: String,
        procedure: String,
        theme: String,
        missing_documents: Vec<String>,
    },
    /// Moves the case known as `case_ref` (opened through this connector).
    MoveCase {
        case_ref: String,
        /// A lifecycle status: `sent`, `in_progress`, `waiting_documents`…
        to: String,
        reason: String,
        missing_documents: Option<Vec<String>>,
    },
    /// Answers a referral (fiche navette) the partner received, by its hub id (as the
    /// partner's software got it from the feed).
    AnswerReferral { referral_id: String, answer: String },
}

impl Write {
    /// A short description for logs and the dead-letter list.
    pub fn describe(&self) -> String {
        match self {
            Write::Link { local_id, .. } => format!("link {local_id}"),
            Write::RaiseFlag { local_id, code, .. } => format!("flag {code} for {local_id}"),
            Write::OpenCase {
                case_ref,
                procedure,
                ..
            } => format!("open case {case_ref} ({procedure})"),
            Write::MoveCase { case_ref, to, .. } => format!("move case {case_ref} to {to}"),
            Write::AnswerReferral { referral_id, .. } => format!("answer referral {referral_id}"),
        }
    }
}
