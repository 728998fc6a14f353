//! Where a person lives: a commune's code in the Code officiel géographique (COG) of the INSEE
//! (`31483` Saint-Gaudens, `31020` Aspet), recorded by a partner that serves them, for the
//! bus's tours. The communes of the arrondissement of Saint-Gaudens (the Comminges) are known
//! by name, with their communauté de communes; other valid codes are kept as codes.
//!
//! The list is the COG as published by Etalab's « Découpage administratif » (package
//! `@etalab/decoupage-administratif` 6.0.0, Licence Ouverte 2.0).

use super::clock::Timestamp;
use super::ids::PartnerId;
use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// A commune's COG code: two characters of département (`01`–`95`, `2A`, `2B`) and three
/// digits, or the overseas départements' `97x` and two digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Commune(String);

impl Commune {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let b = s.as_bytes();
        let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
        let valid = b.len() == 5
            && ((digits(&b[..2]) && &b[..2] != b"00" && &b[..2] != b"20" && digits(&b[2..]))
                || (b[0] == b'2' && matches!(b[1], b'A' | b'B') && digits(&b[2..])))
            && !(b[..2] == *b"96" || (b[..2] == *b"97" && !(b'1'..=b'6').contains(&b[2])));
        if valid {
            Ok(Self(s.to_string()))
        } else {
            Err(Invalid::new(format!(
                "`{}` is not a commune's COG code (five characters, e.g. 31020 for Aspet)",
                super::ids::truncate(s)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The commune's name, when it is one of the Comminges.
    pub fn name(&self) -> Option<&'static str> {
        known(self.as_str()).map(|c| c.name)
    }

    /// "Aspet (31020)", or the code alone.
    pub fn display(&self) -> String {
        match self.name() {
            Some(name) => format!("{name} ({})", self.0),
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Display for Commune {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A commune of the Comminges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub code: &'static str,
    pub name: &'static str,
    pub population: u32,
    /// Its communauté de communes.
    pub epci: &'static str,
}

const COMMINGES_CSV: &str = include_str!("communes_comminges.csv");

/// The communes of the arrondissement of Saint-Gaudens, by code.
pub static COMMINGES: LazyLock<Vec<Known>> = LazyLock::new(|| {
    COMMINGES_CSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split(';');
            Some(Known {
                code: f.next()?,
                name: f.next()?,
                population: f.next()?.parse().ok()?,
                epci: f.next()?,
            })
        })
        .collect()
});

/// A commune of the Comminges by its code.
pub fn known(code: &str) -> Option<&'static Known> {
    COMMINGES
        .binary_search_by(|c| c.code.cmp(code))
        .ok()
        .map(|i| &COMMINGES[i])
}

/// Where a person lives, and who recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Residence {
    pub commune: Commune,
    pub partner: PartnerId,
    pub recorded_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cog_codes_are_checked() {
        for ok in ["31020", "31483", "2A004", "2B033", "97101", "97611"] {
            assert!(Commune::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "3102", "310200", "31O20", "00123", "20123", "2C004", "96001", "97701", "Aspet",
        ] {
            assert!(Commune::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_comminges_is_known_by_name() {
        assert_eq!(COMMINGES.len(), 235);
        assert!(COMMINGES.windows(2).all(|w| w[0].code < w[1].code));
        let aspet = Commune::parse("31020").unwrap();
        assert_eq!(aspet.display(), "Aspet (31020)");
        assert_eq!(
            known("31483").map(|c| c.epci),
            Some("CC Coeur et Coteaux du Comminges")
        );
        assert_eq!(
            COMMINGES
                .iter()
                .filter(|c| c.epci == "CC Coeur et Coteaux du Comminges")
                .count(),
            104
        );
        assert_eq!(Commune::parse("75056").unwrap().display(), "75056");
    }
}
