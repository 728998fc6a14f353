//! Identifiers. Record ids (flags, cases, referrals) are UUIDv7, time-ordered, so listing by id
//! lists by creation. Person ids are random (UUIDv4): a partner that is handed a person's id
//! must not learn from it when the hub first knew the person. Ids of either version parse, so
//! ids given out before stay valid. Partner ids are slugs chosen by the administrator; agent
//! and local ids belong to partners.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        uuid_id!($(#[$doc])* $name, Uuid::now_v7);
    };
    ($(#[$doc:meta])* $name:ident, $make:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self($make())
            }

            pub fn parse(s: &str) -> Result<Self, Invalid> {
                if s.is_empty() {
                    return Err(Invalid::new("required"));
                }
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| Invalid::new(format!("`{}` is not a UUID", truncate(s))))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A person (usager) known to the hub: random, carrying no creation time and no order.
    PersonId,
    Uuid::new_v4
);
uuid_id!(
    /// A difficulty flag.
    FlagId
);
uuid_id!(
    /// A case (démarche).
    CaseId
);
uuid_id!(
    /// A referral (fiche navette).
    ReferralId
);

/// Shortens a value quoted back in an error message.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn printable(s: &str, max: usize) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(Invalid::new("required"));
    }
    if s.chars().count() > max {
        return Err(Invalid::new(format!("at most {max} characters")));
    }
    if s.chars().any(char::is_control) || s.trim() != s {
        return Err(Invalid::new(
            "no control characters, no leading or trailing space",
        ));
    }
    Ok(())
}

/// A partner's slug: lowercase ASCII letters, digits and `-`, 2 to 63 characters, starting and
/// ending with a letter or digit (`mairie-aspet`, `cc-coeur-comminges`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartnerId(String);

impl PartnerId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new("required"));
        }
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = !s.starts_with('-') && !s.ends_with('-');
        if !(2..=63).contains(&s.len()) || !ok_chars || !ok_ends {
            return Err(Invalid::new(format!(
                "`{}` is not a partner id: 2 to 63 lowercase letters, digits or `-`, not starting or ending with `-`",
                truncate(s)
            )));
        }
        Ok(Self(s.to_string()))
    }

    /// A slug made from a display name: "Mairie d'Aspet" → `mairie-d-aspet`.
    pub fn from_name(name: &str) -> Result<Self, Invalid> {
        let folded = crate::domain::pivot::fold_ascii(name).to_ascii_lowercase();
        let mut slug = String::new();
        for c in folded.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-');
        let slug: String = slug.chars().take(63).collect();
        Self::parse(slug.trim_end_matches('-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An agent's pseudonymous id, assigned by its partner: 1 to 128 characters among ASCII
/// letters, digits and `.`, `_`, `-`, `:`, `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new("required: the acting agent's pseudonymous id"));
        }
        let ok = s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:@".contains(&b));
        if !ok {
            return Err(Invalid::new(format!(
                "`{}` is not an agent id: 1 to 128 ASCII letters, digits or `._-:@`",
                truncate(s)
            )));
        }
        Ok(Self(s.to_string()))
    }

    /// The hub itself, for changes no agent made (a redirected case's child).
    pub fn system() -> Self {
        Self("relais".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A partner's own id for a person (file number, row id): 1 to 128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocalId(String);

impl LocalId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        printable(s, 128)?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An idempotency key (AIP-155): 1 to 128 printable characters, unique per caller and write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new(
                "required: every write carries an idempotency key (a UUID is a good one)",
            ));
        }
        printable(s, 128)?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bounded free text (reason, note, answer): printable, at most `max` characters.
pub fn free_text(s: &str, max: usize) -> Result<String, Invalid> {
    if s.chars().count() > max {
        return Err(Invalid::new(format!("at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Invalid::new("no control characters"));
    }
    Ok(s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_slug_from_name() {
        assert_eq!(
            PartnerId::from_name("Mairie d'Aspet").unwrap().as_str(),
            "mairie-d-aspet"
        );
        assert_eq!(
            PartnerId::from_name("CC Cœur & Coteaux du Comminges")
                .unwrap()
                .as_str(),
            "cc-coeur-coteaux-du-comminges"
        );
        assert!(PartnerId::parse("-bad").is_err());
        assert!(PartnerId::parse("Bad").is_err());
    }

    #[test]
    fn agent_ids() {
        assert!(AgentId::parse("agent-12@bus").is_ok());
        assert!(AgentId::parse("").is_err());
        assert!(AgentId::parse("has space").is_err());
    }
}
