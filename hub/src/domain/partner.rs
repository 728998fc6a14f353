//! Partners: the public services and associations connected to the hub.

use super::clock::Timestamp;
use super::ids::PartnerId;
use crate::error::Invalid;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    CommunauteDeCommunes,
    Mairie,
    Departement,
    SousPrefecture,
    Association,
    /// National back offices (CAF, ANTS…).
    Operateur,
}

impl PartnerKind {
    pub const ALL: [PartnerKind; 6] = [
        PartnerKind::CommunauteDeCommunes,
        PartnerKind::Mairie,
        PartnerKind::Departement,
        PartnerKind::SousPrefecture,
        PartnerKind::Association,
        PartnerKind::Operateur,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartnerKind::CommunauteDeCommunes => "communaute_de_communes",
            PartnerKind::Mairie => "mairie",
            PartnerKind::Departement => "departement",
            PartnerKind::SousPrefecture => "sous_prefecture",
            PartnerKind::Association => "association",
            PartnerKind::Operateur => "operateur",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    Active,
    Suspended,
}

impl PartnerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Active => "active",
            PartnerStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(PartnerStatus::Active),
            "suspended" => Some(PartnerStatus::Suspended),
            _ => None,
        }
    }
}

/// A territory code: an INSEE COG commune (5 characters) or département (2 or 3 characters).
pub fn parse_territory_code(s: &str) -> Result<String, Invalid> {
    let up = s.trim().to_ascii_uppercase();
    let b = up.as_bytes();
    let departement = match b.len() {
        2 => b.iter().all(u8::is_ascii_digit) || up == "2A" || up == "2B",
        3 => up.starts_with("97") && b.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if departement {
        return Ok(up);
    }
    super::pivot::parse_commune_cog(&up).map_err(|_| {
        Invalid::new(format!(
            "`{}` is not an INSEE COG code of a commune (31483) or a département (31)",
            super::ids::truncate(s)
        ))
    })
}

/// A certificate issued to a partner, known by its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    pub serial: String,
    pub not_after: Timestamp,
    pub issued_at: Timestamp,
    /// The certificate itself (public), so that a retried request returns the same one.
    pub pem: String,
    /// From this time on the certificate is refused: revoked by the administrator, or retired
    /// after the grace period given when a newer one was issued. Kept across suspend/resume.
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    #[serde(default)]
    pub revocation_reason: String,
    /// Issued by an opérateur: refused until an administrateur approves it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_approval: bool,
}

impl CertificateRecord {
    /// Is the certificate refused at `now` (revoked, retired or expired)?
    pub fn refused_at(&self, now: Timestamp) -> Option<&'static str> {
        if self.awaiting_approval {
            Some("awaiting an administrator's approval")
        } else if self.revoked_at.is_some_and(|r| r <= now) {
            Some("revoked")
        } else if self.not_after <= now {
            Some("expired")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub id: PartnerId,
    pub kind: PartnerKind,
    pub name: String,
    pub territory: Vec<String>,
    pub cog_vintage: i32,
    pub status: PartnerStatus,
    pub status_reason: String,
    pub certificates: Vec<CertificateRecord>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn territory_codes() {
        assert_eq!(parse_territory_code("31021").unwrap(), "31021");
        assert_eq!(parse_territory_code("31").unwrap(), "31");
        assert_eq!(parse_territory_code("2b").unwrap(), "2B");
        assert_eq!(parse_territory_code("974").unwrap(), "974");
        assert!(parse_territory_code("3").is_err());
        assert!(parse_territory_code("Aspet").is_err());
    }
}
