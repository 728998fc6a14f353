//! The access report: what the services of the territory know of the person through Relais.
//! One page of summary (who knows what, since when, why, on what basis; the accords in force
//! and how to end them), then the detail by service and by day, repeated acts folded into one
//! line with a count, then the person's rights and a place for date and signature.

use super::{
    Block, Doc, Partners, capital, categories_fr, data_list_fr, date_fr, datetime_fr, grantee_fr,
    join_fr, partner_fr, purpose_fr, reference, rights, state_fr, time_fr,
};
use crate::audit::AuditEntry;
use crate::config::TerritoryConfig;
use crate::domain::consent::{Consent, LegalBasis, Mandate, RecordState};
use crate::domain::{DataCategory, Day, PartnerId, PersonId, Purpose, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One exchange of the person's data, as the report lists it (the JSON form keeps the
/// audit's terms).
#[derive(Debug, Serialize)]
pub struct Exchange {
    pub at: Timestamp,
    pub partner: String,
    pub partner_name: String,
    pub agent: String,
    /// `read:…`, `deliver:…`, `write:…`.
    pub action: String,
    pub categories: Vec<String>,
    /// Of `categories`, those read from the partner's own records only.
    pub own: Vec<String>,
    pub refused: Vec<String>,
    pub purpose: String,
    pub rules: Vec<String>,
    pub records: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct AccessReport {
    pub person: PersonId,
    pub generated_at: Timestamp,
    pub exchanges: Vec<Exchange>,
    pub consents: Vec<Consent>,
    pub mandates: Vec<Mandate>,
}

/// Each write of a partner, in the person's words, and what it tells the service of them.
const WRITES: [(&str, &str, Option<DataCategory>); 15] = [
    ("GrantConsent", "a enregistré votre accord de partage", None),
    (
        "WithdrawConsent",
        "a enregistré le retrait de votre accord",
        None,
    ),
    ("GrantMandate", "a enregistré votre mandat", None),
    ("RevokeMandate", "a enregistré la fin de votre mandat", None),
    (
        "LinkPerson",
        "a rattaché son dossier à votre identité",
        Some(DataCategory::Identity),
    ),
    (
        "UnlinkPerson",
        "a détaché son dossier de votre identité",
        None,
    ),
    (
        "OpenCase",
        "a ouvert un dossier pour l'une de vos démarches",
        Some(DataCategory::CaseStatus),
    ),
    (
        "TransitionCase",
        "a mis à jour l'état de l'une de vos démarches",
        Some(DataCategory::CaseStatus),
    ),
    (
        "SendReferral",
        "a adressé une fiche navette à un autre service pour vous",
        Some(DataCategory::Referrals),
    ),
    (
        "AcknowledgeReferral",
        "a accusé réception d'une fiche navette vous concernant",
        Some(DataCategory::Referrals),
    ),
    (
        "AnswerReferral",
        "a répondu à une fiche navette vous concernant",
        Some(DataCategory::Referrals),
    ),
    (
        "EscalateReferral",
        "a relancé une fiche navette vous concernant",
        Some(DataCategory::Referrals),
    ),
    (
        "CloseReferral",
        "a clos une fiche navette vous concernant",
        Some(DataCategory::Referrals),
    ),
    (
        "SetAccessibility",
        "a noté la façon de vous joindre",
        Some(DataCategory::Accessibility),
    ),
    (
        "SetResidence",
        "a noté votre commune de résidence",
        Some(DataCategory::Identity),
    ),
];

/// What one exchange was, for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The service received data from others (or as the rules decide).
    Received,
    /// It recorded something about the person.
    Recorded,
    /// It consulted what it had recorded itself.
    Own,
    /// It asked and was refused.
    Refused,
}

#[derive(Debug)]
struct Act {
    at: Timestamp,
    kind: Kind,
    what: String,
    purpose: Option<Purpose>,
    /// It recorded an accord or a mandate (or their end).
    accord: bool,
    /// What was refused, after the purpose (`: refusé, faute de votre accord`).
    outcome: String,
    /// What the service knows of the person after this act.
    knows: Vec<DataCategory>,
    /// On what basis (the accord or mandate that allowed it, or the service's mission).
    basis: Option<String>,
}

/// Acts alike on one day, folded into one line.
struct Folded<'a> {
    act: &'a Act,
    first: Timestamp,
    last: Timestamp,
    count: usize,
}

impl Folded<'_> {
    /// `de 10 h 12 à 10 h 14 — a reçu l'état de vos démarches, pour … (3 fois).`
    fn line(&self) -> String {
        let when = if self.count > 1 && time_fr(self.first) != time_fr(self.last) {
            format!("de {} à {}", time_fr(self.first), time_fr(self.last))
        } else {
            time_fr(self.first)
        };
        let why = self
            .act
            .purpose
            .map(|p| format!(", pour {}", purpose_fr(p)))
            .unwrap_or_default();
        let times = if self.count > 1 {
            format!(" ({} fois)", self.count)
        } else {
            String::new()
        };
        format!(
            "{when} — {}{why}{times}{}.",
            self.act.what, self.act.outcome
        )
    }
}

impl AccessReport {
    pub fn new(
        person: PersonId,
        now: Timestamp,
        audit: Vec<AuditEntry>,
        consents: Vec<Consent>,
        mandates: Vec<Mandate>,
        partners: &Partners,
    ) -> Self {
        let exchanges = audit
            .into_iter()
            // Partners' acts only: administrators' and the hub's own (expiries) are in the
            // audit, not in what services know of the person.
            .filter(|e| {
                PartnerId::parse(&e.principal).is_ok()
                    && !["admin", "hub"].contains(&e.principal.as_str())
            })
            // Before migration 0004 the feed audited every event it scanned, refusals of
            // events nobody asked for included: those are neither asked nor given.
            .filter(|e| !(e.action.starts_with("deliver:") && e.decision == "deny"))
            .map(|e| Exchange {
                partner_name: PartnerId::parse(&e.principal)
                    .map(|id| partner_fr(partners, &id))
                    .unwrap_or_else(|_| e.principal.clone()),
                at: e.at,
                partner: e.principal,
                agent: e.agent,
                action: e.action,
                categories: e.categories,
                own: e.own,
                refused: e.denied,
                purpose: e.purpose.unwrap_or_default(),
                rules: e.policies,
                records: e.records,
            })
            .collect();
        Self {
            person,
            generated_at: now,
            exchanges,
            consents,
            mandates,
        }
    }

    pub fn html(&self, partners: &Partners, territory: &TerritoryConfig) -> String {
        self.document(partners, territory).html()
    }

    pub fn text(&self, partners: &Partners, territory: &TerritoryConfig) -> String {
        self.document(partners, territory).text()
    }

    /// The basis of an act from the records behind it.
    fn basis_of(&self, records: &[String]) -> Option<String> {
        records.iter().find_map(|r| {
            let (kind, id) = r.split_once(':')?;
            match kind {
                "consent" => self
                    .consents
                    .iter()
                    .find(|c| c.id.to_string() == id)
                    .map(|c| match c.legal_basis {
                        LegalBasis::Consent => format!("votre accord du {}", date_fr(c.granted_at)),
                        other => format!(
                            "{} (enregistrée le {})",
                            other.label_fr(),
                            date_fr(c.granted_at)
                        ),
                    }),
                "mandate" => self
                    .mandates
                    .iter()
                    .find(|m| m.id.to_string() == id)
                    .map(|m| format!("votre mandat du {}", date_fr(m.granted_at))),
                _ => None,
            }
        })
    }

    fn act(&self, e: &Exchange) -> Act {
        let cats = |list: &[String]| -> Vec<DataCategory> {
            list.iter()
                .filter_map(|c| DataCategory::parse(c).ok())
                .collect()
        };
        let (verb, method) = e.action.split_once(':').unwrap_or(("", e.action.as_str()));
        let purpose = Purpose::parse(&e.purpose);
        let mut act = Act {
            at: e.at,
            kind: Kind::Recorded,
            what: String::new(),
            purpose,
            accord: false,
            outcome: String::new(),
            knows: vec![],
            basis: None,
        };
        if verb == "write" {
            let written = cats(&e.categories);
            let (what, knows): (String, Vec<DataCategory>) = match method {
                "RaiseFlag" => (
                    format!("a noté {}", data_list_fr(&e.categories)),
                    written.clone(),
                ),
                "RetractFlag" => (
                    format!("a retiré une mention : {}", data_list_fr(&e.categories)),
                    vec![],
                ),
                _ => match WRITES.iter().find(|(m, _, _)| *m == method) {
                    Some((_, what, knows)) => (what.to_string(), knows.iter().copied().collect()),
                    None if written.is_empty() => ("a enregistré une information".into(), vec![]),
                    None => (
                        format!("a enregistré {}", data_list_fr(&e.categories)),
                        written.clone(),
                    ),
                },
            };
            act.accord = matches!(
                method,
                "GrantConsent" | "WithdrawConsent" | "GrantMandate" | "RevokeMandate"
            );
            act.what = what;
            act.knows = knows;
            // Recording an accord or a mandate is not knowing more of the person.
            if !act.knows.is_empty() {
                act.basis = Some(
                    self.basis_of(&e.records)
                        .unwrap_or_else(|| "ce qu'il a noté lui-même".to_string()),
                );
            }
            return act;
        }
        // What no rule and no record decided came from the partner's own records (a lookup of
        // its own local id, a filter on what it noted itself).
        let decided = !(e.rules.is_empty() && e.records.is_empty());
        let received: Vec<String> = e
            .categories
            .iter()
            .filter(|c| decided && !e.own.contains(c))
            .cloned()
            .collect();
        let automatic = if verb == "deliver" {
            " (mise à jour automatique)"
        } else {
            ""
        };
        if !e.refused.is_empty() {
            act.outcome = format!(
                " ; refusé, faute de votre accord : {}",
                data_list_fr(&e.refused)
            );
        }
        if !received.is_empty() {
            act.kind = Kind::Received;
            act.what = format!("a reçu {}{automatic}", data_list_fr(&received));
            act.knows = cats(&received);
            act.basis =
                Some(self.basis_of(&e.records).unwrap_or_else(|| {
                    "sa mission de service public (règles du territoire)".into()
                }));
        } else if !e.categories.is_empty() {
            act.kind = Kind::Own;
            act.what = "a consulté ce qu'il avait lui-même noté".into();
        } else if !e.refused.is_empty() {
            act.kind = Kind::Refused;
            act.what = format!("a demandé {}", data_list_fr(&e.refused));
            act.outcome = " : refusé, faute de votre accord".into();
        } else {
            act.kind = Kind::Own;
            act.what = "a consulté votre dossier, sans rien recevoir".into();
        }
        act
    }

    pub(crate) fn document(&self, partners: &Partners, territory: &TerritoryConfig) -> Doc {
        let reference = reference(self.person);
        let now = self.generated_at;
        // Acts by service, in the order services first appear.
        let mut order: Vec<&str> = vec![];
        let mut by_partner: BTreeMap<&str, (String, Vec<Act>)> = BTreeMap::new();
        for e in &self.exchanges {
            let slot = by_partner.entry(e.partner.as_str()).or_insert_with(|| {
                order.push(e.partner.as_str());
                (
                    PartnerId::parse(&e.partner)
                        .map(|id| partner_fr(partners, &id))
                        .unwrap_or_else(|_| e.partner_name.clone()),
                    vec![],
                )
            });
            slot.1.push(self.act(e));
        }

        let mut doc = Doc::for_person(
            "Vos informations partagées par Relais",
            territory,
            &format!("Document établi le {} · ", datetime_fr(now)),
            &reference,
        );
        doc.para(
            "Ce document dit quels services publics et associations du territoire connaissent, \
             par Relais, des informations vous concernant : depuis quand, pour quoi faire et sur \
             quelle base. Il ne dit que ce qui passe par Relais ; chaque service tient aussi ses \
             propres dossiers.",
        );

        // ---- Page 1: the summary.
        doc.push(Block::Heading("En résumé".into()));
        let mut rows = vec![];
        let mut refused_only = vec![];
        for id in &order {
            let (name, acts) = &by_partner[id];
            let mut knows: BTreeSet<DataCategory> = BTreeSet::new();
            let mut purposes: Vec<Purpose> = vec![];
            let mut bases: Vec<String> = vec![];
            let mut since: Option<Timestamp> = None;
            let mut accords = false;
            for a in acts {
                accords |= a.accord;
                if a.kind == Kind::Refused {
                    continue;
                }
                knows.extend(a.knows.iter().copied());
                if let Some(p) = a.purpose
                    && !purposes.contains(&p)
                {
                    purposes.push(p);
                }
                if let Some(b) = &a.basis
                    && !bases.contains(b)
                {
                    bases.push(b.clone());
                }
                since = Some(since.map_or(a.at, |s: Timestamp| s.min(a.at)));
            }
            let Some(since) = since else {
                let n = acts.len();
                refused_only.push(if n == 1 {
                    name.clone()
                } else {
                    format!("{name} ({n} fois)")
                });
                continue;
            };
            let knows: Vec<DataCategory> = knows.into_iter().collect();
            rows.push(vec![
                name.clone(),
                if knows.is_empty() && accords {
                    "Seulement les accords ou mandats qu'il a enregistrés".into()
                } else if knows.is_empty() {
                    "Rien d'autre que votre dossier".into()
                } else {
                    capital(&categories_fr(&knows))
                },
                date_fr(since),
                capital(&join_fr(
                    &purposes.iter().map(|p| purpose_fr(*p)).collect::<Vec<_>>(),
                )),
                if bases.is_empty() {
                    "Sans objet".into()
                } else {
                    capital(&join_fr(&bases))
                },
            ]);
        }
        if rows.is_empty() {
            doc.para(
                "Aucun service n'a reçu ni enregistré d'information vous concernant par Relais.",
            );
        } else {
            doc.push(Block::Table {
                head: vec![
                    "Service",
                    "Ce qu'il sait de vous",
                    "Depuis le",
                    "Pour quoi faire",
                    "Sur quelle base",
                ],
                rows,
            });
        }
        if !refused_only.is_empty() {
            doc.push(Block::Note(if refused_only.len() == 1 {
                format!(
                    "Ce service a demandé des informations vous concernant, qui lui ont été \
                     refusées faute de votre accord : {}.",
                    refused_only[0]
                )
            } else {
                format!(
                    "Ces services ont demandé des informations vous concernant, qui leur ont été \
                     refusées faute de votre accord : {}.",
                    join_fr(&refused_only)
                )
            }));
        }

        doc.push(Block::Heading("Vos accords et mandats en vigueur".into()));
        let mut in_force = vec![];
        let mut by_law = vec![];
        for c in &self.consents {
            let state = c.state_at(now);
            if !matches!(state, RecordState::Granted | RecordState::Pending) {
                continue;
            }
            if c.legal_basis != LegalBasis::Consent {
                let grantee = grantee_fr(&c.grantee, partners);
                by_law.push(format!(
                    "Depuis le {} : {} {} recevoir {}, en vertu {}.",
                    date_fr(c.granted_at),
                    grantee.text,
                    grantee.can(),
                    categories_fr(&c.categories),
                    super::of(c.legal_basis.label_fr()),
                ));
                continue;
            }
            let grantee = grantee_fr(&c.grantee, partners);
            let purposes: Vec<&str> = c.purposes.iter().map(|p| purpose_fr(*p)).collect();
            in_force.push(format!(
                "Depuis le {} : {} {} recevoir {}, pour {}{}{}.",
                date_fr(c.granted_at),
                grantee.text,
                grantee.can(),
                categories_fr(&c.categories),
                join_fr(&purposes),
                c.expires_at
                    .map(|e| format!(", jusqu'au {}", date_fr(e)))
                    .unwrap_or_default(),
                if state == RecordState::Pending {
                    format!(" ({})", state_fr(state))
                } else {
                    String::new()
                }
            ));
        }
        for m in &self.mandates {
            if m.state_at(now) != RecordState::Granted {
                continue;
            }
            let themes: Vec<String> = m
                .themes
                .iter()
                .map(|t| format!("« {} »", t.label_fr()))
                .collect();
            in_force.push(format!(
                "Depuis le {} : un agent {} peut suivre vos démarches ({}), jusqu'au {} (votre mandat).",
                date_fr(m.granted_at),
                super::partner_noun(partners, &m.partner).of(),
                join_fr(&themes),
                date_fr(m.expires_at)
            ));
        }
        if in_force.is_empty() {
            doc.para("Vous n'avez aucun accord de partage ni mandat en vigueur.");
        } else {
            doc.push(Block::List(in_force));
            doc.para(format!(
                "Pour retirer un accord ou mettre fin à un mandat, adressez-vous {}, en donnant la \
                 référence {reference}. Le retrait prend effet immédiatement, et les services qui \
                 avaient reçu ces informations doivent les effacer.",
                territory.withdraw.trim()
            ));
        }
        if !by_law.is_empty() {
            doc.push(Block::Heading(
                "Ce qui est partagé sans votre accord, en vertu de la loi".into(),
            ));
            doc.push(Block::List(by_law));
            doc.para(
                "Ces partages ne dépendent pas de votre accord et ne se retirent pas ; vous pouvez \
                 en demander les raisons, ou vous y opposer pour des raisons tenant à votre \
                 situation (voir vos droits).",
            );
        }

        // ---- The detail, by service and by day.
        if !order.is_empty() {
            doc.push(Block::PageBreak);
            doc.push(Block::Heading("Le détail, service par service".into()));
            doc.para(
                "Les heures sont celles de Paris. Un même échange répété le même jour est \
                 regroupé sur une seule ligne, avec le nombre de fois.",
            );
            for id in &order {
                let (name, acts) = &by_partner[id];
                doc.push(Block::Subheading(name.clone()));
                // day → (what, purpose) → (first, last, count), in the order of first times.
                let mut days: BTreeMap<Day, Vec<Folded>> = BTreeMap::new();
                for a in acts {
                    let lines = days
                        .entry(crate::domain::clock::paris_day(a.at))
                        .or_default();
                    match lines.iter_mut().find(|l| {
                        l.act.what == a.what
                            && l.act.purpose == a.purpose
                            && l.act.outcome == a.outcome
                    }) {
                        Some(l) => {
                            l.first = l.first.min(a.at);
                            l.last = l.last.max(a.at);
                            l.count += 1;
                        }
                        None => lines.push(Folded {
                            act: a,
                            first: a.at,
                            last: a.at,
                            count: 1,
                        }),
                    }
                }
                for lines in days.values_mut() {
                    lines.sort_by_key(|l| l.first);
                    doc.para(format!("Le {} :", date_fr(lines[0].first)));
                    doc.push(Block::List(lines.iter().map(Folded::line).collect()));
                }
            }
        }

        let ended: Vec<String> = self
            .consents
            .iter()
            .filter(|c| !matches!(c.state_at(now), RecordState::Granted | RecordState::Pending))
            .map(|c| {
                let grantee = grantee_fr(&c.grantee, partners);
                format!(
                    "Accord du {} ({} : {}) : {}.",
                    date_fr(c.granted_at),
                    grantee.text,
                    categories_fr(&c.categories),
                    match &c.withdrawal {
                        Some(w) => format!("retiré le {}", date_fr(w.at)),
                        None => state_fr(c.state_at(now)).to_string(),
                    }
                )
            })
            .chain(
                self.mandates
                    .iter()
                    .filter(|m| m.state_at(now) != RecordState::Granted)
                    .map(|m| {
                        format!(
                            "Mandat du {} (un agent {}) : {}.",
                            date_fr(m.granted_at),
                            super::partner_noun(partners, &m.partner).of(),
                            match &m.revocation {
                                Some(r) => format!("révoqué le {}", date_fr(r.at)),
                                None => state_fr(m.state_at(now)).to_string(),
                            }
                        )
                    }),
            )
            .collect();
        if !ended.is_empty() {
            doc.push(Block::Heading("Vos accords et mandats passés".into()));
            doc.push(Block::List(ended));
        }

        rights(&mut doc, territory, &reference);
        doc.push(Block::Fill(vec![
            "Document remis le ……………………………… à ……………………………………………… (lieu)".into(),
            "par ……………………………………………………………… (nom et service de l'agent).".into(),
            "Signature de l'agent :".into(),
        ]));
        doc
    }
}
