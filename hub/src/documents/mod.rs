//! Documents for people who are not online — the consent receipt, the mandate to sign, the
//! access report (GDPR art. 15, CRPA L114-8) — in plain French, for a médiateur to hand over.
//!
//! Each document is built once as a list of blocks ([`Doc`]) and rendered twice: as a printable
//! A4 HTML page and as plain text (what the tests compare with the expected files under
//! `tests/expected/documents/`). No document shows an internal id: the person quotes one short
//! reference ([`reference`]) that the console finds.

mod mandate;
mod receipt;
mod report;

pub use mandate::mandate;
pub use receipt::consent_receipt;
pub use report::{AccessReport, Exchange};

use crate::config::TerritoryConfig;
use crate::domain::consent::{Grantee, RecordState};
use crate::domain::{DataCategory, Partner, PartnerId, PartnerKind, PersonId, Purpose, Timestamp};
use std::collections::HashMap;
use std::fmt::Write as _;

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The short reference a person quotes at a desk or in a letter: the first twelve hexadecimal
/// digits of their hub id (48 random bits: two persons share one with a chance of about one in
/// a hundred million in a territory of 100,000), in three groups — `7F3A-9C21-5B0E`. The
/// console finds a person by it. It is a way to be found, not a secret: the hub id it comes
/// from is known to the partners that serve the person.
pub fn reference(person: PersonId) -> String {
    let hex: String = person
        .to_string()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect::<String>()
        .to_uppercase();
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The hexadecimal prefix a reference (`7F3A-9C21-5B0E`, `7f3a9c215b0e`; the eight-digit
/// references of the first documents too) stands for, if it is one.
pub fn reference_prefix(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect::<String>()
        .to_lowercase();
    ((hex.len() == 8 || hex.len() == 12) && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| {
        // The hub id has a `-` after its eighth digit.
        if hex.len() == 12 {
            format!("{}-{}", &hex[..8], &hex[8..])
        } else {
            hex
        }
    })
}

/// The id prefix after `prefix` (lowercase hexadecimal, a `-` kept in place): `7f3a9c2f` →
/// `7f3a9c30`, `7f3a9c21-5b0f` → `7f3a9c21-5b10`; `g` after all `f`; `None` for anything else.
pub fn reference_successor(prefix: &str) -> Option<String> {
    if prefix.is_empty()
        || prefix.starts_with('-')
        || !prefix
            .chars()
            .all(|c| matches!(c, '0'..='9' | 'a'..='f' | '-'))
    {
        return None;
    }
    let mut digits: Vec<u8> = prefix.bytes().collect();
    for d in digits.iter_mut().rev() {
        match *d {
            b'-' => {}
            b'f' => *d = b'0',
            b'9' => {
                *d = b'a';
                return String::from_utf8(digits).ok();
            }
            _ => {
                *d += 1;
                return String::from_utf8(digits).ok();
            }
        }
    }
    Some("g".into())
}

/// A JSON document with its times (`at` and `…_at` fields, microseconds in the store) as
/// RFC 3339 strings, for people and scripts that read it.
pub fn rfc3339_times(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (&v, k == "at" || k.ends_with("_at")) {
                        (Value::Number(n), true) => n.as_i64().map_or(v.clone(), |m| {
                            Value::String(Timestamp::from_micros(m).to_string())
                        }),
                        _ => rfc3339_times(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(rfc3339_times).collect()),
        other => other,
    }
}

// ---- French -------------------------------------------------------------------------------

/// `5 décembre 2026`, `1er mars 2027` (Paris time).
pub(crate) fn date_fr(t: Timestamp) -> String {
    crate::domain::clock::paris_day(t).french_date()
}

/// `10 h 05` (Paris time).
pub(crate) fn time_fr(t: Timestamp) -> String {
    let l = crate::domain::clock::paris_local(t);
    format!("{} h {:02}", l.hour(), l.minute())
}

/// `5 décembre 2026 à 10 h 05`.
pub(crate) fn datetime_fr(t: Timestamp) -> String {
    format!("{} à {}", date_fr(t), time_fr(t))
}

/// `a`, `a et b`, `a, b et c`.
pub(crate) fn join_fr<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} et {}",
            init.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// "de" + a phrase, elided before a vowel: `d'une obligation légale`, `de la sauvegarde…`.
pub(crate) fn of(phrase: &str) -> String {
    match phrase.chars().next() {
        Some(c) if "aeéèêiouyhAEÉÈÊIOUYH".contains(c) => format!("d'{phrase}"),
        _ => format!("de {phrase}"),
    }
}

/// Capitalises the first letter.
pub(crate) fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A kind of data in the person's words, as "what a service knows of you".
pub(crate) fn data_fr(c: DataCategory) -> &'static str {
    match c {
        DataCategory::Mobility => "vos difficultés à vous déplacer",
        DataCategory::Digital => "vos difficultés avec le numérique",
        DataCategory::Language => "vos difficultés avec la langue française",
        DataCategory::Administrative => "vos difficultés avec les démarches administratives",
        DataCategory::Social => "votre situation sociale",
        DataCategory::Financial => "votre situation financière",
        DataCategory::Housing => "votre situation de logement",
        DataCategory::Health => "votre santé ou votre perte d'autonomie (donnée sensible)",
        DataCategory::CaseStatus => "l'état de vos démarches",
        DataCategory::Referrals => "les fiches de liaison entre services (fiches navettes)",
        DataCategory::Identity => "votre identité (nom, coordonnées)",
        DataCategory::Accessibility => "la façon de vous joindre",
    }
}

/// The kinds of data named in an audit entry, in the person's words, in the taxonomy's order.
pub(crate) fn data_list_fr<S: AsRef<str>>(categories: &[S]) -> String {
    let known: Vec<DataCategory> = categories
        .iter()
        .filter_map(|c| DataCategory::parse(c.as_ref()).ok())
        .collect();
    categories_fr(&known)
}

/// Kinds of data in the person's words, in the taxonomy's order, each once.
pub(crate) fn categories_fr(categories: &[DataCategory]) -> String {
    let mut known = categories.to_vec();
    known.sort_by_key(|c| DataCategory::ALL.iter().position(|a| a == c));
    known.dedup();
    join_fr(&known.into_iter().map(data_fr).collect::<Vec<_>>())
}

pub(crate) fn purpose_fr(p: Purpose) -> &'static str {
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

pub(crate) fn state_fr(s: RecordState) -> &'static str {
    match s {
        RecordState::Granted => "en vigueur",
        RecordState::Expired => "arrivé à échéance",
        RecordState::Withdrawn => "retiré",
        RecordState::Pending => "en attente de la contre-signature d'un administrateur",
    }
}

/// How a withdrawal reached the hub, from the channel code the desk gave.
pub(crate) fn channel_fr(channel: &str) -> String {
    match channel {
        "guichet" => "au guichet".into(),
        "telephone" | "téléphone" => "par téléphone".into(),
        "courrier" => "par courrier".into(),
        "bus" => "dans le bus France Services".into(),
        "en_ligne" | "en ligne" => "en ligne".into(),
        "domicile" => "à domicile".into(),
        "console" => "auprès d'un administrateur".into(),
        other => format!("({other})"),
    }
}

/// A noun phrase that knows its number and how "à" contracts with it, so that sentences agree:
/// "transmises aux mairies", "les mairies peuvent recevoir".
#[derive(Debug, Clone)]
pub(crate) struct Noun {
    pub text: String,
    pub plural: bool,
}

impl Noun {
    fn singular(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            plural: false,
        }
    }

    fn plural(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            plural: true,
        }
    }

    /// A partner's name as its administrators wrote it: "Les Restos du Cœur" is plural and
    /// contracts ("aux Restos du Cœur"), "Mairie d'Aspet" is singular.
    fn named(name: &str) -> Self {
        let lower = name.to_lowercase();
        Self {
            text: name.to_string(),
            plural: lower.starts_with("les "),
        }
    }

    /// The article the phrase starts with (`le`, `les`, any case) and the rest.
    fn article(&self) -> Option<(&'static str, &str)> {
        ["les ", "le "].into_iter().find_map(|a| {
            let head = self.text.get(..a.len())?;
            head.eq_ignore_ascii_case(a)
                .then(|| (a, &self.text[a.len()..]))
        })
    }

    /// "à" + the phrase: `aux mairies`, `au département`, `à la sous-préfecture`.
    pub fn to(&self) -> String {
        match self.article() {
            Some(("les ", rest)) => format!("aux {rest}"),
            Some((_, rest)) => format!("au {rest}"),
            None => format!("à {}", self.text),
        }
    }

    /// "de" + the phrase: `des Restos du Cœur`, `du CCAS`, `de Mairie d'Aspet`, `d'Aspet`.
    pub fn of(&self) -> String {
        match self.article() {
            Some(("les ", rest)) => format!("des {rest}"),
            Some((_, rest)) => format!("du {rest}"),
            None => of(&self.text),
        }
    }

    /// The verb `pouvoir` agreeing with the phrase.
    pub fn can(&self) -> &'static str {
        if self.plural { "peuvent" } else { "peut" }
    }
}

/// A kind of partner, as the people of the territory say it.
pub(crate) fn kind_fr(kind: PartnerKind) -> Noun {
    match kind {
        PartnerKind::CommunauteDeCommunes => Noun::singular("la communauté de communes"),
        PartnerKind::Mairie => Noun::plural("les mairies et leurs CCAS"),
        PartnerKind::Departement => Noun::singular("le département"),
        PartnerKind::SousPrefecture => Noun::singular("la sous-préfecture"),
        PartnerKind::Association => Noun::plural("les associations partenaires"),
        PartnerKind::Operateur => Noun::plural("les organismes nationaux partenaires (CAF, ANTS…)"),
    }
}

/// Partners by id, for names.
pub type Partners = HashMap<PartnerId, Partner>;

/// A partner's name, or a neutral phrase for one the hub no longer knows (never its id).
pub(crate) fn partner_fr(partners: &Partners, id: &PartnerId) -> String {
    partners
        .get(id)
        .map_or_else(|| "un service partenaire".to_string(), |p| p.name.clone())
}

/// A partner's name as a noun phrase (number, contractions).
pub(crate) fn partner_noun(partners: &Partners, id: &PartnerId) -> Noun {
    Noun::named(&partner_fr(partners, id))
}

/// Who may receive the data of a consent.
pub(crate) fn grantee_fr(g: &Grantee, partners: &Partners) -> Noun {
    match g {
        Grantee::Partner { partner } => Noun::named(&partner_fr(partners, partner)),
        Grantee::Kind { kind } => kind_fr(*kind),
        Grantee::Agent { partner, .. } => Noun::singular(format!(
            "un agent désigné {}",
            partner_noun(partners, partner).of()
        )),
    }
}

// ---- Documents ----------------------------------------------------------------------------

/// One block of a document.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    /// The document's title (one per document).
    Title(String),
    /// A line under the title (territory, reference).
    Subtitle(String),
    Heading(String),
    Subheading(String),
    Para(String),
    /// A paragraph in smaller type.
    Note(String),
    List(Vec<String>),
    /// Rows of cells; in text, each row becomes a paragraph of `header : cell` lines.
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    },
    /// Lines to fill in by hand (`Fait à … le …`, signatures).
    Fill(Vec<String>),
    /// What follows starts on a new sheet.
    PageBreak,
}

/// A document: its title (the HTML page's) and its blocks.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.into(),
            blocks: vec![],
        }
    }

    /// A document for the person: its title, the territory, and the line giving the
    /// reference to quote (`Votre référence, … : 7F3A-9C21-5B0E`, after `before`).
    pub fn for_person(
        title: &str,
        territory: &TerritoryConfig,
        before: &str,
        reference: &str,
    ) -> Self {
        let mut doc = Self::new(title);
        doc.push(Block::Title(title.into()));
        doc.push(Block::Subtitle(format!(
            "Relais — services publics partenaires, {}",
            territory.name
        )));
        doc.push(Block::Subtitle(capital(&format!(
            "{before}votre référence, à donner si vous nous contactez : {reference}"
        ))));
        doc
    }

    pub fn push(&mut self, b: Block) -> &mut Self {
        self.blocks.push(b);
        self
    }

    pub fn para(&mut self, s: impl Into<String>) -> &mut Self {
        self.push(Block::Para(s.into()))
    }

    /// Plain text, lines of at most 96 characters, blocks separated by a blank line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            match b {
                Block::Title(t) => {
                    let _ = writeln!(
                        out,
                        "{}\n{}",
                        t.to_uppercase(),
                        "=".repeat(t.chars().count())
                    );
                }
                Block::Subtitle(t) => {
                    let _ = writeln!(out, "{t}");
                }
                Block::Heading(t) => {
                    let _ = writeln!(out, "\n{t}\n{}", "-".repeat(t.chars().count()));
                }
                Block::Subheading(t) => {
                    let _ = writeln!(out, "\n{t}");
                }
                Block::Para(t) | Block::Note(t) => {
                    let _ = writeln!(out, "\n{}", wrap(t, 96, ""));
                }
                Block::List(items) => {
                    out.push('\n');
                    for i in items {
                        let _ = writeln!(out, "  - {}", wrap(i, 92, "    ").trim_start());
                    }
                }
                Block::Table { head, rows } => {
                    for r in rows {
                        out.push('\n');
                        for (h, c) in head.iter().zip(r) {
                            let line = format!("{h} : {c}");
                            let _ = writeln!(out, "  {}", wrap(&line, 94, "    ").trim_start());
                        }
                    }
                }
                Block::Fill(lines) => {
                    out.push('\n');
                    for l in lines {
                        let _ = writeln!(out, "{l}");
                    }
                }
                Block::PageBreak => {
                    out.push_str("\n\u{c}\n");
                }
            }
        }
        out
    }

    /// A printable A4 HTML page in French.
    pub fn html(&self) -> String {
        let mut b = String::new();
        let mut first_title = true;
        for block in &self.blocks {
            match block {
                Block::Title(t) => {
                    let _ = writeln!(b, "<h1>{}</h1>", escape(t));
                    first_title = false;
                }
                Block::Subtitle(t) => {
                    let _ = writeln!(b, "<p class=\"sub\">{}</p>", escape(t));
                }
                Block::Heading(t) => {
                    let _ = writeln!(b, "<h2>{}</h2>", escape(t));
                }
                Block::Subheading(t) => {
                    let _ = writeln!(b, "<h3>{}</h3>", escape(t));
                }
                Block::Para(t) => {
                    let _ = writeln!(b, "<p>{}</p>", nbsp(t));
                }
                Block::Note(t) => {
                    let _ = writeln!(b, "<p class=\"note\">{}</p>", nbsp(t));
                }
                Block::List(items) => {
                    b.push_str("<ul>\n");
                    for i in items {
                        let _ = writeln!(b, "<li>{}</li>", nbsp(i));
                    }
                    b.push_str("</ul>\n");
                }
                Block::Table { head, rows } => {
                    b.push_str("<table>\n<thead><tr>");
                    for h in head {
                        let _ = write!(b, "<th scope=\"col\">{}</th>", escape(h));
                    }
                    b.push_str("</tr></thead>\n<tbody>\n");
                    for r in rows {
                        b.push_str("<tr>");
                        for c in r {
                            let _ = write!(b, "<td>{}</td>", escape(c));
                        }
                        b.push_str("</tr>\n");
                    }
                    b.push_str("</tbody></table>\n");
                }
                Block::Fill(lines) => {
                    b.push_str("<div class=\"fill\">\n");
                    for l in lines {
                        // Columns to sign side by side, as the text spaces them.
                        let cells: Vec<String> = l
                            .split("   ")
                            .map(str::trim)
                            .filter(|c| !c.is_empty())
                            .map(escape)
                            .collect();
                        // Room to sign under a signature line.
                        let class = if l.starts_with("Signature") {
                            " class=\"sign\""
                        } else {
                            ""
                        };
                        let gap = "<span class=\"gap\"></span>";
                        let _ = writeln!(b, "<p{class}>{}</p>", cells.join(gap));
                    }
                    b.push_str("</div>\n");
                }
                Block::PageBreak => b.push_str("<div class=\"break\"></div>\n"),
            }
        }
        debug_assert!(!first_title, "a document has a title");
        page_styled(&self.title, &b, "")
    }
}

/// The words of `s` for wrapping: French punctuation that follows a space (`:`, `;`, `»`, `?`,
/// `!`) stays with the word before it; `«`, a number and the `h` of an hour with the word after
/// it.
fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut glue_next = false;
    for w in s.split(' ') {
        if glue_next
            || (matches!(w, ":" | ";" | "»" | "?" | "!") || w.starts_with('»')) && !out.is_empty()
        {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(w);
            }
        } else {
            out.push(w.to_string());
        }
        // `«` stays with what it opens, a number with its unit (`4 fois`, `10 h 05`).
        glue_next =
            w == "«" || w == "h" || (!w.is_empty() && w.chars().all(|c| c.is_ascii_digit()));
    }
    out
}

/// Escaped, with the spaces around French punctuation unbreakable.
fn nbsp(s: &str) -> String {
    escape(s)
        .replace(" :", "&nbsp;:")
        .replace(" ;", "&nbsp;;")
        .replace(" »", "&nbsp;»")
        .replace("« ", "«&nbsp;")
}

/// Wraps `s` at `width` characters, continuation lines prefixed with `indent`.
fn wrap(s: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in words(s) {
        let word = word.as_str();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

const STYLE: &str = "@page{size:A4;margin:14mm 15mm 14mm}\
body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:13pt;max-width:44em;margin:2em auto;line-height:1.4;color:#000}\
h1{font-size:19pt;margin:0 0 .2em}h2{font-size:15pt;margin:1.1em 0 .4em;border-bottom:1px solid #000}\
h3{font-size:13.5pt;margin:1em 0 .3em}p{margin:.45em 0}ul{margin:.3em 0 .3em 1.2em;padding:0}li{margin:.15em 0}\
.sub{margin:0;font-size:12pt}table{border-collapse:collapse;width:100%;font-size:11.5pt}\
td,th{border:1px solid #444;padding:.25em .4em;text-align:left;vertical-align:top}th{background:#eee}\
.note{font-size:11.5pt}.fill p{margin:1.1em 0}.sign{margin-bottom:3em}.gap{display:inline-block;width:8em}.break{break-before:page}\
@media screen{.break{border-top:2px dashed #888;margin:2em 0}}\
@media print{body{margin:0;max-width:none}h2,h3{break-after:avoid}tr,li{break-inside:avoid}}";

/// A printable French page; `style` adds to the common one.
pub(crate) fn page_styled(title: &str, body: &str, style: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}{style}</style></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// The controller, the DPO and the person's rights, as every document ends.
pub(crate) fn rights(doc: &mut Doc, t: &TerritoryConfig, reference: &str) {
    doc.push(Block::Heading("Vos droits et vos contacts".into()));
    let mut controller = format!("Responsable du traitement : {}", t.controller);
    for part in [&t.controller_address, &t.controller_contact] {
        if !part.trim().is_empty() {
            let _ = write!(controller, ", {}", part.trim());
        }
    }
    controller.push('.');
    let mut dpo = format!("Délégué à la protection des données : {}", t.dpo);
    if t.dpo_contact.trim().is_empty() {
        dpo.push_str(" (ses coordonnées vous sont données à tout guichet partenaire).");
    } else {
        let _ = write!(dpo, ", {}.", t.dpo_contact.trim());
    }
    doc.push(Block::List(vec![controller, dpo]));
    doc.para(format!(
        "Vous pouvez à tout moment retirer un accord ou mettre fin à un mandat, demander à voir \
         les informations qui vous concernent, les faire corriger ou effacer, ou vous opposer à \
         leur partage : adressez-vous {}, en donnant la référence {reference}. Le retrait prend \
         effet immédiatement.",
        t.withdraw.trim()
    ));
    doc.para(
        "Si vous pensez que vos droits ne sont pas respectés, vous pouvez saisir la CNIL : \
         www.cnil.fr, ou par courrier à la CNIL, 3 place de Fontenoy, TSA 80715, 75334 Paris \
         Cedex 07.",
    );
}

#[cfg(test)]
mod tests;
