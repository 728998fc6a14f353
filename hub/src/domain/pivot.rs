//! Pivot identity matching. A partner that does not know the hub id finds the person by family
//! name, first given name, birth date and birth place. The hub never keeps those traits for
//! matching: it keeps an HMAC-SHA-256, under the hub's own secret key, of the normalised traits.
//! Without the key a stolen database does not let anyone test "is X a person here?".

use super::clock::Day;
use crate::error::{Invalid, Violations};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

/// Validated pivot traits, as the partner gave them.
#[derive(Debug, Clone)]
pub struct PivotIdentity {
    family_name: String,
    first_given_name: String,
    birth_date: Day,
    birth_place_cog: String,
}

/// The keyed hash of a normalised pivot identity (hex), what the store indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PivotKey(String);

impl PivotKey {
    pub fn from_hex(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret behind pivot keys, generated on first start and kept in the data directory.
pub struct MatchingKey([u8; 32]);

impl MatchingKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn key(&self, id: &PivotIdentity) -> PivotKey {
        // The secret is 32 bytes, which HMAC accepts whatever its length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("hmac accepts keys of any length")
        };
        mac.update(b"relais-pivot-v1");
        for part in [
            normalise_name(&id.family_name),
            normalise_name(&id.first_given_name),
            id.birth_date.to_string(),
            id.birth_place_cog.clone(),
        ] {
            // A separator that normalised parts cannot contain keeps "AB"+"C" apart from "A"+"BC".
            mac.update(&[0x1f]);
            mac.update(part.as_bytes());
        }
        PivotKey(hex::encode(mac.finalize().into_bytes()))
    }
}

/// Folds accents and ligatures to ASCII: "Élodie Cœur" → "Elodie Coeur".
pub fn fold_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        match c {
            'œ' => out.push_str("oe"),
            'Œ' => out.push_str("OE"),
            'æ' => out.push_str("ae"),
            'Æ' => out.push_str("AE"),
            'ß' => out.push_str("ss"),
            'ø' => out.push('o'),
            'Ø' => out.push('O'),
            c if unicode_normalization::char::is_combining_mark(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Case, accents, hyphens, apostrophes and spaces folded: "Dupont-Lefèvre", "DUPONT LEFEVRE"
/// and "dupont lefevre" all give `DUPONTLEFEVRE`.
pub fn normalise_name(s: &str) -> String {
    fold_ascii(s)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// An INSEE COG code of a commune: five characters, digits or `2A`/`2B` (Corsica) then digits.
pub fn parse_commune_cog(s: &str) -> Result<String, Invalid> {
    if s.is_empty() {
        return Err(Invalid::new("required: the INSEE COG code of the commune"));
    }
    let s = s.to_ascii_uppercase();
    let b = s.as_bytes();
    let corsica = b.len() == 5 && b[0] == b'2' && (b[1] == b'A' || b[1] == b'B');
    let ok = b.len() == 5
        && (b.iter().all(u8::is_ascii_digit) || (corsica && b[2..].iter().all(u8::is_ascii_digit)));
    if !ok {
        return Err(Invalid::new(format!(
            "`{}` is not an INSEE COG commune code (five characters, e.g. 31483)",
            super::ids::truncate(&s)
        )));
    }
    Ok(s)
}

impl PivotIdentity {
    /// Parses the four traits; violations are reported under `prefix.<field>`.
    pub fn parse(
        prefix: &str,
        family_name: &str,
        first_given_name: &str,
        birth_date: &str,
        birth_place_cog: &str,
    ) -> Result<Self, crate::error::Error> {
        let mut v = Violations::new();
        let name = |s: &str| -> Result<String, Invalid> {
            if normalise_name(s).is_empty() {
                Err(Invalid::new("required: at least one letter"))
            } else if s.chars().count() > 100 {
                Err(Invalid::new("at most 100 characters"))
            } else {
                Ok(s.to_string())
            }
        };
        let family_name = v.field(&format!("{prefix}.family_name"), name(family_name));
        let first_given_name = v.field(
            &format!("{prefix}.first_given_name"),
            name(first_given_name),
        );
        let birth_date = v.field(&format!("{prefix}.birth_date"), Day::parse(birth_date));
        let birth_place_cog = v.field(
            &format!("{prefix}.birth_place_cog"),
            parse_commune_cog(birth_place_cog),
        );
        v.finish()?;
        match (family_name, first_given_name, birth_date, birth_place_cog) {
            (
                Some(family_name),
                Some(first_given_name),
                Some(birth_date),
                Some(birth_place_cog),
            ) => Ok(Self {
                family_name,
                first_given_name,
                birth_date,
                birth_place_cog,
            }),
            _ => Err(crate::error::Error::Internal(
                "pivot parse lost a violation".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pivot(f: &str, g: &str) -> PivotIdentity {
        PivotIdentity::parse("pivot", f, g, "1951-03-08", "31483").unwrap()
    }

    #[test]
    fn names_fold_case_accents_hyphens_apostrophes_spaces() {
        assert_eq!(normalise_name("Dupont-Lefèvre"), "DUPONTLEFEVRE");
        assert_eq!(normalise_name("  DUPONT LEFEVRE "), "DUPONTLEFEVRE");
        assert_eq!(normalise_name("d'Almeida"), "DALMEIDA");
        assert_eq!(normalise_name("Cœur"), "COEUR");
        assert_eq!(normalise_name("D’ALMEIDA"), "DALMEIDA");
    }

    #[test]
    fn same_person_same_key_other_key_differs() {
        let key = MatchingKey::from_bytes([7; 32]);
        assert_eq!(
            key.key(&pivot("Dupont-Lefèvre", "Élodie")),
            key.key(&pivot("DUPONT LEFEVRE", "ELODIE"))
        );
        assert_ne!(
            key.key(&pivot("Dupont", "Élodie")),
            key.key(&pivot("Dupond", "Élodie"))
        );
        let other = MatchingKey::from_bytes([8; 32]);
        assert_ne!(
            key.key(&pivot("Dupont", "Élodie")),
            other.key(&pivot("Dupont", "Élodie"))
        );
    }

    #[test]
    fn every_bad_trait_is_reported() {
        let Err(crate::error::Error::Invalid(v)) =
            PivotIdentity::parse("pivot", "", "--", "1951-13-01", "3148")
        else {
            panic!("expected violations")
        };
        let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "pivot.family_name",
                "pivot.first_given_name",
                "pivot.birth_date",
                "pivot.birth_place_cog"
            ]
        );
    }

    #[test]
    fn cog_codes() {
        assert_eq!(parse_commune_cog("31483").unwrap(), "31483");
        assert_eq!(parse_commune_cog("2a004").unwrap(), "2A004");
        assert!(parse_commune_cog("3148").is_err());
        assert!(parse_commune_cog("2C004").is_err());
    }
}
