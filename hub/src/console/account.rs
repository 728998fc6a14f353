//! Console accounts: roles, argon2 password hashes, TOTP second factors.

use crate::domain::Timestamp;
use crate::error::{Error, Result};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use totp_rs::{Algorithm, TOTP};

/// What an account may do. The server checks it on every call (`allows`), whatever the menu
/// shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Administrateur,
    /// Reads consents, the audit and reports; withdraws a consent on the person's request. No
    /// change to rules or partners.
    Dpo,
    /// Partners and their certificates only.
    Operateur,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "administrateur" => Ok(Self::Administrateur),
            "dpo" => Ok(Self::Dpo),
            "operateur" | "opérateur" => Ok(Self::Operateur),
            other => Err(format!(
                "unknown role `{other}`: administrateur, dpo or operateur"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrateur => "administrateur",
            Self::Dpo => "dpo",
            Self::Operateur => "operateur",
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            Self::Administrateur => "administrateur",
            Self::Dpo => "délégué à la protection des données",
            Self::Operateur => "opérateur",
        }
    }

    pub fn from_pb(role: i32) -> Result<Self, String> {
        use relais_proto::v1::ConsoleRole as R;
        match R::try_from(role) {
            Ok(R::Administrateur) => Ok(Self::Administrateur),
            Ok(R::Dpo) => Ok(Self::Dpo),
            Ok(R::Operateur) => Ok(Self::Operateur),
            _ => Err("required: administrateur, dpo or operateur".into()),
        }
    }

    pub fn to_pb(self) -> relais_proto::v1::ConsoleRole {
        use relais_proto::v1::ConsoleRole as R;
        match self {
            Self::Administrateur => R::Administrateur,
            Self::Dpo => R::Dpo,
            Self::Operateur => R::Operateur,
        }
    }

    /// Whether this role may call an AdminService method, or a console act named like one.
    pub fn allows(self, method: &str) -> bool {
        match self {
            Self::Administrateur => true,
            Self::Dpo => matches!(
                method,
                "GetPartner"
                    | "ListPartners"
                    | "GetRules"
                    | "ListRulesVersions"
                    | "Explain"
                    | "ListPersonConsents"
                    | "WithdrawPersonConsent"
                    | "VerifyAudit"
                    | "SearchAudit"
                    | "GetAccessReport"
                    | "GetConsentReceipt"
                    | "GetMandateDocument"
                    | "FindPerson"
                    | "Dashboard"
                    | "ListAdministrators"
                    | "ListConsoleAccounts"
            ),
            Self::Operateur => matches!(
                method,
                "AddPartner"
                    | "GetPartner"
                    | "ListPartners"
                    | "SuspendPartner"
                    | "ResumePartner"
                    | "IssueCertificate"
                    | "RevokeCertificate"
                    | "Dashboard"
            ),
        }
    }
}

/// A console account acting: put in a request's extensions by the console only (a network
/// client cannot set extensions), it stands for the administrator certificate.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

/// An account name: lowercase letters, digits, `.`, `_`, `-`; 2 to 63 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (2..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err("2 to 63 characters: lowercase letters, digits, `.`, `_` or `-`, starting with a letter".into())
    }
}

pub const MIN_PASSWORD: usize = 12;

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!("at least {MIN_PASSWORD} characters"));
    }
    if password.len() > 1024 {
        return Err("at most 1,024 bytes".into());
    }
    Ok(())
}

/// An argon2id hash (PHC string) of the password, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Internal(format!("random salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing the password: {e}")))
}

/// Whether `password` matches the stored hash (constant time, inside argon2).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so that an unknown name costs
/// the same time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("relais-decoy-password").unwrap_or_default())
}

/// A new TOTP secret: 20 random bytes, base32.
pub fn new_totp_secret() -> Result<String> {
    let mut secret = [0u8; 20];
    getrandom::fill(&mut secret).map_err(|e| Error::Internal(format!("random secret: {e}")))?;
    Ok(totp_rs::Secret::Raw(secret.to_vec())
        .to_encoded()
        .to_string())
}

const STEP: u64 = 30;

fn totp(secret: &str) -> Option<TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .ok()?;
    Some(TOTP::new_unchecked(Algorithm::SHA1, 6, 1, STEP, bytes))
}

/// The time step a code belongs to, checked one step either side of `at`: None when the code
/// is wrong. (The caller refuses a step already used.)
pub fn totp_step(secret: &str, code: &str, at: Timestamp) -> Option<i64> {
    let totp = totp(secret)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = (at.micros().max(0) as u64) / 1_000_000;
    let step = now / STEP;
    [step.saturating_sub(1), step, step + 1]
        .into_iter()
        .find(|s| totp.generate(s * STEP) == code)
        .map(|s| s as i64)
}

/// The code of the current step (for tests and the first-account printout).
pub fn totp_code(secret: &str, at: Timestamp) -> Option<String> {
    let now = (at.micros().max(0) as u64) / 1_000_000;
    totp(secret).map(|t| t.generate(now))
}

/// An otpauth:// URI an authenticator application reads (issuer Relais).
pub fn totp_uri(secret: &str, name: &str) -> String {
    format!(
        "otpauth://totp/Relais:{name}?secret={secret}&issuer=Relais&algorithm=SHA1&digits=6&period={STEP}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn a_code_is_valid_for_its_step_and_its_neighbours() {
        let secret = new_totp_secret().unwrap();
        let at = Timestamp::from_micros(1_800_000_000_000_000);
        let code = totp_code(&secret, at).unwrap();
        let step = totp_step(&secret, &code, at).unwrap();
        assert_eq!(step as u64, 1_800_000_000 / STEP);
        let later = Timestamp::from_micros(at.micros() + 30_000_000);
        assert_eq!(totp_step(&secret, &code, later), Some(step));
        let much_later = Timestamp::from_micros(at.micros() + 120_000_000);
        assert_eq!(totp_step(&secret, &code, much_later), None);
        assert_eq!(totp_step(&secret, "12345", at), None);
    }

    #[test]
    fn roles_allow_what_they_are_for() {
        assert!(Role::Administrateur.allows("SetRules"));
        assert!(!Role::Dpo.allows("SetRules"));
        assert!(!Role::Dpo.allows("DryRunRules"));
        assert!(!Role::Dpo.allows("AddPartner"));
        assert!(Role::Dpo.allows("WithdrawPersonConsent"));
        assert!(Role::Operateur.allows("AddPartner"));
        assert!(!Role::Operateur.allows("ApproveCertificate"));
        assert!(!Role::Dpo.allows("ApproveCertificate"));
        assert!(!Role::Operateur.allows("ListPersonConsents"));
        assert!(!Role::Operateur.allows("SearchAudit"));
        assert!(check_name("marie.dupont").is_ok());
        assert!(check_name("Marie").is_err());
        assert!(check_password("short").is_err());
    }
}
