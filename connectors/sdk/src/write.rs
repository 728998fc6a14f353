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
        #[serde(default)]
        note: String,
        /// How the difficulty is known: `declared` (the person says so, the default),
        /// `observed` (an agent saw it) or `attested` (a document or another service's
        /// decision; say which in `evidence`). The French words are read too.
        #[serde(default)]
        qualification: String,
        /// What attests it, for an attested difficulty.
        #[serde(default)]
        evidence: String,
        /// When to check it again with the person (`YYYY-MM-DD`); empty: the territory's delay.
        #[serde(default)]
        review_on: String,
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
    /// The hub method a write becomes (telemetry names spans with it: no id in it).
    pub fn kind(&self) -> &'static str {
        match self {
            Write::Link { .. } => "LinkPerson",
            Write::RaiseFlag { .. } => "RaiseFlag",
            Write::OpenCase { .. } => "OpenCase",
            Write::MoveCase { .. } => "TransitionCase",
            Write::AnswerReferral { .. } => "AnswerReferral",
        }
    }

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

/// How a flag the hub shares is known, as a word: `declared`, `observed`, `attested` (flags
/// without a qualification read as declared), and in French for people: `déclarée`,
/// `constatée`, `attestée`.
pub fn qualification_words(
    q: Option<&relais_proto::v1::FlagQualification>,
) -> (&'static str, &'static str) {
    use relais_proto::v1::Qualification;
    match q.map(|q| Qualification::try_from(q.qualification)) {
        Some(Ok(Qualification::Observed)) => ("observed", "constatée"),
        Some(Ok(Qualification::Attested)) => ("attested", "attestée"),
        _ => ("declared", "déclarée"),
    }
}

/// A qualification as partners write it (English or French; empty: declared).
pub fn qualification(text: &str) -> Result<relais_proto::v1::Qualification, String> {
    use relais_proto::v1::Qualification;
    match text.trim().to_lowercase().as_str() {
        "" | "declared" | "déclarée" | "declaree" | "déclaré" | "declare" => {
            Ok(Qualification::Declared)
        }
        "observed" | "constatée" | "constatee" | "constaté" | "constate" => {
            Ok(Qualification::Observed)
        }
        "attested" | "attestée" | "attestee" | "attesté" | "atteste" => {
            Ok(Qualification::Attested)
        }
        other => Err(format!(
            "`{other}` is not a qualification: déclarée, constatée or attestée (declared, observed, attested)"
        )),
    }
}

/// A column that raises a flag when its cell says yes (`oui`, `x`, `1`, `vrai`, `yes`): the
/// `[[flags]]` of a csv profile, the `[[sql.flags]]` of an sql one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagColumn {
    pub column: String,
    /// A code of the taxonomy (the hub checks it; a wrong one is dead-lettered with the reason).
    pub code: String,
    /// A column whose text becomes the flag's note.
    pub note_column: Option<String>,
    /// How the difficulties of this column are known: `déclarée` (the person says so, the
    /// default), `constatée` (an agent saw it) or `attestée` (a document or another service's
    /// decision). English words (`declared`, `observed`, `attested`) are read too.
    pub qualification: Option<String>,
    /// A column saying it row by row (an empty cell: `qualification`).
    pub qualification_column: Option<String>,
    /// What attests the difficulties of this column when they are attested ("notification APA
    /// du département").
    pub evidence: Option<String>,
    /// A column saying it row by row (an empty cell: `evidence`).
    pub evidence_column: Option<String>,
    /// A column with the day to check it again with the person; empty: the territory's delay.
    pub review_column: Option<String>,
}

impl FlagColumn {
    /// Checked when the connector starts: a fixed qualification it cannot read.
    pub fn check(&self) -> Result<(), String> {
        match &self.qualification {
            Some(q) => qualification(q)
                .map(|_| ())
                .map_err(|e| format!("flag column `{}`: {e}", self.column)),
            None => Ok(()),
        }
    }

    /// Every column this one reads.
    pub fn columns(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.column).chain(
            [
                &self.note_column,
                &self.qualification_column,
                &self.evidence_column,
                &self.review_column,
            ]
            .into_iter()
            .flatten(),
        )
    }

    /// The flag a row raises through this column: `None` when its cell does not say yes, an
    /// error (the row's reason for refusal) when its qualification or review day cannot be
    /// read. `cell` reads a column of the row by name; `day` turns a review cell into
    /// `YYYY-MM-DD`.
    pub fn write(
        &self,
        local_id: &str,
        cell: impl Fn(&str) -> String,
        day: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Option<Write>, String> {
        if !yes(&cell(&self.column)) {
            return Ok(None);
        }
        let optional = |name: &Option<String>| name.as_deref().map(&cell).unwrap_or_default();
        let mut how = optional(&self.qualification_column);
        if how.is_empty() {
            how = self.qualification.clone().unwrap_or_default();
        }
        qualification(&how).map_err(|e| format!("`{}`: {e}", self.column))?;
        let review = optional(&self.review_column);
        let review_on = if review.is_empty() {
            String::new()
        } else {
            day(&review).map_err(|e| format!("`{}` (review day): {e}", self.column))?
        };
        // Evidence goes only with an attested difficulty (the hub refuses it otherwise).
        let evidence = match optional(&self.evidence_column) {
            _ if qualification(&how) != Ok(relais_proto::v1::Qualification::Attested) => {
                String::new()
            }
            e if e.is_empty() => self.evidence.clone().unwrap_or_default(),
            e => e,
        };
        Ok(Some(Write::RaiseFlag {
            local_id: local_id.to_string(),
            code: self.code.clone(),
            note: optional(&self.note_column),
            qualification: how,
            evidence,
            review_on,
        }))
    }
}

/// A cell that says yes.
pub fn yes(cell: &str) -> bool {
    matches!(
        cell.trim().to_lowercase().as_str(),
        "oui" | "o" | "x" | "1" | "vrai" | "yes" | "y" | "true"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_written_before_qualifications_reads_as_declared() {
        let old = r#"{"write":"raise_flag","local_id":"R-1","code":"ISOLEMENT","note":""}"#;
        let Write::RaiseFlag {
            qualification: q,
            evidence,
            review_on,
            ..
        } = serde_json::from_str(old).unwrap()
        else {
            panic!("a flag")
        };
        assert_eq!(
            qualification(&q),
            Ok(relais_proto::v1::Qualification::Declared)
        );
        assert!(evidence.is_empty() && review_on.is_empty());
        assert_eq!(
            qualification(" Attestée "),
            Ok(relais_proto::v1::Qualification::Attested)
        );
        assert!(qualification("peut-être").is_err());
    }
}
