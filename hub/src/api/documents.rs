//! Documents for people who are not online: the consent receipt, the mandate to sign, and the
//! access report (GDPR art. 15, CRPA L114-8) — in plain French, as text and as printable HTML.

use crate::audit::AuditEntry;
use crate::domain::consent::{Consent, Mandate, RecordState};
use crate::domain::{DataCategory, Partner, PartnerId, PersonId, Purpose, Timestamp, paris};
use serde::Serialize;
use std::collections::HashMap;

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn purpose_fr(p: Purpose) -> &'static str {
    match p {
        Purpose::Accompagnement => "vous accompagner dans vos démarches",
        Purpose::Instruction => "instruire vos dossiers",
        Purpose::Orientation => "vous orienter vers un autre service",
        Purpose::AllerVers => "venir à votre rencontre (passages du bus, visites)",
        Purpose::PlanAlerte => "vous protéger lors d'un plan d'alerte (canicule, grand froid)",
        Purpose::Administration => "administrer le service",
        Purpose::Statistique => "produire des statistiques anonymes",
    }
}

fn purpose_str_fr(p: &str) -> String {
    Purpose::parse(p).map_or_else(|| p.to_string(), |p| purpose_fr(p).to_string())
}

fn category_str_fr(c: &str) -> String {
    DataCategory::parse(c).map_or_else(|_| c.to_string(), |c| c.label_fr().to_string())
}

fn state_fr(s: RecordState) -> &'static str {
    match s {
        RecordState::Granted => "en vigueur",
        RecordState::Expired => "expiré",
        RecordState::Withdrawn => "retiré",
        RecordState::Pending => "en attente de contre-signature",
    }
}

const STYLE: &str = "body{font-family:sans-serif;font-size:14pt;max-width:42em;margin:2em auto;line-height:1.5}\
h1{font-size:20pt}h2{font-size:16pt;margin-top:1.5em}table{border-collapse:collapse;width:100%}\
td,th{border:1px solid #444;padding:.3em .5em;text-align:left;vertical-align:top}\
.note{font-size:12pt;color:#333}@media print{body{margin:0}}";

fn page(title: &str, body: &str) -> String {
    page_styled(title, body, "")
}

/// A printable French page; `style` adds to the common one.
pub(crate) fn page_styled(title: &str, body: &str, style: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}{style}</style></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// The receipt of a consent record, for the person.
pub fn consent_receipt(
    c: &Consent,
    partners: &HashMap<PartnerId, Partner>,
    now: Timestamp,
) -> (String, String) {
    let name = |id: &PartnerId| {
        partners
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    let grantee = match &c.grantee {
        crate::domain::consent::Grantee::Partner { partner } => name(partner),
        g => g.describe_fr(),
    };
    let categories: Vec<_> = c.categories.iter().map(|c| c.label_fr()).collect();
    let purposes: Vec<_> = c.purposes.iter().map(|p| purpose_fr(*p)).collect();
    let expiry = c.expires_at.map_or_else(
        || "jusqu'à ce que vous le retiriez".to_string(),
        |e| format!("jusqu'au {}", paris(e)),
    );
    let withdrawn = c
        .withdrawal
        .as_ref()
        .map(|w| format!("Retiré le {} ({}).\n", paris(w.at), w.channel))
        .unwrap_or_default();
    let text = format!(
        "REÇU DE CONSENTEMENT — Relais, Comminges\n\
         Référence : {id}\n\n\
         Le {granted}, vous avez accepté ({method}) que ces informations vous concernant soient transmises à {grantee} : {categories}.\n\
         Pour : {purposes}.\n\
         Base légale : {basis}.\n\
         Recueilli par : {collector} (agent {agent}){witness}.\n\
         Valable {expiry}. État aujourd'hui : {state}.\n{withdrawn}\n\
         Vous pouvez retirer ce consentement à tout moment, aussi simplement que vous l'avez donné : \
         à n'importe quel guichet partenaire, au bus France Services, par téléphone ou par courrier à la communauté de communes. \
         Le retrait prend effet immédiatement, et les partenaires qui avaient reçu ces informations doivent les effacer.\n\
         Notice d'information : version {notice} ({lang}).\n",
        id = c.id,
        granted = paris(c.granted_at),
        method = c.method.label_fr(),
        categories = categories.join(", "),
        purposes = purposes.join(" ; "),
        basis = c.legal_basis.label_fr(),
        collector = name(&c.collected_by),
        agent = c.collected_by_agent,
        witness = if c.witness.is_empty() {
            String::new()
        } else {
            format!(", témoin : {}", c.witness)
        },
        state = state_fr(c.state_at(now)),
        notice = c.notice_version,
        lang = c.notice_language,
    );
    let html = page(
        "Reçu de consentement",
        &format!(
            "<h1>Reçu de consentement</h1>\n{}",
            text.lines()
                .skip(1)
                .filter(|l| !l.is_empty())
                .map(|l| format!("<p>{}</p>\n", escape(l)))
                .collect::<String>()
        ),
    );
    (text, html)
}

/// The mandate, to print and have the person sign.
pub fn mandate_text(m: &Mandate, partners: &HashMap<PartnerId, Partner>) -> String {
    let name = |id: &PartnerId| {
        partners
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.name.clone())
    };
    format!(
        "MANDAT — Relais, Comminges\n\
         Référence : {id}\n\n\
         Je donne mandat à l'agent {agent} de {partner} pour m'aider dans mes démarches sur les thèmes suivants : {themes}.\n\
         Ce mandat lui permet de suivre l'état de mes démarches sur ces thèmes.\n\
         Durée : {duration}, du {from} au {to}.\n\
         Je peux le révoquer à tout moment, à n'importe quel guichet partenaire ou par courrier.\n\n\
         Fait le {from}.          Signature :\n",
        id = m.id,
        agent = m.agent,
        partner = name(&m.partner),
        themes = m
            .themes
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        duration = m.duration.label_fr(),
        from = paris(m.granted_at),
        to = paris(m.expires_at),
    )
}

/// One exchange of the person's data, as the report lists it.
#[derive(Debug, Serialize)]
pub struct Exchange {
    pub at: Timestamp,
    pub partner: String,
    pub partner_name: String,
    pub agent: String,
    /// `read:…`, `deliver:…`, `write:…`.
    pub action: String,
    pub categories: Vec<String>,
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

impl AccessReport {
    pub fn new(
        person: PersonId,
        now: Timestamp,
        audit: Vec<AuditEntry>,
        consents: Vec<Consent>,
        mandates: Vec<Mandate>,
        partners: &HashMap<PartnerId, Partner>,
    ) -> Self {
        let exchanges = audit
            .into_iter()
            .filter(|e| e.principal != "admin")
            // Before migration 0004 the feed audited every event it scanned, refusals of
            // events nobody asked for included: those are neither asked nor given.
            .filter(|e| !(e.action.starts_with("deliver:") && e.decision == "deny"))
            .map(|e| Exchange {
                partner_name: PartnerId::parse(&e.principal)
                    .ok()
                    .and_then(|id| partners.get(&id))
                    .map_or_else(|| e.principal.clone(), |p| p.name.clone()),
                at: e.at,
                partner: e.principal,
                agent: e.agent,
                action: e.action,
                categories: e.categories,
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

    pub fn html(&self) -> String {
        let mut b = format!(
            "<h1>Vos informations partagées par Relais</h1>\n\
             <p>Ce document dit quels services publics et associations du territoire ont reçu ou enregistré des informations vous concernant, quand et pour quoi faire. \
             Il a été établi le {} (référence de la personne : {}).</p>\n",
            escape(&paris(self.generated_at)),
            self.person
        );
        b.push_str("<h2>Ce qui a été reçu ou enregistré</h2>\n");
        let shared: Vec<_> = self
            .exchanges
            .iter()
            .filter(|e| !e.categories.is_empty() || e.action.starts_with("write:"))
            .collect();
        if shared.is_empty() {
            b.push_str("<p>Aucune information vous concernant n'a été échangée.</p>\n");
        } else {
            b.push_str(
                "<table><tr><th>Date</th><th>Qui</th><th>Quoi</th><th>Pour quoi faire</th></tr>\n",
            );
            for e in shared {
                let cats = || {
                    e.categories
                        .iter()
                        .map(|c| category_str_fr(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let what = match e.action.as_str() {
                    "write:GrantConsent" => format!("a enregistré votre accord ({})", cats()),
                    "write:WithdrawConsent" => {
                        format!("a enregistré le retrait de votre accord ({})", cats())
                    }
                    "write:GrantMandate" => "a enregistré votre mandat".to_string(),
                    "write:RevokeMandate" => {
                        "a enregistré la révocation de votre mandat".to_string()
                    }
                    "write:LinkPerson" => "a rattaché son dossier à votre identité".to_string(),
                    _ => String::new(),
                };
                let what = if !what.is_empty() {
                    what
                } else if e.action.starts_with("write:") {
                    format!(
                        "a enregistré : {}",
                        e.categories
                            .iter()
                            .map(|c| category_str_fr(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!(
                        "a reçu : {}",
                        e.categories
                            .iter()
                            .map(|c| category_str_fr(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                b.push_str(&format!(
                    "<tr><td>{}</td><td>{} (agent {})</td><td>{}</td><td>{}</td></tr>\n",
                    escape(&paris(e.at)),
                    escape(&e.partner_name),
                    escape(&e.agent),
                    escape(&what),
                    escape(&purpose_str_fr(&e.purpose)),
                ));
            }
            b.push_str("</table>\n");
        }
        let refused = self
            .exchanges
            .iter()
            .filter(|e| !e.refused.is_empty())
            .count();
        if refused > 0 {
            b.push_str(&format!(
                "<p class=\"note\">Par ailleurs, {refused} demande(s) d'accès à vos informations ont été refusées, faute de votre accord.</p>\n"
            ));
        }
        b.push_str("<h2>Vos accords</h2>\n");
        if self.consents.is_empty() && self.mandates.is_empty() {
            b.push_str("<p>Vous n'avez donné aucun accord de partage.</p>\n");
        }
        for c in &self.consents {
            b.push_str(&format!(
                "<p>Accord du {} : {} peut recevoir {} pour {}. Base légale : {}. État : {}{}.</p>\n",
                escape(&paris(c.granted_at)),
                escape(&c.grantee.describe_fr()),
                escape(&c.categories.iter().map(|c| c.label_fr()).collect::<Vec<_>>().join(", ")),
                escape(&c.purposes.iter().map(|p| purpose_fr(*p)).collect::<Vec<_>>().join(" ; ")),
                c.legal_basis.label_fr(),
                state_fr(c.state_at(self.generated_at)),
                c.withdrawal
                    .as_ref()
                    .map(|w| format!(" (retiré le {})", escape(&paris(w.at))))
                    .unwrap_or_default()
            ));
        }
        for m in &self.mandates {
            b.push_str(&format!(
                "<p>Mandat du {} à l'agent {} ({}) pour : {}, jusqu'au {}. État : {}.</p>\n",
                escape(&paris(m.granted_at)),
                escape(m.agent.as_str()),
                escape(m.partner.as_str()),
                escape(
                    &m.themes
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                escape(&paris(m.expires_at)),
                state_fr(m.state_at(self.generated_at)),
            ));
        }
        b.push_str(
            "<h2>Vos droits</h2>\n<p>Vous pouvez retirer un accord à tout moment, à n'importe quel guichet, au bus France Services, \
             par téléphone ou par courrier à la communauté de communes. Vous pouvez aussi demander la rectification ou l'effacement de vos informations, \
             et saisir la CNIL (www.cnil.fr, 3 place de Fontenoy, 75007 Paris).</p>\n",
        );
        page("Vos informations partagées par Relais", &b)
    }
}
