//! The receipt of a consent record, handed to the person when they give (or withdraw) it.

use super::{
    Block, Doc, Partners, capital, categories_fr, channel_fr, date_fr, datetime_fr, grantee_fr,
    join_fr, partner_fr, purpose_fr, reference, rights, state_fr,
};
use crate::config::TerritoryConfig;
use crate::domain::Timestamp;
use crate::domain::consent::{Consent, LegalBasis, RecordState};

/// The receipt of `c` as it stands at `now`: (text, printable HTML).
pub fn consent_receipt(
    c: &Consent,
    partners: &Partners,
    territory: &TerritoryConfig,
    now: Timestamp,
) -> (String, String) {
    let doc = build(c, partners, territory, now);
    (doc.text(), doc.html())
}

fn build(c: &Consent, partners: &Partners, territory: &TerritoryConfig, now: Timestamp) -> Doc {
    let reference = reference(c.person);
    // A record on another basis than consent is not an accord: the person was informed of it
    // and cannot withdraw it.
    let by_consent = c.legal_basis == LegalBasis::Consent;
    let title = if by_consent {
        "Reçu de votre accord de partage"
    } else {
        "Information sur un partage de vos données"
    };
    let mut doc = Doc::for_person(title, territory, "", &reference);
    let grantee = grantee_fr(&c.grantee, partners);
    let collector = partner_fr(partners, &c.collected_by);
    let place = c
        .channel
        .map(|ch| format!(", {}", ch.label_fr()))
        .unwrap_or_default();
    if by_consent {
        doc.para(format!(
            "Le {}{place}, vous avez accepté ({}) que ces informations vous concernant soient \
             transmises {} : {}.",
            datetime_fr(c.granted_at),
            c.method.label_fr(),
            grantee.to(),
            categories_fr(&c.categories),
        ));
    } else {
        doc.para(format!(
            "Le {}{place}, vous avez été informé(e) que ces informations vous concernant sont \
             transmises {} : {}.",
            datetime_fr(c.granted_at),
            grantee.to(),
            categories_fr(&c.categories),
        ));
    }
    let purposes: Vec<&str> = c.purposes.iter().map(|p| purpose_fr(*p)).collect();
    let mut facts = vec![
        format!("Pour quoi faire : {}.", join_fr(&purposes)),
        format!("Sur quelle base : {}.", c.legal_basis.label_fr()),
        if c.witness.is_empty() {
            format!("Recueilli par : {collector}.")
        } else {
            format!(
                "Recueilli par : {collector}, devant témoin ({}).",
                c.witness
            )
        },
        match (c.expires_at, by_consent) {
            (None, true) => "Valable : jusqu'à ce que vous le retiriez.".to_string(),
            (None, false) => "Jusqu'à : la fin de la mission qui le justifie.".to_string(),
            (Some(e), _) => format!("Valable : jusqu'au {}.", date_fr(e)),
        },
    ];
    let state = c.state_at(now);
    facts.push(match (&c.withdrawal, state) {
        (Some(w), _) => format!(
            "État au {} : retiré le {} {}.",
            date_fr(now),
            datetime_fr(w.at),
            channel_fr(&w.channel)
        ),
        (None, RecordState::Expired) => format!(
            "État au {} : arrivé à échéance ; vos informations ne sont plus transmises.",
            date_fr(now)
        ),
        (None, s) => format!("État au {} : {}.", date_fr(now), state_fr(s)),
    });
    if !c.notice_version.is_empty() {
        facts.push(format!(
            "Notice d'information remise : version {}{}.",
            c.notice_version,
            match c.notice_language.as_str() {
                "" | "fr" => String::new(),
                "oc" => " (en occitan)".to_string(),
                "es" => " (en espagnol)".to_string(),
                other => format!(" (langue : {other})"),
            }
        ));
    }
    doc.push(Block::List(facts));
    if !by_consent && c.withdrawal.is_none() && state != RecordState::Expired {
        doc.para(format!(
            "Ce partage repose sur {} : il ne dépend pas de votre accord, et vous ne pouvez pas \
             le retirer. Vous pouvez en demander les raisons, ou vous y opposer pour des raisons \
             tenant à votre situation (voir vos droits ci-dessous).",
            c.legal_basis.label_fr()
        ));
    } else if c.withdrawal.is_none() && state != RecordState::Expired {
        doc.para(format!(
            "Vous pouvez retirer cet accord à tout moment, aussi simplement que vous l'avez donné. \
             Le retrait prend effet immédiatement : {} ne {} plus recevoir ces informations, et \
             les services qui les avaient reçues doivent les effacer.",
            grantee.text,
            grantee.can()
        ));
    } else {
        doc.para(capital(&format!(
            "{} ne {} plus recevoir ces informations ; les services qui les avaient reçues ont \
             dû les effacer.",
            grantee.text,
            grantee.can()
        )));
    }
    rights(&mut doc, territory, &reference);
    doc.push(Block::Fill(vec![
        format!("Fait à ………………………………………, le {}.", date_fr(now)),
        "Signature de la personne :                         Signature de l'agent :".into(),
    ]));
    doc
}
