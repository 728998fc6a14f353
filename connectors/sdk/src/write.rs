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

impl Write {
    /// What the write was, in French, for the people who made the data (errors files).
    pub fn describe_fr(&self) -> String {
        match self {
            Write::Link { .. } => "la personne".into(),
            Write::RaiseFlag { code, .. } => format!("la difficulté {code}"),
            Write::OpenCase { procedure, .. } => format!("la démarche {procedure}"),
            Write::MoveCase { case_ref, to, .. } => {
                format!("le passage de la démarche {case_ref} à « {to} »")
            }
            Write::AnswerReferral { .. } => "la réponse à la fiche navette".into(),
        }
    }
}

/// Why the hub refused a write, in French: the kind of refusal from its gRPC code, then the
/// hub's own words (which name the field at fault).
pub fn refusal_fr(code: &str, message: &str) -> String {
    let kind = match code {
        "InvalidArgument" => "refusée par le hub, une donnée n'est pas valable",
        "PermissionDenied" => "refusée par le hub, ce partenaire n'y est pas autorisé",
        "NotFound" => "refusée par le hub, la personne ou la démarche lui est inconnue",
        "FailedPrecondition" => "refusée par le hub, impossible dans l'état actuel",
        "AlreadyExists" => "refusée par le hub, elle existe déjà",
        "Unauthenticated" => "refusée par le hub, le certificat du connecteur n'est pas reconnu",
        _ => "refusée par le hub",
    };
    format!("{kind} ({})", french_dates(message))
}

/// `2026-12-05` written `05/12/2026`, as in the partner's spreadsheets.
fn french_dates(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let iso = i + 10 <= b.len()
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 5..i + 7].iter().all(u8::is_ascii_digit)
            && b[i + 7] == b'-'
            && b[i + 8..i + 10].iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && (i + 10 == b.len() || !b[i + 10].is_ascii_digit());
        if iso {
            let d = &text[i..i + 10];
            out.push_str(&format!("{}/{}/{}", &d[8..10], &d[5..7], &d[0..4]));
            i += 10;
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
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
            "« {other} » n'est pas une façon de savoir une difficulté : déclarée, constatée ou attestée (declared, observed, attested)"
        )),
    }
}

/// A column that raises a flag when its cell says yes (`oui`, `x`, `1`, `vrai`, `yes`): the
/// `[[flags]]` of a csv profile, the `[[sql.flags]]` of an sql one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagColumn {
    pub column: String,
    /// A code of the taxonomy, checked when the profile is read (a wrong one stops the
    /// connector at start, with its line in the profile).
    #[serde(deserialize_with = "taxonomy_code")]
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

/// A flag code of the hub's taxonomy; anything else is an error at its place in the profile.
fn taxonomy_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let code = String::deserialize(d)?;
    relais_hub::domain::FlagCode::parse(&code)
        .map(|_| code.clone())
        .map_err(|e| serde::de::Error::custom(format!("unknown flag code: {e}")))
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
        let said = cell(&self.column);
        match yes_or_no(&said) {
            Some(true) => {}
            Some(false) => return Ok(None),
            None => {
                return Err(format!(
                    "« {said} » dans la colonne « {} » n'est ni oui ni non (oui, x, 1 — ou non, 0, une case vide)",
                    self.column
                ));
            }
        }
        let optional = |name: &Option<String>| name.as_deref().map(&cell).unwrap_or_default();
        let mut how = optional(&self.qualification_column);
        if how.is_empty() {
            how = self.qualification.clone().unwrap_or_default();
        }
        qualification(&how).map_err(|e| format!("colonne « {} » : {e}", self.column))?;
        let review = optional(&self.review_column);
        let review_on = if review.is_empty() {
            String::new()
        } else {
            day(&review).map_err(|e| {
                format!(
                    "colonne « {} » (jour où la revoir, « à revoir le ») : {e}",
                    self.column
                )
            })?
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
    yes_or_no(cell) == Some(true)
}

/// What a cell says: yes (`oui`, `x`, `1`, `vrai`…), no (`non`, `0`, `faux`, an empty cell…),
/// or neither (`peut-être`, `?`): then the row is refused rather than read as no.
pub fn yes_or_no(cell: &str) -> Option<bool> {
    match cell.trim().to_lowercase().as_str() {
        "oui" | "o" | "x" | "1" | "vrai" | "yes" | "y" | "true" | "t" => Some(true),
        "" | "non" | "n" | "0" | "faux" | "no" | "false" | "f" | "-" => Some(false),
        _ => None,
    }
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
