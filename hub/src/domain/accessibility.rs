//! How to reach the person (`accessibility`): the channels and accommodations they state —
//! in their order of preference —, and plain-French advice derived from the difficulties a
//! partner may read ("pas d'e-mail : écrire par courrier"). The hub keeps no address, phone
//! number or e-mail: a channel names the partner that holds the contact details ("joindre via
//! le CCAS d'Aspet"), and free text that looks like contact details is refused.

use super::clock::Timestamp;
use super::ids::{PartnerId, free_text};
use super::taxonomy::FlagCode;
use crate::error::Invalid;
use serde::{Deserialize, Serialize};

/// A way to reach the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Telephone,
    /// Courrier papier.
    Courrier,
    Sms,
    /// En personne, au bus France Services.
    Bus,
    /// En personne, en mairie.
    Mairie,
    /// En personne, à domicile.
    Domicile,
    /// Par le médiateur local.
    Mediateur,
    /// Par un proche.
    Proche,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 8] = [
        ChannelKind::Telephone,
        ChannelKind::Courrier,
        ChannelKind::Sms,
        ChannelKind::Bus,
        ChannelKind::Mairie,
        ChannelKind::Domicile,
        ChannelKind::Mediateur,
        ChannelKind::Proche,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Telephone => "telephone",
            ChannelKind::Courrier => "courrier",
            ChannelKind::Sms => "sms",
            ChannelKind::Bus => "bus",
            ChannelKind::Mairie => "mairie",
            ChannelKind::Domicile => "domicile",
            ChannelKind::Mediateur => "mediateur",
            ChannelKind::Proche => "proche",
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            ChannelKind::Telephone => "par téléphone",
            ChannelKind::Courrier => "par courrier papier",
            ChannelKind::Sms => "par SMS",
            ChannelKind::Bus => "en personne, au bus France Services",
            ChannelKind::Mairie => "en personne, en mairie",
            ChannelKind::Domicile => "en personne, à domicile",
            ChannelKind::Mediateur => "par le médiateur local",
            ChannelKind::Proche => "par un proche",
        }
    }

    /// Channels that need contact details: the partner holding them must be named.
    pub fn needs_holder(self) -> bool {
        matches!(
            self,
            ChannelKind::Telephone
                | ChannelKind::Courrier
                | ChannelKind::Sms
                | ChannelKind::Domicile
                | ChannelKind::Proche
        )
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{}` is not a channel (telephone, courrier, sms, bus, mairie, domicile, mediateur, proche)",
                    super::ids::truncate(s)
                ))
            })
    }
}

/// One channel, and who holds what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub kind: ChannelKind,
    /// The partner that holds the contact details (phone number, address, the proche's
    /// name).
    pub via: Option<PartnerId>,
    /// A few words ("sa fille, le soir"), never contact details.
    pub note: String,
}

/// What the person states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// In the person's order of preference.
    pub channels: Vec<Channel>,
    /// The language an interpreter should speak, when one is needed ("arabe", "LSF").
    pub interpreter: Option<String>,
    pub large_print: bool,
    /// Facile à lire et à comprendre.
    pub easy_read: bool,
    /// When to reach them ("le matin, pas le mercredi").
    pub best_times: String,
    pub recorded_by: PartnerId,
    pub recorded_at: Timestamp,
    pub version: i64,
}

/// Refuses what looks like contact details in free text: an e-mail, or six digits or more (a
/// phone number, even written "05 61 94 00 00").
pub fn no_contact_details(text: &str, max: usize) -> Result<String, Invalid> {
    let text = free_text(text, max)?;
    if text.contains(['@', '＠', '﹫']) {
        return Err(Invalid::new(
            "no e-mail address: the hub keeps none; name the partner that holds it",
        ));
    }
    // Any script's digits: "０５ ６１…" is a phone number too.
    if text.chars().filter(|c| c.is_numeric()).count() >= 6 {
        return Err(Invalid::new(
            "no phone number or other number: the hub keeps none; name the partner that holds it",
        ));
    }
    Ok(text)
}

/// A piece of advice derived from one difficulty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub code: FlagCode,
    pub text: &'static str,
}

/// Advice by difficulty, in the order an agent reads it (how to write, how to meet, how to
/// speak).
const ADVICE: [(&str, &str); 16] = [
    ("SANS_EMAIL", "pas d'e-mail : écrire par courrier"),
    (
        "SANS_INTERNET",
        "pas d'internet : ne pas renvoyer vers un site, envoyer les formulaires sur papier",
    ),
    (
        "ZONE_BLANCHE",
        "pas de réseau au domicile : préférer le courrier ou un téléphone fixe",
    ),
    (
        "ILLECTRONISME",
        "difficulté avec le numérique : proposer l'aide d'un médiateur ou du bus",
    ),
    (
        "SANS_TRANSPORT",
        "pas de véhicule : proposer le bus ou un rendez-vous téléphonique",
    ),
    (
        "SANS_PERMIS",
        "pas de permis : proposer le bus ou un rendez-vous téléphonique",
    ),
    (
        "DEPENDANT_TC",
        "dépend du transport à la demande : fixer les rendez-vous plusieurs jours à l'avance",
    ),
    (
        "ELOIGNEMENT",
        "habite loin des services : regrouper les rendez-vous, proposer le passage du bus",
    ),
    (
        "LANGUE",
        "français difficile : phrases courtes, proposer un interprète",
    ),
    (
        "DEMARCHE_DIFFICILE",
        "démarches difficiles seul : prévoir un accompagnement pas à pas",
    ),
    (
        "JUSTIFICATIF_ID",
        "pas de pièce d'identité : ne pas la demander comme condition du rendez-vous",
    ),
    (
        "ISOLEMENT",
        "personne isolée : privilégier un contact direct et régulier",
    ),
    (
        "PERTE_AUTONOMIE",
        "perte d'autonomie : proposer un rendez-vous à domicile",
    ),
    (
        "HANDICAP",
        "handicap reconnu : vérifier l'accessibilité du lieu ou venir à domicile",
    ),
    (
        "SANTE_DECLAREE",
        "problème de santé : prévoir des rendez-vous courts, à domicile si besoin",
    ),
    (
        "REGISTRE_VULNERABLES",
        "personne vulnérable : s'assurer qu'elle a bien reçu et compris chaque courrier",
    ),
];

/// The advice an agent should follow, from the difficulties given — those the viewer may
/// read, so that advice from a health flag reaches only a partner that may read it. Each
/// piece once; the same advice from two codes (no vehicle, no licence) said once.
pub fn statements(codes: &[FlagCode]) -> Vec<Statement> {
    let has = |c: &str| codes.iter().any(|k| k.code() == c);
    ADVICE
        .iter()
        .filter(|(code, _)| has(code))
        .filter(|(code, _)| !(*code == "SANS_PERMIS" && has("SANS_TRANSPORT")))
        .filter_map(|(code, text)| {
            Some(Statement {
                code: FlagCode::parse(code).ok()?,
                text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> FlagCode {
        FlagCode::parse(c).unwrap()
    }

    #[test]
    fn contact_details_are_refused() {
        assert!(no_contact_details("sa fille, le soir", 200).is_ok());
        assert!(no_contact_details("entre 9h et 11h", 200).is_ok());
        assert!(no_contact_details("05 61 94 00 00", 200).is_err());
        assert!(no_contact_details("marie@example.org", 200).is_err());
        assert!(no_contact_details("０５６１９４００００", 200).is_err());
        assert!(no_contact_details("marie＠example.org", 200).is_err());
    }

    #[test]
    fn advice_follows_the_difficulties_read() {
        let s = statements(&[
            code("SANS_TRANSPORT"),
            code("SANS_EMAIL"),
            code("SANS_PERMIS"),
        ]);
        let texts: Vec<_> = s.iter().map(|s| s.text).collect();
        assert_eq!(
            texts,
            vec![
                "pas d'e-mail : écrire par courrier",
                "pas de véhicule : proposer le bus ou un rendez-vous téléphonique",
            ]
        );
        assert!(statements(&[code("AIDANT")]).is_empty());
        // Every code of the advice is a code of the taxonomy.
        assert_eq!(
            statements(&ADVICE.map(|(c, _)| code(c))).len(),
            ADVICE.len() - 1
        );
    }
}
