//! The mandate, printed for the person and the agent to sign.

use super::{Block, Doc, Partners, date_fr, join_fr, reference, rights, state_fr};
use crate::config::TerritoryConfig;
use crate::domain::Timestamp;
use crate::domain::consent::{Mandate, RecordState};

/// The mandate `m` as it stands at `now`: (text, printable HTML).
pub fn mandate(
    m: &Mandate,
    partners: &Partners,
    territory: &TerritoryConfig,
    now: Timestamp,
) -> (String, String) {
    let doc = build(m, partners, territory, now);
    (doc.text(), doc.html())
}

fn build(m: &Mandate, partners: &Partners, territory: &TerritoryConfig, now: Timestamp) -> Doc {
    let reference = reference(m.person);
    let mut doc = Doc::for_person("Mandat d'accompagnement", territory, "", &reference);
    let themes: Vec<String> = m
        .themes
        .iter()
        .map(|t| format!("« {} »", t.label_fr()))
        .collect();
    let partner = super::partner_noun(partners, &m.partner);
    doc.push(Block::Fill(vec![
        "Je soussigné(e), ……………………………………………………………… (nom et prénom),".into(),
        format!(
            "donne mandat à ……………………………………………………………… (nom de l'agent), agent {},",
            partner.of()
        ),
    ]));
    doc.para(format!(
        "pour m'aider dans mes démarches {} {}.",
        if themes.len() == 1 {
            "sur le thème"
        } else {
            "sur les thèmes"
        },
        join_fr(&themes)
    ));
    doc.para(
        "Ce mandat lui permet de suivre, auprès des services partenaires de Relais, où en sont \
         mes démarches sur ces thèmes. Il ne lui donne accès à aucune autre information me \
         concernant.",
    );
    let mut facts = vec![format!(
        "Durée : {}, du {} au {}.",
        m.duration.label_fr(),
        date_fr(m.granted_at),
        date_fr(m.expires_at)
    )];
    match (&m.revocation, m.state_at(now)) {
        (Some(r), _) => facts.push(format!(
            "État au {} : révoqué le {}.",
            date_fr(now),
            date_fr(r.at)
        )),
        (None, RecordState::Granted) => {}
        (None, s) => facts.push(format!("État au {} : {}.", date_fr(now), state_fr(s))),
    }
    facts.push(format!(
        "Je peux y mettre fin à tout moment, {} ; il prend fin aussitôt.",
        territory.withdraw.trim()
    ));
    doc.push(Block::List(facts));
    rights(&mut doc, territory, &reference);
    doc.push(Block::Fill(vec![
        format!("Fait à ………………………………………, le {}.", date_fr(m.granted_at)),
        "Signature de la personne :                         Signature de l'agent :".into(),
    ]));
    doc
}
