//! Consent records (fields after ISO/IEC TS 27560 and FHIR Consent) and mandates (after
//! Aidants Connect). A record names who may receive which categories for which purposes, on
//! which legal basis, how it was collected, and keeps its whole status history. Withdrawal is
//! as easy as granting and takes effect at once.

use super::category::{DataCategory, Theme};
use super::clock::Timestamp;
use super::context::Purpose;
use super::ids::{AgentId, PartnerId, PersonId};
use super::partner::PartnerKind;
use crate::error::{Error, Invalid};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! record_id {
    ($name:ident) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(s: &str) -> Result<Self, Invalid> {
                if s.is_empty() {
                    return Err(Invalid::new("required"));
                }
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    Invalid::new(format!("`{}` is not a UUID", super::ids::truncate(s)))
                })
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

record_id!(ConsentId);
record_id!(MandateId);

/// Who may receive the data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Grantee {
    Partner { partner: PartnerId },
    Kind { kind: PartnerKind },
    Agent { partner: PartnerId, agent: AgentId },
}

impl Grantee {
    /// Does this grantee include the agent `agent` of partner `partner` (of kind `kind`)?
    pub fn includes(&self, partner: &PartnerId, kind: PartnerKind, agent: &AgentId) -> bool {
        match self {
            Grantee::Partner { partner: p } => p == partner,
            Grantee::Kind { kind: k } => *k == kind,
            Grantee::Agent {
                partner: p,
                agent: a,
            } => p == partner && a == agent,
        }
    }

    pub fn describe_fr(&self) -> String {
        match self {
            Grantee::Partner { partner } => format!("le partenaire {partner}"),
            Grantee::Kind { kind } => format!("les partenaires de type {}", kind.as_str()),
            Grantee::Agent { partner, agent } => format!("l'agent {agent} ({partner})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    LegalObligation,
    PublicTask,
    VitalInterest,
}

impl LegalBasis {
    pub const ALL: [LegalBasis; 4] = [
        LegalBasis::Consent,
        LegalBasis::LegalObligation,
        LegalBasis::PublicTask,
        LegalBasis::VitalInterest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::VitalInterest => "vital_interest",
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            LegalBasis::Consent => "votre consentement",
            LegalBasis::LegalObligation => "une obligation légale",
            LegalBasis::PublicTask => "une mission de service public",
            LegalBasis::VitalInterest => "la sauvegarde de vos intérêts vitaux",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionMethod {
    OralWithWitness,
    SignedPaper,
    Digital,
}

impl CollectionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionMethod::OralWithWitness => "oral_with_witness",
            CollectionMethod::SignedPaper => "signed_paper",
            CollectionMethod::Digital => "digital",
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            CollectionMethod::OralWithWitness => "à l'oral, devant témoin",
            CollectionMethod::SignedPaper => "sur papier signé",
            CollectionMethod::Digital => "en ligne",
        }
    }
}

/// The state of a record at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    Granted,
    Expired,
    Withdrawn,
    /// Recorded, awaiting an administrator's countersignature: covers nothing yet.
    Pending,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Granted => "granted",
            RecordState::Expired => "expired",
            RecordState::Withdrawn => "withdrawn",
            RecordState::Pending => "pending",
        }
    }
}

/// One entry of a record's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub at: Timestamp,
    pub status: RecordState,
    /// Partner id, or `admin`.
    pub by: String,
    pub agent: String,
    /// For a withdrawal: the channel (counter, phone, letter, online…).
    pub channel: String,
}

/// Where the collecting partner met the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionChannel {
    Guichet,
    Bus,
    Domicile,
    Telephone,
    ViaMediateur,
}

impl CollectionChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionChannel::Guichet => "guichet",
            CollectionChannel::Bus => "bus",
            CollectionChannel::Domicile => "domicile",
            CollectionChannel::Telephone => "telephone",
            CollectionChannel::ViaMediateur => "via_mediateur",
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            CollectionChannel::Guichet => "au guichet",
            CollectionChannel::Bus => "dans le bus France Services",
            CollectionChannel::Domicile => "à domicile",
            CollectionChannel::Telephone => "par téléphone",
            CollectionChannel::ViaMediateur => "par un médiateur local",
        }
    }
}

/// An administrator's countersignature, required by the rules for some records (health data
/// opened to the collector itself, by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Countersignature {
    /// When and by whom it was countersigned; `None` while pending.
    pub at: Option<Timestamp>,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub at: Timestamp,
    pub channel: String,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub id: ConsentId,
    pub person: PersonId,
    pub grantee: Grantee,
    pub categories: Vec<DataCategory>,
    pub purposes: Vec<Purpose>,
    pub legal_basis: LegalBasis,
    pub collected_by: PartnerId,
    pub collected_by_agent: AgentId,
    pub method: CollectionMethod,
    /// For an oral consent: who witnessed it.
    pub witness: String,
    pub notice_version: String,
    /// BCP 47 language tag of the notice given (`fr`, `oc`, `es`…).
    pub notice_language: String,
    /// Where the evidence is kept (scan reference, register page).
    pub evidence_ref: String,
    pub granted_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub withdrawal: Option<Withdrawal>,
    pub history: Vec<StatusChange>,
    pub version: i64,
    /// Where the collector met the person (records made before it was required have none).
    #[serde(default)]
    pub channel: Option<CollectionChannel>,
    /// Present when the rules required an administrator's countersignature.
    #[serde(default)]
    pub countersignature: Option<Countersignature>,
}

impl Consent {
    pub fn state_at(&self, now: Timestamp) -> RecordState {
        if self.withdrawal.is_some() {
            RecordState::Withdrawn
        } else if self.expires_at.is_some_and(|e| e <= now) {
            RecordState::Expired
        } else if self
            .countersignature
            .as_ref()
            .is_some_and(|c| c.at.is_none())
        {
            RecordState::Pending
        } else {
            RecordState::Granted
        }
    }

    /// Does the record speak of this grantee, category and purpose (whatever its state)?
    pub fn concerns(
        &self,
        partner: &PartnerId,
        kind: PartnerKind,
        agent: &AgentId,
        category: DataCategory,
        purpose: Purpose,
    ) -> bool {
        self.grantee.includes(partner, kind, agent)
            && self.categories.contains(&category)
            && self.purposes.contains(&purpose)
    }

    /// An administrator countersigns a pending record: from then on it covers what it says.
    pub fn countersign(mut self, at: Timestamp, by: String) -> Result<Self, Error> {
        match &mut self.countersignature {
            Some(c) if c.at.is_none() && self.withdrawal.is_none() => {
                c.at = Some(at);
                c.by = by.clone();
            }
            Some(_) if self.withdrawal.is_some() => {
                return Err(Error::FailedPrecondition(format!(
                    "consent {} was withdrawn: nothing to countersign",
                    self.id
                )));
            }
            Some(_) => {
                return Err(Error::FailedPrecondition(format!(
                    "consent {} is already countersigned",
                    self.id
                )));
            }
            None => {
                return Err(Error::FailedPrecondition(format!(
                    "consent {} needs no countersignature",
                    self.id
                )));
            }
        }
        self.history.push(StatusChange {
            at,
            status: RecordState::Granted,
            by,
            agent: "admin".into(),
            channel: "contre-signature".into(),
        });
        self.version += 1;
        Ok(self)
    }

    pub fn withdraw(
        mut self,
        at: Timestamp,
        channel: String,
        by: String,
        agent: String,
    ) -> Result<Self, Error> {
        let what = format!("consent {}", self.id);
        end(
            &mut self.withdrawal,
            &mut self.history,
            &mut self.version,
            what,
            at,
            channel,
            by,
            agent,
        )?;
        Ok(self)
    }
}

/// Ends a record (a withdrawn consent, a revoked mandate): the withdrawal, its place in the
/// status history, a new version. A record ends once.
#[allow(clippy::too_many_arguments)]
fn end(
    slot: &mut Option<Withdrawal>,
    history: &mut Vec<StatusChange>,
    version: &mut i64,
    what: String,
    at: Timestamp,
    channel: String,
    by: String,
    agent: String,
) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::FailedPrecondition(format!(
            "{what} has already ended (withdrawn)"
        )));
    }
    *slot = Some(Withdrawal {
        at,
        channel: channel.clone(),
        by: by.clone(),
    });
    history.push(StatusChange {
        at,
        status: RecordState::Withdrawn,
        by,
        agent,
        channel,
    });
    *version += 1;
    Ok(())
}

/// How long a mandate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MandateDuration {
    OneDay,
    OneMonth,
    SixMonths,
    OneYear,
}

impl MandateDuration {
    pub fn micros(self) -> i64 {
        const DAY: i64 = 86_400 * 1_000_000;
        match self {
            MandateDuration::OneDay => DAY,
            MandateDuration::OneMonth => 30 * DAY,
            MandateDuration::SixMonths => 182 * DAY,
            MandateDuration::OneYear => 365 * DAY,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MandateDuration::OneDay => "one_day",
            MandateDuration::OneMonth => "one_month",
            MandateDuration::SixMonths => "six_months",
            MandateDuration::OneYear => "one_year",
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            MandateDuration::OneDay => "1 jour",
            MandateDuration::OneMonth => "1 mois",
            MandateDuration::SixMonths => "6 mois",
            MandateDuration::OneYear => "1 an",
        }
    }
}

/// A named agent may act for the person on the listed themes, for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mandate {
    pub id: MandateId,
    pub person: PersonId,
    pub partner: PartnerId,
    pub agent: AgentId,
    pub themes: Vec<Theme>,
    pub duration: MandateDuration,
    pub granted_at: Timestamp,
    pub expires_at: Timestamp,
    pub revocation: Option<Withdrawal>,
    pub collected_by: PartnerId,
    pub collected_by_agent: AgentId,
    pub method: CollectionMethod,
    pub history: Vec<StatusChange>,
    pub version: i64,
}

impl Mandate {
    pub fn state_at(&self, now: Timestamp) -> RecordState {
        if self.revocation.is_some() {
            RecordState::Withdrawn
        } else if self.expires_at <= now {
            RecordState::Expired
        } else {
            RecordState::Granted
        }
    }

    pub fn revoke(
        mut self,
        at: Timestamp,
        channel: String,
        by: String,
        agent: String,
    ) -> Result<Self, Error> {
        let what = format!("mandate {}", self.id);
        end(
            &mut self.revocation,
            &mut self.history,
            &mut self.version,
            what,
            at,
            channel,
            by,
            agent,
        )?;
        Ok(self)
    }
}

impl Grantee {
    /// Does this grantee include some agent of `partner`?
    fn includes_partner(&self, partner: &PartnerId, kind: PartnerKind) -> bool {
        match self {
            Grantee::Partner { partner: p } | Grantee::Agent { partner: p, .. } => p == partner,
            Grantee::Kind { kind: k } => *k == kind,
        }
    }
}

/// When a record stops covering `grantee` for `categories` (withdrawn consent, revoked
/// mandate), the partners that received such data and are not covered by another granted
/// record must delete it: one redaction per partner, listing the items.
pub fn redactions(
    record: &str,
    grantee: &Grantee,
    categories: &[DataCategory],
    still_granted: &[Consent],
    received: &[(super::partner::Partner, super::change::Disclosure)],
    now: Timestamp,
) -> Vec<super::change::Redaction> {
    use std::collections::BTreeMap;
    let mut per_partner: BTreeMap<PartnerId, super::change::Redaction> = BTreeMap::new();
    for (partner, disclosure) in received {
        if !categories.contains(&disclosure.category)
            || !grantee.includes_partner(&partner.id, partner.kind)
        {
            continue;
        }
        let covered = still_granted.iter().any(|c| {
            c.state_at(now) == RecordState::Granted
                && c.categories.contains(&disclosure.category)
                && c.grantee.includes_partner(&partner.id, partner.kind)
                && disclosure.purpose.is_none_or(|p| c.purposes.contains(&p))
        });
        if covered {
            continue;
        }
        let r = per_partner
            .entry(partner.id.clone())
            .or_insert_with(|| super::change::Redaction {
                person: disclosure.person,
                partner: partner.id.clone(),
                items: vec![],
                categories: vec![],
                reason: format!("{record} no longer covers this data"),
                record: record.to_string(),
            });
        if !r.items.contains(&disclosure.item) {
            r.items.push(disclosure.item);
        }
        if !r.categories.contains(&disclosure.category) {
            r.categories.push(disclosure.category);
        }
    }
    per_partner.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(expires_at: Option<i64>) -> Consent {
        let p = PartnerId::parse("asso-mediation").unwrap();
        let a = AgentId::parse("mediateur-1").unwrap();
        Consent {
            id: ConsentId::new(),
            person: PersonId::new(),
            grantee: Grantee::Kind {
                kind: PartnerKind::Association,
            },
            categories: vec![DataCategory::CaseStatus],
            purposes: vec![Purpose::Accompagnement],
            legal_basis: LegalBasis::Consent,
            collected_by: p,
            collected_by_agent: a,
            method: CollectionMethod::SignedPaper,
            witness: String::new(),
            notice_version: "2026-01".into(),
            notice_language: "fr".into(),
            evidence_ref: String::new(),
            granted_at: Timestamp::from_micros(0),
            expires_at: expires_at.map(Timestamp::from_micros),
            withdrawal: None,
            history: vec![],
            version: 1,
            channel: None,
            countersignature: None,
        }
    }

    #[test]
    fn states_over_time() {
        let c = consent(Some(100));
        assert_eq!(c.state_at(Timestamp::from_micros(99)), RecordState::Granted);
        assert_eq!(
            c.state_at(Timestamp::from_micros(100)),
            RecordState::Expired
        );
        let w = consent(None)
            .withdraw(
                Timestamp::from_micros(5),
                "guichet".into(),
                "mairie-aspet".into(),
                "a".into(),
            )
            .unwrap();
        assert_eq!(
            w.state_at(Timestamp::from_micros(6)),
            RecordState::Withdrawn
        );
        assert_eq!(w.history.len(), 1);
        assert!(
            w.withdraw(
                Timestamp::from_micros(7),
                "x".into(),
                "y".into(),
                "z".into()
            )
            .is_err()
        );
    }

    #[test]
    fn grantees() {
        let p = PartnerId::parse("asso-mediation").unwrap();
        let a = AgentId::parse("mediateur-1").unwrap();
        let c = consent(None);
        assert!(c.concerns(
            &p,
            PartnerKind::Association,
            &a,
            DataCategory::CaseStatus,
            Purpose::Accompagnement
        ));
        assert!(!c.concerns(
            &p,
            PartnerKind::Mairie,
            &a,
            DataCategory::CaseStatus,
            Purpose::Accompagnement
        ));
        assert!(!c.concerns(
            &p,
            PartnerKind::Association,
            &a,
            DataCategory::Health,
            Purpose::Accompagnement
        ));
        assert!(!c.concerns(
            &p,
            PartnerKind::Association,
            &a,
            DataCategory::CaseStatus,
            Purpose::Instruction
        ));
    }
}
