//! The difficulty taxonomy. Codes are the contract between partners; labels are French.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A flag's category, which is also the data category consent and access rules speak of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagCategory {
    Mobility,
    Digital,
    Language,
    Administrative,
    Social,
    Financial,
    Housing,
    Health,
}

impl FlagCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagCategory::Mobility => "mobility",
            FlagCategory::Digital => "digital",
            FlagCategory::Language => "language",
            FlagCategory::Administrative => "administrative",
            FlagCategory::Social => "social",
            FlagCategory::Financial => "financial",
            FlagCategory::Housing => "housing",
            FlagCategory::Health => "health",
        }
    }
}

/// One entry of the taxonomy.
#[derive(Debug)]
pub struct TaxonomyEntry {
    pub code: &'static str,
    pub label: &'static str,
    pub category: FlagCategory,
    /// Special category of personal data (GDPR art. 9).
    pub special: bool,
}

const fn entry(
    code: &'static str,
    label: &'static str,
    category: FlagCategory,
    special: bool,
) -> TaxonomyEntry {
    TaxonomyEntry {
        code,
        label,
        category,
        special,
    }
}

use FlagCategory::*;

/// The initial taxonomy of the territory (DESIGN.md).
pub static TAXONOMY: [TaxonomyEntry; 20] = [
    entry(
        "ELOIGNEMENT",
        "Habite loin des services (territoire rural isolé)",
        Mobility,
        false,
    ),
    entry(
        "SANS_TRANSPORT",
        "Aucun moyen de transport",
        Mobility,
        false,
    ),
    entry(
        "DEPENDANT_TC",
        "Dépendant des transports en commun / à la demande",
        Mobility,
        false,
    ),
    entry("SANS_PERMIS", "Pas de permis valide", Mobility, false),
    entry(
        "SANS_INTERNET",
        "Pas d'équipement ou de connexion",
        Digital,
        false,
    ),
    entry("ZONE_BLANCHE", "Pas de réseau au domicile", Digital, false),
    entry("SANS_EMAIL", "Pas d'adresse de messagerie", Digital, false),
    entry(
        "ILLECTRONISME",
        "Utilisation difficile des outils numériques",
        Digital,
        false,
    ),
    entry(
        "LANGUE",
        "Maîtrise difficile du français (écrit, lu ou parlé)",
        Language,
        false,
    ),
    entry(
        "DEMARCHE_DIFFICILE",
        "Difficulté à effectuer seul une démarche",
        Administrative,
        false,
    ),
    entry(
        "JUSTIFICATIF_ID",
        "Pas de justificatif d'identité",
        Administrative,
        false,
    ),
    entry("ISOLEMENT", "Isolement social", Social, false),
    entry("AIDANT", "Aidant familial", Social, false),
    entry(
        "RESSOURCES_PRECAIRES",
        "Sans ressources ou ressources précaires",
        Financial,
        false,
    ),
    entry("SURENDETTEMENT", "Surendettement", Financial, false),
    entry(
        "LOGEMENT_INDIGNE",
        "Logement insalubre ou impayés de loyer",
        Housing,
        false,
    ),
    entry("PERTE_AUTONOMIE", "Perte d'autonomie (APA)", Health, true),
    entry(
        "HANDICAP",
        "Handicap reconnu (AAH, PCH, CMI, RQTH)",
        Health,
        true,
    ),
    entry("SANTE_DECLAREE", "Problème de santé déclaré", Health, true),
    entry(
        "REGISTRE_VULNERABLES",
        "Inscrit au registre communal des personnes vulnérables (CASF L121-6-1)",
        Health,
        true,
    ),
];

/// A code of the taxonomy. Only codes of the taxonomy parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlagCode(&'static TaxonomyEntry);

impl FlagCode {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new("required: a code of the difficulty taxonomy"));
        }
        TAXONOMY
            .iter()
            .find(|e| e.code == s)
            .map(FlagCode)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{}` is not a code of the difficulty taxonomy (e.g. ELOIGNEMENT, SANS_INTERNET, SANS_TRANSPORT)",
                    super::ids::truncate(s)
                ))
            })
    }

    pub fn code(self) -> &'static str {
        self.0.code
    }

    pub fn label(self) -> &'static str {
        self.0.label
    }

    pub fn category(self) -> FlagCategory {
        self.0.category
    }

    pub fn special(self) -> bool {
        self.0.special
    }
}

impl PartialEq for TaxonomyEntry {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

impl Eq for TaxonomyEntry {}

impl std::hash::Hash for TaxonomyEntry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code.hash(state)
    }
}

impl fmt::Display for FlagCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for FlagCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for FlagCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FlagCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_codes_are_special() {
        for code in [
            "PERTE_AUTONOMIE",
            "HANDICAP",
            "SANTE_DECLAREE",
            "REGISTRE_VULNERABLES",
        ] {
            let c = FlagCode::parse(code).unwrap();
            assert!(c.special(), "{code}");
            assert_eq!(c.category(), FlagCategory::Health);
        }
        assert_eq!(TAXONOMY.iter().filter(|e| e.special).count(), 4);
    }

    #[test]
    fn unknown_code_is_refused() {
        assert!(FlagCode::parse("sans_internet").is_err());
        assert!(FlagCode::parse("").is_err());
        assert_eq!(
            FlagCode::parse("SANS_INTERNET").unwrap().label(),
            "Pas d'équipement ou de connexion"
        );
    }
}
